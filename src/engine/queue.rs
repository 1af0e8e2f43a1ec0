//! Each core's payment backlog: a bounded ring of newly accepted payments, and the
//! payments waiting to be tried again, drained by that core's processor-client tasks.
//!
//! Intake is [`Backlog::push`]: the one place an accepted payment enters the system,
//! right after it was validated and before its 202 leaves; with `JOURNAL_DIR` its
//! acceptance is journaled in the same step ([`crate::ledger::journal`]).
//!
//! Everything here is per core (`Rc`, `RefCell`): no locks, no atomics. The core's
//! dispatcher ([`crate::engine::dispatch`]) takes payments from the heads of the two lanes
//! ([`Lane`]) and waits in [`Backlog::changed`]; a push, a retry coming due, or a
//! [`Backlog::kick`] (an attempt ended) wakes it. A kick while it is busy is kept, so
//! no wake-up is lost.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use monoio::time::Instant;

use crate::engine::payment::Payment;
use crate::processor::Processor;

/// Slots of the ring allocated up front: the default capacity, so that the ring never
/// reallocates (and stalls the core while copying) on the way to it. Pages are only
/// resident once written. Larger capacities grow past this on demand.
const PREALLOCATED: usize = crate::app::config::DEFAULT_QUEUE_CAPACITY;

/// The ring is full: intake answers 503 rather than drop a payment silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A payment scheduled for another attempt.
struct Due {
    at: Instant,
    /// Tie-breaker keeping equal deadlines in scheduling order.
    seq: u64,
    payment: Payment,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest deadline must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One core's backlog.
pub struct Backlog {
    capacity: usize,
    /// Newly accepted payments, oldest first. Bounded by `capacity`.
    fresh: RefCell<VecDeque<Payment>>,
    /// Retries whose time has come; served before fresh payments since they are older.
    ready: RefCell<VecDeque<Payment>>,
    /// Retries waiting for their time.
    later: RefCell<BinaryHeap<Due>>,
    seq: Cell<u64>,
    /// The dispatcher, waiting for a change.
    dispatcher: RefCell<Option<Waker>>,
    kicked: Cell<bool>,
    /// The timer task, waiting for the next retry or for a new one.
    timer: RefCell<Option<Waker>>,
    timer_kicked: Cell<bool>,
}

impl Backlog {
    pub fn new(capacity: usize) -> Backlog {
        Backlog {
            capacity,
            fresh: RefCell::new(VecDeque::with_capacity(capacity.min(PREALLOCATED))),
            ready: RefCell::new(VecDeque::new()),
            later: RefCell::new(BinaryHeap::new()),
            seq: Cell::new(0),
            dispatcher: RefCell::new(None),
            kicked: Cell::new(false),
            timer: RefCell::new(None),
            timer_kicked: Cell::new(false),
        }
    }

    /// Intake: queues a newly accepted payment, or says the ring is full.
    pub fn push(&self, p: Payment) -> Result<(), Full> {
        {
            let mut fresh = self.fresh.borrow_mut();
            if fresh.len() >= self.capacity {
                return Err(Full);
            }
            fresh.push_back(p);
        }
        self.kick();
        Ok(())
    }

    /// Schedules another attempt at `at`. Never refused: a retry was accepted earlier
    /// and already counted against the ring when it came in.
    pub fn retry_at(&self, at: Instant, payment: Payment) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.later.borrow_mut().push(Due { at, seq, payment });
        self.timer_kicked.set(true);
        if let Some(w) = self.timer.borrow_mut().take() {
            w.wake();
        }
    }

    /// The head of a lane: whether it is pinned, and when it was accepted.
    pub fn head(&self, lane: Lane) -> Option<(Option<Processor>, Instant)> {
        let q = match lane {
            Lane::Ready => self.ready.borrow(),
            Lane::Fresh => self.fresh.borrow(),
        };
        q.front().map(|p| (p.pinned(), p.accepted))
    }

    /// Takes the head of a lane.
    pub fn take(&self, lane: Lane) -> Option<Payment> {
        match lane {
            Lane::Ready => self.ready.borrow_mut().pop_front(),
            Lane::Fresh => self.fresh.borrow_mut().pop_front(),
        }
    }

    /// Takes the next payment without waiting: due retries first, they are older.
    pub fn try_pop(&self) -> Option<Payment> {
        self.take(Lane::Ready).or_else(|| self.take(Lane::Fresh))
    }

