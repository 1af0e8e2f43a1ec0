//! One connection to Redis that a core's tasks take turns on, one command at a time.
//!
//! The connection is opened on first use. Any failure becomes [`LedgerError::Redis`]
//! and drops the connection, so the next call connects afresh; nothing is retried here.
//! A call whose future is dropped midway drops the connection with it, so a late reply
//! is never read as the answer to the next command.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use ::redis::Value;

use crate::ledger::LedgerError;
use redis_wire::{RedisConn, RedisTarget};

/// Longest a Redis call (connect included) may take. Redis answers in microseconds; a
/// stalled or unreachable server must not hold a core's tasks, or an audit call past
/// the official test's 1.5 s client timeout.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1_000);

/// A connection shared by one core's tasks.
pub struct Channel {
    target: RedisTarget,
    /// The connection while no call holds it; `None` before the first call and after a
    /// failure.
    conn: Cell<Option<RedisConn>>,
    /// Whether a call holds the connection now.
    busy: Cell<bool>,
    /// Calls waiting for their turn; all are woken when the turn passes, and those that
    /// lose the race wait again.
    waiters: RefCell<Vec<Waker>>,
}

/// A call's turn on the connection; dropping it (on completion or cancellation) passes
/// the turn on.
struct Turn<'a> {
    channel: &'a Channel,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.channel.busy.set(false);
        let waiters = std::mem::take(&mut *self.channel.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

impl Channel {
    /// A channel that connects to `target` on first use.
    pub fn new(target: RedisTarget) -> Channel {
        Channel {
            target,
            conn: Cell::new(None),
            busy: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Waits until no other call holds the connection.
    async fn turn(&self) -> Turn<'_> {
        poll_fn(|cx| {
            if self.busy.get() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                self.busy.set(true);
                Poll::Ready(())
            }
        })
        .await;
        Turn { channel: self }
    }

    /// Sends one command (connecting first if needed). The connection is held by value
    /// for the call and put back only after a clean reply.
    pub async fn query(&self, cmd: &::redis::Cmd) -> Result<Value, LedgerError> {
        let _turn = self.turn().await;
        let call = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => RedisConn::connect(&self.target)
                    .await
                    .map_err(|e| LedgerError::Redis(format!("connect to {}: {e}", self.target)))?,
            };
            let reply = conn
                .query(cmd)
                .await
                .map_err(|e| LedgerError::Redis(format!("{}: {e}", self.target)))?;
            self.conn.set(Some(conn));
            Ok(reply)
        };
        // On timeout the call is dropped with the connection it holds, so a late reply
        // can never be read as the answer to a later command.
        match monoio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => Err(LedgerError::Redis(format!(
                "{}: no answer within {CALL_TIMEOUT:?}",
                self.target
            ))),
        }
    }

    /// Drops the connection after a reply that makes no sense: whatever went wrong, the
    /// next call starts on a fresh one.
    pub fn unexpected(&self, what: &str, reply: &Value) -> LedgerError {
        self.conn.set(None);
        LedgerError::Redis(format!(
            "{}: unexpected reply to {what}: {reply:?}",
            self.target
        ))
    }
}
