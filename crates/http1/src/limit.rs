//! A cap on the connections a server holds open, shared by every core and listener.
//!
//! [`ConnLimit`] is one counter behind an `Arc`: each served connection holds a
//! [`ConnSlot`] for as long as its task runs, and gives it back when the task ends
//! (the slot's `Drop`). A connection that finds every slot taken is refused and
//! counted. One relaxed add and one compare per connection, none per request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// The connection cap of one process: clone it for every core and listener.
#[derive(Debug, Clone)]
pub struct ConnLimit(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    max: usize,
    open: AtomicUsize,
    /// Connections refused because every slot was taken.
    refused: AtomicU64,
    /// Connections dropped because the process had no file descriptor left for them
    /// (a hand-off whose fd the kernel could not install).
    out_of_fds: AtomicU64,
}

impl ConnLimit {
    /// At most `max` connections open at once (at least 1).
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit(Arc::new(Shared {
            max: max.max(1),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            out_of_fds: AtomicU64::new(0),
        }))
    }

    /// No cap (servers that do not set one, such as the processor simulator).
    pub fn unlimited() -> ConnLimit {
        ConnLimit::new(usize::MAX)
    }

    /// Takes a slot for a new connection, or counts a refusal when all are taken.
    pub fn try_acquire(&self) -> Option<ConnSlot> {
        let before = self.0.open.fetch_add(1, Relaxed);
        if before >= self.0.max {
            self.0.open.fetch_sub(1, Relaxed);
            self.0.refused.fetch_add(1, Relaxed);
            return None;
        }
        Some(ConnSlot(self.clone()))
    }

    /// Counts `n` connections lost because the process was out of file descriptors.
    pub fn count_out_of_fds(&self, n: u64) {
        self.0.out_of_fds.fetch_add(n, Relaxed);
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.0.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.open.load(Relaxed)
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Relaxed)
    }

    /// Connections lost for want of a file descriptor so far.
    pub fn out_of_fds(&self) -> u64 {
        self.0.out_of_fds.load(Relaxed)
    }
}

/// One open connection's share of a [`ConnLimit`], given back when dropped.
#[derive(Debug)]
pub struct ConnSlot(ConnLimit);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        (self.0).0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_up_to_the_cap_and_given_back() {
        let limit = ConnLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.clone().try_acquire().unwrap();
        assert_eq!(limit.open(), 2);
        assert!(limit.try_acquire().is_none());
        assert!(limit.try_acquire().is_none());
        assert_eq!((limit.open(), limit.refused()), (2, 2));
        drop(a);
        assert_eq!(limit.open(), 1);
        let _c = limit.try_acquire().unwrap();
        drop(b);
        assert_eq!((limit.open(), limit.refused()), (1, 2));
    }

    #[test]
    fn unlimited_never_refuses_and_zero_means_one() {
        let limit = ConnLimit::unlimited();
        let slots: Vec<_> = (0..1000).map(|_| limit.try_acquire().unwrap()).collect();
        assert_eq!(limit.open(), slots.len());
        let one = ConnLimit::new(0);
        let _s = one.try_acquire().unwrap();
        assert!(one.try_acquire().is_none());
    }
}
