//! One child process: started in its own process group and tied to this process
//! ([`procctl::tie_to_parent`]: it dies with us), its output read line by line, its
//! ready line taken from its stdout, stopped with SIGTERM then SIGKILL.
//!
//! Our servers write one ready line on stdout once every listener is bound
//! (`net::ready`): `ready listen <addr>`, then `key value` pairs. A child that writes
//! none (redis-server) is waited for some other way by whoever started it.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::procctl;

/// How often a wait looks at the child besides its output: bounds how late an exit is
/// noticed when no output announces it.
pub const TICK: Duration = Duration::from_millis(100);
/// Pause between looks at a child that was asked to exit.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// After a child's stdout closed, how long its exit status is waited for, to be named.
const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(1);

/// Where a child's output lines go (both stdout and stderr, ready line included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To this process's stderr, each line prefixed with `<name> | `.
    Prefixed,
    /// Kept in memory, for [`Child::log`].
    Captured,
}

/// A ready line: `ready listen <addr>` and further `key value` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Every pair in order, `listen` first.
    pairs: Vec<(String, String)>,
}

impl Ready {
    /// Reads a ready line; `None` for any other line (or a malformed ready line).
    pub fn parse(line: &str) -> Option<Ready> {
        let mut words = line.split(' ');
        if words.next() != Some("ready") {
            return None;
        }
        let words: Vec<&str> = words.collect();
        if words.len() < 2 || !words.len().is_multiple_of(2) || words[0] != "listen" {
            return None;
        }
        let pairs = words
            .chunks(2)
            .map(|kv| (kv[0].to_string(), kv[1].to_string()))
            .collect();
        Some(Ready { pairs })
    }

    /// The address bound, as `LISTEN` takes it: `host:port` or `unix:/path`.
    pub fn listen(&self) -> &str {
        &self.pairs[0].1
    }

    /// The value of `key`, such as the gateway's `handoff`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A started child; killed (SIGKILL) and reaped when dropped, if still running.
pub struct Child {
    name: String,
    process: std::process::Child,
    /// Set once reaped.
    status: Option<ExitStatus>,
    /// The ready line (`Some`), or the end of stdout without one (`None`).
    ready: mpsc::Receiver<Option<Ready>>,
    /// Whether stdout ended without a ready line.
    closed: bool,
    /// The output so far, with [`Output::Captured`].
    log: Arc<Mutex<String>>,
    /// When it was started.
    started: Instant,
}

impl Child {
    /// Starts `cmd` as `name`: stdin from /dev/null, stdout and stderr read into `output`,
    /// in its own process group (a Ctrl-C reaches only us, and we stop it in order), with
    /// no signal blocked, and killed by the kernel when the thread that spawned it exits
    /// (spawn from a thread that lives as long as the child should).
    pub fn spawn(name: &str, mut cmd: Command, output: Output) -> Result<Child, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        procctl::tie_to_parent(&mut cmd);
        let mut process = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (sender, ready) = mpsc::channel();
        if let Some(out) = process.stdout.take() {
            forward(name, out, output, &log, Some(sender));
        }
        if let Some(err) = process.stderr.take() {
            forward(name, err, output, &log, None);
        }
        Ok(Child {
            name: name.to_string(),
            process,
            status: None,
            ready,
            closed: false,
            log,
            started: Instant::now(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long ago it was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Its output so far (empty unless started with [`Output::Captured`]).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `wait` for the ready line: `Ok(None)` if it has not come yet, an
    /// error if it never will (the child exited, or closed its stdout).
    pub fn ready_within(&mut self, wait: Duration) -> Result<Option<Ready>, String> {
        if !self.closed {
            match self.ready.recv_timeout(wait) {
                Ok(Some(ready)) => return Ok(Some(ready)),
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        if self.closed {
            let deadline = Instant::now() + EXIT_AFTER_CLOSE;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(EXIT_POLL);
            }
            return Err(match self.status {
                Some(status) => format!("{} exited before it was ready ({status})", self.name),
                None => format!("{} closed its stdout before it was ready", self.name),
            });
        }
        match self.exited() {
            Some(status) => Err(format!(
                "{} exited before it was ready ({status})",
                self.name
            )),
            None => Ok(None),
        }
    }

    /// Waits for the ready line, at most `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Ready, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} was not ready within {}s",
                    self.name,
                    timeout.as_secs()
                ));
            }
            if let Some(ready) = self.ready_within(left.min(TICK))? {
                return Ok(ready);
            }
        }
    }

