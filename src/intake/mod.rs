//! Intake: the client-facing request path.
pub mod body;
pub mod handoff;
pub mod routes;
