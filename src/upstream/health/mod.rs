//! Processor health: exactly one `GET /payments/service-health` per processor per 5 s
//! window for the whole cluster, its answer shared with every instance.
//!
//! - [`poll`]: one poll of one processor, and reading its answer;
//! - [`monitor`]: who polls (a Redis lease, or the elected peer) and how the reports
//!   are shared ([`monitor::Sharing`]);
//! - [`encoding`]: a report as stored in Redis and pushed to peers;
//! - [`board`]: the latest report per processor, read by every core of the instance.
//!
//! The report itself is [`crate::upstream::report`].
pub mod board;
pub mod encoding;
pub mod monitor;
pub mod poll;
