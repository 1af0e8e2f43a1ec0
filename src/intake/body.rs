//! The `POST /payments` body: validated before the 202, in the exact form clients send
//! without serde, in any other form through serde (so that errors are judged alike).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use domain::money::{self, Cents};

/// Why a `POST /payments` body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not a JSON object with the two fields (serde's message says where).
    Json(String),
    CorrelationId,
    Amount(money::AmountError),
}

impl BodyError {
    /// 400 for a body that is not the expected JSON, 422 for well-formed JSON with a
    /// bad value.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::Json(_) => 400,
            BodyError::CorrelationId | BodyError::Amount(_) => 422,
        }
    }

    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            BodyError::Json(m) => Cow::Owned(format!("invalid JSON body: {m}")),
            BodyError::CorrelationId => Cow::Borrowed("correlationId must be a UUID"),
            BodyError::Amount(e) => Cow::Borrowed(e.reason()),
        }
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Cow<'a, str>,
    #[serde(borrow)]
    amount: &'a RawValue,
}

/// Validates a `POST /payments` body: `correlationId` a UUID, `amount` a JSON number
/// that is positive once rounded half-to-even to cents (as the processor stores it).
/// Unknown fields are ignored; a repeated field is an error.
pub fn parse_body(body: &[u8]) -> Result<(u128, Cents), BodyError> {
    match parse_canonical(body) {
        Some(valid) => Ok(valid),
        None => parse_general(body),
    }
}

/// [`parse_body`] for any JSON: the reference that [`parse_canonical`] must agree with.
pub fn parse_general(body: &[u8]) -> Result<(u128, Cents), BodyError> {
    let parsed: Body<'_> =
        serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
    let id = uuid::Uuid::try_parse(&parsed.correlation_id)
        .map_err(|_| BodyError::CorrelationId)?
        .as_u128();
    let cents = money::parse_amount(parsed.amount.get().as_bytes()).map_err(BodyError::Amount)?;
    Ok((id, cents))
}

