//! Exact decimal money: amounts are whole cents in an `i64`, never floats.
//!
//! [`parse_amount`] reads the raw text of a JSON number and rounds it to cents the way a
//! SQL `numeric(_, 2)` column or a C# `decimal` stores it (round half to even).
//! [`write_cents`] prints cents back with exactly two decimals, and [`Rate`] is an exact
//! decimal fee rate whose products are printed with the scale C# `decimal` would give them.

/// An amount of money in cents (hundredths of the currency unit).
pub type Cents = i64;

/// The largest accepted payment: ten billion currency units, in cents.
///
/// Bounds one payment so that sums of millions of payments fit in an `i64`:
/// `i64::MAX / MAX_AMOUNT_CENTS` is about 9.2 million, so even nine million payments of
/// the largest size (and far more real ones) add up without overflow.
pub const MAX_AMOUNT_CENTS: Cents = 1_000_000_000_000;

/// Decimal digits of [`MAX_AMOUNT_CENTS`]; a rounded amount with more digits is too large.
const MAX_AMOUNT_DIGITS: i128 = 13;

/// Exponents beyond this magnitude are clamped while parsing. Any exponent larger than the
/// token's own length (plus a few digits) already decides the outcome (zero or too large),
/// and no request body comes near 10^15 bytes, so clamping never changes a result while it
/// keeps the arithmetic free of overflow.
const EXPONENT_CLAMP: i64 = 1_000_000_000_000_000;

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// The token is not a JSON number.
    Syntax,
    /// The amount is zero or negative once rounded to cents.
    NotPositive,
    /// The amount exceeds [`MAX_AMOUNT_CENTS`].
    TooLarge,
}

impl AmountError {
    /// A short English explanation, suitable for an error response.
    pub fn reason(self) -> &'static str {
        match self {
            AmountError::Syntax => "amount must be a JSON number",
            AmountError::NotPositive => "amount must be positive after rounding to cents",
            AmountError::TooLarge => "amount is too large",
        }
    }
}

/// The parts of a JSON number token: value = (int ++ frac) × 10^(exp − frac.len()).
struct Number<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// The exponent, clamped to ±[`EXPONENT_CLAMP`].
    exp: i64,
}

impl Number<'_> {
    /// Total count of mantissa digits (integer and fraction).
    fn len(&self) -> usize {
        self.int.len() + self.frac.len()
    }

    /// Mantissa digit `i` (counting integer digits first) as a number 0..=9.
    fn digit(&self, i: usize) -> u8 {
        match self.int.get(i) {
            Some(&c) => c - b'0',
            None => self.frac[i - self.int.len()] - b'0',
        }
    }
}

/// Advances `i` over ASCII digits in `t` and returns the new position.
fn skip_digits(t: &[u8], mut i: usize) -> usize {
    while t.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Splits a token following the strict JSON number grammar
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn split_number(t: &[u8]) -> Result<Number<'_>, AmountError> {
    let negative = t.first() == Some(&b'-');
    let int_start = usize::from(negative);
    let int_end = match t.get(int_start) {
        Some(b'0') => int_start + 1,
        Some(b'1'..=b'9') => skip_digits(t, int_start + 1),
        _ => return Err(AmountError::Syntax),
    };
    let mut i = int_end;
    let mut frac: &[u8] = &[];
    if t.get(i) == Some(&b'.') {
        let start = i + 1;
        i = skip_digits(t, start);
        if i == start {
            return Err(AmountError::Syntax);
        }
        frac = &t[start..i];
    }
    let mut exp: i64 = 0;
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match t.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c @ b'0'..=b'9') = t.get(i) {
            exp = (exp * 10 + i64::from(c - b'0')).min(EXPONENT_CLAMP);
            i += 1;
        }
        if i == start {
            return Err(AmountError::Syntax);
        }
        if exp_negative {
            exp = -exp;
        }
    }
    if i != t.len() {
        return Err(AmountError::Syntax);
    }
    Ok(Number {
        negative,
        int: &t[int_start..int_end],
        frac,
        exp,
    })
}

