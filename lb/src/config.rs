//! The lb's configuration from environment variables (listed in the README):
//! `LISTEN`, `UPSTREAMS`, `LB_MODE`, `IO_DRIVER`, `CORES`, `SCHED_SLICE_US`,
//! `SHUTDOWN_GRACE_MS`.

use std::time::Duration;

use net::addr::Addr;
use net::env::{ConfigError, Vars};
use net::runtime::IoDriver;

/// Default `LISTEN`: the port the official test calls.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9999";
/// Default `CORES`: in hand-off mode the lb only accepts and passes fds, which one core
/// does with room to spare, and the CPU budget is better left to the gateways.
pub const DEFAULT_CORES: usize = 1;
/// Default `SHUTDOWN_GRACE_MS`: a hand-off's verdict comes within microseconds; proxied
/// connections get the gateways' own grace.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(8_000);

/// `LB_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbMode {
    /// Pass each accepted connection to a gateway (SCM_RIGHTS); the lb leaves the data
    /// path.
    Handoff,
    /// Copy bytes between each client and a connection to a gateway.
    Proxy,
}

impl LbMode {
    pub fn name(self) -> &'static str {
        match self {
            LbMode::Handoff => "handoff",
            LbMode::Proxy => "proxy",
        }
    }
}

/// The lb's configuration.
#[derive(Debug, Clone)]
pub struct LbConfig {
    pub listen: Addr,
    /// Hand-off mode: the gateways' `HANDOFF` sockets; proxy mode: their `LISTEN`
    /// addresses.
    pub upstreams: Vec<Addr>,
    pub mode: LbMode,
    pub io_driver: IoDriver,
    pub cores: usize,
    /// `SCHED_SLICE_US`: the scheduler slice of each core thread ([`net::sched`]);
    /// `None`: the kernel's.
    pub sched_slice: Option<Duration>,
    /// `SHUTDOWN_GRACE_MS`: after a stop signal, how long clients still waiting for a
    /// gateway's verdict (hand-off) or still proxied may take before the lb exits.
    pub shutdown_grace: Duration,
}

impl LbConfig {
    pub fn from_env() -> Result<LbConfig, ConfigError> {
        LbConfig::from_vars(&Vars(|k| std::env::var(k).ok()))
    }

    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<LbConfig, ConfigError> {
        let mode = v.parse("LB_MODE", LbMode::Handoff, |s| match s {
            "handoff" => Ok(LbMode::Handoff),
            "proxy" => Ok(LbMode::Proxy),
            _ => Err(format!("expected handoff or proxy, got {s:?}")),
        })?;
        let upstreams = match v.get("UPSTREAMS") {
            None => {
                return Err(ConfigError {
                    var: "UPSTREAMS",
                    reason: "required: a comma list of the gateways' addresses".to_string(),
                })
            }
            Some(list) => parse_upstreams(&list, mode).map_err(|reason| ConfigError {
                var: "UPSTREAMS",
                reason,
            })?,
        };
        Ok(LbConfig {
            listen: v.addr("LISTEN", DEFAULT_LISTEN)?,
            upstreams,
            mode,
            io_driver: v.io_driver()?,
            sched_slice: v.sched_slice(net::sched::DEFAULT_SLICE)?,
            cores: v.count("CORES", DEFAULT_CORES)?,
            shutdown_grace: v.millis("SHUTDOWN_GRACE_MS", DEFAULT_SHUTDOWN_GRACE)?,
        })
    }
}

fn parse_upstreams(list: &str, mode: LbMode) -> Result<Vec<Addr>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addr = Addr::parse(item)?;
        match (&addr, mode) {
            (Addr::Tcp { .. }, LbMode::Handoff) => {
                return Err(format!(
                    "in handoff mode upstreams are the gateways' HANDOFF sockets \
                     (unix:/path), got {item:?}"
                ))
            }
            (Addr::Tcp { port: 0, .. }, _) => {
                return Err(format!("port 0 cannot be connected to, in {item:?}"))
            }
            _ => out.push(addr),
        }
    }
    if out.is_empty() {
        return Err("no address in the list".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<LbConfig, ConfigError> {
        LbConfig::from_vars(&Vars::from_pairs(pairs))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = cfg(&[("UPSTREAMS", "unix:/run/gw1.sock, unix:/run/gw2.sock")]).unwrap();
        assert_eq!(c.listen, Addr::parse(DEFAULT_LISTEN).unwrap());
        assert_eq!(c.mode, LbMode::Handoff);
        assert_eq!(c.io_driver, IoDriver::Auto);
        assert_eq!(c.cores, 1);
        assert_eq!(
            c.upstreams,
            vec![
                Addr::Unix("/run/gw1.sock".into()),
                Addr::Unix("/run/gw2.sock".into())
            ]
        );
    }

    #[test]
    fn proxy_mode_takes_tcp_and_unix_upstreams() {
        let c = cfg(&[
            ("LB_MODE", "proxy"),
            ("UPSTREAMS", "127.0.0.1:8080,unix:/run/gw2.sock"),
        ])
        .unwrap();
        assert_eq!(c.mode, LbMode::Proxy);
        assert_eq!(c.upstreams.len(), 2);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let up = ("UPSTREAMS", "unix:/a.sock");
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("UPSTREAMS", " , ")],
            &[("UPSTREAMS", "127.0.0.1:8080")],
            &[("UPSTREAMS", "unix:/a.sock,nowhere")],
            &[("LB_MODE", "proxy"), ("UPSTREAMS", "127.0.0.1:0")],
            &[up, ("LB_MODE", "dsr")],
            &[up, ("LISTEN", "9999")],
            &[up, ("IO_DRIVER", "kqueue")],
            &[up, ("CORES", "0")],
            &[up, ("SCHED_SLICE_US", "99")],
        ];
        let vars = [
            "UPSTREAMS",
            "UPSTREAMS",
            "UPSTREAMS",
            "UPSTREAMS",
            "UPSTREAMS",
            "LB_MODE",
            "LISTEN",
            "IO_DRIVER",
            "CORES",
            "SCHED_SLICE_US",
        ];
        for (pairs, var) in cases.iter().zip(vars) {
            let err = cfg(pairs).unwrap_err();
            assert_eq!(err.var, var, "{pairs:?} gave {err}");
            assert!(err.to_string().contains(var));
        }
    }
}
