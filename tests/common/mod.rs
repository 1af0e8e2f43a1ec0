//! Test harness: the real binaries (gateway, processor-sim, lb) and a real redis-server as
//! child processes on ephemeral ports or Unix sockets in a per-test directory, started
//! through the runner's library (`stack`: how each is wired, its ready line, redis-server's
//! PING), and a blocking HTTP client that speaks raw bytes.
//!
//! - this module: the processes ([`Proc`]) and how each kind is started, waits and
//!   timestamps;
//! - [`client`]: the blocking HTTP client and readers of our servers' answers;
//! - [`fakes`]: processors the simulator cannot play ([`Gate`], [`Busy`]).
#![allow(dead_code)]

mod client;
mod fakes;

pub use client::*;
// Not every test binary uses the fakes.
#[allow(unused_imports)]
pub use fakes::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use stack::redis::Redis;
pub use stack::rundir::RunDir;
pub use stack::servers::{GatewayLedger, GatewaySpec, LbSpec};

use stack::child::Output;
use stack::servers::{Env, Server, SimSpec};

/// How long any wait in a test may last before the test fails: generous, since it only
/// bounds a hang, and machines under load are slow.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// Socket read timeout of the test client.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
pub const TOKEN: &str = "123";
/// The gateways' `PEER_TOKEN` in the tests.
pub const PEER_TOKEN: &str = "test-peer-token-0123456789abcdef";

/// A directory of its own for one test (mode 0700), removed at the end.
pub fn temp_dir(tag: &str) -> RunDir {
    RunDir::create(&format!("gw-{tag}")).unwrap()
}

/// One of our servers, started and ready; killed when dropped, its output shown if the
/// test fails.
pub struct Proc {
    pub name: String,
    server: Server,
    /// Where it listens, as its ready line says: "host:port" or "unix:/path".
    pub addr: String,
}

impl Proc {
    /// Starts `cmd` as `name` and waits for its ready line.
    fn start(name: &str, cmd: Command) -> Proc {
        let server = Server::start(name, cmd, Output::Captured, PATIENCE)
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        Proc {
            name: name.to_string(),
            addr: server.listen().to_string(),
            server,
        }
    }

    /// `http://host:port`, or `unix:/path` as it is: a URL for `PROCESSOR_*_URL`.
    pub fn url(&self) -> String {
        if self.addr.starts_with("unix:") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// A gateway's internal plane (peer routes, `/metrics`), as its ready line says.
    pub fn internal(&self) -> &str {
        self.ready_value("internal")
            .unwrap_or_else(|| panic!("{} has no internal plane", self.name))
    }

    /// A value of its ready line, such as the gateway's `handoff`.
    pub fn ready_value(&self, key: &str) -> Option<&str> {
        self.server.ready.get(key)
    }

    /// Its stdout and stderr so far.
    pub fn log(&self) -> String {
        self.server.child.log()
    }

    pub fn kill(&mut self) {
        self.server.child.kill();
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        self.server.child.terminate();
    }

    /// How it exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server.child.exited()
    }

    /// Waits until it has exited (at most [`PATIENCE`]), and returns how.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let what = format!("{} to exit", self.name);
        wait_for(&what, || self.server.child.exited())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log());
        }
    }
}

/// Only `vars` and the wiring: nothing inherited from the test's environment.
fn only(vars: &[(&str, String)]) -> Env {
    Env::Only(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

pub fn gateway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gateway")
}

pub fn sim_bin() -> &'static str {
    workspace_bin("processor-sim")
}

pub fn lb_bin() -> &'static str {
    workspace_bin("lb")
}

/// Path of a binary of another workspace package (`lb`, `processor-sim`, `stack`),
/// built once for this test run next to the gateway binary, with the same profile.
pub fn workspace_bin(name: &str) -> &'static str {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // The gateway binary sits in <target dir>/<profile dir>/; the others go next to it.
        let gateway = PathBuf::from(gateway_bin());
        let profile_dir = gateway.parent().expect("gateway binary has a directory");
        let target_dir = profile_dir
            .parent()
            .expect("profile directory has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("unexpected binary path {}", gateway.display()),
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--profile", profile])
            .args(["-p", "lb", "-p", "processor-sim", "-p", "stack", "--bins"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo to build the workspace's binaries");
        assert!(status.success(), "building the workspace's binaries failed");
        profile_dir.to_path_buf()
    });
    let path = dir.join(name).to_string_lossy().into_owned();
    Box::leak(path.into_boxed_str())
}

/// Starts a processor simulator on an ephemeral TCP port, on epoll unless `extra` says.
pub fn sim(name: &str, fee: &str, extra: &[(&str, String)]) -> Proc {
    let spec = SimSpec {
        name: name.to_string(),
        listen: "127.0.0.1:0".to_string(),
        fee: fee.to_string(),
    };
    let mut vars = vec![("IO_DRIVER", "epoll".to_string())];
    vars.extend(extra.iter().cloned());
    Proc::start(name, spec.command(Path::new(sim_bin()), &only(&vars)))
}

/// A gateway named `name` on `listen`, calling `processors` (URLs), with no hand-off
/// socket, a memory ledger of its own, and its internal plane at
/// [`internal_of`]`(listen)` with [`PEER_TOKEN`]: change the fields for more.
pub fn gateway_spec(name: &str, listen: &str, processors: [String; 2]) -> GatewaySpec {
    GatewaySpec {
        name: name.to_string(),
        listen: listen.to_string(),
        handoff: None,
        internal: Some(internal_of(listen)),
        peer_token: Some(PEER_TOKEN.to_string()),
        processors,
        fees: None,
        ledger: GatewayLedger::Peers(Vec::new()),
    }
}

/// The internal plane's address that goes with public address `listen`: the socket
/// `<stem>.internal` next to a Unix socket `<stem>.sock`, any free port on TCP. Peers
/// name each other by it.
pub fn internal_of(listen: &str) -> String {
    match listen.strip_prefix("unix:") {
        Some(path) => {
            let stem = path.strip_suffix(".sock").unwrap_or(path);
            format!("unix:{stem}.internal")
        }
        None => "127.0.0.1:0".to_string(),
    }
}

/// Starts a gateway; `vars` are its other settings (`IO_DRIVER`, `CORES`, tuning).
pub fn gateway(spec: &GatewaySpec, vars: &[(&str, String)]) -> Proc {
    Proc::start(
        &spec.name,
        spec.command(Path::new(gateway_bin()), &only(vars)),
    )
}

/// Starts the lb; `vars` are its other settings (`IO_DRIVER`).
pub fn lb(spec: &LbSpec, vars: &[(&str, String)]) -> Proc {
    Proc::start(&spec.name, spec.command(Path::new(lb_bin()), &only(vars)))
}

/// A running redis-server on a Unix socket in `dir`, with no TCP port.
pub fn redis(dir: &RunDir) -> Redis {
    Redis::start_in(dir.path(), stack::redis::Listen::Unix, Output::Captured)
        .unwrap_or_else(|e| panic!("redis-server must be installed (.ci/run installs it): {e}"))
}

/// Polls `f` until it returns Some, failing the test after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > PATIENCE {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// An ISO-8601 UTC timestamp with microseconds for `t` (microseconds since the epoch).
pub fn iso(t: i64) -> String {
    let mut out = Vec::new();
    domain::time::write_iso(&mut out, t);
    String::from_utf8(out).unwrap()
}

pub fn now_micros() -> i64 {
    domain::time::now_micros()
}

pub fn path_of(addr: &str) -> &Path {
    Path::new(addr.strip_prefix("unix:").unwrap())
}
