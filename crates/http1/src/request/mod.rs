//! HTTP/1.1 request parsing: the gateway's own parser for request heads and
//! `Content-Length` bodies.
//!
//! # Design
//!
//! [`parse`] reads one request from the start of a buffer holding everything received on a
//! connection so far. The server calls it again each time more bytes arrive, and after a
//! complete request it calls it on `&buf[req.len()..]` for the next pipelined request.
//!
//! - **Partial is not an error.** When the bytes so far are a valid beginning of a request
//!   but the head or the body is not all there, the answer is [`Status::Partial`]. Every
//!   strict prefix of a valid request is `Partial`, so a request split at any byte works.
//! - **Errors come early and stay.** An [`Error`] is returned as soon as the bytes seen make
//!   it certain (a bad byte in the method is rejected before the line ends, an oversized
//!   `Content-Length` before the body arrives). Once a prefix gives an error, every longer
//!   buffer gives the same error, so the answer does not depend on how reads were split.
//!   Each error knows the HTTP status to answer with ([`Error::status`]) and a short
//!   reason for the JSON body ([`Error::reason`]); the connection is closed after it.
//! - **Bounded work.** The head is scanned only within its first [`MAX_HEAD_BYTES`], the
//!   body is a slice of at most [`MAX_BODY_BYTES`], and headers are counted up to
//!   [`MAX_HEADERS`]. Parsing is one pass, allocates nothing and never panics; a repeated
//!   call on a grown buffer costs at most one more scan of a bounded head.
//! - **Narrow on purpose.** Only origin-form targets, HTTP/1.0 and 1.1, and
//!   `Content-Length` bodies: any `Transfer-Encoding` is refused with 411, which tells the
//!   client to send a length. Line endings may be CRLF or bare LF.
//!
//! The parser itself interprets only `Content-Length`, `Transfer-Encoding` and
//! `Connection`. The validated header block is kept as bytes in [`Request`] and
//! [`Request::header`] scans it on demand, which is cheap for the few headers a handler
//! looks at and keeps parsing free of allocation and of a fixed header array.
//!
//! This module holds the limits, [`Request`], [`Error`] and [`parse`]; inside it,
//! `head` is the one-pass scanner of the request line and header block, and `query`
//! holds [`query_param`].

mod head;
mod query;

pub use query::query_param;

use head::{parse_head, trim_ows};

/// Longest request head (request line + headers + blank line) accepted; beyond: 431.
/// Our clients send heads of a few hundred bytes; 8 KiB is the usual server default and
/// bounds the scan of a head that never ends.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most header lines accepted; beyond: 431. Real clients send about ten; the cap bounds
/// work spent on a head made of many tiny lines.
pub const MAX_HEADERS: usize = 64;
/// Largest body accepted (payment bodies are ~80 bytes; admin bodies smaller); beyond: 413.
/// It also bounds how much a connection buffers for one request.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The outcome of a parse that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole request (head and body) is in the buffer.
    Complete(T),
    /// The buffer holds a valid beginning of a request: read more bytes and parse again.
    Partial,
}

/// Why a request was refused. Every variant is final: the connection answers with
/// [`Error::status`] and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The method is empty or holds a byte outside the token set.
    Method,
    /// The target is not origin-form (`/` followed by visible ASCII).
    Target,
    /// A well-formed `HTTP/x.y` other than 1.0 and 1.1.
    Version,
    /// A header name is empty, holds a non-token byte, or whitespace precedes the colon.
    HeaderName,
    /// A header value holds a control byte, or a line is folded (starts with SP/HTAB).
    HeaderValue,
    /// A line does not end where it must: a CR without LF, text after the version, or a
    /// request line whose third field is not `HTTP/d.d`.
    NewLine,
    /// The head is longer than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// `Content-Length` is not a plain decimal number, or several disagree.
    ContentLength,
    /// A `Transfer-Encoding` header: only `Content-Length` bodies are supported.
    Chunked,
    /// `Content-Length` exceeds [`MAX_BODY_BYTES`].
    BodyTooLarge,
}

impl Error {
    /// The HTTP status to answer with: 400 for syntax errors, 431 HeadTooLarge/TooManyHeaders,
    /// 411 Chunked (any Transfer-Encoding header: we only support Content-Length bodies),
    /// 413 BodyTooLarge, 505 Version (a well-formed HTTP/x.y other than 1.0/1.1).
    pub fn status(self) -> u16 {
        match self {
            Error::Method
            | Error::Target
            | Error::HeaderName
            | Error::HeaderValue
            | Error::NewLine
            | Error::ContentLength => 400,
            Error::Chunked => 411,
            Error::BodyTooLarge => 413,
            Error::HeadTooLarge | Error::TooManyHeaders => 431,
            Error::Version => 505,
        }
    }

