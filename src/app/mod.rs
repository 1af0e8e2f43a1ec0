//! App: configuration, per-core state, startup and metrics.
pub mod config;
pub mod core;
pub mod metrics;
pub mod start;
