//! The RESP frame scanner on any bytes: it never panics, a frame it finds is found again
//! in exactly its own bytes, and one byte less is incomplete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_wire::frame_len;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(n)) = frame_len(data) else {
        return;
    };
    assert!(n > 0 && n <= data.len());
    assert!(matches!(frame_len(&data[..n]), Ok(Some(m)) if m == n));
    assert!(matches!(frame_len(&data[..n - 1]), Ok(None)));
});
