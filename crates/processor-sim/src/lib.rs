//! `processor-sim`: a faithful simulator of the payment processor
//! (`docs/challenge.md`, "The processors"), for tests, benches and the local stack.
//!
//! `POST /payments` goes through, in order: the concurrency limiter (800 inside, 500
//! queued FIFO, then 429), body parsing (400), the configured delay (holding the
//! permit), the failure switch (500, nothing stored), the optional base latency, and
//! the insert keyed by correlationId (200, or 422 for a duplicate). A request keeps
//! going after its client gave up, as the real one may: a timed-out attempt can still
//! be stored, which is exactly what the gateway's exactly-once rules must survive.
//!
//! The simulator runs on one core: its work is waiting, and one thread owns the state
//! without locks.
//!
//! Deviation: amounts are rounded half-to-even to cents like the real processor, but
//! an amount that rounds to zero or below is refused with 400 (the gateway never sends
//! one).
//!
//! - this module: the configuration ([`SimConfig`]), the state and its routes ([`Sim`],
//!   [`SimService`]), and the server's start ([`run`]);
//! - [`limiter`]: the concurrency limiter of `POST /payments` and the fixed-window
//!   limiter of the health endpoint.

pub mod limiter;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;
use serde::Deserialize;

use domain::id::write_uuid;
use domain::money::{parse_amount, write_cents, Cents, Rate};
use domain::time::{parse_iso, write_iso, Micros, Round};
use http1::request::{query_param, Method, Request};
use http1::response::Reply;
use http1::server::{self, Service, Timeouts};
use limiter::{Admission, Concurrency, FixedWindow};
use net::addr::Addr;
use net::env::{ConfigError, Vars};
use net::listen::{self, StdListener};
use net::runtime::IoDriver;

/// Requests inside `POST /payments` at once, as the real processor allows.
pub const MAX_CONCURRENT: usize = 800;
/// Requests waiting for a place inside, beyond which the processor answers 429.
pub const MAX_QUEUED: usize = 500;
/// Health callers that may wait for the next window before 429.
pub const HEALTH_QUEUE: usize = 2;
/// `Retry-After` on every 429, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";
/// Slow-client and idle timeouts of the simulator's own HTTP server.
const TIMEOUTS: Timeouts = Timeouts {
    request: Duration::from_secs(10),
    idle: Duration::from_secs(120),
};

/// The simulator's configuration (`TRANSACTION_FEE`, `RATE_LIMIT_SECONDS`,
/// `INITIAL_TOKEN` as the official deployment names them, plus `LISTEN`,
/// `BASE_LATENCY_MS` and `IO_DRIVER`).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: Addr,
    pub fee: Rate,
    pub rate_limit_window: Duration,
    pub token: String,
    pub base_latency: Duration,
    pub io_driver: IoDriver,
    pub name: String,
}

