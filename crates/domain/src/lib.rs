//! The payment vocabulary that the gateway and the processor simulator share, so that
//! both read and write the processors' JSON the same way.
//!
//! - [`money`]: amounts in integer cents, parsed from and written as JSON numbers, and
//!   fee rates.
//! - [`time`]: instants in microseconds since the epoch, parsed from and written as
//!   ISO-8601.
//! - [`id`]: correlationIds as 128-bit integers, and their text form.

pub mod id;
pub mod money;
pub mod time;
