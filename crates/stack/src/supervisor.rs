//! The children of one run, watched together: a wait for one child's readiness also
//! notices a stop signal or any other child's exit, and stopping takes them all down in
//! reverse start order.
//!
//! A child started with [`Supervisor::spawn_restarting`] (the gateways) is started again
//! when it exits, and the restart is logged on stderr and announced on stdout
//! (`restarted <name> pid <pid>`). After [`FAST_CRASHES`] exits in a row each within
//! [`FAST_CRASH`] of its start, the run gives up. Any other child's exit ends the run.

use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::child::{Child, Output, Ready, TICK};
use crate::procctl;

/// Longest a child may take to be ready. A debug build on a loaded two-core machine
/// starts in well under a second; this only bounds a hang.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time each child gets to exit after SIGTERM before SIGKILL: a gateway settles what it
/// accepted within its `SHUTDOWN_GRACE_MS` (8 s by default), the others exit at once.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child that exits this soon after its start crashed "fast".
pub const FAST_CRASH: Duration = Duration::from_secs(10);
/// Fast crashes in a row after which a restarting child is given up on.
pub const FAST_CRASHES: u32 = 3;

/// How a child is started again.
struct Restart {
    make: Box<dyn Fn() -> Command>,
    output: Output,
    /// Fast crashes in a row so far.
    fast: u32,
    /// Restarts so far.
    count: u32,
}

/// Why a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A stop signal arrived (SIGINT, SIGTERM or SIGHUP).
    Signal(libc::c_int),
    /// Something failed: a child did not start, or exited; worded for the user.
    Failed(String),
}

/// Started children, and the stop signals once [`Supervisor::catch_stop_signals`] is
/// called.
pub struct Supervisor {
    children: Vec<Child>,
    /// By child: how to start it again, for those that are.
    restarts: Vec<Option<Restart>>,
    signals: mpsc::Receiver<libc::c_int>,
    /// Kept so that the channel stays open when no signal thread holds a sender.
    sender: mpsc::Sender<libc::c_int>,
}

impl Default for Supervisor {
    fn default() -> Supervisor {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        let (sender, signals) = mpsc::channel();
        Supervisor {
            children: Vec::new(),
            restarts: Vec::new(),
            signals,
            sender,
        }
    }

    /// Blocks the stop signals for the whole process and takes them on a thread of its
    /// own, as events every wait below reports. Call it from the main thread before any
    /// other thread is started (threads inherit the mask).
    pub fn catch_stop_signals(&mut self) -> Result<(), String> {
        procctl::block_stop_signals().map_err(|e| format!("cannot block stop signals: {e}"))?;
        let sender = self.sender.clone();
        std::thread::spawn(move || loop {
            match procctl::wait_stop_signal() {
                Ok(s) => {
                    if sender.send(s).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("stack: waiting for signals failed: {e}");
                    return;
                }
            }
        });
        Ok(())
    }

    /// Starts a child (see [`Child::spawn`]) and returns its index.
    pub fn spawn(&mut self, name: &str, cmd: Command, output: Output) -> Result<usize, Stop> {
        let child = Child::spawn(name, cmd, output).map_err(Stop::Failed)?;
        self.children.push(child);
        self.restarts.push(None);
        Ok(self.children.len() - 1)
    }

    /// Starts a child from `make()`, and again each time it exits (see the module doc).
    pub fn spawn_restarting(
        &mut self,
        name: &str,
        make: impl Fn() -> Command + 'static,
        output: Output,
    ) -> Result<usize, Stop> {
        let i = self.spawn(name, make(), output)?;
        self.restarts[i] = Some(Restart {
            make: Box::new(make),
            output,
            fast: 0,
            count: 0,
        });
        Ok(i)
    }

    pub fn child(&self, i: usize) -> &Child {
        &self.children[i]
    }

