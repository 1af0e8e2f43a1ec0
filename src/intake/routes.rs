//! The public plane: the endpoints clients reach on `LISTEN` and through the lb's
//! hand-off. A new route is one [`Route`] variant, one arm in [`route`] and one handler
//! here. The peer routes and `/metrics` are not among them: they are served by
//! [`crate::intake::internal`] on `INTERNAL_LISTEN` only, and answer 404 here like any
//! unknown path.

use std::rc::Rc;

use crate::app::state::Core;
use crate::engine::payment::Payment;
use crate::intake::body::parse_body;
use crate::intake::token::{Refusals, PURGE_TOKEN_HEADER};
use crate::ledger::journal::Entry;
use crate::ledger::{Ledger, Summary, Window};
use domain::money::write_cents;
use domain::time::{parse_iso, Round};
use http1::request::{query_param, Method, Request};
use http1::response::{Reply, ACCEPTED};
use http1::server::Service;
use net::log::Throttle;

/// Every public endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /payments`: validate, answer 202, queue.
    Payments,
    /// `GET /payments-summary?from&to`: the cluster's totals.
    Summary,
    /// `POST /purge-payments`: forget everything, cluster-wide (with `PURGE_TOKEN`
    /// set, only when the request carries it).
    Purge,
    /// `GET /health`.
    Health,
}

impl Route {
    /// Every route, in the order of [`Route::index`]; the requests of no route are
    /// timed under the index after the last ([`OTHER_LABEL`]).
    pub const ALL: [Route; 4] = [Route::Payments, Route::Summary, Route::Purge, Route::Health];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The route's label in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Route::Payments => "payments",
            Route::Summary => "summary",
            Route::Purge => "purge",
            Route::Health => "health",
        }
    }
}

/// The timing label of a request that is no route's (404, 405).
pub const OTHER_LABEL: usize = Route::ALL.len();
const _: () = assert!(
    OTHER_LABEL < http1::server::MAX_LABELS,
    "one label too many"
);

/// Maps a path to its public route and the one method it takes.
pub fn route(path: &[u8]) -> Option<(Route, Method)> {
    Some(match path {
        b"/payments" => (Route::Payments, Method::Post),
        b"/payments-summary" => (Route::Summary, Method::Get),
        b"/purge-payments" => (Route::Purge, Method::Post),
        b"/health" => (Route::Health, Method::Get),
        _ => return None,
    })
}

/// Purges refused for a missing or wrong `PURGE_TOKEN`, logged at most once a second.
static PURGE_REFUSALS: Refusals = Refusals::new();

/// Failed commits, logged at most once a second.
static COMMIT_FAILURES: Throttle = Throttle::new();

/// One core's public HTTP service.
pub struct Public<L> {
    core: Rc<Core<L>>,
}

impl<L: Ledger> Public<L> {
    pub fn new(core: Rc<Core<L>>) -> Public<L> {
        Public { core }
    }

