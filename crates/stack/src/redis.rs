//! redis-server for the redis ledger: on a Unix socket (mode 0700), optionally also on a
//! TCP port of 127.0.0.1, with or without an append-only file ([`Persistence`]). It
//! writes no ready line; it is ready once it answers `PING` with `+PONG`.
//!
//! With an AOF, redis-server writes each command to the file before it answers it, so a
//! crash of redis-server loses nothing it acknowledged, whatever the fsync policy;
//! `appendfsync` decides what a crash of the machine may lose: up to a second's writes
//! with `everysec`, nothing with `always` (at a cost measured in BENCHMARKS.md).
//!
//! [`command`] and [`answers`] are what the topology uses; [`Redis`] is a server of its
//! own, for tests: stopped and restarted on the same socket (and port).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::child::{Child, Output};
use crate::rundir::RunDir;
use crate::supervisor::STARTUP_TIMEOUT;

/// The socket's file name in its directory.
pub const SOCKET: &str = "redis.sock";
/// Pause between `PING`s while redis-server starts.
pub const PING_EVERY: Duration = Duration::from_millis(20);
/// Longest a `PING` may wait for its answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts tried on TCP: a port is free when chosen, but another process may take it
/// before redis-server binds it (redis-server then exits, and another port is tried).
const TCP_ATTEMPTS: u32 = 5;

/// Whether a redis-server keeps its data across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing saved: a restarted server is empty.
    None,
    /// An append-only file in its directory, fsynced once a second.
    AofEverySec,
    /// An append-only file fsynced before every answer.
    AofAlways,
}

impl Persistence {
    /// `--appendonly` and `--appendfsync` for this choice.
    fn args(self) -> [&'static str; 4] {
        let (on, fsync) = match self {
            Persistence::None => ("no", "everysec"),
            Persistence::AofEverySec => ("yes", "everysec"),
            Persistence::AofAlways => ("yes", "always"),
        };
        ["--appendonly", on, "--appendfsync", fsync]
    }
}

/// Where a [`Redis`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Unix,
    /// The Unix socket and a free TCP port of 127.0.0.1.
    UnixAndTcp,
}

/// The command line of a redis-server with its socket at `socket`, TCP on 127.0.0.1
/// `port` (`None`: no TCP), working directory `dir` (where an AOF goes), no RDB
/// snapshots, warnings only.
pub fn command(socket: &Path, port: Option<u16>, dir: &Path, keep: Persistence) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.arg("--port")
        .arg(port.unwrap_or(0).to_string())
        .args(["--bind", "127.0.0.1", "--unixsocket"])
        .arg(socket)
        .args(["--unixsocketperm", "700"])
        .args(["--save", ""])
        .args(keep.args())
        .arg("--dir")
        .arg(dir)
        .args(["--loglevel", "warning"]);
    cmd
}

/// Whether the redis-server at the Unix socket `socket` (and, given, on 127.0.0.1
/// `port`) answers `PING` with `+PONG`. The socket is asked first: redis-server binds
/// every listener before it serves any, so a `+PONG` there means the port is its own.
pub fn answers(socket: &Path, port: Option<u16>) -> bool {
    let unix = UnixStream::connect(socket)
        .is_ok_and(|s| s.set_read_timeout(Some(PING_TIMEOUT)).is_ok() && pong(s));
    unix && port.is_none_or(|p| {
        TcpStream::connect(("127.0.0.1", p))
            .is_ok_and(|s| s.set_read_timeout(Some(PING_TIMEOUT)).is_ok() && pong(s))
    })
}

/// Whether `PING` on `s` is answered `+PONG`.
fn pong<S: Read + Write>(mut s: S) -> bool {
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A running redis-server; killed when dropped (with its directory, if it made one).
pub struct Redis {
    child: Option<Child>,
    dir: PathBuf,
    port: Option<u16>,
    keep: Persistence,
    output: Output,
    /// The directory this server made for itself.
    _own: Option<RunDir>,
}

impl Redis {
    /// Starts a server in a fresh private directory of its own.
    pub fn start(listen: Listen, output: Output) -> Result<Redis, String> {
        let own = RunDir::create("rinha-redis")?;
        let mut r = Redis::start_in(own.path(), listen, output)?;
        r._own = Some(own);
        Ok(r)
    }

    /// Starts a server with its socket in `dir`, nothing saved.
    pub fn start_in(dir: &Path, listen: Listen, output: Output) -> Result<Redis, String> {
        Redis::start_keeping(dir, listen, Persistence::None, output)
    }

    /// Starts a server with its socket (and its AOF, if any) in `dir`.
    pub fn start_keeping(
        dir: &Path,
        listen: Listen,
        keep: Persistence,
        output: Output,
    ) -> Result<Redis, String> {
        let mut r = Redis {
            child: None,
            dir: dir.to_path_buf(),
            port: None,
            keep,
            output,
            _own: None,
        };
        match listen {
            Listen::Unix => r.spawn()?,
            Listen::UnixAndTcp => {
                let mut last = String::new();
                for _ in 0..TCP_ATTEMPTS {
                    r.port = Some(free_port()?);
                    match r.spawn() {
                        Ok(()) => return Ok(r),
                        Err(e) => last = e,
                    }
                }
                return Err(format!(
                    "redis-server did not start on TCP in {TCP_ATTEMPTS} attempts: {last}"
                ));
            }
        }
        Ok(r)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET)
    }

    /// `unix:/path`, as `REDIS_URL` takes it.
    pub fn url(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// `redis://127.0.0.1:<port>`, when started with [`Listen::UnixAndTcp`].
    pub fn tcp_url(&self) -> Option<String> {
        self.port.map(|p| format!("redis://127.0.0.1:{p}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::pid)
    }

    /// Its output so far (with [`Output::Captured`]).
    pub fn log(&self) -> String {
        self.child.as_ref().map(Child::log).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and removes its socket.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Kills the server and starts it again on the same socket (and port): empty
    /// without persistence, with what its AOF holds otherwise.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// Starts redis-server and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        let socket = self.socket();
        let cmd = command(&socket, self.port, &self.dir, self.keep);
        let mut child = Child::spawn("redis", cmd, self.output)
            .map_err(|e| format!("{e} (is redis-server installed?)"))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !answers(&socket, self.port) {
            if let Some(status) = child.exited() {
                return Err(format!("redis-server exited ({status}):\n{}", child.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING within {}s:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    child.log()
                ));
            }
            std::thread::sleep(PING_EVERY);
        }
        self.child = Some(child);
        Ok(())
    }
}

/// A TCP port of 127.0.0.1 that is free now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_and_restarts_on_the_same_socket_and_port() {
        let mut r = Redis::start(Listen::UnixAndTcp, Output::Captured).unwrap();
        let port = r.port;
        assert!(answers(&r.socket(), port));
        assert!(r.tcp_url().unwrap().starts_with("redis://127.0.0.1:"));
        r.stop();
        assert!(!answers(&r.socket(), None));
        r.restart().unwrap();
        assert_eq!(r.port, port);
        assert!(answers(&r.socket(), port));
        let dir = r.dir.clone();
        drop(r);
        assert!(!dir.exists(), "its own directory is removed");
    }
}