    /// Short English reason for a JSON error body, e.g. "malformed request line".
    pub fn reason(self) -> &'static str {
        match self {
            Error::Method => "malformed request method",
            Error::Target => "malformed request target",
            Error::Version => "unsupported HTTP version",
            Error::HeaderName => "malformed header name",
            Error::HeaderValue => "malformed header value",
            Error::NewLine => "malformed request line or line ending",
            Error::HeadTooLarge => "request head too large",
            Error::TooManyHeaders => "too many headers",
            Error::ContentLength => "invalid Content-Length",
            Error::Chunked => "Transfer-Encoding is not supported; send Content-Length",
            Error::BodyTooLarge => "request body too large",
        }
    }
}

/// The request method. Methods are case-sensitive: `get` is a valid token but not `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    /// Any other valid token.
    Other,
}

impl Method {
    fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// One complete request, borrowed from the connection's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'b> {
    pub method: Method,
    /// Path part of the origin-form target, before any '?', still percent-encoded.
    pub path: &'b [u8],
    /// Query string after '?', without the '?', if any.
    pub query: Option<&'b [u8]>,
    /// 0 or 1.
    pub minor_version: u8,
    /// 0 when absent.
    pub content_length: usize,
    /// Whether the connection stays open after this request: HTTP/1.1 unless a Connection
    /// header lists "close"; HTTP/1.0 only if it lists "keep-alive". Token lists are
    /// comma-separated and case-insensitive.
    pub keep_alive: bool,
    /// Bytes of the head, including the blank line (and any leading empty lines skipped).
    pub head_len: usize,
    /// The body: exactly `content_length` bytes following the head.
    pub body: &'b [u8],
    /// The validated header lines, from the first one to the blank line (excluded).
    headers: &'b [u8],
}

impl<'b> Request<'b> {
    /// Value of the first header with this name (ASCII case-insensitive), trimmed of spaces
    /// and tabs.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        let headers: &'b [u8] = self.headers;
        for line in headers.split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                continue;
            };
            if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                return Some(trim_ows(&line[colon + 1..]));
            }
        }
        None
    }

    /// head_len + content_length: where the next pipelined request starts.
    // A parsed request is never empty, so an `is_empty` would always say false.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.head_len + self.content_length
    }
}

