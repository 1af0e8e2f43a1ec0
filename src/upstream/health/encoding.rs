//! A health report on the wire between instances: its text as stored in Redis, and
//! the JSON body one peer pushes to another's `/internal/health`.

use serde::Deserialize;

use crate::processor::Processor;
use crate::upstream::report::{Health, Report};
use domain::time::Micros;

/// The path peers push reports to.
pub const INTERNAL_HEALTH_PATH: &str = "/internal/health";
/// How far ahead of this instance's clock a pushed report may be dated (clock skew).
pub const MAX_REPORT_AHEAD_US: Micros = 5_000_000;

/// `"<failing 0|1>:<minResponseTime ms>:<at µs>"`, as stored in Redis.
pub fn encode_report(r: &Report) -> String {
    format!(
        "{}:{}:{}",
        u8::from(r.health.failing),
        r.health.min_response.as_millis(),
        r.at
    )
}

pub fn decode_report(s: &str) -> Option<Report> {
    let mut it = s.split(':');
    let failing = match it.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let ms: u64 = it.next()?.parse().ok()?;
    let at: Micros = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(Report {
        health: Health::from_millis(failing, ms),
        at,
    })
}

#[derive(Deserialize)]
struct Pushed {
    processor: String,
    report: String,
}

/// The body of a push to a peer's `/internal/health`.
pub fn encode_push(p: Processor, r: &Report) -> Vec<u8> {
    format!(
        r#"{{"processor":"{}","report":"{}"}}"#,
        p.name(),
        encode_report(r)
    )
    .into_bytes()
}

/// Reads a push; `Err` says what is wrong with it.
pub fn parse_push(body: &[u8]) -> Result<(Processor, Report), String> {
    let p: Pushed = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let processor = Processor::ALL
        .into_iter()
        .find(|x| x.name() == p.processor)
        .ok_or_else(|| format!("unknown processor {:?}", p.processor))?;
    let report = decode_report(&p.report).ok_or_else(|| format!("bad report {:?}", p.report))?;
    Ok((processor, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reports_round_trip_and_bad_ones_are_refused() {
        let r = Report {
            health: Health {
                failing: true,
                min_response: Duration::from_millis(5_000),
            },
            at: 1_752_150_896_123_456,
        };
        assert_eq!(encode_report(&r), "1:5000:1752150896123456");
        assert_eq!(decode_report(&encode_report(&r)), Some(r));
        for bad in ["", "2:0:1", "1:x:1", "1:0", "1:0:1:9", "0:-5:1"] {
            assert_eq!(decode_report(bad), None, "{bad:?}");
        }
        let body = encode_push(Processor::Fallback, &r);
        assert_eq!(parse_push(&body), Ok((Processor::Fallback, r)));
        assert!(parse_push(br#"{"processor":"other","report":"0:0:1"}"#)
            .unwrap_err()
            .contains("unknown processor"));
        assert!(parse_push(br#"{"processor":"default","report":"zz"}"#)
            .unwrap_err()
            .contains("bad report"));
        assert!(parse_push(b"{").unwrap_err().contains("JSON"));
    }
}