    /// Wakes the dispatcher: something it decides on changed.
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.dispatcher.borrow_mut().take() {
            w.wake();
        }
    }

    /// Waits until the next kick (returns at once if one came since the last wait).
    pub fn changed(&self) -> Changed<'_> {
        Changed { backlog: self }
    }

    /// Payments not yet settled and not in flight: queued, ready, or waiting to retry.
    pub fn len(&self) -> usize {
        self.fresh.borrow().len() + self.ready.borrow().len() + self.later.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves retries whose time has come to the ready queue. Runs forever on each
    /// core, next to the workers.
    pub async fn run_timer(&self) {
        loop {
            let now = Instant::now();
            let mut moved = 0;
            let next = {
                let mut later = self.later.borrow_mut();
                let mut ready = self.ready.borrow_mut();
                while later.peek().is_some_and(|d| d.at <= now) {
                    if let Some(d) = later.pop() {
                        ready.push_back(d.payment);
                        moved += 1;
                    }
                }
                later.peek().map(|d| d.at)
            };
            if moved > 0 {
                self.kick();
            }
            self.timer_kicked.set(false);
            TimerWait {
                backlog: self,
                sleep: next.map(|t| Box::pin(monoio::time::sleep_until(t))),
            }
            .await;
        }
    }
}

/// The two lanes of a backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Retries whose time has come.
    Ready,
    /// Newly accepted payments.
    Fresh,
}

/// The future of [`Backlog::changed`].
pub struct Changed<'a> {
    backlog: &'a Backlog,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.backlog.kicked.replace(false) {
            return Poll::Ready(());
        }
        *self.backlog.dispatcher.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The timer task's wait: until the earliest retry is due, or a new retry arrives.
struct TimerWait<'a> {
    backlog: &'a Backlog,
    sleep: Option<Pin<Box<monoio::time::Sleep>>>,
}

impl Future for TimerWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.backlog.timer_kicked.get() {
            return Poll::Ready(());
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        *self.backlog.timer.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    fn p(id: u128) -> Payment {
        Payment::new(id, 100)
    }

    #[test]
    fn bounded_fifo() {
        let b = Backlog::new(2);
        assert_eq!(b.push(p(1)), Ok(()));
        assert_eq!(b.push(p(2)), Ok(()));
        assert_eq!(b.push(p(3)), Err(Full));
        assert_eq!(b.len(), 2);
        assert_eq!(b.try_pop().map(|p| p.id), Some(1));
        assert_eq!(b.push(p(3)), Ok(()));
        assert_eq!(b.try_pop().map(|p| p.id), Some(2));
        assert_eq!(b.try_pop().map(|p| p.id), Some(3));
        assert_eq!(b.try_pop(), None);
        assert!(b.is_empty());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn due_retries_come_before_fresh_payments() {
        let b = Rc::new(Backlog::new(8));
        let timer = monoio::spawn({
            let b = b.clone();
            async move { b.run_timer().await }
        });
        b.push(p(1)).unwrap();
        b.retry_at(Instant::now(), p(9));
        while b.ready.borrow().is_empty() {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(b.try_pop().map(|p| p.id), Some(9));
        assert_eq!(b.try_pop().map(|p| p.id), Some(1));
        drop(timer);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn every_change_wakes_the_dispatcher_and_retries_fire_in_order() {
        let b = Rc::new(Backlog::new(64));
        let got = Rc::new(RefCell::new(Vec::new()));
        let timer = monoio::spawn({
            let b = b.clone();
            async move { b.run_timer().await }
        });
        let dispatcher = monoio::spawn({
            let (b, got) = (b.clone(), got.clone());
            async move {
                loop {
                    while let Some(p) = b.try_pop() {
                        got.borrow_mut().push(p.id);
                        if p.id == 0 {
                            return;
                        }
                    }
                    b.changed().await;
                }
            }
        });
        let now = Instant::now();
        b.retry_at(now + Duration::from_millis(30), p(101));
        b.retry_at(now + Duration::from_millis(10), p(100));
        for id in 1..=20 {
            b.push(p(id)).unwrap();
            if id % 5 == 0 {
                monoio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        while got.borrow().len() < 22 {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = got.borrow().clone();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=20).chain([100, 101]).collect::<Vec<u128>>());
        let pos = |id| seen.iter().position(|&x| x == id).unwrap();
        assert!(
            pos(100) < pos(101),
            "retries fire in deadline order: {seen:?}"
        );
        b.push(p(0)).unwrap();
        dispatcher.await;
        drop(timer);
    }

    #[test]
    fn heads_show_pinning_and_age() {
        let b = Backlog::new(4);
        assert_eq!(b.head(Lane::Fresh), None);
        let mut q = p(1);
        q.stage = crate::engine::payment::Stage::Uncertain {
            processor: Processor::Fallback,
            since: Instant::now(),
        };
        let accepted = q.accepted;
        b.push(q).unwrap();
        b.push(p(2)).unwrap();
        assert_eq!(
            b.head(Lane::Fresh),
            Some((Some(Processor::Fallback), accepted))
        );
        assert_eq!(b.take(Lane::Fresh).map(|p| p.id), Some(1));
        assert_eq!(b.head(Lane::Fresh).map(|h| h.0), Some(None));
        assert_eq!(b.head(Lane::Ready), None);
    }
}
