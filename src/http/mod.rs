//! HTTP/1.1: our own request parser, response encoding, and a keep-alive client.

pub mod client;
pub mod request;
pub mod response;
