//! The amount parser against exact decimal arithmetic (bigdecimal) and an independent
//! reading of JSON's number grammar.
#![no_main]

use std::str::FromStr;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use domain::money::{parse_amount, AmountError, MAX_AMOUNT_CENTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        parse_amount(data),
        reference(data),
        "{:?}",
        String::from_utf8_lossy(data)
    );
});

fn reference(token: &[u8]) -> Result<i64, AmountError> {
    if !is_json_number(token) {
        return Err(AmountError::Syntax);
    }
    let text = std::str::from_utf8(token).expect("ASCII");
    // An exponent beyond the token's length decides the outcome alone: a nonzero
    // mantissa is then either far above the largest amount or far below a cent.
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "0"),
    };
    let nonzero = mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c));
    if !nonzero {
        return Err(AmountError::NotPositive);
    }
    let negative = mantissa.starts_with('-');
    let exp_digits = exp.trim_start_matches(['+', '-']).trim_start_matches('0');
    if exp_digits.len() > 6 || exp_digits.parse::<i64>().unwrap_or(0) > token.len() as i64 + 20 {
        return Err(if negative || exp.starts_with('-') {
            AmountError::NotPositive
        } else {
            AmountError::TooLarge
        });
    }
    let value = BigDecimal::from_str(text).expect("bigdecimal reads every JSON number");
    let cents = (value * BigDecimal::from(100)).with_scale_round(0, RoundingMode::HalfEven);
    if cents <= BigDecimal::zero() {
        Err(AmountError::NotPositive)
    } else if cents > BigDecimal::from(MAX_AMOUNT_CENTS) {
        Err(AmountError::TooLarge)
    } else {
        Ok(i64::from_str(&cents.to_string()).expect("an integer within range"))
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, read part by part.
fn is_json_number(t: &[u8]) -> bool {
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let int_len = t.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 || (int_len > 1 && t[0] == b'0') {
        return false;
    }
    let mut rest = &t[int_len..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = exp.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}
