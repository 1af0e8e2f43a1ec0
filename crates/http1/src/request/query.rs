//! Query-string parameters: one value found by name and percent-decoded.

/// Percent-decodes one query parameter's value: finds `name` in a query string `a=1&b=2` and
/// returns its decoded bytes (no '+'→space conversion: '+' stays '+'); Err(()) on a
/// malformed escape.
///
/// Names are compared as sent (not decoded). The first occurrence wins; a parameter
/// without `=` has an empty value. Only the value returned is checked for escapes.
// The only failure is "malformed escape", which needs no payload.
#[allow(clippy::result_unit_err)]
pub fn query_param(query: &[u8], name: &str) -> Result<Option<Vec<u8>>, ()> {
    for pair in query.split(|&c| c == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.iter().position(|&c| c == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if key == name.as_bytes() {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

fn percent_decode(encoded: &[u8]) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&c, tail)) = rest.split_first() {
        if c == b'%' {
            match tail {
                [hi, lo, after @ ..] => {
                    out.push((hex_value(*hi)? << 4) | hex_value(*lo)?);
                    rest = after;
                }
                _ => return Err(()),
            }
        } else {
            out.push(c);
            rest = tail;
        }
    }
    Ok(out)
}

fn hex_value(c: u8) -> Result<u8, ()> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! query {
        ($($name:ident: ($query:expr, $param:expr) => $expected:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    let expected: Result<Option<&[u8]>, ()> = $expected;
                    assert_eq!(query_param($query, $param), expected.map(|v| v.map(<[u8]>::to_vec)));
                }
            )*
        };
    }

    query! {
        query_first: (b"a=1&b=2", "a") => Ok(Some(b"1"));
        query_second: (b"a=1&b=2", "b") => Ok(Some(b"2"));
        query_missing: (b"a=1&b=2", "c") => Ok(None);
        query_empty_string: (b"", "a") => Ok(None);
        query_empty_value: (b"a=&b=2", "a") => Ok(Some(b""));
        query_no_equals: (b"a&b=2", "a") => Ok(Some(b""));
        query_first_wins: (b"a=1&a=2", "a") => Ok(Some(b"1"));
        query_name_prefix: (b"ab=1&a=2", "a") => Ok(Some(b"2"));
        query_name_case_sensitive: (b"From=1", "from") => Ok(None);
        query_empty_pairs: (b"&&a=1&", "a") => Ok(Some(b"1"));
        query_equals_in_value: (b"a=b=c", "a") => Ok(Some(b"b=c"));
        query_percent_plus: (b"to=2020-07-10T12:35:56.000%2B03:00", "to") => Ok(Some(b"2020-07-10T12:35:56.000+03:00"));
        query_plus_stays: (b"q=a+b", "q") => Ok(Some(b"a+b"));
        query_percent_colon_lower: (b"t=12%3a00%3A01", "t") => Ok(Some(b"12:00:01"));
        query_percent_utf8: (b"n=caf%C3%A9", "n") => Ok(Some("café".as_bytes()));
        query_percent_nul: (b"n=%00", "n") => Ok(Some(b"\0"));
        query_bad_hex: (b"a=%zz", "a") => Err(());
        query_truncated_escape: (b"a=%4", "a") => Err(());
        query_lone_percent: (b"a=%", "a") => Err(());
        query_bad_escape_elsewhere: (b"a=%zz&b=1", "b") => Ok(Some(b"1"));
    }
}
