//! Process control for the runner: one of the workspace's process-control modules
//! allowed `unsafe` (with `net::stop`, whose stop signals it re-exports; the other
//! module is fd passing, `net::fdpass`).
//!
//! The runner blocks its stop signals in every thread and takes them with `sigwait` on
//! one thread of its own ([`net::stop`]), so a signal becomes an ordinary event.
//! Its children must not inherit that mask (they would ignore SIGTERM), and must die
//! with the runner even when it is killed: [`tie_to_parent`] sets both up between fork
//! and exec; [`limit_open_files`] caps a child's file descriptors the same way. Neither
//! std nor monoio exposes these calls, so they go to `libc` here.
#![allow(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

use std::io;
use std::mem;
use std::os::unix::process::CommandExt;
use std::process::Command;

pub use net::stop::{block_stop_signals, wait_stop_signal, STOP_SIGNALS};

/// Sends `signal` to the process `pid`. The caller must own `pid` as a child it has not
/// reaped yet, so that the number cannot belong to another process.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets up `cmd`'s child, between fork and exec, to start with no signal blocked (the
/// mask survives exec) and to be killed (SIGKILL) when this process dies, whatever the
/// cause. The kernel sends that signal when the *thread* that forked the child exits, so
/// spawn from a thread that lives as long as the process (the main thread).
pub fn tie_to_parent(cmd: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
    let hook = move || -> io::Result<()> {
        // SAFETY: this runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: sigemptyset, sigprocmask, prctl and getppid are, and nothing
        // here allocates or takes a lock (the errors carry only an errno). The sigset is a
        // local value, valid for the calls.
        unsafe {
            let mut set: libc::sigset_t = mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then no signal will
            // ever come, so do not start at all.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: `hook` only makes async-signal-safe calls (see above), as pre_exec requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Starts `cmd`'s child with at most `n` open file descriptors (`RLIMIT_NOFILE`, soft
/// and hard), set between fork and exec: the tests run a gateway out of fds with it.
pub fn limit_open_files(cmd: &mut Command, n: u64) {
    let limit = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    let hook = move || -> io::Result<()> {
        // SAFETY: this runs in the forked child before exec: setrlimit is
        // async-signal-safe, reads only `limit` (a local copy, valid for the call) and
        // nothing here allocates or takes a lock.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: `hook` only makes an async-signal-safe call (see above), as pre_exec
    // requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}
