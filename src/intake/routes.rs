//! The gateway's HTTP endpoints. A new route is one [`Route`] variant, one arm in
//! [`route`] and one handler here.

use std::rc::Rc;

use crate::app::state::Core;
use crate::engine::payment::Payment;
use crate::intake::body::parse_body;
use crate::ledger::memory::{write_partial, INTERNAL_PURGE_PATH, INTERNAL_SUMMARY_PATH};
use crate::ledger::{Ledger, Summary, Window};
use crate::upstream::health::encoding::{parse_push, INTERNAL_HEALTH_PATH, MAX_REPORT_AHEAD_US};
use domain::money::write_cents;
use domain::time::{now_micros, parse_iso, Round};
use http1::request::{query_param, Method, Request};
use http1::response::{Reply, ACCEPTED};
use http1::server::Service;

/// Every endpoint the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /payments`: validate, answer 202, queue.
    Payments,
    /// `GET /payments-summary?from&to`: the cluster's totals.
    Summary,
    /// `POST /purge-payments`: forget everything, cluster-wide.
    Purge,
    /// `GET /health`.
    Health,
    /// `GET /internal/summary?from_us&to_us`: this instance's own totals, for peers.
    InternalSummary,
    /// `POST /internal/purge`: forget this instance's records, for peers.
    InternalPurge,
    /// `POST /internal/health`: a health report from the peer that polls.
    InternalHealth,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
}

/// Maps a path to its route and the one method it takes.
pub fn route(path: &[u8]) -> Option<(Route, Method)> {
    Some(match path {
        b"/payments" => (Route::Payments, Method::Post),
        b"/payments-summary" => (Route::Summary, Method::Get),
        b"/purge-payments" => (Route::Purge, Method::Post),
        b"/health" => (Route::Health, Method::Get),
        p if p == INTERNAL_SUMMARY_PATH.as_bytes() => (Route::InternalSummary, Method::Get),
        p if p == INTERNAL_PURGE_PATH.as_bytes() => (Route::InternalPurge, Method::Post),
        p if p == INTERNAL_HEALTH_PATH.as_bytes() => (Route::InternalHealth, Method::Post),
        b"/metrics" => (Route::Metrics, Method::Get),
        _ => return None,
    })
}

/// One core's HTTP service.
pub struct Endpoints<L> {
    core: Rc<Core<L>>,
}

impl<L: Ledger> Endpoints<L> {
    pub fn new(core: Rc<Core<L>>) -> Endpoints<L> {
        Endpoints { core }
    }

    fn payments(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let (id, cents) = match parse_body(req.body) {
            Ok(v) => v,
            Err(e) => return reply.error(e.status(), &e.reason()),
        };
        let instance = &self.core.instance;
        if !instance.accept(id) {
            // Already accepted by this instance: queued once, answered as accepted.
            self.core.metrics.duplicate();
            return reply.preserialized(ACCEPTED);
        }
        match self.core.backlog.push(Payment::new(id, cents)) {
            Ok(()) => {
                self.core.metrics.accepted();
                reply.preserialized(ACCEPTED)
            }
            Err(_) => {
                instance.unaccept(id);
                self.core.metrics.refused_full();
                reply.error(503, "payment queue is full; retry later")
            }
        }
    }

    async fn summary(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let window = match iso_window(req.query.unwrap_or_default()) {
            Ok(w) => w,
            Err(reason) => return reply.error(400, &reason),
        };
        match self.core.ledger.summary(window).await {
            Ok(s) => {
                let mut body = Vec::with_capacity(128);
                write_summary(&mut body, &s);
                reply.json(200, &body);
            }
            Err(e) => {
                net::log!("summary failed: {e}");
                reply.error(503, &format!("summary unavailable: {e}"));
            }
        }
    }