    fn payments(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let (id, cents) = match parse_body(req.body) {
            Ok(v) => v,
            Err(e) => return reply.error(e.status(), &e.reason()),
        };
        if self.core.is_sealed() {
            // Stopping, and everything accepted here is settled: a payment taken now
            // could not be. The answer closes the connection, so the client's retry
            // goes through the lb to another instance.
            return reply.error(503, "this instance is stopping; retry");
        }
        let instance = &self.core.instance;
        if !instance.accept(id) {
            // Already accepted by this instance: queued once, answered as accepted.
            self.core.metrics.duplicate();
            return reply.preserialized(ACCEPTED);
        }
        match self.core.backlog.push(Payment::new(id, cents)) {
            Ok(()) => {
                // Appended with this batch's answers, before they leave (commit).
                self.core.journal_add(Entry::Accepted { id, cents });
                self.core.ledger.stage(id, cents);
                self.core.took();
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

    async fn purge(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        if let Some(token) = &self.core.config.purge_token {
            if !token.matches(req.header(PURGE_TOKEN_HEADER)) {
                if let Some(line) = PURGE_REFUSALS.refused("POST /purge-payments", now()) {
                    net::log!("{line}");
                }
                return reply.error(401, "missing or wrong X-Purge-Token");
            }
        }
        // Acceptances are kept: a correlationId seen before stays a duplicate, on every
        // ledger, whichever instance the purge reached.
        match self.core.ledger.purge().await {
            Ok(()) => {
                self.core.journal_write(Entry::Purged);
                reply.json(200, PURGED)
            }
            Err(e) => {
                net::log!("purge failed: {e}");
                reply.error(503, &format!("purge incomplete: {e}"));
            }
        }
    }
}

/// The body of a purge's `200`.
pub const PURGED: &[u8] = br#"{"message":"All payments purged."}"#;

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Appends `GET /health`'s body: `{"status":"ok","instance":…,"queued":…}`.
pub fn write_health<L>(out: &mut Vec<u8>, core: &Core<L>) {
    out.extend_from_slice(b"{\"status\":\"ok\",\"instance\":");
    http1::response::write_json_str(out, &core.config.instance_id);
    out.extend_from_slice(b",\"queued\":");
    out.extend_from_slice(itoa::Buffer::new().format(core.backlog.len()).as_bytes());
    out.push(b'}');
}

impl<L: Ledger> Service for Public<L> {
    /// Stopping: every answer closes its connection, so clients come back through the
    /// lb, which no longer hands connections to this instance.
    fn closing(&self) -> bool {
        self.core.instance.stop.is_set()
    }

    /// The memory ledger's journal file, then the ledger's own journal (the Redis
    /// Stream): the batch's 202s leave only once both hold its acceptances.
    async fn commit(&self) -> bool {
        if !self.core.journal_commit() {
            return false;
        }
        match self.core.ledger.commit().await {
            Ok(()) => true,
            Err(e) => {
                COMMIT_FAILURES.log(|| {
                    format!("journaling accepted payments failed, their answers are not sent: {e}")
                });
                false
            }
        }
    }

    fn label(&self, req: &Request<'_>) -> usize {
        match route(req.path) {
            Some((route, method)) if req.method == method => route.index(),
            _ => OTHER_LABEL,
        }
    }

    fn answered(&self, label: usize, n: u32, elapsed: std::time::Duration) {
        self.core.metrics.answered(label, n, elapsed);
    }

    fn first_bytes(&self, elapsed: std::time::Duration) {
        self.core.metrics.first_bytes(elapsed);
    }

    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let Some((route, method)) = route(req.path) else {
            return reply.error(404, NO_SUCH_ENDPOINT);
        };
        if req.method != method {
            return method_not_allowed(reply, method);
        }
        match route {
            Route::Payments => self.payments(req, reply),
            Route::Summary => self.summary(req, reply).await,
            Route::Purge => self.purge(req, reply).await,
            Route::Health => {
                let mut body = Vec::with_capacity(64);
                write_health(&mut body, &self.core);
                reply.json(200, &body);
            }
        }
    }
}

/// The reason of a 404, on both planes.
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint";

/// Answers 405 for a path that takes only `allowed`, with the `Allow` header HTTP
/// requires of a 405, on both planes.
pub fn method_not_allowed(reply: &mut Reply<'_>, allowed: Method) {
    let allow = match allowed {
        Method::Get => "Allow: GET\r\n",
        Method::Post => "Allow: POST\r\n",
        _ => "",
    };
    reply.with_headers(
        405,
        allow,
        "application/json",
        br#"{"error":"method not allowed on this endpoint"}"#,
    );
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
    fn route_labels_follow_their_table() {
        crate::label_table::assert_consistent(&Route::ALL, Route::index, Route::name);
        // The metrics' label table follows this one, "other" last.
        use crate::app::metrics::ROUTE_LABELS;
        for r in Route::ALL {
            assert_eq!(ROUTE_LABELS[r.index()], r.name());
        }
        assert_eq!(ROUTE_LABELS[OTHER_LABEL], "other");
        assert_eq!(ROUTE_LABELS.len(), OTHER_LABEL + 1);
    }

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
    }

    #[test]
    fn routes() {
        assert_eq!(route(b"/payments"), Some((Route::Payments, Method::Post)));
        assert_eq!(
            route(b"/payments-summary"),
            Some((Route::Summary, Method::Get))
        );
        assert_eq!(route(b"/payments/"), None);
        // The internal plane's routes are unknown here.
        for path in [
            "/internal/summary",
            "/internal/purge",
            "/internal/health",
            "/metrics",
        ] {
            assert_eq!(route(path.as_bytes()), None, "{path}");
        }
    }
}
