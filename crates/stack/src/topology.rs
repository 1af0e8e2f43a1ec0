//! The whole stack in the foreground: redis-server (redis ledger), two simulators
//! (unless both processor URLs are given), two gateways (each with an internal socket,
//! sharing a `PEER_TOKEN` drawn afresh for the run), the lb; each started once the
//! one before it is ready, each announced on stdout as it is, then `ready`. See the
//! crate documentation for the output and for stopping.

use std::io::Write;
use std::path::Path;

use crate::child::Output;
use crate::config::{LedgerKind, Processors, StackConfig};
use crate::redis::{self, Persistence};
use crate::rundir::RunDir;
use crate::servers::{Bins, Env, GatewayLedger, GatewaySpec, LbSpec, SimSpec};
use crate::supervisor::{Stop, Supervisor};

/// The gateways' names, in start order.
const GATEWAYS: [&str; 2] = ["gateway-1", "gateway-2"];

/// Runs the stack until a stop signal (`Ok`) or a failure (`Err`, worded for the user).
/// Must be called from the main thread before any other thread is started: it blocks
/// the stop signals for the whole process.
pub fn run(config: StackConfig) -> Result<(), String> {
    let mut sup = Supervisor::new();
    sup.catch_stop_signals()?;
    let bins = Bins::next_to_me()?;
    let gateway_bin = bins.path("gateway")?;
    let lb_bin = bins.path("lb")?;
    let sim_bin = match config.processors {
        Processors::Simulated { .. } => Some(bins.path("processor-sim")?),
        Processors::External { .. } => None,
    };
    let dir = RunDir::create("rinha-stack")?;
    let bins = Paths {
        gateway: &gateway_bin,
        lb: &lb_bin,
        sim: sim_bin.as_deref(),
    };
    let result = start(&config, &mut sup, &dir, &bins).and_then(|()| {
        announce("ready");
        loop {
            sup.watch(crate::child::TICK)?;
        }
    });
    sup.stop_all();
    drop(dir);
    match result {
        Ok(()) => Ok(()),
        Err(Stop::Signal(s)) => {
            eprintln!("stack: stopped by signal {s}; every child stopped");
            Ok(())
        }
        Err(Stop::Failed(why)) => Err(format!("{why}; stopped everything")),
    }
}

/// The binaries a run uses.
struct Paths<'a> {
    gateway: &'a Path,
    lb: &'a Path,
    sim: Option<&'a Path>,
}

