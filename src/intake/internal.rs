//! The internal plane: the routes peers and the operator use, served on
//! `INTERNAL_LISTEN` only (never on `LISTEN` or the hand-off). A new route is one
//! [`Route`] variant, one arm in [`route`] and one handler here.
//!
//! The four peer routes (`/internal/summary`, `/internal/purge`, `/internal/health`,
//! `/internal/claims`) need `PEER_TOKEN` in [`PEER_TOKEN_HEADER`], compared in constant time; a missing or
//! wrong token is answered 401 and logged (at most one line a second, with a count).
//! `GET /metrics` (the operator's scraper) and `GET /health` (the peers' election
//! reads the instance id there) need no token: the internal socket is private.

use std::rc::Rc;

use crate::app::state::Core;
use crate::intake::routes::{method_not_allowed, write_health, NO_SUCH_ENDPOINT, PURGED};
use crate::intake::token::{Refusals, Token, PEER_TOKEN_HEADER};
use crate::ledger::claims::{parse_claims, write_verdicts, INTERNAL_CLAIMS_PATH, RING_HEADER};
use crate::ledger::journal::Entry;
use crate::ledger::memory::{write_partial, INTERNAL_PURGE_PATH, INTERNAL_SUMMARY_PATH};
use crate::ledger::{Ledger, Window};
use crate::upstream::health::encoding::{parse_push, INTERNAL_HEALTH_PATH, MAX_REPORT_AHEAD_US};
use domain::time::now_micros;
use http1::request::{query_param, Method, Request};
use http1::response::Reply;
use http1::server::Service;

