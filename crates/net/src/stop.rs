//! How a server process stops: its stop signals taken as events, and the flag that
//! tells every core to stop.
//!
//! A process blocks its stop signals before it starts any thread ([`block_stop_signals`]:
//! threads inherit the mask), then one thread takes them with `sigwait`
//! ([`on_stop_signal`]), so a signal becomes an ordinary event instead of a handler.
//! That thread sets a [`StopFlag`]; each core looks at it ([`StopFlag::wait`]) and
//! closes its accept loops (a cancelled accept, [`crate::listen::accept_each_until`]).
//!
//! This is process control, one of the workspace's modules allowed `unsafe`: neither std
//! nor monoio exposes signal masks or `sigwait`, so they go to `libc` here.
#![allow(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The signals that stop a process: `docker stop` and `kill` (SIGTERM), Ctrl-C, and a
/// closed terminal.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// How often a core looks at the [`StopFlag`]: runtimes have no wake-up from other
/// threads, and a stop that takes effect within this is soon enough.
pub const STOP_POLL: Duration = Duration::from_millis(20);

/// A signal set holding `signals`.
fn sigset(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain C data, and sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    if unsafe { libc::sigemptyset(&mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for &signal in signals {
        // SAFETY: `set` is an initialised, writable sigset_t.
        if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(set)
}

/// Blocks [`STOP_SIGNALS`] in the calling thread, and so in every thread it starts
/// afterwards (threads inherit the mask): call it before starting any thread, then take
/// the signals with [`wait_stop_signal`] or [`on_stop_signal`].
pub fn block_stop_signals() -> io::Result<()> {
    let set = sigset(&STOP_SIGNALS)?;
    // SAFETY: `set` is initialised and outlives the call; the old mask is not asked for
    // (null is allowed).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Waits until one of the blocked [`STOP_SIGNALS`] arrives, and returns it.
pub fn wait_stop_signal() -> io::Result<libc::c_int> {
    let set = sigset(&STOP_SIGNALS)?;
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` and `signal` are valid for the call; sigwait writes only `signal`.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    match rc {
        0 => Ok(signal),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The name of a stop signal, for logs.
pub fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a stop signal",
    }
}

/// Blocks the stop signals and starts the thread that takes them: on the first one it
/// runs `on_stop` with its name. Call it before starting any other thread.
pub fn on_stop_signal(on_stop: impl FnOnce(&'static str) + Send + 'static) -> io::Result<()> {
    block_stop_signals()?;
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || match wait_stop_signal() {
            Ok(signal) => on_stop(signal_name(signal)),
            Err(e) => crate::log!("cannot wait for stop signals: {e}"),
        })?;
    Ok(())
}

/// A process-wide request to stop: set once, by the thread that takes the signals, and
/// read by every core.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Asks every core to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Resolves once the flag is set (looked at every [`STOP_POLL`]).
    pub async fn wait(&self) {
        while !self.is_set() {
            monoio::time::sleep(STOP_POLL).await;
        }
    }
}
