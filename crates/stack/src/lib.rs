//! The local runner behind the `stack` binary: the whole topology in the foreground.
//!
//! It starts, in this order and each once the one before it listens:
//! - `redis-server` on a Unix socket, when `LEDGER=redis`;
//! - two `processor-sim`s (fees `PROCESSOR_DEFAULT_FEE`, `PROCESSOR_FALLBACK_FEE`),
//!   unless `PROCESSOR_DEFAULT_URL` and `PROCESSOR_FALLBACK_URL` are both given;
//! - two gateways on Unix sockets (memory ledger: each other's `PEERS`; redis ledger:
//!   `REDIS_URL`), each with a `HANDOFF` socket;
//! - the lb on `LISTEN` in `LB_MODE`.
//!
//! The binaries are the `gateway`, `processor-sim` and `lb` next to the `stack`
//! executable. Sockets live in a fresh private directory (mode 0700) under the system
//! temp directory, removed at exit. Every child inherits the environment (`IO_DRIVER`,
//! `CORES`, gateway tuning); the runner sets what wires them together. Their output goes
//! to the runner's stderr, each line prefixed with the child's name.
//!
//! # Output
//!
//! Standard output carries one line per component once everything listens, then
//! `ready`; a line is a name, an address, then `key value` pairs:
//!
//! ```text
//! run-dir /tmp/rinha-stack-4242-1a2b3c
//! redis unix:/tmp/rinha-stack-4242-1a2b3c/redis.sock pid 4243
//! processor-default http://127.0.0.1:40001 fee 0.07 pid 4244
//! processor-fallback http://127.0.0.1:40002 fee 0.10 pid 4245
//! gateway-1 unix:/tmp/rinha-stack-4242-1a2b3c/gateway-1.sock handoff unix:/tmp/rinha-stack-4242-1a2b3c/gateway-1.handoff pid 4246
//! gateway-2 unix:/tmp/rinha-stack-4242-1a2b3c/gateway-2.sock handoff unix:/tmp/rinha-stack-4242-1a2b3c/gateway-2.handoff pid 4247
//! lb http://127.0.0.1:9999 mode handoff pid 4248
//! ready
//! ```
//!
//! `redis` appears only with `LEDGER=redis`. Given processors appear as
//! `processor-default <url> external` (no fee, no pid). TCP addresses are written
//! `http://host:port`, Unix sockets `unix:/path`.
//!
//! # Stopping
//!
//! SIGINT, SIGTERM or SIGHUP: every child gets SIGTERM (lb first, redis last), then
//! SIGKILL after [`STOP_GRACE`]; all are reaped, the directory is removed, and the
//! runner exits 0. A child that exits on its own stops everything the same way and
//! the runner exits 1, naming it. Children run in their own process group (a Ctrl-C
//! reaches only the runner, which stops them in order) and are killed by the kernel if
//! the runner dies ([`procctl::tie_to_parent`]).

pub mod procctl;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest a child may take to listen. A debug build on a loaded two-core machine
/// starts in well under a second; this only bounds a hang.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the children get to exit after SIGTERM before SIGKILL: ours exit at once, and
/// redis-server without persistence in milliseconds.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often the runner looks at its children between events: bounds how late an exit
/// is noticed when no output announces it.
const TICK: Duration = Duration::from_millis(100);
/// How often the redis socket is tried while redis-server starts.
const REDIS_POLL: Duration = Duration::from_millis(20);
/// Default lb address.
const DEFAULT_LISTEN: &str = "127.0.0.1:9999";
/// Default simulator fees: the default processor is the cheaper one.
const DEFAULT_FEE_DEFAULT: &str = "0.07";
const DEFAULT_FEE_FALLBACK: &str = "0.10";
/// Where simulators listen unless told: an ephemeral port, read back from their ready
/// line.
const DEFAULT_SIM_LISTEN: &str = "127.0.0.1:0";

/// Which ledger the gateways share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ledger {
    Memory,
    Redis,
}

/// Where the payment processors come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Processors {
    /// Two simulators started by the runner: fee and `LISTEN` of each.
    Simulated {
        default_fee: String,
        fallback_fee: String,
        default_listen: String,
        fallback_listen: String,
    },
    /// Both URLs given: nothing to start.
    External {
        default_url: String,
        fallback_url: String,
    },
}

