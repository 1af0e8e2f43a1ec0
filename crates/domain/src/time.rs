//! Timestamps as microseconds since the Unix epoch (UTC), and their ISO-8601 text form.
//!
//! [`write_iso`] prints `YYYY-MM-DDTHH:MM:SS.ffffffZ`; [`parse_iso`] reads that form and
//! the common variants clients send (other separators, fewer or more fraction digits,
//! zone offsets, date only). Calendar arithmetic is proleptic Gregorian, years 0000..=9999.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time: microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Fraction digits kept: timestamps have microsecond resolution.
const FRACTION_DIGITS: usize = 6;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Days in a full 400-year Gregorian cycle (97 leap years).
const DAYS_PER_400_YEARS: i64 = 400 * 365 + 97;
/// Days in a 100-year block of a cycle that does not end in a 400th year (24 leap years).
const DAYS_PER_100_YEARS: i64 = 100 * 365 + 24;
/// Days in a 4-year block that ends in a leap year.
const DAYS_PER_4_YEARS: i64 = 4 * 365 + 1;
/// Calendar arithmetic counts from a year this far before year 0, so that every year it
/// handles (including the March-based year −1 holding January 0000) is non-negative and
/// divisions need no floor correction. It is a whole 400-year cycle, so leap rules agree.
const YEAR_SHIFT: i64 = 400;

/// The range of the four-digit years the text form can carry.
const MIN_YEAR: i64 = 0;
const MAX_YEAR: i64 = 9999;

/// The earliest representable instant, 0000-01-01T00:00:00.000000Z.
pub const MIN_MICROS: Micros = days_from_civil(MIN_YEAR, 1, 1) * MICROS_PER_DAY;
/// The latest representable instant, 9999-12-31T23:59:59.999999Z.
pub const MAX_MICROS: Micros = (days_from_civil(MAX_YEAR, 12, 31) + 1) * MICROS_PER_DAY - 1;

/// Length of the text [`write_iso`] appends: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const ISO_LEN: usize = 27;

/// Days since the shifted origin (March 1 of year −[`YEAR_SHIFT`]) of a Gregorian date.
const fn days_from_shifted_origin(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March so that the leap day is the last day of its year.
    let march_year = if month <= 2 { year - 1 } else { year } + YEAR_SHIFT;
    // Months since March: March = 0, ..., February = 11.
    let march_month = ((month + 9) % 12) as i64;
    // Leap days before `march_year` are those of Gregorian years 1..=march_year.
    let leap_days = march_year / 4 - march_year / 100 + march_year / 400;
    // Month lengths from March repeat 31, 30, 31, 30, 31 every five months: 153 days.
    let days_before_month = (153 * march_month + 2) / 5;
    365 * march_year + leap_days + days_before_month + day as i64 - 1
}

/// Days from the shifted origin to 1970-01-01.
const EPOCH_DAYS: i64 = days_from_shifted_origin(1970, 1, 1);

/// Days since 1970-01-01 of a Gregorian date; valid for years 0..=9999.
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    days_from_shifted_origin(year, month, day) - EPOCH_DAYS
}

/// The Gregorian date `(year, month, day)` of a count of days since 1970-01-01, for days
/// within years 0..=9999.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let mut rest = days + EPOCH_DAYS;
    let cycles = rest / DAYS_PER_400_YEARS;
    rest %= DAYS_PER_400_YEARS;
    // The last century of a cycle is a day longer; its extra day stays in block 3.
    let centuries = (rest / DAYS_PER_100_YEARS).min(3);
    rest -= centuries * DAYS_PER_100_YEARS;
    let quads = rest / DAYS_PER_4_YEARS;
    rest -= quads * DAYS_PER_4_YEARS;
    // Likewise the fourth year of a block holds the leap day.
    let years = (rest / 365).min(3);
    rest -= years * 365;
    let march_year = 400 * cycles + 100 * centuries + 4 * quads + years - YEAR_SHIFT;
    let march_month = (5 * rest + 2) / 153;
    let day = (rest - (153 * march_month + 2) / 5 + 1) as u32;
    if march_month < 10 {
        (march_year, march_month as u32 + 3, day)
    } else {
        (march_year + 1, march_month as u32 - 9, day)
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The current time from the system clock. A clock set before 1970 gives negative values.
pub fn now_micros() -> Micros {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => Micros::try_from(since.as_micros()).unwrap_or(Micros::MAX),
        Err(before) => Micros::try_from(before.duration().as_micros()).map_or(Micros::MIN, |m| -m),
    }
}

