//! Startup: binds the listeners, says so on stdout ([`net::ready`]: `ready listen <addr>`,
//! plus `internal <addr>` with `INTERNAL_LISTEN` and `handoff <addr>` with `HANDOFF`),
//! starts one runtime per core, and spawns each core's tasks (the backlog timer, the
//! dispatcher, the health monitor on core 0, the listeners' accept loops: the public
//! plane on `LISTEN` and the hand-off, the internal plane on `INTERNAL_LISTEN`).
//!
//! A stop signal (SIGTERM, SIGINT) starts a graceful stop. Every core closes its public
//! and hand-off listeners (the lb, refused, hands new clients to the other gateway),
//! answers what still arrives on open connections with `Connection: close`, and goes on
//! until every payment it accepted is settled; then it takes no more payments (`503`)
//! and ends. When every core has ended the process exits 0. If `SHUTDOWN_GRACE_MS`
//! passes first, it logs how many payments were left unsettled and exits 1. The
//! internal plane serves peers until the end.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http1::limit::ConnLimit;
use http1::server::{self, Timeouts};
use monoio::io::Canceller;
use net::listen::{self, StdListener};
use net::runtime::{self, Driver};

use crate::app::config::{GatewayConfig, LedgerConfig};
use crate::app::state::{Core, Instance};
use crate::engine::payment::Payment;
use crate::intake::handoff;
use crate::intake::internal::Internal;
use crate::intake::routes::Public;
use crate::intake::token::PEER_TOKEN_HEADER;
use crate::ledger::journal::{self, CoreJournal, Journal, Opened, Unsettled};
use crate::ledger::memory::{MemoryLedger, MemoryStore};
use crate::ledger::redis::RedisLedger;
use crate::ledger::Ledger;
use crate::upstream::health::monitor::{Monitor, Sharing};
use http1::client::Client;

/// Binds, starts one runtime per core, and serves until the process ends. Errors are
/// startup errors, worded for the user.
pub fn run(config: GatewayConfig) -> Result<(), String> {
    net::log::set_name(&config.instance_id);
    let driver = runtime::resolve(config.io_driver)?;
    let (listeners, bound) = listen::bind(&config.listen, config.cores)
        .map_err(|e| format!("LISTEN: cannot listen on {}: {e}", config.listen))?;
    let handoffs: Vec<Option<StdListener>> = match &config.handoff {
        Some(addr) => handoff::bind(addr, config.cores)
            .map_err(|e| format!("HANDOFF: cannot listen on {addr}: {e}"))?
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..config.cores).map(|_| None).collect(),
    };
    let (internals, internal_bound): (Vec<Option<StdListener>>, _) = match &config.internal {
        Some(addr) => {
            let (l, bound) = listen::bind(addr, config.cores)
                .map_err(|e| format!("INTERNAL_LISTEN: cannot listen on {addr}: {e}"))?;
            (l.into_iter().map(Some).collect(), Some(bound))
        }
        None => ((0..config.cores).map(|_| None).collect(), None),
    };
    let handoff_note = match &config.handoff {
        Some(addr) => format!("; hand-off on {addr}"),
        None => String::new(),
    };
    let internal_note = match &internal_bound {
        Some(addr) => format!("; internal plane on {addr}"),
        None => "; no internal plane (INTERNAL_LISTEN unset: a lone instance)".to_string(),
    };
    let ledger_name = match &config.ledger {
        LedgerConfig::Memory { peers } => format!("memory ({} peers)", peers.len()),
        LedgerConfig::Redis(t) => format!("redis at {t}"),
    };
    net::log!(
        "listening on {bound}{internal_note}{handoff_note}; io driver {}; {} cores; {} in flight per processor; \
         ledger {ledger_name}; processors {} and {}; deadline {:?}, patience {:?}",
        driver.name(),
        config.cores,
        config.max_in_flight,
        config.processors[0],
        config.processors[1],
        config.deadline,
        config.patience(),
    );
    let mut pairs: Vec<(&str, &dyn std::fmt::Display)> = Vec::new();
    if let Some(addr) = &internal_bound {
        pairs.push(("internal", addr));
    }
    if let Some(addr) = &config.handoff {
        pairs.push(("handoff", addr));
    }
    // Replayed before the ready line: a restarted instance is ready once it knows what
    // it had accepted.
    let opened = match &config.journal_dir {
        Some(dir) => Some(open_journal(dir, config.journal_sync)?),
        None => None,
    };
    net::ready::announce(&bound, &pairs);
    let listeners: Arc<Mutex<Vec<Option<CoreListeners>>>> = Arc::new(Mutex::new(
        listeners
            .into_iter()
            .zip(handoffs)
            .zip(internals)
            .map(|((public, handoff), internal)| {
                Some(CoreListeners {
                    public,
                    handoff,
                    internal,
                })
            })
            .collect(),
    ));
    let instance = Arc::new(Instance::new(config));
    let stopping = instance.clone();
    net::stop::on_stop_signal(move |signal| stop_within_grace(&stopping, signal))
        .map_err(|e| format!("cannot take stop signals: {e}"))?;
    match instance.config.ledger.clone() {
        LedgerConfig::Memory { peers } => {
            let store = Arc::new(MemoryStore::default());
            let restored = opened.map(|o| restore(o, &instance, &store));
            let headers = peer_headers(&instance.config);
            let claims = instance.ring.clone().map(|r| (r, instance.claims.clone()));
            start_cores(driver, instance, listeners, restored, move || {
                let ledger =
                    MemoryLedger::new(store.clone(), &peers).with_peer_headers(headers.clone());
                match &claims {
                    Some((ring, table)) => ledger.with_claims(ring.clone(), table.clone()),
                    None => ledger,
                }
            });
        }
        LedgerConfig::Redis(target) => {
            let consumer = journal_consumer(&instance.config.instance_id);
            let lease = instance.config.journal_lease;
            net::log!(
                "journal: redis stream, consumer {consumer}, lease {} ms",
                lease.as_millis()
            );
            start_cores(driver, instance, listeners, None, move || {
                RedisLedger::new(target.clone(), &consumer, lease)
            });
        }
    }
    net::log!("stopped: every payment accepted was settled");
    Ok(())
}

