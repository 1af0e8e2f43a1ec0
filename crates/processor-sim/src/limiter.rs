//! The two rate limiters of the payment processor, as `docs/challenge.md` describes
//! them: a concurrency limiter with a FIFO queue in front of `POST /payments`, and a
//! fixed-window limiter with a queue of 2 in front of the health endpoint.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::time::Instant;

/// A waiter's place in the concurrency queue.
#[derive(Default)]
struct Slot {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Concurrency limiter: `permits` requests inside at once, up to `queue_limit` more
/// waiting in FIFO order, the rest refused.
pub struct Concurrency {
    free: Cell<usize>,
    queue: RefCell<VecDeque<Rc<Slot>>>,
    queue_limit: usize,
}

/// Held while a request is inside; released on drop, to the next waiter if any.
pub struct Permit<'a> {
    limiter: &'a Concurrency,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

impl Concurrency {
    pub fn new(permits: usize, queue_limit: usize) -> Concurrency {
        Concurrency {
            free: Cell::new(permits),
            queue: RefCell::new(VecDeque::new()),
            queue_limit,
        }
    }

    /// Waits for a permit, or returns `None` at once when the queue is full too.
    pub async fn acquire(&self) -> Option<Permit<'_>> {
        if self.free.get() > 0 && self.queue.borrow().is_empty() {
            self.free.set(self.free.get() - 1);
            return Some(Permit { limiter: self });
        }
        if self.queue.borrow().len() >= self.queue_limit {
            return None;
        }
        let slot = Rc::new(Slot::default());
        self.queue.borrow_mut().push_back(slot.clone());
        Granted { slot: &slot }.await;
        Some(Permit { limiter: self })
    }

    fn release(&self) {
        let next = self.queue.borrow_mut().pop_front();
        match next {
            Some(slot) => {
                slot.granted.set(true);
                if let Some(w) = slot.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            None => self.free.set(self.free.get() + 1),
        }
    }

    /// Requests inside plus waiting (for tests).
    pub fn waiting(&self) -> usize {
        self.queue.borrow().len()
    }
}

struct Granted<'a> {
    slot: &'a Rc<Slot>,
}

impl Future for Granted<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.slot.granted.get() {
            Poll::Ready(())
        } else {
            *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Fixed-window limiter: one permit per window, windows ticking from `start`; up to
/// `queue_limit` callers wait for the next free windows, one window each.
pub struct FixedWindow {
    start: Instant,
    window: Duration,
    queue_limit: usize,
    /// Index of the last window whose permit was given out.
    last_granted: Cell<Option<u64>>,
    queued: Cell<usize>,
}

/// What a caller of [`FixedWindow::admit`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Now,
    /// Wait until then, holding a place in the queue.
    At(Instant),
    Refused,
}

impl FixedWindow {
    pub fn new(start: Instant, window: Duration, queue_limit: usize) -> FixedWindow {
        FixedWindow {
            start,
            window,
            queue_limit,
            last_granted: Cell::new(None),
            queued: Cell::new(0),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        (elapsed / self.window.as_nanos().max(1)) as u64
    }

    /// Decides a caller's fate at `now`. A caller given `At` must call [`Self::done_waiting`]
    /// when its wait ends.
    pub fn admit(&self, now: Instant) -> Admission {
        let current = self.index(now);
        match self.last_granted.get() {
            Some(last) if last >= current => {
                if self.queued.get() >= self.queue_limit {
                    return Admission::Refused;
                }
                self.queued.set(self.queued.get() + 1);
                let next = last + 1;
                self.last_granted.set(Some(next));
                Admission::At(self.start + self.window * next as u32)
            }
            _ => {
                self.last_granted.set(Some(current));
                Admission::Now
            }
        }
    }

    pub fn done_waiting(&self) {
        self.queued.set(self.queued.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grants_one_per_window_and_queues_two() {
        let start = Instant::now();
        let w = Duration::from_secs(5);
        let fw = FixedWindow::new(start, w, 2);
        let t = start + Duration::from_secs(1);
        assert_eq!(fw.admit(t), Admission::Now);
        assert_eq!(fw.admit(t), Admission::At(start + w));
        assert_eq!(fw.admit(t), Admission::At(start + w * 2));
        assert_eq!(fw.admit(t), Admission::Refused);
        fw.done_waiting();
        fw.done_waiting();
        // Windows 1 and 2 are promised; window 3 is the next free one.
        let t = start + Duration::from_secs(11);
        assert_eq!(fw.admit(t), Admission::At(start + w * 3));
        fw.done_waiting();
        let t = start + Duration::from_secs(16);
        assert_eq!(fw.admit(t), Admission::At(start + w * 4));
        fw.done_waiting();
        assert_eq!(fw.admit(start + Duration::from_secs(26)), Admission::Now);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn concurrency_is_fifo_and_bounded() {
        let lim = Rc::new(Concurrency::new(1, 2));
        let order = Rc::new(RefCell::new(Vec::new()));
        let first = lim.acquire().await.expect("free permit");
        let mut tasks = Vec::new();
        for i in 0..2 {
            let (lim, order) = (lim.clone(), order.clone());
            tasks.push(monoio::spawn(async move {
                let _p = lim.acquire().await.expect("queued");
                order.borrow_mut().push(i);
                monoio::time::sleep(Duration::from_millis(1)).await;
            }));
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(lim.waiting(), 2);
        assert!(lim.acquire().await.is_none(), "beyond the queue: refused");
        drop(first);
        for t in tasks {
            t.await;
        }
        assert_eq!(*order.borrow(), vec![0, 1]);
        assert!(lim.acquire().await.is_some());
    }
}
