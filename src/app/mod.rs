//! App: configuration, per-core state, startup and metrics.
pub mod config;
pub mod metrics;
pub mod start;
pub mod state;
