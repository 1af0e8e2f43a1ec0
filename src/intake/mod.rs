//! Intake: the client-facing request path, and the internal plane beside it.
pub mod body;
pub mod handoff;
pub mod internal;
pub mod routes;
pub mod token;