/// This run's consumer of the Redis journal: the instance id and a random suffix, new
/// at every start, so that a restarted instance never takes for its own what a
/// survivor may be settling ([`crate::ledger::redis::stream`]).
fn journal_consumer(instance_id: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(domain::time::now_micros() as u128);
    format!("{instance_id}:{:016x}", h.finish())
}

/// Opens and replays the journal in `dir`, logging what it found.
fn open_journal(dir: &std::path::Path, sync: bool) -> Result<Opened, String> {
    let opened = journal::open(dir, sync).map_err(|e| {
        format!(
            "JOURNAL_DIR: cannot open the journal in {}: {e}",
            dir.display()
        )
    })?;
    let s = &opened.state;
    let pinned = s.unsettled.iter().filter(|u| u.pinned.is_some()).count();
    net::log!(
        "journal {}: {} payments accepted, {} recorded, {} unsettled back in the backlog \
         ({pinned} of them may be stored already: looked up first), {} claims kept{}",
        opened.journal.path().display(),
        s.accepted.len(),
        s.records.len(),
        s.unsettled.len(),
        s.claims.len(),
        match opened.dropped_tail {
            0 => String::new(),
            n => format!("; dropped a torn or corrupt tail of {n} bytes"),
        }
    );
    Ok(opened)
}

/// What the cores take from a replayed journal: the journal, and each core's share of
/// the unsettled payments.
struct Restored {
    journal: Arc<Journal>,
    backlogs: Mutex<Vec<Vec<Unsettled>>>,
}

/// Puts a replayed journal's state back: records into the ledger, acceptances into the
/// accepted set, and the unsettled payments spread over the cores.
fn restore(opened: Opened, instance: &Instance, store: &MemoryStore) -> Arc<Restored> {
    let Opened { journal, state, .. } = opened;
    for r in state.records {
        store.record(r);
    }
    for id in state.accepted {
        instance.accept(id);
    }
    for (id, claimant) in state.claims {
        instance.claims.claim(id, claimant);
    }
    let cores = instance.config.cores;
    let mut backlogs: Vec<Vec<Unsettled>> = (0..cores).map(|_| Vec::new()).collect();
    for (i, u) in state.unsettled.into_iter().enumerate() {
        backlogs[i % cores].push(u);
    }
    Arc::new(Restored {
        journal,
        backlogs: Mutex::new(backlogs),
    })
}

/// Queues a core's share of the unsettled payments: one that was sent somewhere is
/// uncertain there (looked up first, sent again with the same `requestedAt`).
fn requeue<L: Ledger>(core: &Core<L>, payments: Vec<Unsettled>) {
    let now = monoio::time::Instant::now();
    for u in payments {
        let p = Payment::resumed(u.id, u.cents, u.requested_at, u.pinned, now);
        core.took();
        core.backlog.retry_at(now, p);
    }
}

/// How often a stopping core looks whether everything it accepted is settled.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Runs on the stop-signal thread: tells the cores to stop, then gives them
/// `SHUTDOWN_GRACE_MS` to settle what they accepted (the process exits 0 as soon as
/// they all have, from [`run`]); past it, exits 1.
fn stop_within_grace(instance: &Instance, signal: &str) {
    let grace = instance.config.shutdown_grace;
    net::log!(
        "{signal}: stopping; no new connections, settling what was accepted within {} ms",
        grace.as_millis()
    );
    instance.stop.set();
    std::thread::sleep(grace);
    net::log!(
        "stopping: SHUTDOWN_GRACE_MS ({} ms) passed with {} payment(s) unsettled; exiting",
        grace.as_millis(),
        instance.metrics.unsettled()
    );
    std::process::exit(1);
}

