//! How each of our servers is started: its binary, the variables that wire it to the
//! others, and its ready line. The topology and the integration tests both start
//! `processor-sim`, `gateway` and `lb` through the specs here.
//!
//! A spec's [`command`](GatewaySpec::command) sets the wiring variables (`LISTEN`,
//! `HANDOFF`, `INTERNAL_LISTEN`, `PEER_TOKEN`, `PEERS`, `REDIS_URL`, `UPSTREAMS`, …) over an [`Env`]: this process's
//! environment (the runner: `IO_DRIVER`, `CORES` and tuning pass through), or only the
//! variables given (tests). The wiring wins over both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::child::{Child, Output, Ready};

/// The environment a server starts with, under the wiring variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Env {
    /// This process's environment.
    Inherit,
    /// Only these variables.
    Only(Vec<(String, String)>),
}

impl Env {
    /// A command for `bin` with this environment.
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        if let Env::Only(vars) = self {
            cmd.env_clear();
            cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        }
        cmd
    }
}

/// A processor simulator.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub name: String,
    /// `LISTEN`: `host:port` (port 0: any free one) or `unix:/path`.
    pub listen: String,
    /// `TRANSACTION_FEE`, such as `0.05`.
    pub fee: String,
}

impl SimSpec {
    pub fn command(&self, bin: &Path, env: &Env) -> Command {
        let mut cmd = env.command(bin);
        cmd.env("LISTEN", &self.listen)
            .env("TRANSACTION_FEE", &self.fee)
            .env("INSTANCE_ID", &self.name);
        cmd
    }
}

/// How a gateway shares its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayLedger {
    /// Memory ledger; the other gateways' `INTERNAL_LISTEN` addresses (`PEERS`), maybe
    /// none.
    Peers(Vec<String>),
    /// Redis ledger at this `REDIS_URL`.
    Redis(String),
}

/// A gateway.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// Its `INSTANCE_ID`.
    pub name: String,
    /// `LISTEN`: `host:port` or `unix:/path`.
    pub listen: String,
    /// `HANDOFF`: the `unix:/path` on which the lb hands connections over.
    pub handoff: Option<String>,
    /// `INTERNAL_LISTEN`: the internal plane (peer routes, `/metrics`), `host:port` or
    /// `unix:/path`; `None`: none (a lone gateway).
    pub internal: Option<String>,
    /// `PEER_TOKEN`: the peers' shared secret (16 bytes or more), needed with
    /// `internal` or peers.
    pub peer_token: Option<String>,
    /// `PROCESSOR_DEFAULT_URL` and `PROCESSOR_FALLBACK_URL`.
    pub processors: [String; 2],
    /// `PROCESSOR_DEFAULT_FEE` and `PROCESSOR_FALLBACK_FEE`; `None` leaves them to the
    /// environment.
    pub fees: Option<[String; 2]>,
    pub ledger: GatewayLedger,
}

impl GatewaySpec {
    pub fn command(&self, bin: &Path, env: &Env) -> Command {
        let mut cmd = env.command(bin);
        cmd.env("LISTEN", &self.listen)
            .env("INSTANCE_ID", &self.name)
            .env("PROCESSOR_DEFAULT_URL", &self.processors[0])
            .env("PROCESSOR_FALLBACK_URL", &self.processors[1]);
        match &self.handoff {
            Some(h) => cmd.env("HANDOFF", h),
            None => cmd.env_remove("HANDOFF"),
        };
        match &self.internal {
            Some(a) => cmd.env("INTERNAL_LISTEN", a),
            None => cmd.env_remove("INTERNAL_LISTEN"),
        };
        match &self.peer_token {
            Some(t) => cmd.env("PEER_TOKEN", t),
            None => cmd.env_remove("PEER_TOKEN"),
        };
        if let Some([default, fallback]) = &self.fees {
            cmd.env("PROCESSOR_DEFAULT_FEE", default)
                .env("PROCESSOR_FALLBACK_FEE", fallback);
        }
        match &self.ledger {
            GatewayLedger::Peers(peers) if peers.is_empty() => {
                cmd.env_remove("PEERS").env_remove("REDIS_URL")
            }
            GatewayLedger::Peers(peers) => {
                cmd.env("PEERS", peers.join(",")).env_remove("REDIS_URL")
            }
            GatewayLedger::Redis(url) => cmd.env("REDIS_URL", url).env_remove("PEERS"),
        };
        cmd
    }
}

/// The lb.
#[derive(Debug, Clone)]
pub struct LbSpec {
    pub name: String,
    /// `LISTEN`: `host:port` or `unix:/path`.
    pub listen: String,
    /// `LB_MODE`: `handoff` or `proxy`.
    pub mode: String,
    /// `UPSTREAMS`: the gateways' `HANDOFF` sockets (handoff) or `LISTEN` addresses
    /// (proxy).
    pub upstreams: Vec<String>,
    /// `CORES`; `None` keeps the lb's default (a `CORES` in the environment is meant for
    /// the gateways, and is removed).
    pub cores: Option<String>,
}

