//! What one instance reads from another: the internal summary body, the health push, and
//! the claims request and its verdicts.
//! Any bytes are refused or accepted without panicking, and what is accepted survives a
//! write and a read unchanged.
#![no_main]

use gateway::ledger::claims::{parse_claims, parse_verdicts, write_claims, write_verdicts};
use gateway::ledger::memory::{parse_partial, write_partial};
use gateway::upstream::health::encoding::{decode_report, encode_push, encode_report, parse_push};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = parse_partial(data) {
        let mut out = Vec::new();
        write_partial(&mut out, &summary);
        assert_eq!(parse_partial(&out), Ok(summary));
    }
    if let Ok((processor, report)) = parse_push(data) {
        let again = parse_push(&encode_push(processor, &report)).expect("our own push");
        assert_eq!(again.0, processor);
        assert_eq!(again.1, report);
    }
    if let Ok((claimant, ids)) = parse_claims(data) {
        let mut out = Vec::new();
        write_claims(&mut out, claimant, &ids);
        assert_eq!(out, data, "a claims body has one spelling");
    }
    if let Ok(verdicts) = parse_verdicts(data, data.len()) {
        let mut out = Vec::new();
        write_verdicts(&mut out, verdicts);
        assert_eq!(out, data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(report) = decode_report(text) {
            assert_eq!(decode_report(&encode_report(&report)), Some(report));
        }
    }
});
