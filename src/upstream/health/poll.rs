//! One poll of one processor's `GET /payments/service-health`, and reading its answer.

use std::time::Duration;

use serde::Deserialize;

use crate::upstream::report::{Health, PollError, Report};
use domain::time::now_micros;
use http1::client::Client;

/// A poll may wait in the processor's queue for its next window (up to 5 s).
const POLL_TIMEOUT: Duration = Duration::from_millis(6_000);

#[derive(Deserialize)]
struct HealthBody {
    failing: bool,
    #[serde(rename = "minResponseTime")]
    min_response_time: u64,
}

/// Reads a `service-health` body.
pub fn parse_health(body: &[u8]) -> Option<Health> {
    let b: HealthBody = serde_json::from_slice(body).ok()?;
    Some(Health::from_millis(b.failing, b.min_response_time))
}

/// Polls one processor's health.
pub async fn poll(client: &Client) -> Result<Report, PollError> {
    let r = client
        .request("GET", "/payments/service-health", "", b"", POLL_TIMEOUT)
        .await
        .map_err(|e| PollError::Other(e.to_string()))?;
    match r.status {
        200 => parse_health(&r.body)
            .map(|health| Report {
                health,
                at: now_micros(),
            })
            .ok_or_else(|| PollError::Other("unreadable answer".into())),
        429 => Err(PollError::Limited),
        s => Err(PollError::Other(format!("answered {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::report::MAX_MIN_RESPONSE;

    #[test]
    fn health_bodies() {
        assert_eq!(
            parse_health(br#"{"failing":true,"minResponseTime":2000}"#),
            Some(Health {
                failing: true,
                min_response: Duration::from_millis(2_000)
            })
        );
        assert_eq!(parse_health(br#"{"failing":"no"}"#), None);
        // An absurd delay is clamped: it feeds timeouts and requestedAt.
        assert_eq!(
            parse_health(br#"{"failing":false,"minResponseTime":18446744073709551615}"#)
                .map(|h| h.min_response),
            Some(MAX_MIN_RESPONSE)
        );
        assert_eq!(parse_health(b"Too Many Requests"), None);
    }
}
