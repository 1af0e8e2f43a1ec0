//! Redis over monoio sockets.
//!
//! The `redis` crate's async connections need tokio, so it is used here only to pack
//! commands ([`redis::Cmd`], [`redis::Pipeline`]) and to parse replies
//! ([`redis::parse_redis_value`]). The bytes travel over a [`net::Stream`] (TCP or
//! Unix). A connection speaks RESP2 (it never sends `HELLO 3`), so every reply is a
//! simple string, an error, an integer, a bulk string or an array of those.
//!
//! - [`target`]: [`RedisTarget`], where Redis listens (an address and a database),
//!   parsed from `REDIS_URL`.
//! - [`conn`]: [`RedisConn`], one connection used one command (or pipeline) at a time.
//! - [`frame`]: [`frame_len`], where each RESP2 reply ends in the bytes received, and
//!   the bounds on a reply's size and nesting.
//! - [`error`]: [`RespError`], why a command got no usable reply.

pub mod conn;
pub mod error;
pub mod frame;
pub mod target;

pub use conn::RedisConn;
pub use error::RespError;
pub use frame::{frame_len, MAX_NESTING, MAX_REPLY_BYTES};
pub use target::{RedisTarget, DEFAULT_PORT};
