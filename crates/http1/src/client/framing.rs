//! Response heads: how the body of a response is delimited ([`Framing`]) and what the
//! client keeps of a final head ([`ResponseHead`]), parsed with `httparse`.

use super::{ClientError, MAX_RESPONSE_BYTES};

/// Response header fields parsed. Processors send under ten; more means a peer we do not
/// understand.
const MAX_HEADERS: usize = 32;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection (no length given).
    UntilEof,
}

/// What the client needs from a final response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
    pub framing: Framing,
}

/// Parses a response head at the start of `buf`: `None` when more bytes are needed, else
/// the head's length and what it says. `no_body` is set for responses to HEAD.
pub fn parse_head(buf: &[u8], no_body: bool) -> Result<Option<(usize, ResponseHead)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientError::BadResponse(describe_parse_error(e))),
    };
    let status = response.code.unwrap_or(0);
    // Three digits, but no class below 1xx exists (RFC 9110 section 15).
    if status < 100 {
        return Err(ClientError::BadResponse("status code below 100"));
    }
    if status == 101 {
        return Err(ClientError::BadResponse(
            "unexpected 101 Switching Protocols",
        ));
    }
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(header.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(ClientError::BadResponse(
                    "conflicting Content-Length values",
                ));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The last coding of the last field decides whether the body is chunked.
            if let Some(last) = tokens(header.value).last() {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close |= tokens(header.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let framing = if no_body || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if transfer_encoding {
        // A coding other than a final chunked one is delimited by the end of the connection.
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilEof
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::UntilEof
    };
    let head = ResponseHead {
        status,
        keep_alive: response.version == Some(1) && !close,
        framing,
    };
    Ok(Some((len, head)))
}

fn describe_parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::Version => "not an HTTP/1.x response",
        httparse::Error::Status => "invalid status code",
        httparse::Error::TooManyHeaders => "too many response header fields",
        httparse::Error::HeaderName | httparse::Error::HeaderValue => "invalid response header",
        _ => "invalid response head",
    }
}

/// Comma-separated list elements of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// A Content-Length value: decimal digits, or a list of identical ones.
fn parse_content_length(value: &[u8]) -> Result<usize, ClientError> {
    const BAD: ClientError = ClientError::BadResponse("invalid Content-Length");
    let mut result = None;
    for token in value.split(|&b| b == b',').map(|t| t.trim_ascii()) {
        if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
            return Err(BAD);
        }
        let mut n: usize = 0;
        for &digit in token {
            n = n * 10 + usize::from(digit - b'0');
            if n > MAX_RESPONSE_BYTES {
                return Err(ClientError::BadResponse(
                    "Content-Length larger than MAX_RESPONSE_BYTES",
                ));
            }
        }
        if result.is_some_and(|prev| prev != n) {
            return Err(ClientError::BadResponse(
                "conflicting Content-Length values",
            ));
        }
        result = Some(n);
    }
    result.ok_or(BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_table() {
        let table: &[(&[u8], Option<usize>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b" 7 ", Some(7)),
            (b"5, 5", Some(5)),
            (b"65536", Some(MAX_RESPONSE_BYTES)),
            (b"65537", None),
            (b"99999999999999999999999", None),
            (b"", None),
            (b"-1", None),
            (b"+1", None),
            (b"1 2", None),
            (b"5, 6", None),
            (b"5,", None),
            (b"0x10", None),
        ];
        for &(value, want) in table {
            let got = parse_content_length(value).ok();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn head_table() {
        let table: &[(&[u8], bool, ResponseHead)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                ResponseHead {
                    status: 200, keep_alive: true, framing: Framing::Length(3) },
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n",
                false,
                ResponseHead {
                    status: 200, keep_alive: true, framing: Framing::Chunked },
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                ResponseHead {
                    status: 200, keep_alive: true, framing: Framing::UntilEof },
            ),
            (
                b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false,
                ResponseHead {
                    status: 500, keep_alive: false, framing: Framing::Length(0) },
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                ResponseHead {
                    status: 200, keep_alive: true, framing: Framing::Empty },
            ),
            (
                b"HTTP/1.0 429 Too Many Requests\r\n\r\n",
                false,
                ResponseHead {
                    status: 429, keep_alive: false, framing: Framing::UntilEof },
            ),
        ];
        for (input, no_body, want) in table {
            let (len, head) = parse_head(input, *no_body).unwrap().unwrap();
            assert_eq!(len, input.len());
            assert_eq!(&head, want, "{:?}", String::from_utf8_lossy(input));
            // Every proper prefix needs more bytes.
            for cut in 0..input.len() {
                assert!(parse_head(&input[..cut], *no_body).unwrap().is_none());
            }
        }
    }

    /// Found by the `http_response_head` fuzz target: `000` has three digits, so httparse
    /// reads it, but it is no status.
    #[test]
    fn status_below_100_is_refused() {
        for head in [
            &b"HTTP/1.1 000 X\r\n\r\n"[..],
            b"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(matches!(
                parse_head(head, false),
                Err(ClientError::BadResponse("status code below 100"))
            ));
        }
    }
}