/// Parses the raw text of a JSON number into cents, rounding half to even.
///
/// The value is computed exactly from the decimal text, whatever its length or exponent,
/// in time linear in the token length. Zero and negative amounts are
/// [`AmountError::NotPositive`]; amounts above [`MAX_AMOUNT_CENTS`] are
/// [`AmountError::TooLarge`].
pub fn parse_amount(token: &[u8]) -> Result<Cents, AmountError> {
    let number = split_number(token)?;
    let len = number.len();
    let Some(first) = (0..len).find(|&i| number.digit(i) != 0) else {
        return Err(AmountError::NotPositive);
    };
    if number.negative {
        return Err(AmountError::NotPositive);
    }
    // The value in cents is D × 10^shift, where D is the mantissa without leading zeros.
    let significant = (len - first) as i128;
    let shift = i128::from(number.exp) - number.frac.len() as i128 + 2;
    // How many leading digits of D form the integer part of the value in cents.
    let kept = significant + shift;
    if kept > MAX_AMOUNT_DIGITS {
        return Err(AmountError::TooLarge);
    }
    let mut cents: Cents = 0;
    if shift >= 0 {
        // Here kept <= 13, so D has at most 13 digits and shift is at most 12.
        for i in first..len {
            cents = cents * 10 + Cents::from(number.digit(i));
        }
        for _ in 0..shift {
            cents *= 10;
        }
    } else if kept >= 0 {
        let cut = first + kept as usize;
        for i in first..cut {
            cents = cents * 10 + Cents::from(number.digit(i));
        }
        // cut < len because shift < 0 means some digits are dropped.
        let round_up = match number.digit(cut) {
            0..=4 => false,
            5 => (cut + 1..len).any(|i| number.digit(i) != 0) || cents % 2 == 1,
            _ => true,
        };
        if round_up {
            cents += 1;
        }
    }
    // kept < 0: the first dropped digit is an implicit zero, so the value rounds to zero.
    if cents <= 0 {
        Err(AmountError::NotPositive)
    } else if cents > MAX_AMOUNT_CENTS {
        Err(AmountError::TooLarge)
    } else {
        Ok(cents)
    }
}

/// Appends `value` as a decimal with exactly `decimals` fraction digits, where `value` is
/// the number scaled by 10^decimals.
fn write_scaled(out: &mut Vec<u8>, value: i128, decimals: u32) {
    if value < 0 {
        out.push(b'-');
    }
    let magnitude = value.unsigned_abs();
    let unit = 10u128.pow(decimals);
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(magnitude / unit).as_bytes());
    if decimals > 0 {
        out.push(b'.');
        let frac = buf.format(magnitude % unit).as_bytes();
        out.resize(out.len() + decimals as usize - frac.len(), b'0');
        out.extend_from_slice(frac);
    }
}

/// Appends `cents` as an amount with exactly two decimals: `1990` → `19.90`, `-5` → `-0.05`.
pub fn write_cents(out: &mut Vec<u8>, cents: Cents) {
    write_scaled(out, i128::from(cents), 2);
}

/// Most fraction digits a [`Rate`] may have. Nine keeps a fee's scale (two more) within
/// the digits a `u64` power of ten and C# `decimal` handle comfortably, and no real fee
/// rate needs more precision than a billionth.
const MAX_RATE_FRACTION_DIGITS: u32 = 9;

/// An exact, non-negative decimal fee rate such as `0.05`.
///
/// The rate keeps the number of fraction digits it was written with, as C# `decimal`
/// does, because that scale decides how many decimals a fee is printed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The rate times 10^scale.
    mantissa: u64,
    /// Number of fraction digits, at most [`MAX_RATE_FRACTION_DIGITS`].
    scale: u32,
}

