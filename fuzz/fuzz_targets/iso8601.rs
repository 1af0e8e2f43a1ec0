//! ISO-8601: any text parses without panicking, the two roundings bracket the instant,
//! and every instant written parses back to itself.
#![no_main]

use domain::time::{parse_iso, write_iso, Round, ISO_LEN, MAX_MICROS, MIN_MICROS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let down = parse_iso(data, Round::Down);
    let up = parse_iso(data, Round::Up);
    match (down, up) {
        (Ok(d), Ok(u)) => {
            assert!(d <= u && u - d <= 1, "roundings {d} and {u}");
            assert!((MIN_MICROS..=MAX_MICROS).contains(&d));
            assert!((MIN_MICROS..=MAX_MICROS).contains(&u));
        }
        // Rounding up may carry past the last instant; nothing else may differ.
        (Ok(d), Err(_)) => assert_eq!(d, MAX_MICROS),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(e), Ok(u)) => panic!("down failed with {e:?} where up gave {u}"),
    }

    // The first 8 bytes as an instant: written, it has the fixed shape and reads back.
    let mut raw = [0u8; 8];
    let n = data.len().min(8);
    raw[..n].copy_from_slice(&data[..n]);
    let t = i64::from_le_bytes(raw);
    let mut out = Vec::new();
    write_iso(&mut out, t);
    assert_eq!(out.len(), ISO_LEN);
    let clamped = t.clamp(MIN_MICROS, MAX_MICROS);
    assert_eq!(parse_iso(&out, Round::Down), Ok(clamped));
    assert_eq!(parse_iso(&out, Round::Up), Ok(clamped));
});
