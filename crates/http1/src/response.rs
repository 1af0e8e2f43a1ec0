//! Response encoding: pre-serialized answers for the hot path, and a small writer for
//! everything else. It mirrors [`super::request`]: what the parser reads, this writes.

/// The answer to an accepted payment: written as one constant slice.
pub const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

/// Where a handler writes its answer. Every answer is complete (status line, headers,
/// body) and is appended to the connection's output buffer, so pipelined answers leave
/// in one write.
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    /// The connection closes after this answer: the answer says so.
    close: bool,
}

impl<'a> Reply<'a> {
    pub fn new(out: &'a mut Vec<u8>, close: bool) -> Reply<'a> {
        Reply { out, close }
    }

    /// Appends a pre-serialized keep-alive answer (one of this module's constants).
    /// When the connection is closing, the header that says so is added.
    pub fn preserialized(&mut self, bytes: &'static [u8]) {
        if self.close {
            // Insert "Connection: close" before the blank line that ends the head.
            let head_end = bytes.len() - 2;
            self.out.extend_from_slice(&bytes[..head_end]);
            self.out.extend_from_slice(b"Connection: close\r\n\r\n");
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Appends an answer with a JSON body.
    pub fn json(&mut self, status: u16, body: &[u8]) {
        self.head(status, Some("application/json"), body.len());
        self.out.extend_from_slice(body);
    }

    /// Appends an answer with a plain-text body.
    pub fn text(&mut self, status: u16, body: &[u8]) {
        self.head(status, Some("text/plain; charset=utf-8"), body.len());
        self.out.extend_from_slice(body);
    }

    /// Appends an answer without a body.
    pub fn empty(&mut self, status: u16) {
        self.head(status, None, 0);
    }

    /// Appends `{"error":"<reason>"}` with `status`. `reason` is one of our own
    /// messages; it is escaped anyway.
    pub fn error(&mut self, status: u16, reason: &str) {
        let mut body = Vec::with_capacity(reason.len() + 12);
        body.extend_from_slice(b"{\"error\":");
        write_json_str(&mut body, reason);
        body.push(b'}');
        self.json(status, &body);
    }

    /// Appends an answer with extra header lines (each "Name: value\r\n").
    pub fn with_headers(&mut self, status: u16, headers: &str, content_type: &str, body: &[u8]) {
        self.status_line(status);
        self.out.extend_from_slice(headers.as_bytes());
        self.rest_of_head(Some(content_type), body.len());
        self.out.extend_from_slice(body);
    }

    fn head(&mut self, status: u16, content_type: Option<&str>, len: usize) {
        self.status_line(status);
        self.rest_of_head(content_type, len);
    }

    fn status_line(&mut self, status: u16) {
        self.out.extend_from_slice(b"HTTP/1.1 ");
        self.out
            .extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(reason_phrase(status).as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn rest_of_head(&mut self, content_type: Option<&str>, len: usize) {
        if let Some(ct) = content_type {
            self.out.extend_from_slice(b"Content-Type: ");
            self.out.extend_from_slice(ct.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"Content-Length: ");
        self.out
            .extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        if self.close {
            self.out.extend_from_slice(b"\r\nConnection: close");
        }
        self.out.extend_from_slice(b"\r\n\r\n");
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// The reason phrase of every status this product sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserialized_gets_close_header_when_closing() {
        let mut out = Vec::new();
        Reply::new(&mut out, false).preserialized(ACCEPTED);
        assert_eq!(out, ACCEPTED);
        out.clear();
        Reply::new(&mut out, true).preserialized(ACCEPTED);
        assert_eq!(
            out,
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn error_body_is_escaped_json() {
        let mut out = Vec::new();
        Reply::new(&mut out, false).error(400, "bad \"x\"\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"bad \\\"x\\\"\\u000a\"}"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "bad \"x\"\n");
    }
}
