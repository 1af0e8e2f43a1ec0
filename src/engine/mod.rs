//! Engine: the per-core payment path from queue to settlement.
pub mod dispatch;
pub mod pace;
pub mod payment;
pub mod policy;
pub mod queue;
pub mod settle;
pub mod takeover;
pub mod vitals;