/// The runner's configuration (environment variables; empty counts as unset).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub ledger: Ledger,
    pub processors: Processors,
    /// The lb's `LISTEN`.
    pub listen: String,
    /// `handoff` or `proxy`.
    pub lb_mode: String,
    /// The lb's `CORES`, from `LB_CORES`; `None` keeps the lb's default.
    pub lb_cores: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (a variable's value, if set).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let ledger = match get("LEDGER").as_deref() {
            None | Some("memory") => Ledger::Memory,
            Some("redis") => Ledger::Redis,
            Some(other) => return Err(format!("LEDGER: expected memory or redis, got {other:?}")),
        };
        let processors = match (get("PROCESSOR_DEFAULT_URL"), get("PROCESSOR_FALLBACK_URL")) {
            (Some(d), Some(f)) => {
                for (var, url) in [
                    ("PROCESSOR_DEFAULT_URL", &d),
                    ("PROCESSOR_FALLBACK_URL", &f),
                ] {
                    net::addr::Addr::parse_url(url).map_err(|e| format!("{var}: {e}"))?;
                }
                Processors::External {
                    default_url: d,
                    fallback_url: f,
                }
            }
            (Some(_), None) => {
                return Err(one_url_only(
                    "PROCESSOR_DEFAULT_URL",
                    "PROCESSOR_FALLBACK_URL",
                ))
            }
            (None, Some(_)) => {
                return Err(one_url_only(
                    "PROCESSOR_FALLBACK_URL",
                    "PROCESSOR_DEFAULT_URL",
                ))
            }
            (None, None) => Processors::Simulated {
                default_fee: fee(&get, "PROCESSOR_DEFAULT_FEE", DEFAULT_FEE_DEFAULT)?,
                fallback_fee: fee(&get, "PROCESSOR_FALLBACK_FEE", DEFAULT_FEE_FALLBACK)?,
                default_listen: listen(&get, "SIM_DEFAULT_LISTEN", DEFAULT_SIM_LISTEN)?,
                fallback_listen: listen(&get, "SIM_FALLBACK_LISTEN", DEFAULT_SIM_LISTEN)?,
            },
        };
        let lb_mode = match get("LB_MODE").as_deref() {
            None | Some("handoff") => "handoff".to_string(),
            Some("proxy") => "proxy".to_string(),
            Some(other) => {
                return Err(format!("LB_MODE: expected handoff or proxy, got {other:?}"))
            }
        };
        let lb_cores = match get("LB_CORES") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(v),
                _ => {
                    return Err(format!(
                        "LB_CORES: expected a whole number of at least 1, got {v:?}"
                    ))
                }
            },
        };
        Ok(Config {
            ledger,
            processors,
            listen: listen(&get, "LISTEN", DEFAULT_LISTEN)?,
            lb_mode,
            lb_cores,
        })
    }
}

fn one_url_only(given: &str, missing: &str) -> String {
    format!(
        "{missing}: not set while {given} is; give both processor URLs, \
         or neither to run two simulators"
    )
}

/// A fee: a decimal fraction in [0, 1), kept as written (it is passed on as text).
fn fee(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> Result<String, String> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..1.0).contains(&f) => Ok(v),
        _ => Err(format!(
            "{var}: expected a fee between 0 and 1 such as 0.05, got {v:?}"
        )),
    }
}

/// A `LISTEN`-style address (`host:port` or `unix:/path`), checked, kept as written.
fn listen(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: &str,
) -> Result<String, String> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    net::addr::Addr::parse(&v).map_err(|e| format!("{var}: {e}"))?;
    Ok(v)
}

/// The sibling binaries, next to the running executable.
struct Bins {
    dir: PathBuf,
}

