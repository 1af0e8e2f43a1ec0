//! Startup: binds the listeners, says so on stdout ([`net::ready`]: `ready listen <addr>`,
//! plus `handoff <addr>` with `HANDOFF`), starts one runtime per core, and spawns each
//! core's tasks (the backlog timer, the dispatcher, the health monitor on core 0, the
//! listeners' accept loops).

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use http1::limit::ConnLimit;
use http1::server::{self, Timeouts};
use net::listen::{self, StdListener};
use net::runtime::{self, Driver};

use crate::app::config::{GatewayConfig, LedgerConfig};
use crate::app::state::{Core, Instance};
use crate::intake::handoff;
use crate::intake::routes::Endpoints;
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
    let handoff_note = match &config.handoff {
        Some(addr) => format!("; hand-off on {addr}"),
        None => String::new(),
    };
    let ledger_name = match &config.ledger {
        LedgerConfig::Memory { peers } => format!("memory ({} peers)", peers.len()),
        LedgerConfig::Redis(t) => format!("redis at {t}"),
    };
    net::log!(
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
    match &config.handoff {
        Some(addr) => net::ready::announce(&bound, &[("handoff", addr)]),
        None => net::ready::announce(&bound, &[]),
    }
    let listeners: Arc<Mutex<Vec<Option<CoreListeners>>>> = Arc::new(Mutex::new(
        listeners.into_iter().zip(handoffs).map(Some).collect(),
    ));
    let instance = Arc::new(Instance::new(config));
    match instance.config.ledger.clone() {
        LedgerConfig::Memory { peers } => {
            let store = Arc::new(MemoryStore::default());
            start_cores(driver, instance, listeners, move || {
                MemoryLedger::new(store.clone(), &peers)
            });
        }
        LedgerConfig::Redis(target) => {
            start_cores(driver, instance, listeners, move || {
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
    });
    m.run(sharing)
}

/// One core's listeners: `LISTEN`, and `HANDOFF` when set.
type CoreListeners = (StdListener, Option<StdListener>);

fn start_cores<L, F>(
    driver: Driver,
    instance: Arc<Instance>,
    listeners: Arc<Mutex<Vec<Option<CoreListeners>>>>,
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
        async move {
            let taken = listeners.lock().unwrap_or_else(|e| e.into_inner())[core_id].take();
            let Some((std_listener, std_handoff)) = taken else {
                return;
            };
            let listener = match std_listener.into_monoio() {
                Ok(l) => l,
                Err(e) => {
                    net::log!("core {core_id}: cannot use the listener: {e}");
                    std::process::exit(1);
                }
            };
            let handoff_listener = match std_handoff.map(StdListener::into_monoio) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(e)) => {
                    net::log!("core {core_id}: cannot use the hand-off listener: {e}");
                    std::process::exit(1);
                }
            };
            let core = Rc::new(Core::new(core_id, instance, make_ledger()));
            monoio::spawn({
                let core = core.clone();
                async move { core.backlog.run_timer().await }
            });
            monoio::spawn(crate::engine::dispatch::run(core.clone()));
            if core_id == 0 {
                monoio::spawn(monitor(&core));
            }
            let endpoints = Rc::new(Endpoints::new(core));
            if let Some(l) = handoff_listener {
                monoio::spawn(handoff::serve(
                    l,
                    endpoints.clone(),
                    timeouts,
                    limit.clone(),
                ));
            }
            server::serve_limited(listener, endpoints, timeouts, &limit).await;
        }
    });
}