impl SimConfig {
    pub fn from_env() -> Result<SimConfig, ConfigError> {
        SimConfig::from_vars(&Vars(|k| std::env::var(k).ok()))
    }

    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<SimConfig, ConfigError> {
        Ok(SimConfig {
            listen: v.addr("LISTEN", "0.0.0.0:8080")?,
            fee: v.parse(
                "TRANSACTION_FEE",
                Rate::parse("0.05").expect("constant rate"),
                Rate::parse,
            )?,
            rate_limit_window: v.parse(
                "RATE_LIMIT_SECONDS",
                Duration::from_secs(5),
                |s| match s.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                    _ => Err(format!("expected a positive number of seconds, got {s:?}")),
                },
            )?,
            token: v.get("INITIAL_TOKEN").unwrap_or_else(|| "123".to_string()),
            base_latency: v.parse("BASE_LATENCY_MS", Duration::ZERO, |s| {
                s.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("expected milliseconds, got {s:?}"))
            })?,
            io_driver: v.io_driver()?,
            name: v
                .get("INSTANCE_ID")
                .unwrap_or_else(|| "processor-sim".to_string()),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct StoredPayment {
    cents: Cents,
    requested_at: Micros,
}

/// Switches the admin endpoints turn.
struct Switches {
    delay_ms: u64,
    failure: bool,
    token: String,
}

/// The simulator's whole state, owned by its one core.
pub struct Sim {
    config: SimConfig,
    payments: RefCell<HashMap<u128, StoredPayment>>,
    switches: RefCell<Switches>,
    limiter: Concurrency,
    health: FixedWindow,
}

impl Sim {
    pub fn new(config: SimConfig) -> Sim {
        let health = FixedWindow::new(Instant::now(), config.rate_limit_window, HEALTH_QUEUE);
        Sim {
            switches: RefCell::new(Switches {
                delay_ms: 0,
                failure: false,
                token: config.token.clone(),
            }),
            payments: RefCell::new(HashMap::new()),
            limiter: Concurrency::new(MAX_CONCURRENT, MAX_QUEUED),
            health,
            config,
        }
    }

    async fn post_payment(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let Some(_permit) = self.limiter.acquire().await else {
            return too_many(reply);
        };
        #[derive(Deserialize)]
        struct PaymentBody<'a> {
            #[serde(rename = "correlationId", borrow)]
            correlation_id: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            amount: &'a serde_json::value::RawValue,
            #[serde(rename = "requestedAt", borrow)]
            requested_at: std::borrow::Cow<'a, str>,
        }
        let parsed = serde_json::from_slice::<PaymentBody<'_>>(req.body)
            .ok()
            .and_then(|b| {
                let id = uuid::Uuid::try_parse(&b.correlation_id).ok()?.as_u128();
                let cents = parse_amount(b.amount.get().as_bytes()).ok()?;
                let at = parse_iso(b.requested_at.as_bytes(), Round::Down).ok()?;
                Some((id, cents, at))
            });
        let Some((id, cents, requested_at)) = parsed else {
            return reply.error(400, "invalid payment body");
        };
        let delay = self.switches.borrow().delay_ms;
        if delay > 0 {
            monoio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.switches.borrow().failure {
            return reply.empty(500);
        }
        if !self.config.base_latency.is_zero() {
            monoio::time::sleep(self.config.base_latency).await;
        }
        use std::collections::hash_map::Entry;
        match self.payments.borrow_mut().entry(id) {
            Entry::Vacant(v) => {
                v.insert(StoredPayment {
                    cents,
                    requested_at,
                });
                reply.json(200, br#"{"message":"payment processed successfully"}"#);
            }
            Entry::Occupied(_) => {
                let mut body = b"{\"message\":\"Payment could not be processed. CorrelationId already exists: ".to_vec();
                write_uuid(&mut body, id);
                body.extend_from_slice(b"\"}");
                reply.json(422, &body);
            }
        }
    }

    async fn health(&self, reply: &mut Reply<'_>) {
        match self.health.admit(Instant::now()) {
            Admission::Now => {}
            Admission::At(t) => {
                monoio::time::sleep_until(t).await;
                self.health.done_waiting();
            }
            Admission::Refused => return too_many(reply),
        }
        let s = self.switches.borrow();
        let mut body = format!("{{\"failing\":{},\"minResponseTime\":", s.failure).into_bytes();
        body.extend_from_slice(itoa::Buffer::new().format(s.delay_ms).as_bytes());
        body.push(b'}');
        reply.json(200, &body);
    }

    fn get_payment(&self, id: &[u8], reply: &mut Reply<'_>) {
        let found = std::str::from_utf8(id)
            .ok()
            .and_then(|s| uuid::Uuid::try_parse(s).ok())
            .and_then(|u| {
                self.payments
                    .borrow()
                    .get(&u.as_u128())
                    .map(|p| (u.as_u128(), *p))
            });
        let Some((id, p)) = found else {
            return reply.empty(404);
        };
        let mut body = b"{\"correlationId\":\"".to_vec();
        write_uuid(&mut body, id);
        body.extend_from_slice(b"\",\"amount\":");
        write_cents(&mut body, p.cents);
        body.extend_from_slice(b",\"requestedAt\":\"");
        write_iso(&mut body, p.requested_at);
        body.extend_from_slice(b"\"}");
        reply.json(200, &body);
    }

    fn admin(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let authorized =
            req.header("X-Rinha-Token") == Some(self.switches.borrow().token.as_bytes());
        if !authorized {
            return reply.error(401, "missing or wrong X-Rinha-Token");
        }
        match (req.method, req.path) {
            (Method::Get, b"/admin/payments-summary") => self.admin_summary(req, reply),
            (Method::Put, b"/admin/configurations/token") => {
                #[derive(Deserialize)]
                struct B {
                    token: String,
                }
                match serde_json::from_slice::<B>(req.body) {
                    Ok(b) => {
                        self.switches.borrow_mut().token = b.token;
                        reply.empty(204)
                    }
                    Err(e) => reply.error(400, &e.to_string()),
                }
            }
            (Method::Put, b"/admin/configurations/delay") => {
                #[derive(Deserialize)]
                struct B {
                    delay: u64,
                }
                match serde_json::from_slice::<B>(req.body) {
                    Ok(b) => {
                        let was =
                            std::mem::replace(&mut self.switches.borrow_mut().delay_ms, b.delay);
                        let body = format!(r#"{{"config":"delay","was":{was},"is":{}}}"#, b.delay);
                        reply.json(200, body.as_bytes())
                    }
                    Err(e) => reply.error(400, &e.to_string()),
                }
            }
            (Method::Put, b"/admin/configurations/failure") => {
                #[derive(Deserialize)]
                struct B {
                    failure: bool,
                }
                match serde_json::from_slice::<B>(req.body) {
                    Ok(b) => {
                        let was =
                            std::mem::replace(&mut self.switches.borrow_mut().failure, b.failure);
                        let body =
                            format!(r#"{{"config":"failure","was":{was},"is":{}}}"#, b.failure);
                        reply.json(200, body.as_bytes())
                    }
                    Err(e) => reply.error(400, &e.to_string()),
                }
            }
            (Method::Post, b"/admin/purge-payments") => {
                self.payments.borrow_mut().clear();
                reply.json(200, br#"{"message":"All payments purged."}"#)
            }
            _ => reply.error(404, "no such admin endpoint"),
        }
    }

    fn admin_summary(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let q = req.query.unwrap_or_default();
        let bound = |name: &str, round: Round| -> Result<Option<Micros>, String> {
            match query_param(q, name) {
                Ok(Some(v)) if !v.is_empty() => parse_iso(&v, round)
                    .map(Some)
                    .map_err(|e| format!("{name}: {}", e.reason())),
                Ok(_) => Ok(None),
                Err(()) => Err(format!("{name}: malformed percent-encoding")),
            }
        };
        let (from, to) = match (bound("from", Round::Up), bound("to", Round::Down)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return reply.error(400, &e),
        };
        // Either bound missing: everything (as the real processor does).
        let everything = from.is_none() || to.is_none();
        let (mut count, mut cents) = (0u64, 0i64);
        for p in self.payments.borrow().values() {
            if everything || (Some(p.requested_at) >= from && Some(p.requested_at) <= to) {
                count += 1;
                cents += p.cents;
            }
        }
        let mut body = b"{\"totalRequests\":".to_vec();
        body.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
        body.extend_from_slice(b",\"totalAmount\":");
        write_cents(&mut body, cents);
        body.extend_from_slice(b",\"totalFee\":");
        self.config.fee.write_fee_of(&mut body, cents);
        body.extend_from_slice(b",\"feePerTransaction\":");
        self.config.fee.write(&mut body);
        body.push(b'}');
        reply.json(200, &body);
    }
}

fn too_many(reply: &mut Reply<'_>) {
    reply.with_headers(
        429,
        &format!("Retry-After: {RETRY_AFTER_SECONDS}\r\n"),
        "text/plain; charset=utf-8",
        b"Too many requests",
    );
}

/// The simulator's HTTP service.
pub struct SimService(pub Rc<Sim>);

impl Service for SimService {
    async fn call(&self, req: &Request<'_>, reply: &mut Reply<'_>) {
        let sim = &self.0;
        match (req.method, req.path) {
            (Method::Post, b"/payments") => sim.post_payment(req, reply).await,
            (Method::Get, b"/payments/service-health") => sim.health(reply).await,
            (Method::Get, p) if p.starts_with(b"/payments/") => {
                sim.get_payment(&p[b"/payments/".len()..], reply)
            }
            (_, p) if p.starts_with(b"/admin/") => sim.admin(req, reply),
            _ => reply.error(404, "no such endpoint"),
        }
    }
}

/// Binds, says so on stdout (`ready listen <addr>`, [`net::ready`]), and serves until
/// the process ends.
pub fn run(config: SimConfig) -> Result<(), String> {
    net::log::set_name(&config.name);
    let driver = net::runtime::resolve(config.io_driver)?;
    let (mut listeners, bound) = listen::bind(&config.listen, 1)
        .map_err(|e| format!("LISTEN: cannot listen on {}: {e}", config.listen))?;
    let listener: StdListener = listeners.pop().ok_or("no listener")?;
    let mut fee = Vec::new();
    config.fee.write(&mut fee);
    net::log!(
        "listening on {bound}; io driver {}; fee {}; health window {:?}; base latency {:?}",
        driver.name(),
        String::from_utf8_lossy(&fee),
        config.rate_limit_window,
        config.base_latency
    );
    net::ready::announce(&bound, &[]);
    net::runtime::block_on(driver, async move {
        let listener = match listener.into_monoio() {
            Ok(l) => l,
            Err(e) => {
                net::log!("cannot use the listener: {e}");
                std::process::exit(1);
            }
        };
        let service = Rc::new(SimService(Rc::new(Sim::new(config))));
        server::serve(listener, service, TIMEOUTS).await;
    });
    Ok(())
}