impl Bins {
    fn find() -> Result<Bins, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
        let dir = exe
            .parent()
            .ok_or("my executable has no directory")?
            .to_path_buf();
        Ok(Bins { dir })
    }

    /// The path of `name`, or an error saying how to build it.
    fn path(&self, name: &str) -> Result<PathBuf, String> {
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

/// The private directory for sockets, removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<RunDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("rinha-stack-{}-{nanos:x}", std::process::id()));
        // create, not create_all: a directory that already exists is someone else's.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create the run directory {}: {e}", path.display()))?;
        Ok(RunDir(path))
    }

    fn sock(&self, name: &str) -> String {
        format!("unix:{}", self.0.join(name).display())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the runner waits for.
enum Event {
    /// A child wrote its ready line (`ready listen <addr> ...`, on stdout).
    Listening { child: usize, addr: String },
    /// A child's output closed (it exited, or is about to).
    Closed,
    /// A stop signal arrived.
    Signal(libc::c_int),
}

/// Why the runner stops.
enum Stop {
    Signal(libc::c_int),
    Failed(String),
}

/// One started child.
struct Running {
    name: String,
    child: Child,
    /// Set once reaped.
    status: Option<ExitStatus>,
}

/// The children and the events about them.
struct Supervisor {
    children: Vec<Running>,
    listening: HashMap<usize, String>,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
}

impl Supervisor {
    /// Starts `cmd` as child `name`, in its own process group, tied to this process, its
    /// output forwarded to stderr line by line.
    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<usize, Stop> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        procctl::tie_to_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            Stop::Failed(format!(
                "cannot start {name} ({:?}): {e}",
                cmd.get_program()
            ))
        })?;
        let index = self.children.len();
        if let Some(out) = child.stdout.take() {
            forward(index, name, out, true, self.sender.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(index, name, err, false, self.sender.clone());
        }
        self.children.push(Running {
            name: name.to_string(),
            child,
            status: None,
        });
        Ok(index)
    }

    fn pid(&self, child: usize) -> u32 {
        self.children[child].child.id()
    }

    /// Handles events for up to `wait`, then checks that every child still runs.
    fn pump(&mut self, wait: Duration) -> Result<(), Stop> {
        match self.events.recv_timeout(wait) {
            Ok(Event::Listening { child, addr }) => {
                self.listening.entry(child).or_insert(addr);
            }
            Ok(Event::Signal(s)) => return Err(Stop::Signal(s)),
            Ok(Event::Closed) | Err(_) => {}
        }
        for r in &mut self.children {
            if r.status.is_none() {
                if let Ok(Some(status)) = r.child.try_wait() {
                    r.status = Some(status);
                    return Err(Stop::Failed(format!(
                        "{} exited unexpectedly ({status})",
                        r.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Waits until `child` writes its ready line, and returns its `listen` address.
    fn listening_addr(&mut self, child: usize) -> Result<String, Stop> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(a) = self.listening.get(&child) {
                return Ok(a.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.startup_timeout(child));
            }
            self.pump(left.min(TICK))?;
        }
    }

    /// Waits until redis-server answers PING on its Unix socket.
    fn wait_redis(&mut self, child: usize, path: &Path) -> Result<(), Stop> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !redis_answers(path) {
            if Instant::now() >= deadline {
                return Err(self.startup_timeout(child));
            }
            self.pump(REDIS_POLL)?;
        }
        Ok(())
    }

    fn startup_timeout(&self, child: usize) -> Stop {
        Stop::Failed(format!(
            "{} did not start listening within {}s",
            self.children[child].name,
            STARTUP_TIMEOUT.as_secs()
        ))
    }

    /// Stops every child still running: SIGTERM in reverse start order, SIGKILL after
    /// [`STOP_GRACE`], and reaps them all.
    fn stop_all(&mut self) {
        for r in self.children.iter_mut().rev() {
            if r.status.is_none() {
                if let Ok(Some(status)) = r.child.try_wait() {
                    r.status = Some(status);
                } else {
                    let _ = procctl::send_signal(r.child.id(), libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            for r in &mut self.children {
                if r.status.is_none() {
                    if let Ok(Some(status)) = r.child.try_wait() {
                        r.status = Some(status);
                    }
                }
            }
            if self.children.iter().all(|r| r.status.is_some()) {
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(REDIS_POLL);
        }
        for r in &mut self.children {
            if r.status.is_none() {
                eprintln!(
                    "stack: {} ignored SIGTERM for {}s; killing it",
                    r.name,
                    STOP_GRACE.as_secs()
                );
                let _ = r.child.kill();
                r.status = r.child.wait().ok();
            }
        }
    }
}

/// Copies a child's output to stderr with `name` in front of every line, and reports
/// the end of its output; on its stdout (`announces`), also its ready line.
fn forward(
    child: usize,
    name: &str,
    from: impl Read + Send + 'static,
    announces: bool,
    to: mpsc::Sender<Event>,
) {
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            eprintln!("{name} | {line}");
            if !announces {
                continue;
            }
            let mut words = line.split(' ');
            if let (Some("ready"), Some("listen"), Some(addr)) =
                (words.next(), words.next(), words.next())
            {
                let addr = addr.to_string();
                let _ = to.send(Event::Listening { child, addr });
            }
        }
        let _ = to.send(Event::Closed);
    });
}

/// Whether a redis-server answers `PING` with `+PONG` on the Unix socket at `path`.
fn redis_answers(path: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(STARTUP_TIMEOUT));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// `http://host:port` for a TCP address, `unix:/path` as it is.
fn url(addr: &str) -> String {
    if addr.starts_with("unix:") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Writes one line of the machine-readable output (a closed stdout is not an error:
/// the stack keeps running for whoever still uses it).
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the stack until a stop signal (`Ok`) or a failure (`Err`, worded for the user).
/// Must be called from the main thread before any other thread is started: it blocks
/// the stop signals for the whole process.
pub fn run(config: Config) -> Result<(), String> {
    procctl::block_stop_signals().map_err(|e| format!("cannot block stop signals: {e}"))?;
    let bins = Bins::find()?;
    let gateway_bin = bins.path("gateway")?;
    let lb_bin = bins.path("lb")?;
    let sim_bin = match config.processors {
        Processors::Simulated { .. } => Some(bins.path("processor-sim")?),
        Processors::External { .. } => None,
    };
    let dir = RunDir::create()?;
    let (sender, events) = mpsc::channel();
    {
        let sender = sender.clone();
        std::thread::spawn(move || loop {
            match procctl::wait_stop_signal() {
                Ok(s) => {
                    let _ = sender.send(Event::Signal(s));
                }
                Err(e) => {
                    eprintln!("stack: waiting for signals failed: {e}");
                    return;
                }
            }
        });
    }
    let mut sup = Supervisor {
        children: Vec::new(),
        listening: HashMap::new(),
        events,
        sender,
    };
    let result = start(
        &config,
        &mut sup,
        &dir,
        &gateway_bin,
        &lb_bin,
        sim_bin.as_deref(),
    )
    .and_then(|()| {
        announce("ready");
        loop {
            sup.pump(TICK)?;
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

/// Starts every component and announces it.
fn start(
    config: &Config,
    sup: &mut Supervisor,
    dir: &RunDir,
    gateway_bin: &Path,
    lb_bin: &Path,
    sim_bin: Option<&Path>,
) -> Result<(), Stop> {
    announce(&format!("run-dir {}", dir.0.display()));
    let redis_url = match config.ledger {
        Ledger::Memory => None,
        Ledger::Redis => {
            let path = dir.0.join("redis.sock");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", "0", "--unixsocket"])
                .arg(&path)
                .args([
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--loglevel", "warning"]);
            let r = sup.spawn("redis", cmd).map_err(|e| match e {
                Stop::Failed(why) => {
                    Stop::Failed(format!("LEDGER=redis needs redis-server on PATH: {why}"))
                }
                other => other,
            })?;
            sup.wait_redis(r, &path)?;
            let url = format!("unix:{}", path.display());
            announce(&format!("redis {url} pid {}", sup.pid(r)));
            Some(url)
        }
    };
    let mut gateway_env: Vec<(&str, String)> = Vec::new();
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
                (
                    "processor-default",
                    default_fee,
                    default_listen,
                    "PROCESSOR_DEFAULT_URL",
                ),
                (
                    "processor-fallback",
                    fallback_fee,
                    fallback_listen,
                    "PROCESSOR_FALLBACK_URL",
                ),
            ];
            for (name, fee, listen, var) in sims {
                let mut cmd = Command::new(sim_bin);
                cmd.env("LISTEN", listen)
                    .env("TRANSACTION_FEE", fee)
                    .env("INSTANCE_ID", name);
                let s = sup.spawn(name, cmd)?;
                let addr = url(&sup.listening_addr(s)?);
                announce(&format!("{name} {addr} fee {fee} pid {}", sup.pid(s)));
                gateway_env.push((var, addr));
            }
            gateway_env.push(("PROCESSOR_DEFAULT_FEE", default_fee.clone()));
            gateway_env.push(("PROCESSOR_FALLBACK_FEE", fallback_fee.clone()));
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
            gateway_env.push(("PROCESSOR_DEFAULT_URL", default_url.clone()));
            gateway_env.push(("PROCESSOR_FALLBACK_URL", fallback_url.clone()));
        }
        (Processors::Simulated { .. }, None) => {
            return Err(Stop::Failed("processor-sim was not located".to_string()))
        }
    }
    let names = ["gateway-1", "gateway-2"];
    let listen: Vec<String> = names
        .iter()
        .map(|n| dir.sock(&format!("{n}.sock")))
        .collect();
    let handoff: Vec<String> = names
        .iter()
        .map(|n| dir.sock(&format!("{n}.handoff")))
        .collect();
    let mut gateways = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut cmd = Command::new(gateway_bin);
        cmd.envs(gateway_env.iter().map(|(k, v)| (k, v)))
            .env("LISTEN", &listen[i])
            .env("HANDOFF", &handoff[i])
            .env("INSTANCE_ID", name);
        match &redis_url {
            Some(url) => cmd.env("REDIS_URL", url).env_remove("PEERS"),
            None => cmd.env("PEERS", &listen[1 - i]).env_remove("REDIS_URL"),
        };
        gateways.push(sup.spawn(name, cmd)?);
    }
    for (i, (&g, name)) in gateways.iter().zip(names).enumerate() {
        let addr = sup.listening_addr(g)?;
        announce(&format!(
            "{name} {addr} handoff {} pid {}",
            handoff[i],
            sup.pid(g)
        ));
    }
    let upstreams = match config.lb_mode.as_str() {
        "proxy" => listen.join(","),
        _ => handoff.join(","),
    };
    let mut cmd = Command::new(lb_bin);
    cmd.env("LISTEN", &config.listen)
        .env("UPSTREAMS", upstreams)
        .env("LB_MODE", &config.lb_mode)
        .env("INSTANCE_ID", "lb");
    match &config.lb_cores {
        Some(n) => cmd.env("CORES", n),
        None => cmd.env_remove("CORES"),
    };
    let lb = sup.spawn("lb", cmd)?;
    let addr = url(&sup.listening_addr(lb)?);
    announce(&format!(
        "lb {addr} mode {} pid {}",
        config.lb_mode,
        sup.pid(lb)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.ledger, Ledger::Memory);
        assert_eq!(c.listen, "127.0.0.1:9999");
        assert_eq!(c.lb_mode, "handoff");
        assert_eq!(c.lb_cores, None);
        assert_eq!(
            c.processors,
            Processors::Simulated {
                default_fee: "0.07".into(),
                fallback_fee: "0.10".into(),
                default_listen: "127.0.0.1:0".into(),
                fallback_listen: "127.0.0.1:0".into(),
            }
        );
    }

    #[test]
    fn both_urls_mean_no_simulators() {
        let c = config(&[
            ("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001"),
            ("PROCESSOR_FALLBACK_URL", "unix:/tmp/fallback.sock"),
            ("LEDGER", "redis"),
            ("LB_MODE", "proxy"),
        ])
        .unwrap();
        assert_eq!(c.ledger, Ledger::Redis);
        assert_eq!(c.lb_mode, "proxy");
        assert!(matches!(c.processors, Processors::External { .. }));
    }

    /// Each bad setting is refused with a message naming the variable to fix.
    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LEDGER", "postgres")], "LEDGER"),
            (
                &[("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001")],
                "PROCESSOR_FALLBACK_URL",
            ),
            (
                &[("PROCESSOR_FALLBACK_URL", "http://127.0.0.1:8002")],
                "PROCESSOR_DEFAULT_URL",
            ),
            (
                &[
                    ("PROCESSOR_DEFAULT_URL", "ftp://x"),
                    ("PROCESSOR_FALLBACK_URL", "http://y:1"),
                ],
                "PROCESSOR_DEFAULT_URL",
            ),
            (&[("PROCESSOR_DEFAULT_FEE", "7%")], "PROCESSOR_DEFAULT_FEE"),
            (
                &[("PROCESSOR_FALLBACK_FEE", "1.5")],
                "PROCESSOR_FALLBACK_FEE",
            ),
            (
                &[("PROCESSOR_FALLBACK_FEE", "NaN")],
                "PROCESSOR_FALLBACK_FEE",
            ),
            (&[("SIM_DEFAULT_LISTEN", "8001")], "SIM_DEFAULT_LISTEN"),
            (&[("LISTEN", "9999")], "LISTEN"),
            (&[("LB_MODE", "dsr")], "LB_MODE"),
            (&[("LB_CORES", "0")], "LB_CORES"),
        ];
        for (vars, var) in cases {
            let e = config(vars).unwrap_err();
            assert!(
                e.starts_with(&format!("{var}:")),
                "{vars:?} should name {var}: {e}"
            );
        }
    }

    #[test]
    fn empty_counts_as_unset() {
        assert_eq!(
            config(&[("LEDGER", ""), ("PROCESSOR_DEFAULT_URL", "")]).unwrap(),
            config(&[]).unwrap()
        );
    }
}