    async fn purge(&self, reply: &mut Reply<'_>, cluster: bool) {
        // Acceptances are kept: a correlationId seen before stays a duplicate, on every
        // ledger, whichever instance the purge reached.
        let result = if cluster {
            self.core.ledger.purge().await
        } else {
            self.core.ledger.local_purge().await
        };
        match result {
            Ok(()) => reply.json(200, br#"{"message":"All payments purged."}"#),
            Err(e) => {
                net::log!("purge failed: {e}");
                reply.error(503, &format!("purge incomplete: {e}"));
            }
        }
    }

    async fn internal_summary(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let window = match micros_window(req.query.unwrap_or_default()) {
            Ok(w) => w,
            Err(reason) => return reply.error(400, &reason),
        };
        match self.core.ledger.local_summary(window).await {
            Ok(s) => {
                let mut body = Vec::with_capacity(96);
                write_partial(&mut body, &s);
                reply.json(200, &body);
            }
            Err(e) => reply.error(503, &format!("summary unavailable: {e}")),
        }
    }

    fn internal_health(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        match parse_push(req.body) {
            Ok((_, r)) if r.at > now_micros().saturating_add(MAX_REPORT_AHEAD_US) => {
                reply.error(422, "report dated in the future")
            }
            Ok((p, r)) => {
                self.core.board.set(p, r);
                reply.json(200, br#"{"message":"noted"}"#);
            }
            Err(reason) => reply.error(400, &reason),
        }
    }

    fn metrics(&self, reply: &mut Reply<'_>) {
        self.core.publish();
        let mut out = String::with_capacity(4096);
        self.core.metrics.render(&mut out);
        reply.with_headers(200, "", "text/plain; version=0.0.4", out.as_bytes());
    }

    fn health(&self, reply: &mut Reply<'_>) {
        let mut body = b"{\"status\":\"ok\",\"instance\":".to_vec();
        http1::response::write_json_str(&mut body, &self.core.config.instance_id);
        body.extend_from_slice(b",\"queued\":");
        body.extend_from_slice(
            itoa::Buffer::new()
                .format(self.core.backlog.len())
                .as_bytes(),
        );
        body.push(b'}');
        reply.json(200, &body);
    }
}

impl<L: Ledger> Service for Endpoints<L> {
    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let Some((route, method)) = route(req.path) else {
            return reply.error(404, "no such endpoint");
        };
        if req.method != method {
            return reply.error(405, "method not allowed on this endpoint");
        }
        match route {
            Route::Payments => self.payments(req, reply),
            Route::Summary => self.summary(req, reply).await,
            Route::Purge => self.purge(reply, true).await,
            Route::Health => self.health(reply),
            Route::InternalSummary => self.internal_summary(req, reply).await,
            Route::InternalPurge => self.purge(reply, false).await,
            Route::InternalHealth => self.internal_health(req, reply),
            Route::Metrics => self.metrics(reply),
        }
    }
}

/// Reads `from` and `to` (ISO-8601, inclusive; fractions beyond microseconds are
/// rounded inward so the window never grows).
fn iso_window(query: &[u8]) -> Result<Window, String> {
    let bound = |name: &str, round: Round| -> Result<Option<i64>, String> {
        let raw =
            query_param(query, name).map_err(|()| format!("{name}: malformed percent-encoding"))?;
        match raw {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => parse_iso(&v, round)
                .map(Some)
                .map_err(|e| format!("{name}: {} ({:?})", e.reason(), String::from_utf8_lossy(&v))),
        }
    };
    Ok(Window {
        from: bound("from", Round::Up)?,
        to: bound("to", Round::Down)?,
    })
}

/// Reads `from_us` and `to_us` (integer microseconds), the internal endpoint's bounds.
fn micros_window(query: &[u8]) -> Result<Window, String> {
    let bound = |name: &str| -> Result<Option<i64>, String> {
        match query_param(query, name) {
            Ok(None) => Ok(None),
            Ok(Some(v)) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| format!("{name}: expected integer microseconds")),
            Err(()) => Err(format!("{name}: malformed percent-encoding")),
        }
    };
    Ok(Window {
        from: bound("from_us")?,
        to: bound("to_us")?,
    })
}

/// Appends the public summary:
/// `{"default":{"totalRequests":N,"totalAmount":X.YZ},"fallback":{…}}`.
pub fn write_summary(out: &mut Vec<u8>, s: &Summary) {
    let mut num = itoa::Buffer::new();
    for (i, (name, t)) in [("default", s.default), ("fallback", s.fallback)]
        .into_iter()
        .enumerate()
    {
        out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":{\"totalRequests\":");
        out.extend_from_slice(num.format(t.count).as_bytes());
        out.extend_from_slice(b",\"totalAmount\":");
        write_cents(out, t.cents);
        out.push(b'}');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Totals;

    #[test]
    fn summary_json() {
        let mut out = Vec::new();
        write_summary(
            &mut out,
            &Summary {
                default: Totals {
                    count: 2,
                    cents: 3980,
                },
                fallback: Totals { count: 0, cents: 0 },
            },
        );
        assert_eq!(
            out,
            br#"{"default":{"totalRequests":2,"totalAmount":39.80},"fallback":{"totalRequests":0,"totalAmount":0.00}}"#
        );
    }

    #[test]
    fn windows() {
        assert_eq!(iso_window(b""), Ok(Window::ALL));
        assert_eq!(
            iso_window(b"from=1970-01-01T00:00:01Z&to=1970-01-01T00:00:02.5Z"),
            Ok(Window {
                from: Some(1_000_000),
                to: Some(2_500_000)
            })
        );
        assert_eq!(
            iso_window(b"to=1970-01-01T02:00:00%2B02:00"),
            Ok(Window {
                from: None,
                to: Some(0)
            })
        );
        assert_eq!(
            iso_window(b"from=1970-01-01T00:00:00.0000001Z&to=1970-01-01T00:00:00.0000019Z"),
            Ok(Window {
                from: Some(1),
                to: Some(1)
            })
        );
        assert!(iso_window(b"from=yesterday")
            .unwrap_err()
            .starts_with("from:"));
        assert!(iso_window(b"to=2025-13-01T00:00:00Z")
            .unwrap_err()
            .starts_with("to:"));
        assert!(iso_window(b"from=%zz").is_err());
        assert_eq!(
            micros_window(b"from_us=-5&to_us=7"),
            Ok(Window {
                from: Some(-5),
                to: Some(7)
            })
        );
        assert!(micros_window(b"from_us=x").is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(route(b"/payments"), Some((Route::Payments, Method::Post)));
        assert_eq!(
            route(b"/payments-summary"),
            Some((Route::Summary, Method::Get))
        );
        assert_eq!(route(b"/payments/"), None);
        assert_eq!(
            route(b"/internal/summary"),
            Some((Route::InternalSummary, Method::Get))
        );
    }
}