impl LbSpec {
    pub fn command(&self, bin: &Path, env: &Env) -> Command {
        let mut cmd = env.command(bin);
        cmd.env("LISTEN", &self.listen)
            .env("UPSTREAMS", self.upstreams.join(","))
            .env("LB_MODE", &self.mode)
            .env("INSTANCE_ID", &self.name);
        match &self.cores {
            Some(n) => cmd.env("CORES", n),
            None => cmd.env_remove("CORES"),
        };
        cmd
    }
}

/// The binaries, all in one directory (cargo puts a workspace's binaries together).
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Next to the running executable.
    pub fn next_to_me() -> Result<Bins, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
        let dir = exe
            .parent()
            .ok_or("my executable has no directory")?
            .to_path_buf();
        Ok(Bins { dir })
    }

    pub fn in_dir(dir: &Path) -> Bins {
        Bins {
            dir: dir.to_path_buf(),
        }
    }

    /// The path of binary `name`, or an error saying how to build it.
    pub fn path(&self, name: &str) -> Result<PathBuf, String> {
        let p = self.dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{name} not found at {}: build every binary with \
                 `cargo build --release --workspace` (the lb is a workspace member)",
                p.display()
            ))
        }
    }
}

/// One of our servers, started and ready.
pub struct Server {
    pub child: Child,
    pub ready: Ready,
}

impl Server {
    /// Starts `cmd` as `name` and waits for its ready line, at most `timeout`. On failure
    /// the error carries its output when captured.
    pub fn start(
        name: &str,
        cmd: Command,
        output: Output,
        timeout: Duration,
    ) -> Result<Server, String> {
        let mut child = Child::spawn(name, cmd, output)?;
        match child.wait_ready(timeout) {
            Ok(ready) => Ok(Server { child, ready }),
            Err(why) => {
                child.kill();
                Err(format!("{why}; its output:\n{}", child.log()))
            }
        }
    }

    /// Where it listens: `host:port` or `unix:/path`.
    pub fn listen(&self) -> &str {
        self.ready.listen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(cmd: &Command) -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn set(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_string(), Some(v.to_string()))
    }

    fn unset(k: &str) -> (String, Option<String>) {
        (k.to_string(), None)
    }

    #[test]
    fn gateway_wiring_wins_over_the_given_environment() {
        let spec = GatewaySpec {
            name: "gw1".into(),
            listen: "unix:/r/gw1.sock".into(),
            handoff: Some("unix:/r/gw1.handoff".into()),
            internal: Some("unix:/r/gw1.internal".into()),
            peer_token: Some("00112233445566778899aabbccddeeff".into()),
            processors: ["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            fees: None,
            ledger: GatewayLedger::Peers(vec!["unix:/r/gw2.internal".into()]),
        };
        let env = Env::Only(vec![
            ("CORES".into(), "2".into()),
            ("LISTEN".into(), "0.0.0.0:1".into()),
        ]);
        let cmd = spec.command(Path::new("/bin/gateway"), &env);
        assert_eq!(
            vars(&cmd),
            vec![
                set("CORES", "2"),
                set("HANDOFF", "unix:/r/gw1.handoff"),
                set("INSTANCE_ID", "gw1"),
                set("INTERNAL_LISTEN", "unix:/r/gw1.internal"),
                set("LISTEN", "unix:/r/gw1.sock"),
                set("PEERS", "unix:/r/gw2.internal"),
                set("PEER_TOKEN", "00112233445566778899aabbccddeeff"),
                set("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:1"),
                set("PROCESSOR_FALLBACK_URL", "http://127.0.0.1:2"),
            ]
        );
        // Over the inherited environment, the other ledger's variable is removed.
        let cmd = spec.command(Path::new("/bin/gateway"), &Env::Inherit);
        assert!(vars(&cmd).contains(&unset("REDIS_URL")));
        // A lone gateway drops an inherited internal plane and token.
        let lone = GatewaySpec {
            internal: None,
            peer_token: None,
            ledger: GatewayLedger::Peers(Vec::new()),
            ..spec
        };
        let v = vars(&lone.command(Path::new("/bin/gateway"), &Env::Inherit));
        assert!(v.contains(&unset("INTERNAL_LISTEN")) && v.contains(&unset("PEER_TOKEN")));
    }

    #[test]
    fn lb_drops_the_gateways_cores_unless_given_its_own() {
        let mut spec = LbSpec {
            name: "lb".into(),
            listen: "127.0.0.1:0".into(),
            mode: "proxy".into(),
            upstreams: vec!["unix:/a".into(), "unix:/b".into()],
            cores: None,
        };
        let cmd = spec.command(Path::new("/bin/lb"), &Env::Inherit);
        assert!(vars(&cmd).contains(&unset("CORES")));
        assert!(vars(&cmd).contains(&set("UPSTREAMS", "unix:/a,unix:/b")));
        spec.cores = Some("2".into());
        let cmd = spec.command(Path::new("/bin/lb"), &Env::Inherit);
        assert!(vars(&cmd).contains(&set("CORES", "2")));
    }
}
