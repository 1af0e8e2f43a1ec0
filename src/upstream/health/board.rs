//! The latest health report per processor, shared by the cores of this instance.
//!
//! The monitor (or a peer's push) sets reports; each core's dispatcher reads them when
//! the [`Board::version`] changes and feeds them into its
//! [`crate::engine::vitals::Vitals`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::processor::Processor;
use crate::upstream::report::Report;

/// The latest report per processor, shared by the cores of this instance.
#[derive(Default)]
pub struct Board {
    reports: Mutex<[Option<Report>; 2]>,
    version: AtomicU64,
}

impl Board {
    /// Keeps `r` unless a newer report is already there.
    pub fn set(&self, p: Processor, r: Report) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut reports[p.index()];
        if slot.is_none_or(|old| old.at < r.at) {
            *slot = Some(r);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    pub fn get(&self) -> [Option<Report>; 2] {
        *self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes whenever a report is replaced.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::report::Health;
    use std::time::Duration;

    #[test]
    fn the_board_keeps_the_newest_report() {
        let b = Board::default();
        let at = |t, failing| Report {
            health: Health {
                failing,
                min_response: Duration::ZERO,
            },
            at: t,
        };
        let v0 = b.version();
        b.set(Processor::Default, at(10, true));
        b.set(Processor::Default, at(5, false));
        assert_eq!(b.get()[0], Some(at(10, true)));
        assert_eq!(b.get()[1], None);
        assert_eq!(b.version(), v0 + 1);
        b.set(Processor::Default, at(11, false));
        assert_eq!(b.get()[0], Some(at(11, false)));
    }
}
