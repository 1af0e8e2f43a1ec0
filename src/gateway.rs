//! The gateway's assembly: instance-wide state, per-core state, and startup.
//!
//! Instance-wide ([`Shared`], behind `Arc`): the configuration, the set of accepted
//! correlationIds (so a payment accepted twice is queued once), and the memory
//! ledger's records. Per core ([`Core`], behind `Rc`): the backlog, the processor
//! connection pools, the ledger handle. Only the two instance-wide maps cross threads,
//! each behind one mutex held for a single hash operation.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monoio::time::Instant;

use crate::api::Api;
use crate::config::{Config, LedgerConfig};
use crate::handoff;
use crate::health::{Board, Mode, Monitor};
use crate::http::client::Client;
use crate::ledger::memory::{MemoryLedger, MemoryStore};
use crate::ledger::redis::RedisLedger;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::queue::Backlog;
use crate::runtime::{self, Driver};
use crate::server::{self, StdListener, Timeouts};
use crate::signals::{Signals, State, View};

/// Hashes a correlationId, already a uniformly random 128-bit value, by folding it.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

/// Set of correlationIds.
pub type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// State shared by every core of this instance.
pub struct Shared {
    pub config: Config,
    /// correlationIds this instance accepted (queued once each).
    accepted: Mutex<IdSet>,
    /// The latest health report of each processor.
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let metrics = Arc::new(Metrics::new(config.cores));
        Shared {
            config,
            accepted: Mutex::new(IdSet::default()),
            board: Arc::new(Board::default()),
            metrics,
        }
    }

    /// Marks `id` accepted; false when it already was.
    pub fn accept(&self, id: u128) -> bool {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
    }

    /// Forgets an acceptance whose payment could not be queued.
    pub fn unaccept(&self, id: u128) {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// How often the latency percentile gauge is refreshed: the dispatcher publishes its
/// gauges after every round, and the percentile sorts the last answers.
const P99_EVERY: Duration = Duration::from_millis(250);

/// One core's state.
pub struct Core<L> {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Same as `shared.config`, for brevity.
    pub config: Config,
    pub backlog: Backlog,
    pub ledger: L,
    /// Connection pools to the processors, by `Processor::index`.
    pub processors: [Client; 2],
    /// What this core's requests tell about each processor, by `Processor::index`.
    pub signals: [RefCell<Signals>; 2],
    /// Same as `shared.board` and `shared.metrics`, for brevity.
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    /// When the latency percentile was last published (it sorts the recent answers).
    p99_published: Cell<Option<Instant>>,
}

impl<L: Ledger> Core<L> {
    pub fn new(id: usize, shared: Arc<Shared>, ledger: L) -> Core<L> {
        let config = shared.config.clone();
        let limit = config.max_in_flight_per_core();
        let signals = || RefCell::new(Signals::new(limit, config.deadline, config.probe_interval));
        Core {
            id,
            backlog: Backlog::new(config.queue_capacity),
            processors: [
                Client::new(config.processors[0].clone(), limit),
                Client::new(config.processors[1].clone(), limit),
            ],
            signals: [signals(), signals()],
            ledger,
            board: shared.board.clone(),
            metrics: shared.metrics.clone(),
            p99_published: Cell::new(None),
            config,
            shared,
        }
    }

    /// Both processors as the policy sees them now.
    pub fn views(&self, now: Instant) -> [View; 2] {
        [
            self.signals[0].borrow_mut().view(now),
            self.signals[1].borrow_mut().view(now),
        ]
    }

    /// Stores this core's gauges for `/metrics`.
    pub fn publish(&self) {
        let g = self.metrics.core(self.id);
        let now = Instant::now();
        let with_p99 = self
            .p99_published
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) >= P99_EVERY);
        if with_p99 {
            self.p99_published.set(Some(now));
        }
        g.queue_depth.store(self.backlog.len() as u64, Relaxed);
        for (i, s) in self.signals.iter().enumerate() {
            let s = s.borrow();
            g.in_flight[i].store(s.in_flight() as u64, Relaxed);
            g.limit[i].store(s.cap() as u64, Relaxed);
            let state = State::ALL.iter().position(|x| *x == s.state()).unwrap_or(0);
            g.state[i].store(state as u64, Relaxed);
            let us = |d: Option<Duration>| d.map_or(0, |d| d.as_micros() as u64);
            g.latency_ewma_us[i].store(us(s.ewma()), Relaxed);
            let ppm = |share: f64| (share * 1e6) as u64;
            g.error_ppm[i].store(ppm(s.error_rate()), Relaxed);
            g.timeout_ppm[i].store(ppm(s.timeout_rate()), Relaxed);
            if with_p99 {
                g.latency_p99_us[i].store(us(s.p99()), Relaxed);
            }
        }
    }
}