/// Every internal endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /internal/summary?from_us&to_us`: this instance's own totals, for peers.
    Summary,
    /// `POST /internal/purge`: forget this instance's records, for peers.
    Purge,
    /// `POST /internal/health`: a health report from the peer that polls.
    Health,
    /// `POST /internal/claims`: a peer claims payments whose ids this instance owns.
    Claims,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /health`: the instance id, read by the peers' election.
    Status,
}

impl Route {
    /// Whether the route is a peer's and needs `PEER_TOKEN`.
    pub fn needs_peer_token(self) -> bool {
        matches!(
            self,
            Route::Summary | Route::Purge | Route::Health | Route::Claims
        )
    }
}

/// Maps a path to its internal route and the one method it takes.
pub fn route(path: &[u8]) -> Option<(Route, Method)> {
    Some(match path {
        p if p == INTERNAL_SUMMARY_PATH.as_bytes() => (Route::Summary, Method::Get),
        p if p == INTERNAL_PURGE_PATH.as_bytes() => (Route::Purge, Method::Post),
        p if p == INTERNAL_HEALTH_PATH.as_bytes() => (Route::Health, Method::Post),
        p if p == INTERNAL_CLAIMS_PATH.as_bytes() => (Route::Claims, Method::Post),
        b"/metrics" => (Route::Metrics, Method::Get),
        b"/health" => (Route::Status, Method::Get),
        _ => return None,
    })
}

/// Peer requests refused for a missing or wrong token, logged at most once a second.
static PEER_REFUSALS: Refusals = Refusals::new();

/// One core's internal HTTP service.
pub struct Internal<L> {
    core: Rc<Core<L>>,
    /// `PEER_TOKEN`: the configuration requires it with `INTERNAL_LISTEN`.
    token: Token,
}

impl<L: Ledger> Internal<L> {
    /// The internal service of `core`, which checks peer requests against `token`.
    pub fn new(core: Rc<Core<L>>, token: Token) -> Internal<L> {
        Internal { core, token }
    }

    async fn summary(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
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

    async fn purge(&self, reply: &mut Reply<'_>) {
        let purged = self.core.ledger.local_purge().await;
        if purged.is_ok() {
            self.core.journal_write(Entry::Purged);
        }
        match purged {
            Ok(()) => reply.json(200, PURGED),
            Err(e) => {
                net::log!("local purge failed: {e}");
                reply.error(503, &format!("purge incomplete: {e}"));
            }
        }
    }

    fn health(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
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

    /// Grants or refuses a peer's claims on ids this instance owns. The grants are
    /// journaled with the answer ([`Service::commit`]) before it is sent.
    fn claims(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let Some(ring) = &self.core.instance.ring else {
            return reply.error(409, "this instance has no peers, so it owns no claims");
        };
        if req.header(RING_HEADER) != Some(ring.fingerprint().as_bytes()) {
            return reply.error(
                409,
                "the claimant's ring differs from this instance's: PEERS and \
                 INTERNAL_LISTEN must name the same instances, spelled alike",
            );
        }
        let (claimant, ids) = match parse_claims(req.body) {
            Ok(c) => c,
            Err(reason) => return reply.error(400, &reason),
        };
        if usize::from(claimant) >= ring.len() || usize::from(claimant) == ring.me() {
            return reply.error(400, "claims: the claimant is not a peer of this ring");
        }
        if let Some(id) = ids.iter().find(|&&id| ring.owner(id) != ring.me()) {
            return reply.error(400, &format!("claims: {id:032x} is not this instance's"));
        }
        let mut verdicts = Vec::with_capacity(ids.len());
        write_verdicts(
            &mut verdicts,
            ids.iter().map(|&id| {
                let granted = self.core.instance.claims.claim(id, claimant);
                if granted {
                    self.core.journal_add(Entry::Claimed { id, claimant });
                }
                granted
            }),
        );
        reply.with_headers(200, "", "text/plain", &verdicts);
    }

    fn metrics(&self, reply: &mut Reply<'_>) {
        self.core.publish();
        let mut out = String::with_capacity(4096);
        self.core.metrics.render(&mut out);
        reply.with_headers(200, "", "text/plain; version=0.0.4", out.as_bytes());
    }
}

impl<L: Ledger> Service for Internal<L> {
    async fn commit(&self) -> bool {
        self.core.journal_commit()
    }

    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let Some((route, method)) = route(req.path) else {
            return reply.error(404, NO_SUCH_ENDPOINT);
        };
        if req.method != method {
            return method_not_allowed(reply, method);
        }
        if route.needs_peer_token() && !self.token.matches(req.header(PEER_TOKEN_HEADER)) {
            let what = String::from_utf8_lossy(req.path);
            if let Some(line) = PEER_REFUSALS.refused(&what, std::time::Instant::now()) {
                net::log!("internal plane: {line}");
            }
            return reply.error(401, "missing or wrong X-Peer-Token");
        }
        match route {
            Route::Summary => self.summary(req, reply).await,
            Route::Purge => self.purge(reply).await,
            Route::Health => self.health(req, reply),
            Route::Claims => self.claims(req, reply),
            Route::Metrics => self.metrics(reply),
            Route::Status => {
                let mut body = Vec::with_capacity(64);
                write_health(&mut body, &self.core);
                reply.json(200, &body);
            }
        }
    }
}

/// Reads `from_us` and `to_us` (integer microseconds), the internal summary's bounds.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(
            micros_window(b"from_us=-5&to_us=7"),
            Ok(Window {
                from: Some(-5),
                to: Some(7)
            })
        );
        assert_eq!(micros_window(b""), Ok(Window::ALL));
        assert!(micros_window(b"from_us=x").is_err());
    }

    #[test]
    fn routes_and_which_need_the_token() {
        assert_eq!(
            route(b"/internal/summary"),
            Some((Route::Summary, Method::Get))
        );
        assert_eq!(
            route(b"/internal/purge"),
            Some((Route::Purge, Method::Post))
        );
        assert_eq!(
            route(b"/internal/health"),
            Some((Route::Health, Method::Post))
        );
        assert_eq!(
            route(b"/internal/claims"),
            Some((Route::Claims, Method::Post))
        );
        assert_eq!(route(b"/metrics"), Some((Route::Metrics, Method::Get)));
        assert_eq!(route(b"/health"), Some((Route::Status, Method::Get)));
        // The public routes are unknown here.
        for path in ["/payments", "/payments-summary", "/purge-payments"] {
            assert_eq!(route(path.as_bytes()), None, "{path}");
        }
        let guarded: Vec<_> = [
            Route::Summary,
            Route::Purge,
            Route::Health,
            Route::Claims,
            Route::Metrics,
            Route::Status,
        ]
        .into_iter()
        .filter(|r| r.needs_peer_token())
        .collect();
        assert_eq!(
            guarded,
            [Route::Summary, Route::Purge, Route::Health, Route::Claims]
        );
    }
}