/// Start of a body in the form clients send (`JSON.stringify` of the two fields).
const CANONICAL_HEAD: &[u8] = b"{\"correlationId\":\"";
/// Between the UUID and the amount in that form.
const CANONICAL_MIDDLE: &[u8] = b"\",\"amount\":";
/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// The fast path of [`parse_body`]: a body exactly
/// `{"correlationId":"<hyphenated UUID>","amount":<number>}`, without whitespace,
/// escapes or other fields. `None` for anything else, valid or not, which the general
/// parser then judges; so this never decides an error, and whatever it accepts the
/// general parser accepts with the same value.
pub fn parse_canonical(body: &[u8]) -> Option<(u128, Cents)> {
    let rest = body.strip_prefix(CANONICAL_HEAD)?;
    let (id, rest) = rest.split_at_checked(UUID_LEN)?;
    let amount = rest.strip_prefix(CANONICAL_MIDDLE)?.strip_suffix(b"}")?;
    // Both checks are the general parser's own. 36 bytes that parse as a UUID are the
    // hyphenated form, ASCII hex digits and hyphens only: the same string after JSON
    // decoding. The amount grammar is JSON's.
    let id = uuid::Uuid::try_parse_ascii(id).ok()?.as_u128();
    let cents = money::parse_amount(amount).ok()?;
    Some((id, cents))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";

    #[test]
    fn canonical_bodies_take_the_fast_path() {
        let id = uuid::Uuid::parse_str(ID).unwrap().as_u128();
        let body = format!(r#"{{"correlationId":"{ID}","amount":19.9}}"#);
        assert_eq!(parse_canonical(body.as_bytes()), Some((id, 1990)));
        let upper = format!(
            r#"{{"correlationId":"{}","amount":20.05}}"#,
            ID.to_uppercase()
        );
        assert_eq!(parse_canonical(upper.as_bytes()), Some((id, 2005)));
        // Valid, but not the canonical form: left to the general parser.
        for other in [
            format!(r#"{{"correlationId": "{ID}","amount":19.9}}"#),
            format!(r#"{{"amount":19.9,"correlationId":"{ID}"}}"#),
            format!(r#"{{"correlationId":"{ID}","amount":19.9 }}"#),
            format!(
                r#"{{"correlationId":"{}","amount":1}}"#,
                ID.replace('-', "")
            ),
        ] {
            assert_eq!(parse_canonical(other.as_bytes()), None, "{other}");
            assert!(parse_body(other.as_bytes()).is_ok(), "{other}");
        }
        // Invalid: never accepted by the fast path, and the error is the general one.
        for bad in [
            format!(r#"{{"correlationId":"{ID}","amount":01}}"#),
            format!(r#"{{"correlationId":"{ID}","amount":-1}}"#),
            format!(r#"{{"correlationId":"{ID}","amount":1.}}"#),
            format!(r#"{{"correlationId":"{ID}","amount":1}}}}"#),
            format!(
                r#"{{"correlationId":"{}","amount":1}}"#,
                ID.replace('4', "-")
            ),
        ] {
            assert_eq!(parse_canonical(bad.as_bytes()), None, "{bad}");
            assert!(parse_body(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// Whatever the fast path accepts, the general parser accepts with the same value:
    /// random edits of canonical bodies, both parsers on each.
    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let seed = format!(r#"{{"correlationId":"{ID}","amount":19.90}}"#).into_bytes();
        let alphabet = b"0123456789abcdefABCDEF-.eE+-{}\":, \\x";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut fast, mut total) = (0, 0);
        for _ in 0..200_000 {
            let mut body = seed.clone();
            for _ in 0..1 + next() % 3 {
                let at = next() as usize % (body.len() + 1);
                let c = alphabet[next() as usize % alphabet.len()];
                match next() % 3 {
                    0 if at < body.len() => body[at] = c,
                    1 => body.insert(at, c),
                    _ if at < body.len() => {
                        body.remove(at);
                    }
                    _ => {}
                }
            }
            total += 1;
            if let Some(v) = parse_canonical(&body) {
                fast += 1;
                assert_eq!(
                    parse_general(&body),
                    Ok(v),
                    "{}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        // The edits keep a fair share of bodies canonical, so the comparison is real.
        assert!(fast > total / 20, "{fast} of {total} on the fast path");
    }

    #[test]
    fn bodies() {
        let ok = |b: &str| parse_body(b.as_bytes());
        let id = uuid::Uuid::parse_str(ID).unwrap().as_u128();
        assert_eq!(
            ok(&format!(r#"{{"correlationId":"{ID}","amount":19.90}}"#)),
            Ok((id, 1990))
        );
        assert_eq!(
            ok(&format!(
                r#" {{ "amount" : 20.05 , "correlationId" : "{ID}", "x": [1] }} "#
            )),
            Ok((id, 2005))
        );
        assert_eq!(
            ok(&format!(r#"{{"correlationId":"{ID}","amount":0.015}}"#)),
            Ok((id, 2))
        );
        let upper = ID.to_uppercase();
        assert_eq!(
            ok(&format!(r#"{{"correlationId":"{upper}","amount":1}}"#)),
            Ok((id, 100))
        );

        let status = |b: &str| parse_body(b.as_bytes()).unwrap_err().status();
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"amount":1}"#,
            &format!(r#"{{"correlationId":"{ID}"}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":1,"amount":2}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":1}} trailing"#),
            r#"{"correlationId":7,"amount":1}"#,
        ] {
            assert_eq!(status(bad), 400, "{bad}");
        }
        for bad in [
            r#"{"correlationId":"nope","amount":1}"#,
            r#"{"correlationId":"","amount":1}"#,
            &format!(r#"{{"correlationId":"{ID}","amount":"19.90"}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":null}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":0}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":-5}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":0.004}}"#),
            &format!(r#"{{"correlationId":"{ID}","amount":1e300}}"#),
        ] {
            assert_eq!(status(bad), 422, "{bad}");
        }
    }
}