/// Binds, starts one runtime per core, and serves until the process ends. Errors are
/// startup errors, worded for the user.
pub fn run(config: Config) -> Result<(), String> {
    crate::log::set_name(&config.instance_id);
    let driver = runtime::resolve(config.io_driver)?;
    let (listeners, bound) = server::bind(&config.listen, config.cores)
        .map_err(|e| format!("LISTEN: cannot listen on {}: {e}", config.listen))?;
    let handoffs: Vec<Option<StdListener>> = match &config.handoff {
        Some(addr) => handoff::bind(addr, config.cores)
            .map_err(|e| format!("HANDOFF: cannot listen on {addr}: {e}"))?
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..config.cores).map(|_| None).collect(),
    };
    let handoff_note = match &config.handoff {
        Some(addr) => format!("; hand-off on {addr}"),
        None => String::new(),
    };
    let ledger_name = match &config.ledger {
        LedgerConfig::Memory { peers } => format!("memory ({} peers)", peers.len()),
        LedgerConfig::Redis(t) => format!("redis at {t}"),
    };
    crate::log!(
        "listening on {bound}{handoff_note}; io driver {}; {} cores; {} in flight per processor; \
         ledger {ledger_name}; processors {} and {}; deadline {:?}, patience {:?}",
        driver.name(),
        config.cores,
        config.max_in_flight,
        config.processors[0],
        config.processors[1],
        config.deadline,
        config.patience(),
    );
    let listeners: Arc<Mutex<Vec<Option<CoreListeners>>>> = Arc::new(Mutex::new(
        listeners.into_iter().zip(handoffs).map(Some).collect(),
    ));
    let shared = Arc::new(Shared::new(config));
    match shared.config.ledger.clone() {
        LedgerConfig::Memory { peers } => {
            let store = Arc::new(MemoryStore::default());
            start(driver, shared, listeners, move || {
                MemoryLedger::new(store.clone(), &peers)
            });
        }
        LedgerConfig::Redis(target) => {
            start(driver, shared, listeners, move || {
                RedisLedger::new(target.clone())
            });
        }
    }
    Ok(())
}

/// The health monitor of this instance (on core 0), sharing through peers or Redis
/// as the ledger does.
fn monitor<L>(core: &Core<L>) -> impl std::future::Future<Output = ()> {
    let config = &core.config;
    let mode = match &config.ledger {
        LedgerConfig::Memory { peers } => Mode::Peers(peers.clone()),
        LedgerConfig::Redis(t) => Mode::Redis(t.clone()),
    };
    let m = Rc::new(Monitor {
        instance_id: config.instance_id.clone(),
        // No pooled connections: a GET on a pooled connection that fails is sent again,
        // and a health call must never be sent twice in a window.
        processors: [
            Rc::new(Client::new(config.processors[0].clone(), 0)),
            Rc::new(Client::new(config.processors[1].clone(), 0)),
        ],
        board: core.board.clone(),
        metrics: core.metrics.clone(),
    });
    m.run(mode)
}

/// One core's listeners: `LISTEN`, and `HANDOFF` when set.
type CoreListeners = (StdListener, Option<StdListener>);

fn start<L, F>(
    driver: Driver,
    shared: Arc<Shared>,
    listeners: Arc<Mutex<Vec<Option<CoreListeners>>>>,
    make_ledger: F,
) where
    L: Ledger + 'static,
    F: Fn() -> L + Send + Sync + Clone + 'static,
{
    let cores = shared.config.cores;
    let timeouts = Timeouts {
        request: shared.config.request_timeout,
        idle: shared.config.idle_timeout,
    };
    runtime::run_per_core(cores, driver, move |core_id| {
        let shared = shared.clone();
        let listeners = listeners.clone();
        let make_ledger = make_ledger.clone();
        async move {
            let taken = listeners.lock().unwrap_or_else(|e| e.into_inner())[core_id].take();
            let Some((std_listener, std_handoff)) = taken else {
                return;
            };
            let listener = match std_listener.into_monoio() {
                Ok(l) => l,
                Err(e) => {
                    crate::log!("core {core_id}: cannot use the listener: {e}");
                    std::process::exit(1);
                }
            };
            let handoff_listener = match std_handoff.map(StdListener::into_monoio) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(e)) => {
                    crate::log!("core {core_id}: cannot use the hand-off listener: {e}");
                    std::process::exit(1);
                }
            };
            let core = Rc::new(Core::new(core_id, shared, make_ledger()));
            monoio::spawn({
                let core = core.clone();
                async move { core.backlog.run_timer().await }
            });
            monoio::spawn(crate::worker::run(core.clone()));
            if core_id == 0 {
                monoio::spawn(monitor(&core));
            }
            let api = Rc::new(Api::new(core));
            if let Some(l) = handoff_listener {
                monoio::spawn(handoff::serve(l, api.clone(), timeouts));
            }
            server::serve(listener, api, timeouts).await;
        }
    });
}