    /// Waits until child `i` writes its ready line, at most [`STARTUP_TIMEOUT`].
    pub fn wait_ready(&mut self, i: usize) -> Result<Ready, Stop> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.startup_timeout(i));
            }
            match self.children[i].ready_within(left.min(TICK)) {
                Ok(Some(ready)) => return Ok(ready),
                Ok(None) => {}
                Err(why) => return Err(Stop::Failed(why)),
            }
        }
    }

    /// Waits until `probe` says child `i` is ready, trying it every `every`, at most
    /// [`STARTUP_TIMEOUT`].
    pub fn wait_until(
        &mut self,
        i: usize,
        every: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), Stop> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            self.check()?;
            if probe() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.startup_timeout(i));
            }
            self.watch(every)?;
        }
    }

    /// Waits up to `wait` for a stop signal, then checks that every child still runs.
    pub fn watch(&mut self, wait: Duration) -> Result<(), Stop> {
        if let Ok(s) = self.signals.recv_timeout(wait) {
            return Err(Stop::Signal(s));
        }
        self.check()
    }

    /// A stop signal that arrived, or a child that exited.
    fn check(&mut self) -> Result<(), Stop> {
        if let Ok(s) = self.signals.try_recv() {
            return Err(Stop::Signal(s));
        }
        for (c, restart) in self.children.iter_mut().zip(&mut self.restarts) {
            let Some(status) = c.exited() else {
                continue;
            };
            let Some(r) = restart else {
                return Err(Stop::Failed(format!(
                    "{} exited unexpectedly ({status})",
                    c.name()
                )));
            };
            r.fast = if c.age() < FAST_CRASH { r.fast + 1 } else { 0 };
            if r.fast >= FAST_CRASHES {
                return Err(Stop::Failed(format!(
                    "{} exited {} times in a row within {}s of starting (last: {status}); \
                     gave up restarting it",
                    c.name(),
                    r.fast,
                    FAST_CRASH.as_secs()
                )));
            }
            r.count += 1;
            let name = c.name().to_string();
            *c = Child::spawn(&name, (r.make)(), r.output).map_err(Stop::Failed)?;
            eprintln!(
                "stack: {name} exited ({status}); restarted it (restart {}, pid {})",
                r.count,
                c.pid()
            );
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "restarted {name} pid {}", c.pid());
            let _ = out.flush();
        }
        Ok(())
    }

    fn startup_timeout(&self, i: usize) -> Stop {
        Stop::Failed(format!(
            "{} was not ready within {}s",
            self.children[i].name(),
            STARTUP_TIMEOUT.as_secs()
        ))
    }

    /// Stops every child still running, one at a time in reverse start order, so that
    /// what a child needs to stop gracefully is still running: the lb first, then the
    /// gateways (settling what they accepted needs the processors and Redis), then the
    /// rest. Each gets SIGTERM, and SIGKILL if it is still running after
    /// [`STOP_GRACE`]; all are reaped.
    pub fn stop_all(&mut self) {
        for c in self.children.iter_mut().rev() {
            if !c.stop(STOP_GRACE) {
                eprintln!(
                    "stack: {} did not exit within {}s of SIGTERM; killed it",
                    c.name(),
                    STOP_GRACE.as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_child_that_exits_is_named_and_the_others_are_stopped() {
        let mut sup = Supervisor::new();
        let server = sup
            .spawn(
                "server",
                shell("echo 'ready listen unix:/r/s.sock'; exec sleep 60"),
                Output::Captured,
            )
            .unwrap();
        let quitter = sup
            .spawn("quitter", shell("exec sleep 60"), Output::Captured)
            .unwrap();
        assert_eq!(sup.wait_ready(server).unwrap().listen(), "unix:/r/s.sock");
        let mut probes = 0;
        sup.wait_until(quitter, TICK, || {
            probes += 1;
            probes == 3
        })
        .unwrap();
        assert_eq!(sup.watch(TICK), Ok(()));
        // Not reaped yet: the pid is still the child's.
        procctl::send_signal(sup.child(quitter).pid(), libc::SIGKILL).unwrap();
        let stop = loop {
            if let Err(stop) = sup.watch(TICK) {
                break stop;
            }
        };
        match stop {
            Stop::Failed(why) => assert!(why.starts_with("quitter exited unexpectedly"), "{why}"),
            other => panic!("{other:?}"),
        }
        sup.stop_all();
        assert!(sup.children.iter_mut().all(|c| c.exited().is_some()));
    }

    #[test]
    fn a_restarting_child_is_restarted_until_it_crashes_fast_too_often() {
        let mut sup = Supervisor::new();
        let crasher = sup
            .spawn_restarting("crasher", || shell("exit 3"), Output::Captured)
            .unwrap();
        let stop = loop {
            if let Err(stop) = sup.watch(TICK) {
                break stop;
            }
        };
        match stop {
            Stop::Failed(why) => assert!(
                why.starts_with("crasher exited 3 times in a row within 10s of starting"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sup.restarts[crasher].as_ref().unwrap().count,
            FAST_CRASHES - 1
        );
        sup.stop_all();
    }
}
