//! Why a command got no usable reply.

use std::fmt;

/// Why a command got no usable reply.
#[derive(Debug)]
pub enum RespError {
    /// The socket failed or the server closed it.
    Io(std::io::Error),
    /// The bytes received are not a valid RESP2 reply (or exceed [`MAX_REPLY_BYTES`](crate::frame::MAX_REPLY_BYTES)).
    Protocol(String),
    /// Redis answered with an error reply (`-ERR ...`), given without the leading `-`.
    Server(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "i/o error: {e}"),
            RespError::Protocol(e) => write!(f, "protocol error: {e}"),
            RespError::Server(e) => write!(f, "server error: {e}"),
        }
    }
}

impl std::error::Error for RespError {}

impl From<std::io::Error> for RespError {
    fn from(e: std::io::Error) -> Self {
        RespError::Io(e)
    }
}
