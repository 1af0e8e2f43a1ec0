//! The scheduler slice of a core thread: one of the workspace's modules allowed
//! `unsafe` (the others are [`crate::fdpass`] and the process control of
//! [`crate::stop`] and `stack::procctl`).
//!
//! Linux's fair scheduler (EEVDF, kernel 6.6 and later) gives each thread a slice and a
//! virtual deadline one slice after its eligible time. Since 6.12 a thread may ask for
//! its own slice (`sched_attr.sched_runtime` with `SCHED_OTHER`, no privilege needed,
//! clamped by the kernel to 0.1–100 ms), and a waking thread whose deadline is earlier
//! than the running one's preempts it. A core thread of the gateway sleeps almost all
//! the time and runs for microseconds per wake-up, so a short slice lets it take a CPU
//! from a busy neighbour (the load generator, the processors) at once instead of
//! waiting for that neighbour's slice to end: its CPU share does not change, only when
//! it gets it. Older kernels ignore the field, and a refused call leaves the thread as
//! it was; both are reported, neither is fatal.
#![allow(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

use std::io;
use std::mem;
use std::time::Duration;

/// The slice the gateway's and the lb's core threads ask for unless `SCHED_SLICE_US`
/// says otherwise: none, the kernel's. A 100 µs slice was measured against the
/// kernel's on the preview (BENCHMARKS.md, "Tail latency") and its gain stayed within
/// the run-to-run noise.
pub const DEFAULT_SLICE: Option<Duration> = None;

/// The kernel's `struct sched_attr`, first version (48 bytes): every field it has.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

const SCHED_ATTR_SIZE: u32 = mem::size_of::<SchedAttr>() as u32;
/// `SCHED_OTHER` and `SCHED_BATCH`: the fair policies, the only ones whose slice this
/// sets.
const FAIR_POLICIES: [u32; 2] = [libc::SCHED_OTHER as u32, libc::SCHED_BATCH as u32];

/// The calling thread's scheduling attributes.
fn get() -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a live, writable `sched_attr` of `SCHED_ATTR_SIZE` bytes, the
    // size passed; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE,
            0,
        )
    };
    if rc == 0 {
        Ok(attr)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's slice as the kernel reports it (`sched_runtime` of a fair
/// thread): the base slice, or the one asked for with [`set_slice`]. Zero on kernels
/// that keep no slice per thread.
pub fn slice() -> io::Result<Duration> {
    Ok(Duration::from_nanos(get()?.runtime))
}

/// Asks for `slice` as the calling thread's scheduler slice, keeping its policy and
/// nice value. An error when the thread is not under a fair policy (its slice means
/// nothing then) or the kernel refuses the call.
pub fn set_slice(slice: Duration) -> io::Result<()> {
    let mut attr = get()?;
    if !FAIR_POLICIES.contains(&attr.policy) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the thread is not under a fair scheduling policy",
        ));
    }
    attr.size = SCHED_ATTR_SIZE;
    attr.flags = 0;
    attr.runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: `attr` is a live, initialised `sched_attr` whose `size` field is its own
    // size; the kernel only reads it. pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// [`set_slice`] for a core thread when `slice` is set, with a log line if the kernel
/// refused it or reports another slice (it clamps, and kernels before 6.12 keep the
/// base slice). `None` leaves the thread as it is.
pub fn apply(slice: Option<Duration>, core: usize) {
    let Some(slice) = slice else { return };
    match set_slice(slice).and_then(|()| self::slice()) {
        Ok(got) if got == slice => {}
        Ok(got) => crate::log!(
            "core {core}: asked for a {} µs scheduler slice, the kernel keeps {} µs",
            slice.as_micros(),
            got.as_micros()
        ),
        Err(e) => crate::log!(
            "core {core}: cannot set a {} µs scheduler slice: {e}",
            slice.as_micros()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_the_slice_it_asked_for() {
        // On a thread of its own: the slice stays with the thread that set it.
        std::thread::spawn(|| {
            let before = slice().unwrap();
            if before.is_zero() {
                eprintln!("this kernel keeps no slice per thread; nothing to check");
                return;
            }
            let asked = Duration::from_micros(300);
            assert_ne!(before, asked);
            set_slice(asked).unwrap();
            assert_eq!(slice().unwrap(), asked);
            // Below the kernel's floor it is raised to the floor, never refused.
            set_slice(Duration::from_micros(1)).unwrap();
            assert!(slice().unwrap() >= Duration::from_micros(1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn another_thread_keeps_its_own_slice() {
        let base = slice().unwrap();
        std::thread::spawn(|| set_slice(Duration::from_micros(400)).unwrap())
            .join()
            .unwrap();
        assert_eq!(slice().unwrap(), base);
    }
}