/// Parses one request at the start of `buf`. Complete only when the head AND the whole body
/// are in `buf`.
pub fn parse(buf: &[u8]) -> Result<Status<Request<'_>>, Error> {
    // A head that fits must lie within the first MAX_HEAD_BYTES; never look further.
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let head = match parse_head(window)? {
        Some(head) => head,
        None if buf.len() >= MAX_HEAD_BYTES => return Err(Error::HeadTooLarge),
        None => return Ok(Status::Partial),
    };
    if head.content_length > MAX_BODY_BYTES {
        return Err(Error::BodyTooLarge);
    }
    // Both terms are bounded by the limits above: no overflow.
    let end = head.head_len + head.content_length;
    let Some(body) = buf.get(head.head_len..end) else {
        return Ok(Status::Partial);
    };
    let keep_alive = match head.minor_version {
        1 => !head.close,
        _ => head.keep_alive_token && !head.close,
    };
    Ok(Status::Complete(Request {
        method: head.method,
        path: head.path,
        query: head.query,
        minor_version: head.minor_version,
        content_length: head.content_length,
        keep_alive,
        head_len: head.head_len,
        body,
        headers: head.headers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal payment-shaped POST, used to build pipelines.
    const PAYMENT: &[u8] = b"POST /payments HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 71\r\n\r\n{\"correlationId\":\"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3\",\"amount\":19.90}";

    fn complete(buf: &[u8]) -> Request<'_> {
        match parse(buf) {
            Ok(Status::Complete(req)) => req,
            other => panic!(
                "expected Complete for {:?}, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    /// A GET whose head is exactly `total` bytes.
    fn head_of_len(total: usize) -> Vec<u8> {
        let mut v = b"GET / HTTP/1.1\r\nX: ".to_vec();
        v.resize(total - 4, b'a');
        v.extend_from_slice(b"\r\n\r\n");
        assert_eq!(v.len(), total);
        v
    }

    /// A GET with `n` header lines.
    fn with_headers(n: usize) -> Vec<u8> {
        let mut v = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            v.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    /// A POST with a body of `n` bytes.
    fn with_body(n: usize) -> Vec<u8> {
        let mut v = format!("POST /admin HTTP/1.1\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        v.resize(v.len() + n, b'b');
        v
    }

    /// `n` empty lines, then a request.
    fn after_empty_lines(n: usize) -> Vec<u8> {
        let mut v = b"\r\n".repeat(n);
        v.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        v
    }

    /// Checks one valid request, every strict prefix of it, and that bytes after it
    /// (the next pipelined request) change nothing.
    #[allow(clippy::too_many_arguments)]
    fn check_valid(
        input: &[u8],
        method: Method,
        path: &str,
        query: Option<&str>,
        minor: u8,
        content_length: usize,
        keep_alive: bool,
    ) {
        let req = complete(input);
        assert_eq!(req.method, method);
        assert_eq!(req.path, path.as_bytes());
        assert_eq!(req.query, query.map(str::as_bytes));
        assert_eq!(req.minor_version, minor);
        assert_eq!(req.content_length, content_length);
        assert_eq!(req.keep_alive, keep_alive);
        assert_eq!(req.len(), input.len(), "the row is exactly one request");
        assert_eq!(req.head_len + req.body.len(), input.len());
        assert_eq!(req.body, &input[req.head_len..]);
        for cut in 0..input.len() {
            assert_eq!(
                parse(&input[..cut]),
                Ok(Status::Partial),
                "prefix of {cut} bytes"
            );
        }
        for next in [PAYMENT, b"garbage \x00", b"\r"] {
            let mut both = input.to_vec();
            both.extend_from_slice(next);
            assert_eq!(complete(&both), req);
        }
    }

    /// Checks that `input` fails with `error` answered by `status`, and that every prefix
    /// is either Partial or the same error (errors do not depend on read boundaries).
    fn check_invalid(input: &[u8], error: Error, status: u16) {
        assert_eq!(
            parse(input).map(|_| ()),
            Err(error),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(error.status(), status);
        assert!(!error.reason().is_empty());
        for cut in 0..input.len() {
            match parse(&input[..cut]) {
                Ok(Status::Partial) => {}
                Err(e) if e == error => {}
                other => panic!("prefix of {cut} bytes gave {other:?}"),
            }
        }
    }

    macro_rules! valid {
        ($($name:ident: $input:expr => ($method:ident, $path:expr, $query:expr, minor $minor:literal, cl $cl:expr, ka $ka:expr);)*) => {
            $(
                #[test]
                fn $name() {
                    check_valid(&$input[..], Method::$method, $path, $query, $minor, $cl, $ka);
                }
            )*
        };
    }

    macro_rules! invalid {
        ($($name:ident: $input:expr => $error:ident $status:literal;)*) => {
            $(
                #[test]
                fn $name() {
                    check_invalid(&$input[..], Error::$error, $status);
                }
            )*
        };
    }

    valid! {
        get_root: b"GET / HTTP/1.1\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        get_http10: b"GET / HTTP/1.0\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka false);
        get_with_host: b"GET /health HTTP/1.1\r\nHost: localhost:9999\r\n\r\n" => (Get, "/health", None, minor 1, cl 0, ka true);
        summary_query: b"GET /payments-summary?from=2020-07-10T12:34:56.000Z&to=2020-07-10T12:35:56.000Z HTTP/1.1\r\nHost: gw\r\n\r\n"
            => (Get, "/payments-summary", Some("from=2020-07-10T12:34:56.000Z&to=2020-07-10T12:35:56.000Z"), minor 1, cl 0, ka true);
        empty_query: b"GET /a? HTTP/1.1\r\n\r\n" => (Get, "/a", Some(""), minor 1, cl 0, ka true);
        question_in_query: b"GET /a?b=1?c HTTP/1.1\r\n\r\n" => (Get, "/a", Some("b=1?c"), minor 1, cl 0, ka true);
        percent_encoded_path: b"GET /payments/a%2Fb HTTP/1.1\r\n\r\n" => (Get, "/payments/a%2Fb", None, minor 1, cl 0, ka true);
        path_sub_delims: b"GET /a;b,c=d!$'()*+~ HTTP/1.1\r\n\r\n" => (Get, "/a;b,c=d!$'()*+~", None, minor 1, cl 0, ka true);
        payment_post: PAYMENT => (Post, "/payments", None, minor 1, cl 71, ka true);
        post_empty_body: b"POST /purge-payments HTTP/1.1\r\nContent-Length: 0\r\n\r\n" => (Post, "/purge-payments", None, minor 1, cl 0, ka true);
        post_without_length: b"POST /purge-payments HTTP/1.1\r\n\r\n" => (Post, "/purge-payments", None, minor 1, cl 0, ka true);
        get_with_body: b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" => (Get, "/", None, minor 1, cl 3, ka true);
        body_one_byte: with_body(1) => (Post, "/admin", None, minor 1, cl 1, ka true);
        body_at_limit: with_body(MAX_BODY_BYTES) => (Post, "/admin", None, minor 1, cl MAX_BODY_BYTES, ka true);
        body_with_crlf: b"PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\n\r\n\r\n" => (Put, "/x", None, minor 1, cl 4, ka true);
        length_leading_zeros: b"POST / HTTP/1.1\r\nContent-Length: 002\r\n\r\nok" => (Post, "/", None, minor 1, cl 2, ka true);
        length_with_ows: b"POST / HTTP/1.1\r\nContent-Length: \t 2 \t\r\n\r\nok" => (Post, "/", None, minor 1, cl 2, ka true);
        length_no_space: b"POST / HTTP/1.1\r\ncontent-length:2\r\n\r\nok" => (Post, "/", None, minor 1, cl 2, ka true);
        length_repeated_same: b"POST / HTTP/1.1\r\nContent-Length: 2\r\nCONTENT-LENGTH: 02\r\n\r\nok" => (Post, "/", None, minor 1, cl 2, ka true);
        http10_keep_alive: b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka true);
        http10_keep_alive_mixed_case: b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka true);
        http10_keep_alive_in_list: b"GET / HTTP/1.0\r\nConnection: te , KEEP-ALIVE\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka true);
        http10_close: b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka false);
        http10_other_token: b"GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka false);
        http10_keep_alive_and_close: b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n" => (Get, "/", None, minor 0, cl 0, ka false);
        http11_close: b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka false);
        http11_close_upper: b"GET / HTTP/1.1\r\nCONNECTION: CLOSE\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka false);
        http11_close_in_list: b"GET / HTTP/1.1\r\nConnection: upgrade,\tclose \r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka false);
        http11_keep_alive: b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        http11_closed_not_close: b"GET / HTTP/1.1\r\nConnection: closed, xclose\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        http11_close_in_other_header: b"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        bare_lf: b"POST /p HTTP/1.1\nContent-Length: 2\n\nok" => (Post, "/p", None, minor 1, cl 2, ka true);
        mixed_line_endings: b"GET / HTTP/1.1\nA: 1\r\nB: 2\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        leading_crlf: b"\r\n\r\nGET / HTTP/1.1\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        leading_lf: b"\n\nGET / HTTP/1.1\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        method_head: b"HEAD / HTTP/1.1\r\n\r\n" => (Head, "/", None, minor 1, cl 0, ka true);
        method_put: b"PUT / HTTP/1.1\r\n\r\n" => (Put, "/", None, minor 1, cl 0, ka true);
        method_delete: b"DELETE /x HTTP/1.1\r\n\r\n" => (Delete, "/x", None, minor 1, cl 0, ka true);
        method_patch: b"PATCH /x HTTP/1.1\r\n\r\n" => (Patch, "/x", None, minor 1, cl 0, ka true);
        method_options: b"OPTIONS / HTTP/1.1\r\n\r\n" => (Options, "/", None, minor 1, cl 0, ka true);
        method_other: b"PURGE / HTTP/1.1\r\n\r\n" => (Other, "/", None, minor 1, cl 0, ka true);
        method_lowercase_is_other: b"get / HTTP/1.1\r\n\r\n" => (Other, "/", None, minor 1, cl 0, ka true);
        method_tchars: b"M-SEARCH!#$%&'*+.^_`|~9 / HTTP/1.1\r\n\r\n" => (Other, "/", None, minor 1, cl 0, ka true);
        empty_header_value: b"GET / HTTP/1.1\r\nX-Empty:\r\nY:   \r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        obs_text_value: b"GET / HTTP/1.1\r\nX-Name: Jos\xc3\xa9 \xff\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        tabs_in_value: b"GET / HTTP/1.1\r\nX-T:\tab\tc\t\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        header_name_tchars: b"GET / HTTP/1.1\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n" => (Get, "/", None, minor 1, cl 0, ka true);
        headers_at_limit: with_headers(MAX_HEADERS) => (Get, "/", None, minor 1, cl 0, ka true);
        head_at_limit: head_of_len(MAX_HEAD_BYTES) => (Get, "/", None, minor 1, cl 0, ka true);
        many_leading_empty_lines: after_empty_lines(100) => (Get, "/", None, minor 1, cl 0, ka true);
    }

    invalid! {
        method_empty: b" / HTTP/1.1\r\n\r\n" => Method 400;
        method_bad_byte: b"G@T / HTTP/1.1\r\n\r\n" => Method 400;
        method_bad_byte_early: b"G@" => Method 400;
        method_tab: b"GET\t/ HTTP/1.1\r\n\r\n" => Method 400;
        method_then_newline: b"GET\r\n\r\n" => Method 400;
        method_control: b"\x00GET / HTTP/1.1\r\n\r\n" => Method 400;
        method_non_ascii: b"G\xc3\x89T / HTTP/1.1\r\n\r\n" => Method 400;
        target_asterisk: b"OPTIONS * HTTP/1.1\r\n\r\n" => Target 400;
        target_absolute_form: b"GET http://gw/ HTTP/1.1\r\n\r\n" => Target 400;
        target_absolute_early: b"GET h" => Target 400;
        target_double_space: b"GET  / HTTP/1.1\r\n\r\n" => Target 400;
        target_empty: b"GET \r\n\r\n" => Target 400;
        target_del: b"GET /a\x7f HTTP/1.1\r\n\r\n" => Target 400;
        target_non_ascii: b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n" => Target 400;
        target_tab: b"GET /a\tb HTTP/1.1\r\n\r\n" => Target 400;
        version_2: b"GET / HTTP/2.0\r\n\r\n" => Version 505;
        version_1_2: b"GET / HTTP/1.2\r\n\r\n" => Version 505;
        version_0_9: b"GET / HTTP/0.9\r\n\r\n" => Version 505;
        version_early: b"GET / HTTP/3.0" => Version 505;
        version_lowercase: b"GET / http/1.1\r\n\r\n" => NewLine 400;
        version_two_digits: b"GET / HTTP/11\r\n\r\n" => NewLine 400;
        version_missing: b"GET /\r\n\r\n" => NewLine 400;
        version_trailing_text: b"GET / HTTP/1.1x\r\n\r\n" => NewLine 400;
        version_trailing_space: b"GET / HTTP/1.1 \r\n\r\n" => NewLine 400;
        space_in_target: b"GET /a b HTTP/1.1\r\n\r\n" => NewLine 400;
        double_space_before_version: b"GET /  HTTP/1.1\r\n\r\n" => NewLine 400;
        bare_cr_request_line: b"GET / HTTP/1.1\rHost: x\r\n\r\n" => NewLine 400;
        bare_cr_leading: b"\rGET / HTTP/1.1\r\n\r\n" => NewLine 400;
        bare_cr_in_value: b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n" => NewLine 400;
        bare_cr_blank_line: b"GET / HTTP/1.1\r\nA: b\r\n\r\r\n" => NewLine 400;
        header_space_before_colon: b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" => HeaderName 400;
        header_tab_before_colon: b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n" => HeaderName 400;
        header_empty_name: b"GET / HTTP/1.1\r\n: x\r\n\r\n" => HeaderName 400;
        header_space_in_name: b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n" => HeaderName 400;
        header_without_colon: b"GET / HTTP/1.1\r\nHost\r\n\r\n" => HeaderName 400;
        header_non_token_name: b"GET / HTTP/1.1\r\nH\xc3\xb6: x\r\n\r\n" => HeaderName 400;
        header_bracket_name: b"GET / HTTP/1.1\r\n[x]: y\r\n\r\n" => HeaderName 400;
        header_value_control: b"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n" => HeaderValue 400;
        header_value_nul: b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n" => HeaderValue 400;
        header_value_del: b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n" => HeaderValue 400;
        obs_fold: b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n" => HeaderValue 400;
        obs_fold_tab: b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n" => HeaderValue 400;
        space_before_first_header: b"GET / HTTP/1.1\r\n Host: x\r\n\r\n" => HeaderValue 400;
        head_too_large_complete: head_of_len(MAX_HEAD_BYTES + 1) => HeadTooLarge 431;
        head_too_large_unfinished: head_of_len(MAX_HEAD_BYTES + 100)[..MAX_HEAD_BYTES] => HeadTooLarge 431;
        head_too_large_empty_lines: after_empty_lines(MAX_HEAD_BYTES / 2) => HeadTooLarge 431;
        too_many_headers: with_headers(MAX_HEADERS + 1) => TooManyHeaders 431;
        too_many_headers_early: with_headers(MAX_HEADERS + 1)[..with_headers(MAX_HEADERS).len() - 1] => TooManyHeaders 431;
        length_letters: b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n" => ContentLength 400;
        length_letters_early: b"POST / HTTP/1.1\r\nContent-Length: 1a" => ContentLength 400;
        length_negative: b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n" => ContentLength 400;
        length_plus: b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n" => ContentLength 400;
        length_space_inside: b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n" => ContentLength 400;
        length_empty: b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n" => ContentLength 400;
        length_hex: b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n" => ContentLength 400;
        length_list: b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nok" => ContentLength 400;
        length_overflow: b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n" => ContentLength 400;
        length_conflict: b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok" => ContentLength 400;
        chunked: b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => Chunked 411;
        chunked_with_length: b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok" => Chunked 411;
        transfer_identity: b"POST / HTTP/1.1\r\ntransfer-ENCODING: identity\r\n\r\n" => Chunked 411;
        chunked_early: b"POST / HTTP/1.1\r\nTransfer-Encoding:" => Chunked 411;
        body_too_large: b"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n" => BodyTooLarge 413;
        body_too_large_huge: b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n" => BodyTooLarge 413;
    }

    #[test]
    fn every_status_and_reason() {
        let all = [
            (Error::Method, 400),
            (Error::Target, 400),
            (Error::Version, 505),
            (Error::HeaderName, 400),
            (Error::HeaderValue, 400),
            (Error::NewLine, 400),
            (Error::HeadTooLarge, 431),
            (Error::TooManyHeaders, 431),
            (Error::ContentLength, 400),
            (Error::Chunked, 411),
            (Error::BodyTooLarge, 413),
        ];
        for (error, status) in all {
            assert_eq!(error.status(), status, "{error:?}");
            assert!(error.reason().is_ascii() && !error.reason().is_empty());
        }
    }

    #[test]
    fn pipelined_requests_back_to_back() {
        let mut buf = Vec::new();
        buf.extend_from_slice(PAYMENT);
        buf.extend_from_slice(b"GET /payments-summary?from=a HTTP/1.1\r\n\r\n");
        buf.extend_from_slice(b"\r\nPOST /purge-payments HTTP/1.1\nContent-Length: 2\n\nok");
        buf.extend_from_slice(b"GET /last HTTP/1.0\r\n\r\n");
        buf.extend_from_slice(b"GET /unfinished HTTP/1.1\r\nHo");

        let mut at = 0;
        let mut seen = Vec::new();
        while let Ok(Status::Complete(req)) = parse(&buf[at..]) {
            seen.push((
                req.method,
                req.path.to_vec(),
                req.body.to_vec(),
                req.keep_alive,
            ));
            at += req.len();
        }
        assert_eq!(
            seen,
            [
                (
                    Method::Post,
                    b"/payments".to_vec(),
                    PAYMENT[PAYMENT.len() - 71..].to_vec(),
                    true
                ),
                (Method::Get, b"/payments-summary".to_vec(), Vec::new(), true),
                (
                    Method::Post,
                    b"/purge-payments".to_vec(),
                    b"ok".to_vec(),
                    true
                ),
                (Method::Get, b"/last".to_vec(), Vec::new(), false),
            ]
        );
        assert_eq!(&buf[at..], b"GET /unfinished HTTP/1.1\r\nHo");
        assert_eq!(parse(&buf[at..]), Ok(Status::Partial));
    }

    #[test]
    fn request_fed_in_pieces() {
        // A body arriving in several reads: Partial until the last byte.
        let req = with_body(100);
        let head_len = req.len() - 100;
        for end in [
            1,
            head_len - 1,
            head_len,
            head_len + 1,
            head_len + 50,
            req.len() - 1,
        ] {
            assert_eq!(parse(&req[..end]), Ok(Status::Partial), "{end} bytes");
        }
        assert_eq!(complete(&req).body, &[b'b'; 100][..]);
    }

    #[test]
    fn oversized_body_refused_before_it_arrives() {
        let head = b"POST /payments HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(parse(head), Err(Error::BodyTooLarge));
        // One byte short of the blank line: not certain yet.
        assert_eq!(parse(&head[..head.len() - 1]), Ok(Status::Partial));
    }

    #[test]
    fn header_lookup() {
        let buf = b"POST /payments HTTP/1.1\r\nHost: gw:9999 \r\ncontent-type:\tapplication/json\nX-Empty:\r\nX-Dup: first\r\nx-dup: second\r\nContent-Length: 2\r\n\r\n{}";
        let req = complete(buf);
        assert_eq!(req.header("host"), Some(&b"gw:9999"[..]));
        assert_eq!(req.header("HOST"), Some(&b"gw:9999"[..]));
        assert_eq!(req.header("Content-Type"), Some(&b"application/json"[..]));
        assert_eq!(req.header("x-empty"), Some(&b""[..]));
        assert_eq!(req.header("X-Dup"), Some(&b"first"[..]));
        assert_eq!(req.header("content-length"), Some(&b"2"[..]));
        assert_eq!(req.header("Accept"), None);
        assert_eq!(req.header("Hos"), None);
        assert_eq!(req.header(""), None);
        assert_eq!(req.header("Host: gw"), None);
        assert_eq!(complete(b"GET / HTTP/1.1\r\n\r\n").header("Host"), None);
    }

    /// A deterministic xorshift generator for the robustness test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random requests glued from HTTP-shaped pieces: parsing never panics, and a prefix
    /// never contradicts the whole (an error or a complete request on a prefix is the
    /// same on every longer buffer).
    #[test]
    fn random_inputs_are_consistent_across_prefixes() {
        const PIECES: &[&[u8]] = &[
            b"GET",
            b"POST",
            b" ",
            b"  ",
            b"/",
            b"/payments",
            b"?a=1",
            b"HTTP/1.1",
            b"HTTP/1.0",
            b"HTTP/2.0",
            b"\r\n",
            b"\n",
            b"\r",
            b"\t",
            b":",
            b": ",
            b"Host",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Connection",
            b"close",
            b"keep-alive",
            b",",
            b"0",
            b"7",
            b"99999",
            b"\x00",
            b"\x7f",
            b"\xff",
            b"abc",
            b"GET / HTTP/1.1\r\n",
            b"Content-Length: 3\r\n",
            b"\r\n\r\n",
            b"xyz",
        ];
        const VALID: &[&[u8]] = &[
            PAYMENT,
            b"GET /payments-summary?from=a&to=b HTTP/1.1\r\nHost: gw\r\n\r\n",
            b"POST /p HTTP/1.0\nConnection: keep-alive\nContent-Length: 3\n\nabcGET / HTTP/1.1\r\n\r\n",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut completes, mut errors) = (0, 0);
        for _ in 0..3000 {
            // Half from scratch, half a valid request with a few random edits.
            let mut input = Vec::new();
            if rng.below(2) == 0 {
                for _ in 0..rng.below(24) {
                    if rng.below(8) == 0 {
                        input.push(rng.next() as u8);
                    } else {
                        input.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                    }
                }
            } else {
                input.extend_from_slice(VALID[rng.below(VALID.len())]);
                for _ in 0..rng.below(3) {
                    let at = rng.below(input.len() + 1);
                    if rng.below(2) == 0 {
                        let piece = PIECES[rng.below(PIECES.len())];
                        input.splice(at..at, piece.iter().copied());
                    } else if at < input.len() {
                        input[at] = rng.next() as u8;
                    }
                }
            }
            let whole = parse(&input);
            match whole {
                Ok(Status::Complete(_)) => completes += 1,
                Err(_) => errors += 1,
                Ok(Status::Partial) => {}
            }
            for cut in 0..input.len() {
                match parse(&input[..cut]) {
                    Ok(Status::Partial) => {}
                    Err(e) => assert_eq!(whole.map(|_| ()), Err(e), "{input:?} cut at {cut}"),
                    Ok(Status::Complete(req)) => assert_eq!(whole, Ok(Status::Complete(req))),
                }
            }
        }
        // The generator must reach both outcomes for the check to mean anything.
        assert!(
            completes > 300 && errors > 1000,
            "{completes} complete, {errors} errors"
        );
    }
}