    /// Its exit status, once it has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.process.try_wait() {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Sends SIGTERM, unless it has exited.
    pub fn terminate(&mut self) {
        if self.exited().is_none() {
            // Not reaped yet, so the pid is still this child's.
            let _ = procctl::send_signal(self.pid(), libc::SIGTERM);
        }
    }

    /// Kills it (SIGKILL) unless it has exited, and reaps it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.process.kill();
            self.status = self.process.wait().ok();
        }
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`; reaped either way.
    /// False when it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.terminate();
        let deadline = Instant::now() + grace;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(EXIT_POLL);
        }
        let in_time = self.exited().is_some();
        self.kill();
        in_time
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a child's output, line by line, to `output`; on its stdout (`ready` given),
/// also reports its first ready line, or the end of the output without one.
fn forward(
    name: &str,
    from: impl Read + Send + 'static,
    output: Output,
    log: &Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<Option<Ready>>>,
) {
    let name = name.to_string();
    let log = log.clone();
    std::thread::spawn(move || {
        let mut ready = ready;
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            match output {
                Output::Prefixed => eprintln!("{name} | {line}"),
                Output::Captured => {
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            }
            if let Some(r) = Ready::parse(&line) {
                if let Some(sender) = ready.take() {
                    let _ = sender.send(Some(r));
                }
            }
        }
        if let Some(sender) = ready {
            let _ = sender.send(None);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        let r = Ready::parse("ready listen unix:/r/g.sock handoff unix:/r/g.handoff").unwrap();
        assert_eq!(r.listen(), "unix:/r/g.sock");
        assert_eq!(r.get("handoff"), Some("unix:/r/g.handoff"));
        assert_eq!(r.get("mode"), None);
        assert_eq!(
            Ready::parse("ready listen 127.0.0.1:40001")
                .unwrap()
                .listen(),
            "127.0.0.1:40001"
        );
        for other in [
            "ready",
            "ready listen",
            "ready handoff unix:/x listen 1.2.3.4:5",
            "ready listen 127.0.0.1:1 handoff",
            "[gw] listening on 127.0.0.1:1",
            "1:M 01 Jan 2025 00:00:00.000 * Ready to accept connections",
        ] {
            assert_eq!(Ready::parse(other), None, "{other:?}");
        }
    }

    fn shell(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn reads_the_ready_line_from_stdout_and_keeps_the_log() {
        let mut c = Child::spawn(
            "t",
            shell("echo starting >&2; echo 'ready listen 127.0.0.1:9'; exec sleep 60"),
            Output::Captured,
        )
        .unwrap();
        let ready = c.wait_ready(Duration::from_secs(30)).unwrap();
        assert_eq!(ready.listen(), "127.0.0.1:9");
        c.stop(Duration::from_secs(5));
        assert!(c.exited().is_some());
        let log = c.log();
        assert!(log.contains("starting\n"), "{log}");
        assert!(log.contains("ready listen 127.0.0.1:9\n"), "{log}");
    }

    #[test]
    fn a_ready_line_on_stderr_does_not_count() {
        let mut c = Child::spawn(
            "t",
            shell("echo 'ready listen 127.0.0.1:9' >&2; exit 3"),
            Output::Captured,
        )
        .unwrap();
        let e = c.wait_ready(Duration::from_secs(30)).unwrap_err();
        assert!(e.starts_with("t exited before it was ready"), "{e}");
    }
}
