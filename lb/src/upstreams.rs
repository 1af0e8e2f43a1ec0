//! The upstream set of one core: round-robin order and liveness.
//!
//! Each client connection goes to the next upstream in turn. An upstream whose socket is
//! refused, gone or failing is marked down and skipped; once [`DOWN_RETRY`] has passed
//! it is tried again, with a real client, and comes back up if that works. Every change
//! of the live set is logged.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use monoio::time::Instant;
use net::addr::Addr;

/// How long an upstream marked down is skipped before it is tried again: short enough
/// that a restarted gateway gets traffic within a second, long enough that a dead one
/// costs a failed connect at most once a second per core.
pub const DOWN_RETRY: Duration = Duration::from_secs(1);

/// Liveness of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    /// Skipped until `retry_at`.
    Down {
        retry_at: Instant,
    },
}

/// The upstreams of one core, in round-robin order.
pub struct Upstreams {
    addrs: Vec<Addr>,
    health: RefCell<Vec<Health>>,
    /// Index of the upstream the next client goes to first.
    next: Cell<usize>,
}

impl Upstreams {
    /// All upstreams, presumed up until one fails.
    pub fn new(addrs: Vec<Addr>) -> Upstreams {
        let health = RefCell::new(vec![Health::Up; addrs.len()]);
        Upstreams {
            addrs,
            health,
            next: Cell::new(0),
        }
    }

    pub fn addr(&self, i: usize) -> &Addr {
        &self.addrs[i]
    }

    /// The upstreams to try for the next client, in order: the round-robin turn first,
    /// then the others, skipping those that are down and not yet due for a retry.
    pub fn order(&self) -> Vec<usize> {
        let n = self.addrs.len();
        let start = self.next.get();
        self.next.set((start + 1) % n);
        let now = Instant::now();
        let health = self.health.borrow();
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| match health[i] {
                Health::Up => true,
                Health::Down { retry_at } => now >= retry_at,
            })
            .collect()
    }

    /// Records that `i` just served a client.
    pub fn mark_up(&self, i: usize) {
        let changed = {
            let mut health = self.health.borrow_mut();
            let was = std::mem::replace(&mut health[i], Health::Up);
            was != Health::Up
        };
        if changed {
            net::log!("upstream {} is up; live: {}", self.addrs[i], self.live());
        }
    }

    /// Records that `i` failed (`why`); it is skipped for [`DOWN_RETRY`].
    pub fn mark_down(&self, i: usize, why: &std::io::Error) {
        let was_up = {
            let mut health = self.health.borrow_mut();
            let was = health[i];
            health[i] = Health::Down {
                retry_at: Instant::now() + DOWN_RETRY,
            };
            was == Health::Up
        };
        if was_up {
            net::log!(
                "upstream {} is down ({why}); live: {}",
                self.addrs[i],
                self.live()
            );
        }
    }

    /// The live upstreams, for logs.
    fn live(&self) -> String {
        let health = self.health.borrow();
        let live: Vec<String> = (0..self.addrs.len())
            .filter(|&i| health[i] == Health::Up)
            .map(|i| self.addrs[i].to_string())
            .collect();
        if live.is_empty() {
            "none".to_string()
        } else {
            live.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Upstreams {
        Upstreams::new(vec![
            Addr::Unix("/a".into()),
            Addr::Unix("/b".into()),
            Addr::Unix("/c".into()),
        ])
    }

    #[monoio::test(timer_enabled = true)]
    async fn round_robin_starts_one_further_each_time() {
        let u = three();
        assert_eq!(u.order(), vec![0, 1, 2]);
        assert_eq!(u.order(), vec![1, 2, 0]);
        assert_eq!(u.order(), vec![2, 0, 1]);
        assert_eq!(u.order(), vec![0, 1, 2]);
    }

    #[monoio::test(timer_enabled = true)]
    async fn down_upstreams_are_skipped_until_retry_then_come_back() {
        let u = three();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        u.mark_down(1, &refused);
        assert_eq!(u.order(), vec![0, 2]);
        assert_eq!(u.order(), vec![2, 0]);
        assert_eq!(u.live(), "unix:/a, unix:/c");
        monoio::time::sleep(DOWN_RETRY).await;
        assert_eq!(u.order(), vec![2, 0, 1]);
        u.mark_up(1);
        assert_eq!(u.live(), "unix:/a, unix:/b, unix:/c");
        for i in 0..3 {
            u.mark_down(i, &refused);
        }
        assert!(u.order().is_empty());
        assert_eq!(u.live(), "none");
    }
}
