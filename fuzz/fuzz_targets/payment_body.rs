//! The payment body: the fast path never disagrees with the serde path, and every
//! refusal is a 400 or 422 with a reason.
#![no_main]

use gateway::intake::body::{parse_body, parse_canonical, parse_general};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let general = parse_general(data);
    if let Some(fast) = parse_canonical(data) {
        assert_eq!(
            general,
            Ok(fast),
            "fast path accepted what serde judges otherwise"
        );
    }
    let verdict = parse_body(data);
    assert_eq!(verdict, general);
    if let Err(e) = verdict {
        assert!(matches!(e.status(), 400 | 422));
        assert!(!e.reason().is_empty());
    }
});
