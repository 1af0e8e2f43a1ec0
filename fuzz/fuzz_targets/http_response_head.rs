//! The client's response-head parser on any bytes: it never panics, a head it accepts
//! reads the same from exactly its own bytes, and its prefixes are incomplete.
#![no_main]

use http1::client::framing::{parse_head, Framing};
use http1::client::MAX_RESPONSE_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (no_body, buf) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => return,
    };
    let Ok(Some((len, head))) = parse_head(buf, no_body) else {
        return;
    };
    assert!(len <= buf.len());
    assert!((100..=999).contains(&head.status));
    if let Framing::Length(n) = head.framing {
        assert!(n <= MAX_RESPONSE_BYTES);
    }
    if no_body {
        assert_eq!(head.framing, Framing::Empty);
    }
    assert_eq!(parse_head(&buf[..len], no_body).unwrap(), Some((len, head)));
    for cut in [0, len / 2, len - 1] {
        assert!(
            matches!(parse_head(&buf[..cut], no_body), Ok(None)),
            "prefix of {cut}"
        );
    }
});