/// Writes one line of the machine-readable output (a closed stdout is not an error:
/// the stack keeps running for whoever still uses it).
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `http://host:port` for a TCP address, `unix:/path` as it is.
fn url(addr: &str) -> String {
    if addr.starts_with("unix:") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Starts every component and announces it.
fn start(
    config: &StackConfig,
    sup: &mut Supervisor,
    dir: &RunDir,
    bins: &Paths,
) -> Result<(), Stop> {
    announce(&format!("run-dir {}", dir.path().display()));
    let redis_url = match config.ledger {
        LedgerKind::Memory => None,
        LedgerKind::Redis => Some(start_redis(sup, dir, config.redis_aof)?),
    };
    let (processors, fees) = start_processors(config, sup, bins.sim)?;
    let listen = GATEWAYS.map(|n| dir.sock(&format!("{n}.sock")));
    let handoff = GATEWAYS.map(|n| dir.sock(&format!("{n}.handoff")));
    let internal = GATEWAYS.map(|n| dir.sock(&format!("{n}.internal")));
    let peer_token = random_token().map_err(Stop::Failed)?;
    let mut gateways = Vec::new();
    for (i, name) in GATEWAYS.into_iter().enumerate() {
        let spec = GatewaySpec {
            name: name.to_string(),
            listen: listen[i].clone(),
            handoff: Some(handoff[i].clone()),
            internal: Some(internal[i].clone()),
            peer_token: Some(peer_token.clone()),
            processors: processors.clone(),
            fees: fees.clone(),
            ledger: match &redis_url {
                Some(url) => GatewayLedger::Redis(url.clone()),
                None => GatewayLedger::Peers(vec![internal[1 - i].clone()]),
            },
        };
        let bin = bins.gateway.to_path_buf();
        // The memory ledger journals to the run directory, so a gateway restarted after a
        // crash picks up where it was; `JOURNAL_DIR=` (empty) turns that off.
        let journal_off = std::env::var_os("JOURNAL_DIR").is_some_and(|v| v.is_empty());
        let journal = (redis_url.is_none() && !journal_off)
            .then(|| dir.path().join(format!("{name}.journal")));
        let make = move || {
            let mut cmd = spec.command(&bin, &Env::Inherit);
            if let Some(j) = &journal {
                cmd.env("JOURNAL_DIR", j);
            }
            cmd
        };
        gateways.push(sup.spawn_restarting(name, make, Output::Prefixed)?);
    }
    for (i, (&g, name)) in gateways.iter().zip(GATEWAYS).enumerate() {
        let ready = sup.wait_ready(g)?;
        let handoff = ready.get("handoff").unwrap_or(&handoff[i]);
        let internal = ready.get("internal").unwrap_or(&internal[i]);
        announce(&format!(
            "{name} {} internal {internal} handoff {handoff} pid {}",
            url(ready.listen()),
            sup.child(g).pid()
        ));
    }
    let spec = LbSpec {
        name: "lb".to_string(),
        listen: config.listen.clone(),
        mode: config.lb_mode.clone(),
        upstreams: match config.lb_mode.as_str() {
            "proxy" => listen.to_vec(),
            _ => handoff.to_vec(),
        },
        cores: config.lb_cores.clone(),
    };
    let lb = sup.spawn("lb", spec.command(bins.lb, &Env::Inherit), Output::Prefixed)?;
    let ready = sup.wait_ready(lb)?;
    announce(&format!(
        "lb {} mode {} pid {}",
        url(ready.listen()),
        config.lb_mode,
        sup.child(lb).pid()
    ));
    Ok(())
}

/// Bytes of randomness in a run's `PEER_TOKEN`.
const TOKEN_BYTES: usize = 16;

/// A fresh `PEER_TOKEN` for one run: [`TOKEN_BYTES`] from `/dev/urandom`, in hex.
fn random_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the gateways' PEER_TOKEN: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts redis-server in `dir`, waits until it answers, announces it, and returns its
/// `REDIS_URL`.
fn start_redis(sup: &mut Supervisor, dir: &RunDir, keep: Persistence) -> Result<String, Stop> {
    let socket = dir.path().join(redis::SOCKET);
    let cmd = redis::command(&socket, None, dir.path(), keep);
    let r = sup
        .spawn("redis", cmd, Output::Prefixed)
        .map_err(|e| match e {
            Stop::Failed(why) => {
                Stop::Failed(format!("LEDGER=redis needs redis-server on PATH: {why}"))
            }
            other => other,
        })?;
    sup.wait_until(r, redis::PING_EVERY, || redis::answers(&socket, None))?;
    let url = format!("unix:{}", socket.display());
    announce(&format!("redis {url} pid {}", sup.child(r).pid()));
    Ok(url)
}

/// Starts the simulators (or takes the given processors), announces them, and returns
/// the gateways' processor URLs and, for simulators, their fees.
fn start_processors(
    config: &StackConfig,
    sup: &mut Supervisor,
    sim_bin: Option<&Path>,
) -> Result<([String; 2], Option<[String; 2]>), Stop> {
    match (&config.processors, sim_bin) {
        (
            Processors::Simulated {
                default_fee,
                fallback_fee,
                default_listen,
                fallback_listen,
            },
            Some(sim_bin),
        ) => {
            let sims = [
                ("processor-default", default_fee, default_listen),
                ("processor-fallback", fallback_fee, fallback_listen),
            ];
            let mut urls = Vec::new();
            for (name, fee, listen) in sims {
                let spec = SimSpec {
                    name: name.to_string(),
                    listen: listen.clone(),
                    fee: fee.clone(),
                };
                let s = sup.spawn(name, spec.command(sim_bin, &Env::Inherit), Output::Prefixed)?;
                let addr = url(sup.wait_ready(s)?.listen());
                announce(&format!(
                    "{name} {addr} fee {fee} pid {}",
                    sup.child(s).pid()
                ));
                urls.push(addr);
            }
            let [default, fallback]: [String; 2] = urls
                .try_into()
                .map_err(|_| Stop::Failed("two simulators expected".to_string()))?;
            Ok((
                [default, fallback],
                Some([default_fee.clone(), fallback_fee.clone()]),
            ))
        }
        (
            Processors::External {
                default_url,
                fallback_url,
            },
            _,
        ) => {
            announce(&format!("processor-default {default_url} external"));
            announce(&format!("processor-fallback {fallback_url} external"));
            Ok(([default_url.clone(), fallback_url.clone()], None))
        }
        (Processors::Simulated { .. }, None) => {
            Err(Stop::Failed("processor-sim was not located".to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex_long_enough_for_the_gateway() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
