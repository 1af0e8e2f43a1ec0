//! One connection and one exchange on it: the request written in one write, then the
//! response head and body read, framed as the head says.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use net::Stream;

use super::chunked::ChunkedDecoder;
use super::framing::{parse_head, Framing, ResponseHead};
use super::{ClientError, Response, MAX_RESPONSE_BYTES};

/// Bytes asked of the socket per read. One read holds a whole processor answer (head and
/// JSON body are well under 1 KiB), so a response costs one read syscall.
pub(super) const READ_BUF_BYTES: usize = 4 * 1024;

/// Room reserved for the request line's fixed parts, `Host` and `Content-Length` lines,
/// so that building a request allocates once.
const REQUEST_HEAD_RESERVE: usize = 96;

/// A connection and the bytes received on it but not yet consumed.
pub(super) struct Connection {
    stream: Stream,
    /// Received, unconsumed bytes. Empty between exchanges.
    buf: Vec<u8>,
    /// Bytes received for the current response, checked against [`MAX_RESPONSE_BYTES`].
    received: usize,
}

fn eof_error(received: usize) -> ClientError {
    let why = if received == 0 {
        "connection closed before any response byte"
    } else {
        "connection closed before the response was complete"
    };
    ClientError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, why))
}

impl Connection {
    /// A fresh connection, with room for one read.
    pub(super) fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            buf: Vec::with_capacity(READ_BUF_BYTES),
            received: 0,
        }
    }

    /// Appends received bytes to `buf`. Returns 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        // Ask for one byte past the limit, so that a response of exactly the limit that is
        // framed by EOF still sees its EOF.
        let want = READ_BUF_BYTES.min(MAX_RESPONSE_BYTES + 1 - self.received);
        self.buf.reserve(want);
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let (result, slice) = self.stream.read(buf.slice_mut(len..len + want)).await;
        self.buf = slice.into_inner();
        let n = result.map_err(ClientError::Io)?;
        self.received += n;
        if self.received > MAX_RESPONSE_BYTES {
            return Err(ClientError::BadResponse(
                "response larger than MAX_RESPONSE_BYTES",
            ));
        }
        Ok(n)
    }

    /// Reads up to the head of the final response, skipping 1xx interim responses, and
    /// leaves the bytes after the head in `buf`.
    async fn read_head(&mut self, no_body: bool) -> Result<ResponseHead, ClientError> {
        loop {
            match parse_head(&self.buf, no_body)? {
                Some((len, head)) => {
                    self.buf.drain(..len);
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    return Ok(head);
                }
                None => {
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
            }
        }
    }

    /// Reads the body framed by `framing`; bytes after it stay in `buf`.
    async fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, ClientError> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => {
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
                let body = self.buf[..n].to_vec();
                self.buf.drain(..n);
                Ok(body)
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let used = decoder
                        .feed(&self.buf, &mut body)
                        .map_err(ClientError::BadResponse)?;
                    self.buf.drain(..used);
                    if decoder.is_done() {
                        return Ok(body);
                    }
                    if self.fill().await? == 0 {
                        return Err(eof_error(self.received));
                    }
                }
            }
            Framing::UntilEof => {
                while self.fill().await? != 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Writes the request and reads its response. Returns the connection when it may be reused.
    pub(super) async fn exchange(
        mut self,
        request: Vec<u8>,
        no_body: bool,
    ) -> Result<(Response, Option<Connection>), ClientError> {
        let (written, _) = self.stream.write_all(request).await;
        written.map_err(ClientError::Io)?;
        self.received = 0;
        let head = self.read_head(no_body).await?;
        let body = self.read_body(head.framing).await?;
        let reusable = head.keep_alive && head.framing != Framing::UntilEof && self.buf.is_empty();
        // An idle connection keeps at most one read buffer's worth of memory.
        self.buf.shrink_to(READ_BUF_BYTES);
        let response = Response {
            status: head.status,
            body,
        };
        Ok((response, reusable.then_some(self)))
    }
}

/// The request head and body in one buffer, so that one write sends both.
pub(super) fn encode_request(
    method: &str,
    path: &str,
    host: &str,
    head_extra: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut req = Vec::with_capacity(
        REQUEST_HEAD_RESERVE
            + method.len()
            + path.len()
            + host.len()
            + head_extra.len()
            + body.len(),
    );
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(head_extra.as_bytes());
    let method_has_body = method.eq_ignore_ascii_case("POST") || method.eq_ignore_ascii_case("PUT");
    if !body.is_empty() || method_has_body {
        req.extend_from_slice(b"Content-Length: ");
        req.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        let got = encode_request("PUT", "/x?y=1", "h:1", "A: b\r\n", b"");
        assert_eq!(
            got,
            b"PUT /x?y=1 HTTP/1.1\r\nHost: h:1\r\nA: b\r\nContent-Length: 0\r\n\r\n"
        );
        let got = encode_request("DELETE", "/x", "h:1", "", b"zz");
        assert_eq!(
            got,
            b"DELETE /x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nzz"
        );
    }
}
