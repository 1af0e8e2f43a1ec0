//! The lb in front of the gateways.
//!
//! # Architecture map
//!
//! ```text
//! client ──► accept (per core) ──► handoff: pass the fd to a gateway's HANDOFF socket, close ours
//!                              └─► proxy:   connect to a gateway's LISTEN, copy bytes both ways
//! ```
//!
//! - [`config`]: `LISTEN`, `UPSTREAMS`, `LB_MODE`, `IO_DRIVER`, `CORES`; a bad value is
//!   an error naming the variable.
//! - [`upstreams`]: round-robin order over the upstreams and their liveness (down ones
//!   are skipped and retried after a pause; changes are logged).
//! - [`handoff`]: hand-off mode over persistent Unix links to each gateway, through
//!   [`net::fdpass`] (SCM_RIGHTS); each gateway answers every client with a verdict
//!   byte, and a refused client goes to the other gateway. The lb itself has no unsafe
//!   code.
//! - [`proxy`]: proxy mode, a byte-copying L4 proxy with half-close relayed.
//!
//! Binding, runtimes, logs and the ready line on stdout (`ready listen <addr>`, once
//! bound) come from the network base ([`net::listen::bind`], [`net::runtime`],
//! [`net::log!`], [`net::ready`]).
//!
//! A stop signal (SIGTERM, SIGINT) closes every core's listener; the lb then exits 0
//! once no client waits for a gateway's verdict (hand-off) or is still proxied, or
//! when `SHUTDOWN_GRACE_MS` has passed ([`net::stop`]).
#![forbid(unsafe_code)]

pub mod config;
pub mod handoff;
pub mod proxy;
pub mod upstreams;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monoio::io::{CancelHandle, Canceller};
use net::listen::{self, Listener, StdListener};
use net::runtime;
use net::stop::StopFlag;

use crate::config::{LbConfig, LbMode};

/// Name on the lb's log lines.
const LOG_NAME: &str = "lb";

/// Binds, starts one runtime per core, and serves until the process ends. Errors are
/// startup errors, worded for the user.
pub fn run(config: LbConfig) -> Result<(), String> {
    net::log::set_name(LOG_NAME);
    let driver = runtime::resolve(config.io_driver)?;
    let (listeners, bound) = listen::bind(&config.listen, config.cores)
        .map_err(|e| format!("LISTEN: cannot listen on {}: {e}", config.listen))?;
    let upstreams: Vec<String> = config.upstreams.iter().map(|a| a.to_string()).collect();
    net::log!(
        "listening on {bound}; mode {}; io driver {}; {} cores; upstreams {}",
        config.mode.name(),
        driver.name(),
        config.cores,
        upstreams.join(", "),
    );
    net::ready::announce(&bound, &[]);
    let stop = StopFlag::new();
    let grace = config.shutdown_grace;
    net::stop::on_stop_signal({
        let stop = stop.clone();
        move |signal| {
            net::log!(
                "{signal}: stopping; no new connections, {} ms of grace",
                grace.as_millis()
            );
            stop.set();
            std::thread::sleep(grace);
            net::log!("stopping: SHUTDOWN_GRACE_MS passed with clients still open; exiting");
            std::process::exit(0);
        }
    })
    .map_err(|e| format!("cannot take stop signals: {e}"))?;
    let listeners: Arc<Mutex<Vec<Option<StdListener>>>> =
        Arc::new(Mutex::new(listeners.into_iter().map(Some).collect()));
    let config = Arc::new(config);
    runtime::run_per_core(config.cores, driver, move |core_id| {
        let listeners = listeners.clone();
        let config = config.clone();
        let stop = stop.clone();
        net::sched::apply(config.sched_slice, core_id);
        async move {
            let taken = listeners.lock().unwrap_or_else(|e| e.into_inner())[core_id].take();
            let listener = match taken.map(StdListener::into_monoio) {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    net::log!("core {core_id}: cannot use the listener: {e}");
                    std::process::exit(1);
                }
                None => return,
            };
            let canceller = Canceller::new();
            let handle = canceller.handle();
            monoio::spawn(async move {
                stop.wait().await;
                canceller.cancel();
            });
            match config.mode {
                LbMode::Handoff => serve_handoff(listener, &config, handle).await,
                LbMode::Proxy => serve_proxy(listener, &config, handle).await,
            }
        }
    });
    net::log!("stopped");
    Ok(())
}

/// How often a stopping core looks whether its clients are done.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Waits until `busy` says nothing is left.
async fn drain(busy: impl Fn() -> bool) {
    while busy() {
        monoio::time::sleep(DRAIN_POLL).await;
    }
}

/// Accepts clients and hands each one over, one at a time (a hand-off is one syscall),
/// until `stop` cancels the accept; then waits for the verdicts still due.
async fn serve_handoff(listener: Listener, config: &LbConfig, stop: CancelHandle) {
    let links = handoff::Links::new(config.upstreams.clone());
    let mut burst = listen::AcceptBurst::default();
    loop {
        // The lb holds the accepted socket until a gateway takes it (its verdict), and
        // closes it when none does.
        match listener.accept_until(stop.clone()).await {
            Ok(client) => {
                burst.accepted();
                links.hand_off(client).await;
            }
            Err(e) if listen::is_stopped(&e) => break,
            Err(e) => burst.failed(e).await,
        }
    }
    drop(listener);
    drain(|| links.waiting() > 0).await;
}

/// Accepts clients and proxies each one on its own task until `stop` cancels the
/// accept; then waits for the proxied connections to end.
async fn serve_proxy(listener: Listener, config: &LbConfig, stop: CancelHandle) {
    let upstreams = Rc::new(upstreams::Upstreams::new(config.upstreams.clone()));
    let open = Rc::new(Cell::new(0usize));
    listen::accept_each_until(&listener, stop, |client| {
        let (upstreams, open) = (upstreams.clone(), open.clone());
        open.set(open.get() + 1);
        monoio::spawn(async move {
            proxy::serve(client, upstreams).await;
            open.set(open.get() - 1);
        });
    })
    .await;
    drop(listener);
    drain(|| open.get() > 0).await;
}