/// Appends `value` as exactly `width` decimal digits, zero-padded (`value` must fit).
fn push_digits(out: &mut Vec<u8>, value: i64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    let mut rest = value;
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` ([`ISO_LEN`] bytes).
///
/// Times before [`MIN_MICROS`] or after [`MAX_MICROS`] have no four-digit year; they are
/// clamped to those bounds, so the output always has the same shape and parses back.
pub fn write_iso(out: &mut Vec<u8>, t: Micros) {
    let t = t.clamp(MIN_MICROS, MAX_MICROS);
    let days = t.div_euclid(MICROS_PER_DAY);
    let in_day = t.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, month.into(), 2);
    out.push(b'-');
    push_digits(out, day.into(), 2);
    out.push(b'T');
    push_digits(out, in_day / MICROS_PER_HOUR, 2);
    out.push(b':');
    push_digits(out, in_day % MICROS_PER_HOUR / MICROS_PER_MINUTE, 2);
    out.push(b':');
    push_digits(out, in_day % MICROS_PER_MINUTE / MICROS_PER_SECOND, 2);
    out.push(b'.');
    push_digits(out, in_day % MICROS_PER_SECOND, FRACTION_DIGITS);
    out.push(b'Z');
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// The text does not have the shape of an ISO-8601 timestamp.
    Syntax,
    /// A field is out of its range (month 13, February 30, second 60, offset +24:00), or
    /// the instant falls outside years 0000..=9999 in UTC.
    OutOfRange,
}

impl TimeError {
    /// A short English explanation, suitable for an error response.
    pub fn reason(self) -> &'static str {
        match self {
            TimeError::Syntax => "timestamp must look like 2025-07-10T12:34:56.000Z",
            TimeError::OutOfRange => "timestamp has a field out of range",
        }
    }
}

/// How [`parse_iso`] treats fraction digits beyond microseconds. Both are exact when
/// there are at most six.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Toward the past (floor): right for an inclusive upper bound.
    Down,
    /// Toward the future (ceiling): right for an inclusive lower bound.
    Up,
}

/// A cursor over the bytes of a timestamp.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    /// Consumes the next byte if it is one of `choices`.
    fn eat(&mut self, choices: &[u8]) -> bool {
        match self.peek() {
            Some(c) if choices.contains(&c) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), TimeError> {
        if self.eat(&[c]) {
            Ok(())
        } else {
            Err(TimeError::Syntax)
        }
    }

    /// Reads exactly `width` ASCII digits as a number.
    fn digits(&mut self, width: usize) -> Result<u32, TimeError> {
        let end = self.pos + width;
        let field = self.s.get(self.pos..end).ok_or(TimeError::Syntax)?;
        let mut value = 0;
        for &c in field {
            if !c.is_ascii_digit() {
                return Err(TimeError::Syntax);
            }
            value = value * 10 + u32::from(c - b'0');
        }
        self.pos = end;
        Ok(value)
    }

    /// Reads one or more fraction digits as microseconds, rounding extra digits per `round`.
    fn fraction(&mut self, round: Round) -> Result<i64, TimeError> {
        let start = self.pos;
        let mut micros = 0;
        let mut beyond_nonzero = false;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            let digit = i64::from(c - b'0');
            if self.pos - start < FRACTION_DIGITS {
                micros = micros * 10 + digit;
            } else {
                beyond_nonzero |= digit != 0;
            }
            self.pos += 1;
        }
        let count = self.pos - start;
        if count == 0 {
            return Err(TimeError::Syntax);
        }
        for _ in count..FRACTION_DIGITS {
            micros *= 10;
        }
        if beyond_nonzero && round == Round::Up {
            micros += 1;
        }
        Ok(micros)
    }

    /// Reads an optional zone (`Z`, `±HH:MM`, `±HHMM`, `±HH`) as an offset east of UTC in
    /// `(sign, hours, minutes)`; no zone means UTC.
    fn zone(&mut self) -> Result<(i64, u32, u32), TimeError> {
        if self.eat(b"Zz") {
            return Ok((1, 0, 0));
        }
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Ok((1, 0, 0)),
        };
        self.pos += 1;
        let hours = self.digits(2)?;
        let minutes = if self.eat(b":") || matches!(self.peek(), Some(b'0'..=b'9')) {
            self.digits(2)?
        } else {
            0
        };
        Ok((sign, hours, minutes))
    }
}

/// Parses an ISO-8601 timestamp into microseconds since the epoch.
///
/// Accepts `YYYY-MM-DD`, then optionally `T`, `t` or a space and `HH:MM`, optionally
/// `:SS` with a `.` or `,` fraction of any length (digits beyond microseconds are rounded
/// per `round`, carrying into seconds and beyond), then an optional zone after the time:
/// `Z`, `z`, `±HH:MM`, `±HHMM` or `±HH`. Without a zone the time is UTC.
pub fn parse_iso(s: &[u8], round: Round) -> Result<Micros, TimeError> {
    let mut cur = Cursor { s, pos: 0 };
    let year = cur.digits(4)?;
    cur.expect(b'-')?;
    let month = cur.digits(2)?;
    cur.expect(b'-')?;
    let day = cur.digits(2)?;
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
    let mut zone = (1, 0, 0);
    if !cur.at_end() {
        if !cur.eat(b"Tt ") {
            return Err(TimeError::Syntax);
        }
        hour = cur.digits(2)?;
        cur.expect(b':')?;
        minute = cur.digits(2)?;
        if cur.eat(b":") {
            second = cur.digits(2)?;
            if cur.eat(b".,") {
                micros = cur.fraction(round)?;
            }
        }
        zone = cur.zone()?;
        if !cur.at_end() {
            return Err(TimeError::Syntax);
        }
    }
    let (zone_sign, zone_hours, zone_minutes) = zone;
    let year = i64::from(year);
    let fields_valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59
        && zone_hours <= 23
        && zone_minutes <= 59;
    if !fields_valid {
        return Err(TimeError::OutOfRange);
    }
    let offset = zone_sign
        * (i64::from(zone_hours) * MICROS_PER_HOUR + i64::from(zone_minutes) * MICROS_PER_MINUTE);
    let t = days_from_civil(year, month, day) * MICROS_PER_DAY
        + i64::from(hour) * MICROS_PER_HOUR
        + i64::from(minute) * MICROS_PER_MINUTE
        + i64::from(second) * MICROS_PER_SECOND
        + micros
        - offset;
    if (MIN_MICROS..=MAX_MICROS).contains(&t) {
        Ok(t)
    } else {
        Err(TimeError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Round::{Down, Up};
    use TimeError::{OutOfRange, Syntax};

    fn iso(t: Micros) -> String {
        let mut out = Vec::new();
        write_iso(&mut out, t);
        assert_eq!(out.len(), ISO_LEN);
        String::from_utf8(out).unwrap()
    }

    /// Known instants, checked in both directions.
    const KNOWN: &[(&str, Micros)] = &[
        ("1970-01-01T00:00:00.000000Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("1970-01-02T00:00:00.000000Z", MICROS_PER_DAY),
        ("1969-12-31T00:00:00.000000Z", -MICROS_PER_DAY),
        ("2025-07-10T12:34:56.000000Z", 1_752_150_896_000_000),
        ("2000-02-29T23:59:59.999999Z", 951_868_799_999_999),
        ("1900-01-01T00:00:00.000000Z", -2_208_988_800_000_000),
        ("1900-02-28T12:00:00.000000Z", -2_203_934_400_000_000),
        ("1900-03-01T00:00:00.000000Z", -2_203_891_200_000_000),
        ("1969-07-20T20:17:40.500000Z", -14_182_939_500_000),
        ("1582-10-15T00:00:00.000000Z", -12_219_292_800_000_000),
        ("0001-01-01T00:00:00.000000Z", -62_135_596_800_000_000),
        ("0000-01-01T00:00:00.000000Z", -62_167_219_200_000_000),
        ("2038-01-19T03:14:08.000000Z", 2_147_483_648_000_000),
        ("2024-12-31T23:59:59.999999Z", 1_735_689_599_999_999),
        ("2025-01-01T00:00:00.000000Z", 1_735_689_600_000_000),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
    ];

    #[test]
    fn known_instants() {
        for &(text, t) in KNOWN {
            assert_eq!(iso(t), text);
            assert_eq!(parse_iso(text.as_bytes(), Down), Ok(t), "{text}");
            assert_eq!(parse_iso(text.as_bytes(), Up), Ok(t), "{text}");
        }
        assert_eq!(MIN_MICROS, -62_167_219_200_000_000);
        assert_eq!(MAX_MICROS, 253_402_300_799_999_999);
    }

    #[test]
    fn write_iso_clamps_outside_four_digit_years() {
        assert_eq!(iso(Micros::MIN), "0000-01-01T00:00:00.000000Z");
        assert_eq!(iso(MIN_MICROS - 1), "0000-01-01T00:00:00.000000Z");
        assert_eq!(iso(Micros::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(iso(MAX_MICROS + 1), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn parse_iso_table() {
        const NOON: Micros = 1_752_148_800_000_000; // 2025-07-10T12:00:00Z
        const S: Micros = MICROS_PER_SECOND;
        let cases: &[(&str, Round, Result<Micros, TimeError>)] = &[
            // Shapes.
            ("2025-07-10T12:00:00Z", Down, Ok(NOON)),
            ("2025-07-10t12:00:00z", Down, Ok(NOON)),
            ("2025-07-10 12:00:00", Down, Ok(NOON)),
            ("2025-07-10T12:00", Down, Ok(NOON)),
            ("2025-07-10T12:00Z", Down, Ok(NOON)),
            ("2025-07-10T12:00+02:00", Down, Ok(NOON - 2 * 3600 * S)),
            ("2025-07-10", Down, Ok(NOON - 12 * 3600 * S)),
            // Fractions: 1, 3, 6, 7 and 9 digits, both ways.
            ("2025-07-10T12:00:00.5Z", Down, Ok(NOON + 500_000)),
            ("2025-07-10T12:00:00.5Z", Up, Ok(NOON + 500_000)),
            ("2025-07-10T12:00:00,5Z", Down, Ok(NOON + 500_000)),
            ("2025-07-10T12:00:00.123Z", Down, Ok(NOON + 123_000)),
            ("2025-07-10T12:00:00.123Z", Up, Ok(NOON + 123_000)),
            ("2025-07-10T12:00:00.123456Z", Down, Ok(NOON + 123_456)),
            ("2025-07-10T12:00:00.123456Z", Up, Ok(NOON + 123_456)),
            ("2025-07-10T12:00:00.1234567Z", Down, Ok(NOON + 123_456)),
            ("2025-07-10T12:00:00.1234567Z", Up, Ok(NOON + 123_457)),
            ("2025-07-10T12:00:00.1234560Z", Up, Ok(NOON + 123_456)),
            ("2025-07-10T12:00:00.123456001Z", Down, Ok(NOON + 123_456)),
            ("2025-07-10T12:00:00.123456001Z", Up, Ok(NOON + 123_457)),
            ("2025-07-10T12:00:00.123456000Z", Up, Ok(NOON + 123_456)),
            (
                "2025-07-10T12:00:00.000000000000000000001Z",
                Up,
                Ok(NOON + 1),
            ),
            ("2025-07-10T12:00:00.000000000000000000001Z", Down, Ok(NOON)),
            ("2025-07-10T12:00:00.0000000", Up, Ok(NOON)),
            // Rounding up carries into seconds, minutes, hours, days and years.
            ("2025-07-10T11:59:59.9999999Z", Up, Ok(NOON)),
            ("2025-07-10T11:59:59.9999999Z", Down, Ok(NOON - 1)),
            ("1999-12-31T23:59:59.9999991", Up, Ok(946_684_800_000_000)),
            ("1969-12-31T23:59:59.999999999Z", Up, Ok(0)),
            ("1969-12-31T23:59:59.999999999Z", Down, Ok(-1)),
            ("9999-12-31T23:59:59.9999999Z", Down, Ok(MAX_MICROS)),
            ("9999-12-31T23:59:59.9999999Z", Up, Err(OutOfRange)),
            // Offsets.
            ("2025-07-10T12:00:00+02:00", Down, Ok(NOON - 2 * 3600 * S)),
            ("2025-07-10T12:00:00+0200", Down, Ok(NOON - 2 * 3600 * S)),
            ("2025-07-10T12:00:00+02", Down, Ok(NOON - 2 * 3600 * S)),
            ("2025-07-10T12:00:00-03:30", Down, Ok(NOON + 210 * 60 * S)),
            (
                "2025-07-10T12:00:00.25-0330",
                Up,
                Ok(NOON + 210 * 60 * S + 250_000),
            ),
            ("2025-07-10T12:00:00+00:00", Down, Ok(NOON)),
            ("2025-07-10T12:00:00-00:00", Down, Ok(NOON)),
            (
                "2025-07-10T12:00:00+23:59",
                Down,
                Ok(NOON - (23 * 60 + 59) * 60 * S),
            ),
            (
                "2025-07-10T00:30:00+01:00",
                Down,
                Ok(NOON - (12 * 60 + 30) * 60 * S),
            ),
            ("1970-01-01T01:00:00+01:00", Down, Ok(0)),
            ("0000-01-01T00:00:00+00:01", Down, Err(OutOfRange)),
            ("0000-01-01T00:00:00-00:01", Down, Ok(MIN_MICROS + 60 * S)),
            ("9999-12-31T23:59:59-00:01", Down, Err(OutOfRange)),
            // Calendar validation.
            ("2000-02-29", Down, Ok(951_782_400_000_000)),
            ("2024-02-29", Down, Ok(1_709_164_800_000_000)),
            ("1900-02-29", Down, Err(OutOfRange)),
            ("2023-02-29", Down, Err(OutOfRange)),
            ("2100-02-29", Down, Err(OutOfRange)),
            ("2025-02-30", Down, Err(OutOfRange)),
            ("2025-04-31", Down, Err(OutOfRange)),
            ("2025-12-32", Down, Err(OutOfRange)),
            ("2025-00-10", Down, Err(OutOfRange)),
            ("2025-13-10", Down, Err(OutOfRange)),
            ("2025-07-00", Down, Err(OutOfRange)),
            ("2025-07-10T24:00:00Z", Down, Err(OutOfRange)),
            ("2025-07-10T23:60:00Z", Down, Err(OutOfRange)),
            ("2025-07-10T23:59:60Z", Down, Err(OutOfRange)),
            ("2025-07-10T12:00:00+24:00", Down, Err(OutOfRange)),
            ("2025-07-10T12:00:00+01:60", Down, Err(OutOfRange)),
            ("2025-07-10T12:00:00-9999", Down, Err(OutOfRange)),
            // Syntax.
            ("", Down, Err(Syntax)),
            ("2025", Down, Err(Syntax)),
            ("2025-07", Down, Err(Syntax)),
            ("2025-7-10", Down, Err(Syntax)),
            ("25-07-10", Down, Err(Syntax)),
            ("+2025-07-10", Down, Err(Syntax)),
            ("12025-07-10", Down, Err(Syntax)),
            ("2025/07/10", Down, Err(Syntax)),
            ("2025-07-10T", Down, Err(Syntax)),
            ("2025-07-10X12:00:00", Down, Err(Syntax)),
            ("2025-07-10T12", Down, Err(Syntax)),
            ("2025-07-10T12:0", Down, Err(Syntax)),
            ("2025-07-10T12:00:", Down, Err(Syntax)),
            ("2025-07-10T12:00:0", Down, Err(Syntax)),
            ("2025-07-10T1:00:00", Down, Err(Syntax)),
            ("2025-07-10T12:00:00.", Down, Err(Syntax)),
            ("2025-07-10T12:00:00.Z", Down, Err(Syntax)),
            ("2025-07-10T12:00.5", Down, Err(Syntax)),
            ("2025-07-10T12:00:00ZZ", Down, Err(Syntax)),
            ("2025-07-10T12:00:00Z ", Down, Err(Syntax)),
            (" 2025-07-10T12:00:00Z", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+2", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+02:", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+02:0", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+020", Down, Err(Syntax)),
            ("2025-07-10T12:00:00+02:000", Down, Err(Syntax)),
            ("2025-07-10T12:00:00 +02:00", Down, Err(Syntax)),
            ("2025-07-10T12:00:00UTC", Down, Err(Syntax)),
            ("2025-07-10Z", Down, Err(Syntax)),
            ("2025-07-10T12:00:00.5.5", Down, Err(Syntax)),
            ("2025-13-10Tjunk", Down, Err(Syntax)),
            ("２025-07-10", Down, Err(Syntax)),
        ];
        for (text, round, want) in cases {
            assert_eq!(
                parse_iso(text.as_bytes(), *round),
                *want,
                "{text} {round:?}"
            );
        }
    }

    #[test]
    fn round_trip_pseudo_random_instants() {
        let span = (MAX_MICROS - MIN_MICROS) as u64 + 1;
        let mut seed: u64 = 0x2025_0710;
        for _ in 0..100_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let t = MIN_MICROS + (seed % span) as i64;
            let text = iso(t);
            assert_eq!(parse_iso(text.as_bytes(), Down), Ok(t), "{text}");
            assert_eq!(parse_iso(text.as_bytes(), Up), Ok(t), "{text}");
        }
    }

    #[test]
    fn every_day_of_the_calendar() {
        // Walk each day of years 0000..=9999 and compare with a naive calendar.
        let (mut year, mut month, mut day) = (MIN_YEAR, 1, 1);
        let first = MIN_MICROS / MICROS_PER_DAY;
        let last = MAX_MICROS / MICROS_PER_DAY;
        for days in first..=last {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            assert_eq!(days_from_civil(year, month, day), days);
            day += 1;
            if day > days_in_month(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
        assert_eq!((year, month, day), (MAX_YEAR + 1, 1, 1));
    }

    #[test]
    fn parse_iso_never_panics_on_noise() {
        const ALPHABET: &[u8] = b"0123456789-:.,+TZ 9";
        let mut seed: u64 = 3;
        for _ in 0..50_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mut bits = seed;
            let len = (bits % 32) as usize;
            let mut text = b"2025-07-10T12:00:00".to_vec();
            text.truncate((seed >> 40) as usize % (text.len() + 1));
            for _ in 0..len {
                bits = bits.rotate_left(5) ^ seed;
                text.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize]);
            }
            for round in [Down, Up] {
                if let Ok(t) = parse_iso(&text, round) {
                    assert!((MIN_MICROS..=MAX_MICROS).contains(&t));
                }
            }
        }
    }

    #[test]
    fn leap_years() {
        let cases = [
            (2000, true),
            (1900, false),
            (2100, false),
            (2024, true),
            (2025, false),
            (0, true),
            (400, true),
        ];
        for (year, leap) in cases {
            assert_eq!(is_leap_year(year), leap, "{year}");
        }
    }

    #[test]
    fn now_is_after_2025_and_writable() {
        let now = now_micros();
        assert!(now > 1_735_689_600_000_000);
        let text = iso(now);
        assert_eq!(parse_iso(text.as_bytes(), Down), Ok(now));
    }

    #[test]
    fn reasons_are_distinct() {
        assert_ne!(Syntax.reason(), OutOfRange.reason());
        assert!(!Syntax.reason().is_empty() && !OutOfRange.reason().is_empty());
    }
}
