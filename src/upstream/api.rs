//! The calls the gateway makes to the payment processors: `POST /payments` and
//! `GET /payments/{id}`, and what their answers mean.

use std::time::Duration;

use serde::Deserialize;

use domain::id::write_uuid;
use domain::money::Cents;
use domain::time::{parse_iso, Micros, Round};
use http1::client::Client;

/// Header lines sent with every `POST /payments` (ASP.NET binds JSON bodies only with
/// this content type).
const JSON_HEADERS: &str = "Content-Type: application/json\r\n";

/// What one `POST /payments` attempt tells about the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// 200: stored now, with the `requestedAt` we sent.
    Charged,
    /// 422: already stored there, by an earlier attempt of ours or by someone else.
    AlreadyThere,
    /// Not stored by this attempt: 500 or 503 (failing), or a connection that was never
    /// made. Carries the status (0: no connection).
    NotCharged(u16),
    /// Not stored, turned away with a 4XX other than 422: 429 when the processor's
    /// queue is full, anything else when it refuses our requests. Carries the status.
    TurnedAway(u16),
    /// Timed out or lost the connection after sending: it may yet be stored.
    Unknown,
}

impl PostOutcome {
    /// One outcome of each kind, in the order metrics lists them (the statuses carried
    /// are examples: [`PostOutcome::index`] and [`PostOutcome::name`] ignore them).
    pub const ALL: [PostOutcome; 5] = [
        PostOutcome::Charged,
        PostOutcome::AlreadyThere,
        PostOutcome::NotCharged(500),
        PostOutcome::Unknown,
        PostOutcome::TurnedAway(429),
    ];

    /// Position of this outcome's kind in [`PostOutcome::ALL`].
    pub fn index(self) -> usize {
        match self {
            PostOutcome::Charged => 0,
            PostOutcome::AlreadyThere => 1,
            PostOutcome::NotCharged(_) => 2,
            PostOutcome::Unknown => 3,
            PostOutcome::TurnedAway(_) => 4,
        }
    }

    /// The metrics label: `turned_away` is a 4XX but 422 (a 429 when the processor's
    /// queue is full), `not_charged` a 5XX or no connection.
    pub fn name(self) -> &'static str {
        match self {
            PostOutcome::Charged => "charged",
            PostOutcome::AlreadyThere => "already_there",
            PostOutcome::NotCharged(_) => "not_charged",
            PostOutcome::Unknown => "unknown",
            PostOutcome::TurnedAway(_) => "turned_away",
        }
    }
}

/// Sends one payment attempt.
pub async fn post_payment(
    client: &Client,
    id: u128,
    cents: Cents,
    requested_at: Micros,
    timeout: Duration,
) -> PostOutcome {
    let mut body = Vec::with_capacity(128);
    write_processor_body(&mut body, id, cents, requested_at);
    match client
        .request("POST", "/payments", JSON_HEADERS, &body, timeout)
        .await
    {
        Ok(r) => classify(r.status),
        Err(e) if e.not_sent() => PostOutcome::NotCharged(0),
        Err(_) => PostOutcome::Unknown,
    }
}

/// Maps a `POST /payments` status to its meaning (`docs/payment-life.md`): only 200
/// stores; 422 means stored before; 500, 429 and other 4XX store nothing. A status the
/// processor never sends itself (a proxy's 502 or 504) proves nothing.
pub fn classify(status: u16) -> PostOutcome {
    match status {
        200..=299 => PostOutcome::Charged,
        422 => PostOutcome::AlreadyThere,
        400..=499 => PostOutcome::TurnedAway(status),
        500 | 503 => PostOutcome::NotCharged(status),
        _ => PostOutcome::Unknown,
    }
}

/// What `GET /payments/{id}` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Stored, with this `requestedAt` and amount.
    Found {
        requested_at: Micros,
        cents: Option<Cents>,
    },
    NotFound,
    /// No answer, or one that could not be read.
    Unknown,
}