impl Rate {
    /// Parses `digits[.digits]`, e.g. `0.05` or `0.1`, with at most nine fraction digits.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bytes = s.as_bytes();
        if bytes.first() == Some(&b'-') {
            return Err(format!("fee rate {s:?} must not be negative"));
        }
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|c| c.is_ascii_digit());
        if !all_digits(int) || !frac.is_none_or(all_digits) {
            return Err(format!(
                "fee rate {s:?} must be digits with an optional fraction, like 0.05"
            ));
        }
        let frac = frac.unwrap_or("");
        if frac.len() > MAX_RATE_FRACTION_DIGITS as usize {
            return Err(format!(
                "fee rate {s:?} has more than {MAX_RATE_FRACTION_DIGITS} fraction digits"
            ));
        }
        let mut mantissa: u64 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| format!("fee rate {s:?} is too large"))?;
        }
        Ok(Rate {
            mantissa,
            scale: frac.len() as u32,
        })
    }

    /// Number of fraction digits the rate was written with.
    pub fn fraction_digits(&self) -> u32 {
        self.scale
    }

    /// Appends the rate without leading zeros in its integer part: `00.050` → `0.050`.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_scaled(out, i128::from(self.mantissa), self.scale);
    }

    /// Appends the exact fee `cents / 100 × rate` with `2 + fraction_digits()` decimals,
    /// as C# `decimal` multiplication gives it: 1990 cents at `0.05` → `0.9950`.
    pub fn write_fee_of(&self, out: &mut Vec<u8>, cents: Cents) {
        // |cents| < 2^63 and mantissa < 2^64, so the product fits in an i128.
        let product = i128::from(cents) * i128::from(self.mantissa);
        write_scaled(out, product, 2 + self.scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AmountError::*;

    #[test]
    fn parse_amount_table() {
        let cases: &[(&str, Result<Cents, AmountError>)] = &[
            // Plain values.
            ("1", Ok(100)),
            ("19.90", Ok(1990)),
            ("19.9", Ok(1990)),
            ("0.01", Ok(1)),
            ("0.1", Ok(10)),
            ("123456.78", Ok(12_345_678)),
            ("10000000000", Ok(MAX_AMOUNT_CENTS)),
            ("10000000000.00", Ok(MAX_AMOUNT_CENTS)),
            ("10000000000.004", Ok(MAX_AMOUNT_CENTS)),
            ("9999999999.999", Ok(MAX_AMOUNT_CENTS)),
            // Round half to even.
            ("0.005", Err(NotPositive)),
            ("0.015", Ok(2)),
            ("0.025", Ok(2)),
            ("0.035", Ok(4)),
            ("0.0250001", Ok(3)),
            ("0.0249999", Ok(2)),
            ("0.006", Ok(1)),
            ("19.905", Ok(1990)),
            ("19.915", Ok(1992)),
            ("19.9050", Ok(1990)),
            ("19.90500000000000000000000000001", Ok(1991)),
            ("0.125", Ok(12)),
            ("0.135", Ok(14)),
            ("0.0050", Err(NotPositive)),
            ("0.00500001", Ok(1)),
            ("0.004", Err(NotPositive)),
            ("0.0049999999", Err(NotPositive)),
            ("9999999999.995", Ok(MAX_AMOUNT_CENTS)),
            ("10000000000.005", Ok(MAX_AMOUNT_CENTS)),
            ("10000000000.0051", Err(TooLarge)),
            ("10000000000.015", Err(TooLarge)),
            // Exponents.
            ("1e2", Ok(10_000)),
            ("1E2", Ok(10_000)),
            ("1e+2", Ok(10_000)),
            ("1e-2", Ok(1)),
            ("1.5e-2", Ok(2)),
            ("2.5e-2", Ok(2)),
            ("25e-3", Ok(2)),
            ("5e-3", Err(NotPositive)),
            ("1990e-2", Ok(1990)),
            ("0.1990e2", Ok(1990)),
            ("1e10", Ok(MAX_AMOUNT_CENTS)),
            ("1e11", Err(TooLarge)),
            ("1e0", Ok(100)),
            ("1e-0", Ok(100)),
            ("1e00000000000000000000000000002", Ok(10_000)),
            ("1e-400", Err(NotPositive)),
            ("1e400", Err(TooLarge)),
            ("1e99999999999999999999999999999999", Err(TooLarge)),
            ("1e-99999999999999999999999999999999", Err(NotPositive)),
            ("0e400", Err(NotPositive)),
            ("0.0000000000000000000000000001e28", Ok(100)),
            ("10000000000000000000000000000e-28", Ok(100)),
            // Zero and negatives.
            ("0", Err(NotPositive)),
            ("0.00", Err(NotPositive)),
            ("-0", Err(NotPositive)),
            ("-0.00", Err(NotPositive)),
            ("-1", Err(NotPositive)),
            ("-0.001", Err(NotPositive)),
            ("-1e400", Err(NotPositive)),
            ("-19.90", Err(NotPositive)),
            // Syntax.
            ("", Err(Syntax)),
            ("-", Err(Syntax)),
            ("+1", Err(Syntax)),
            ("01", Err(Syntax)),
            ("00", Err(Syntax)),
            ("-01", Err(Syntax)),
            (".5", Err(Syntax)),
            ("5.", Err(Syntax)),
            ("5.e2", Err(Syntax)),
            ("1e", Err(Syntax)),
            ("1e+", Err(Syntax)),
            ("1e-", Err(Syntax)),
            ("1e2.5", Err(Syntax)),
            ("1.2.3", Err(Syntax)),
            (" 1", Err(Syntax)),
            ("1 ", Err(Syntax)),
            ("\"1\"", Err(Syntax)),
            ("NaN", Err(Syntax)),
            ("Infinity", Err(Syntax)),
            ("-Infinity", Err(Syntax)),
            ("1_000", Err(Syntax)),
            ("0x10", Err(Syntax)),
            ("1,5", Err(Syntax)),
            ("--1", Err(Syntax)),
            ("1e--2", Err(Syntax)),
            ("null", Err(Syntax)),
            ("١", Err(Syntax)),
        ];
        for (token, want) in cases {
            assert_eq!(parse_amount(token.as_bytes()), *want, "token {token:?}");
        }
    }

    #[test]
    fn parse_amount_long_tokens() {
        // A 5000-digit mantissa scaled back down to 100 units.
        let long = format!("1{}e-4997", "0".repeat(4999));
        assert_eq!(parse_amount(long.as_bytes()), Ok(10_000));
        // A long fraction whose last digit breaks a tie.
        let tie = format!("19.905{}1", "0".repeat(5000));
        assert_eq!(parse_amount(tie.as_bytes()), Ok(1991));
        let exact_tie = format!("19.905{}", "0".repeat(5000));
        assert_eq!(parse_amount(exact_tie.as_bytes()), Ok(1990));
        // Thousands of integer digits are too large, whatever follows.
        let huge = format!("9{}.5", "9".repeat(5000));
        assert_eq!(parse_amount(huge.as_bytes()), Err(TooLarge));
        // Thousands of leading fraction zeros round to nothing.
        let tiny = format!("0.{}9", "0".repeat(5000));
        assert_eq!(parse_amount(tiny.as_bytes()), Err(NotPositive));
        // A leading-zero run compensated by a large exponent.
        let shifted = format!("0.{}1e5003", "0".repeat(5000));
        assert_eq!(parse_amount(shifted.as_bytes()), Ok(10_000));
        let exp_digits = format!("1e-{}", "9".repeat(5000));
        assert_eq!(parse_amount(exp_digits.as_bytes()), Err(NotPositive));
    }

    #[test]
    fn parse_amount_round_trips_written_cents() {
        let mut seed: u64 = 0x5eed;
        for _ in 0..10_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let cents = (seed >> 20) as Cents % MAX_AMOUNT_CENTS + 1;
            let mut out = Vec::new();
            write_cents(&mut out, cents);
            assert_eq!(
                parse_amount(&out),
                Ok(cents),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    /// A deterministic pseudo-random sequence (64-bit LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    /// Reference rounding through plain i128 division, for values small enough for it.
    fn reference_cents(mantissa: i128, exp10: i32) -> Result<Cents, AmountError> {
        let shift = exp10 + 2;
        let (num, den) = if shift >= 0 {
            (mantissa * 10i128.pow(shift as u32), 1)
        } else {
            (mantissa, 10i128.pow((-shift) as u32))
        };
        let (mut q, r) = (num / den, num % den);
        if 2 * r > den || (2 * r == den && q % 2 == 1) {
            q += 1;
        }
        if q <= 0 {
            Err(NotPositive)
        } else if q > i128::from(MAX_AMOUNT_CENTS) {
            Err(TooLarge)
        } else {
            Ok(q as Cents)
        }
    }

    #[test]
    fn parse_amount_matches_reference_rounding() {
        let mut rng = Lcg(7);
        for _ in 0..50_000 {
            let digits = 1 + rng.next(18) as u32;
            let mantissa = i128::from(rng.next(10u64.pow(digits)));
            let text = mantissa.to_string();
            let point = rng.next(text.len() as u64 + 1) as usize;
            let exp = rng.next(41) as i32 - 25;
            let (int, frac) = text.split_at(point);
            let mut token = String::from(if int.is_empty() { "0" } else { int });
            if !frac.is_empty() {
                token = format!("{token}.{frac}");
            }
            let written_exp = if rng.next(4) == 0 { 0 } else { exp };
            if written_exp != 0 || rng.next(2) == 0 {
                token = format!("{token}e{written_exp}");
            }
            let want = reference_cents(mantissa, written_exp - frac.len() as i32);
            assert_eq!(parse_amount(token.as_bytes()), want, "token {token}");
        }
    }

    #[test]
    fn parse_amount_never_panics_on_noise() {
        const ALPHABET: &[u8] = b"0123456789-+.eE 5\"x";
        let mut rng = Lcg(11);
        for _ in 0..50_000 {
            let len = rng.next(24) as usize;
            let token: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.next(ALPHABET.len() as u64) as usize])
                .collect();
            if let Ok(cents) = parse_amount(&token) {
                assert!((1..=MAX_AMOUNT_CENTS).contains(&cents));
            }
        }
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [Syntax, NotPositive, TooLarge];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.reason().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.reason(), b.reason());
            }
        }
    }

    #[test]
    fn write_cents_table() {
        let cases: &[(Cents, &str)] = &[
            (0, "0.00"),
            (5, "0.05"),
            (10, "0.10"),
            (99, "0.99"),
            (100, "1.00"),
            (1990, "19.90"),
            (12_345_678, "123456.78"),
            (-5, "-0.05"),
            (-1990, "-19.90"),
            (MAX_AMOUNT_CENTS, "10000000000.00"),
            (i64::MAX, "92233720368547758.07"),
            (i64::MIN, "-92233720368547758.08"),
        ];
        for (cents, want) in cases {
            let mut out = b"x".to_vec();
            write_cents(&mut out, *cents);
            assert_eq!(out, format!("x{want}").as_bytes(), "cents {cents}");
        }
    }

    #[test]
    fn rate_parse_and_write_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("0.05", Some("0.05")),
            ("0.1", Some("0.1")),
            ("0.15", Some("0.15")),
            ("0.050", Some("0.050")),
            ("00.05", Some("0.05")),
            ("0", Some("0")),
            ("1", Some("1")),
            ("12.5", Some("12.5")),
            ("0.123456789", Some("0.123456789")),
            ("18446744073709551615", Some("18446744073709551615")),
            ("0.1234567890", None),
            ("18446744073709551616", None),
            ("", None),
            (".05", None),
            ("5.", None),
            ("-0.05", None),
            ("+0.05", None),
            ("0.05%", None),
            (" 0.05", None),
            ("0..05", None),
            ("0.0.5", None),
            ("1e-2", None),
        ];
        for (text, want) in cases {
            let got = Rate::parse(text).map(|rate| {
                let mut out = Vec::new();
                rate.write(&mut out);
                String::from_utf8(out).unwrap()
            });
            match want {
                Some(want) => assert_eq!(got.as_deref(), Ok(*want), "rate {text:?}"),
                None => {
                    let message = got.expect_err(text);
                    assert!(message.contains(text), "{message}");
                }
            }
        }
        assert_eq!(Rate::parse("0.05").unwrap().fraction_digits(), 2);
        assert!(Rate::parse("-1").unwrap_err().contains("negative"));
        assert!(Rate::parse("1.0000000001")
            .unwrap_err()
            .contains("fraction"));
        assert!(Rate::parse("99999999999999999999")
            .unwrap_err()
            .contains("large"));
    }

    #[test]
    fn rate_fee_table() {
        let cases: &[(&str, Cents, &str)] = &[
            ("0.05", 1990, "0.9950"),
            ("0.05", 0, "0.0000"),
            ("0.05", 1, "0.0005"),
            ("0.05", 100, "0.0500"),
            ("0.15", 1990, "2.9850"),
            ("0.1", 1990, "1.990"),
            ("0.10", 1990, "1.9900"),
            ("0", 1990, "0.00"),
            ("1", 1990, "19.90"),
            ("0.05", MAX_AMOUNT_CENTS, "500000000.0000"),
            ("0.05", -1990, "-0.9950"),
            ("0.123456789", 1, "0.00123456789"),
            (
                "18446744073709551615",
                i64::MAX,
                "1701411834604692317040171876053197783.05",
            ),
            (
                "18446744073709551615",
                i64::MIN,
                "-1701411834604692317224639316790293299.20",
            ),
        ];
        for (rate, cents, want) in cases {
            let mut out = Vec::new();
            Rate::parse(rate).unwrap().write_fee_of(&mut out, *cents);
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{cents} at {rate}");
        }
    }
}
