//! Upstream: the payment processors as the gateway sees them.
pub mod api;
pub mod health;
pub mod report;