/// A stopping core's last step: waits until every payment it accepted is settled, and
/// seals it (no payment is accepted after that).
async fn drain<L: Ledger>(core: &Core<L>) {
    while !core.seal_if_settled() {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    core.publish();
}

/// The header line peer requests carry: `PEER_TOKEN` (none without one, and then no
/// peers either: the configuration requires it with `PEERS`).
fn peer_headers(config: &GatewayConfig) -> String {
    config
        .peer_token
        .as_ref()
        .map_or_else(String::new, |t| t.header_line(PEER_TOKEN_HEADER))
}

/// The health monitor of this instance (on core 0), sharing through peers or Redis
/// as the ledger does.
fn monitor<L>(core: &Core<L>) -> impl std::future::Future<Output = ()> {
    let config = &core.config;
    let sharing = match &config.ledger {
        LedgerConfig::Memory { peers } => Sharing::Peers(peers.clone()),
        LedgerConfig::Redis(t) => Sharing::Redis(t.clone()),
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
        counter: core.metrics.clone(),
        peer_headers: peer_headers(config),
    });
    m.run(sharing)
}

/// One core's listeners.
struct CoreListeners {
    /// `LISTEN`: the public plane.
    public: StdListener,
    /// `HANDOFF`, when set: the public plane's connections the lb hands over.
    handoff: Option<StdListener>,
    /// `INTERNAL_LISTEN`, when set: the internal plane.
    internal: Option<StdListener>,
}

/// A std listener made a monoio one on this core, or the process ends: a core that
/// cannot serve one of its listeners would leave that plane half served.
fn adopt(core_id: usize, what: &str, l: Option<StdListener>) -> Option<listen::Listener> {
    match l.map(StdListener::into_monoio) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            net::log!("core {core_id}: cannot use the {what} listener: {e}");
            std::process::exit(1);
        }
    }
}

fn start_cores<L, F>(
    driver: Driver,
    instance: Arc<Instance>,
    listeners: Arc<Mutex<Vec<Option<CoreListeners>>>>,
    restored: Option<Arc<Restored>>,
    make_ledger: F,
) where
    L: Ledger + 'static,
    F: Fn() -> L + Send + Sync + Clone + 'static,
{
    let cores = instance.config.cores;
    let limit = ConnLimit::new(instance.config.max_connections);
    instance.metrics.watch_connections(limit.clone());
    let timeouts = Timeouts {
        request: instance.config.request_timeout,
        idle: instance.config.idle_timeout,
    };
    runtime::run_per_core(cores, driver, move |core_id| {
        let instance = instance.clone();
        let listeners = listeners.clone();
        let make_ledger = make_ledger.clone();
        let limit = limit.clone();
        let restored = restored.clone();
        net::sched::apply(instance.config.sched_slice, core_id);
        async move {
            let taken = listeners.lock().unwrap_or_else(|e| e.into_inner())[core_id].take();
            let Some(taken) = taken else {
                return;
            };
            let Some(listener) = adopt(core_id, "public", Some(taken.public)) else {
                return;
            };
            let handoff_listener = adopt(core_id, "hand-off", taken.handoff);
            let internal_listener = adopt(core_id, "internal", taken.internal);
            let journal = restored
                .as_ref()
                .map(|r| CoreJournal::new(r.journal.clone()));
            let core = Rc::new(Core::new(core_id, instance, make_ledger(), journal));
            if let Some(r) = &restored {
                let share = std::mem::take(
                    &mut r.backlogs.lock().unwrap_or_else(|e| e.into_inner())[core_id],
                );
                requeue(&core, share);
            }
            monoio::spawn({
                let core = core.clone();
                async move { core.backlog.run_timer().await }
            });
            monoio::spawn(crate::engine::dispatch::run(core.clone()));
            if core_id == 0 {
                monoio::spawn(monitor(&core));
                monoio::spawn(crate::engine::takeover::run(core.clone()));
            }
            if let (Some(l), Some(token)) = (internal_listener, &core.config.peer_token) {
                let internal = Rc::new(Internal::new(core.clone(), token.clone()));
                monoio::spawn(server::serve(l, internal, timeouts));
            }
            // Stops this core's public and hand-off accept loops once the instance stops.
            let stop = Canceller::new();
            let stop_handle = stop.handle();
            let flag = core.instance.stop.clone();
            monoio::spawn(async move {
                flag.wait().await;
                stop.cancel();
            });
            let public = Rc::new(Public::new(core.clone()));
            if let Some(l) = handoff_listener {
                let serve = handoff::serve(
                    l,
                    public.clone(),
                    timeouts,
                    limit.clone(),
                    stop_handle.clone(),
                );
                monoio::spawn(serve);
            }
            server::serve_until(listener, public, timeouts, &limit, stop_handle).await;
            drain(&core).await;
        }
    });
}