#[derive(Deserialize)]
struct Stored<'a> {
    #[serde(rename = "requestedAt", borrow)]
    requested_at: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    amount: Option<&'a serde_json::value::RawValue>,
}

/// Asks a processor whether it stored a payment.
pub async fn get_payment(client: &Client, id: u128, timeout: Duration) -> Lookup {
    let mut path = b"/payments/".to_vec();
    write_uuid(&mut path, id);
    let path = String::from_utf8(path).unwrap_or_default();
    match client.request("GET", &path, "", b"", timeout).await {
        Ok(r) if r.status == 404 => Lookup::NotFound,
        Ok(r) if r.status == 200 => parse_lookup(&r.body),
        _ => Lookup::Unknown,
    }
}

/// Reads a processor's answer to `GET /payments/{id}`; anything unreadable is
/// [`Lookup::Unknown`].
pub fn parse_lookup(body: &[u8]) -> Lookup {
    let Ok(s) = serde_json::from_slice::<Stored<'_>>(body) else {
        return Lookup::Unknown;
    };
    match parse_iso(s.requested_at.as_bytes(), Round::Down) {
        Ok(requested_at) => Lookup::Found {
            requested_at,
            cents: s
                .amount
                .and_then(|a| domain::money::parse_amount(a.get().as_bytes()).ok()),
        },
        Err(_) => Lookup::Unknown,
    }
}

/// Appends the body sent to a processor:
/// `{"correlationId":"…","amount":19.90,"requestedAt":"…"}`.
pub fn write_processor_body(out: &mut Vec<u8>, id: u128, cents: Cents, requested_at: Micros) {
    out.extend_from_slice(b"{\"correlationId\":\"");
    domain::id::write_uuid(out, id);
    out.extend_from_slice(b"\",\"amount\":");
    domain::money::write_cents(out, cents);
    out.extend_from_slice(b",\"requestedAt\":\"");
    domain::time::write_iso(out, requested_at);
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";

    #[test]
    fn processor_body() {
        let id = uuid::Uuid::parse_str(ID).unwrap().as_u128();
        let mut out = Vec::new();
        write_processor_body(&mut out, id, 1990, 1_752_150_896_123_456);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"correlationId":"{ID}","amount":19.90,"requestedAt":"2025-07-10T12:34:56.123456Z"}}"#
            )
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(200), PostOutcome::Charged);
        assert_eq!(classify(422), PostOutcome::AlreadyThere);
        assert_eq!(classify(500), PostOutcome::NotCharged(500));
        assert_eq!(classify(429), PostOutcome::TurnedAway(429));
        assert_eq!(classify(400), PostOutcome::TurnedAway(400));
        assert_eq!(classify(404), PostOutcome::TurnedAway(404));
        assert_eq!(classify(502), PostOutcome::Unknown);
        assert_eq!(classify(504), PostOutcome::Unknown);
    }

    #[test]
    fn outcome_labels_follow_all() {
        crate::label_table::assert_consistent(
            &PostOutcome::ALL,
            PostOutcome::index,
            PostOutcome::name,
        );
    }

    #[test]
    fn lookups() {
        let body = br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9,"requestedAt":"2025-07-10T12:34:56.123456Z"}"#;
        assert_eq!(
            parse_lookup(body),
            Lookup::Found {
                requested_at: 1_752_150_896_123_456,
                cents: Some(1990)
            }
        );
        // PostgreSQL timestamps come back without a zone: UTC.
        let body = br#"{"requestedAt":"2025-07-10T12:34:56.123456","amount":1}"#;
        assert!(matches!(
            parse_lookup(body),
            Lookup::Found {
                requested_at: 1_752_150_896_123_456,
                ..
            }
        ));
        assert_eq!(parse_lookup(b"{}"), Lookup::Unknown);
        assert_eq!(
            parse_lookup(br#"{"requestedAt":"yesterday"}"#),
            Lookup::Unknown
        );
    }
}
