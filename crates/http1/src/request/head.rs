//! The request head scanner: request line and header block in one pass, bounded and
//! allocation-free, with the few header values the parser interprets.

use super::{Error, Method, MAX_HEADERS};

/// What the head says, before the body is looked at.
pub(super) struct RequestHead<'b> {
    pub(super) method: Method,
    pub(super) path: &'b [u8],
    pub(super) query: Option<&'b [u8]>,
    pub(super) minor_version: u8,
    pub(super) content_length: usize,
    /// A Connection header lists "close".
    pub(super) close: bool,
    /// A Connection header lists "keep-alive".
    pub(super) keep_alive_token: bool,
    pub(super) headers: &'b [u8],
    pub(super) head_len: usize,
}

/// The headers whose values the parser itself interprets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    ContentLength,
    Connection,
    Other,
}

/// Reading a Content-Length value byte by byte, so that a bad one is refused as soon as
/// it is seen: optional whitespace, digits, optional whitespace.
#[derive(Clone, Copy)]
enum Length {
    Before,
    Digits(usize),
    After(usize),
}

impl Length {
    fn feed(self, c: u8) -> Result<Length, Error> {
        let ows = c == b' ' || c == b'\t';
        match self {
            Length::Before if ows => Ok(Length::Before),
            Length::Before => Length::Digits(0).feed(c),
            Length::Digits(n) if ows => Ok(Length::After(n)),
            Length::Digits(n) if c.is_ascii_digit() => n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .map(Length::Digits)
                .ok_or(Error::ContentLength),
            Length::After(n) if ows => Ok(Length::After(n)),
            _ => Err(Error::ContentLength),
        }
    }

    fn finish(self) -> Result<usize, Error> {
        match self {
            Length::Before => Err(Error::ContentLength),
            Length::Digits(n) | Length::After(n) => Ok(n),
        }
    }
}

/// Unwraps a byte or a position; `None` means the buffer ended first: Partial.
macro_rules! or_partial {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// Parses the head at the start of `b`; `Ok(None)` means it is not complete in `b`.
pub(super) fn parse_head(b: &[u8]) -> Result<Option<RequestHead<'_>>, Error> {
    let mut pos = 0;

    // Empty lines before the request line are ignored (RFC 9112 §2.2).
    loop {
        match *or_partial!(b.get(pos)) {
            b'\n' => pos += 1,
            b'\r' => pos = or_partial!(line_end(b, pos)?),
            _ => break,
        }
    }

    // Method: a token followed by one space.
    let start = pos;
    pos = or_partial!(scan(b, pos, TCHAR));
    if b[pos] != b' ' {
        return Err(Error::Method);
    }
    if pos == start {
        return Err(Error::Method);
    }
    let method = Method::from_token(&b[start..pos]);
    pos += 1;

    // Target: origin-form, visible ASCII, followed by one space.
    let start = pos;
    if *or_partial!(b.get(pos)) != b'/' {
        return Err(Error::Target);
    }
    let mut question = None;
    loop {
        match *or_partial!(b.get(pos)) {
            b' ' => break,
            b'\r' | b'\n' => return Err(Error::NewLine),
            b'?' if question.is_none() => question = Some(pos),
            0x21..=0x7E => {}
            _ => return Err(Error::Target),
        }
        pos += 1;
    }
    let (path, query) = match question {
        Some(q) => (&b[start..q], Some(&b[q + 1..pos])),
        None => (&b[start..pos], None),
    };
    pos += 1;

    // Version: exactly "HTTP/" DIGIT "." DIGIT, then the line ends.
    const SHAPE: &[u8; 8] = b"HTTP/d.d";
    for (i, &want) in SHAPE.iter().enumerate() {
        let c = *or_partial!(b.get(pos + i));
        let fits = if want == b'd' {
            c.is_ascii_digit()
        } else {
            c == want
        };
        if !fits {
            return Err(Error::NewLine);
        }
    }
    let (major, minor) = (b[pos + 5], b[pos + 7]);
    if major != b'1' || minor > b'1' {
        return Err(Error::Version);
    }
    let minor_version = minor - b'0';
    pos = or_partial!(line_end(b, pos + SHAPE.len())?);

    // Header lines up to the blank line.
    let headers_start = pos;
    let mut count = 0;
    let mut content_length = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let headers_end = loop {
        match *or_partial!(b.get(pos)) {
            b'\r' | b'\n' => {
                let blank = pos;
                pos = or_partial!(line_end(b, pos)?);
                break blank;
            }
            // Obsolete line folding, or whitespace before the first header.
            b' ' | b'\t' => return Err(Error::HeaderValue),
            _ => {}
        }
        if count == MAX_HEADERS {
            return Err(Error::TooManyHeaders);
        }

        let name_start = pos;
        pos = or_partial!(scan(b, pos, TCHAR));
        if b[pos] != b':' {
            return Err(Error::HeaderName);
        }
        let name = &b[name_start..pos];
        if name.is_empty() {
            return Err(Error::HeaderName);
        }
        pos += 1;
        let known = if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Error::Chunked);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            Known::ContentLength
        } else if name.eq_ignore_ascii_case(b"connection") {
            Known::Connection
        } else {
            Known::Other
        };

        let value_start = pos;
        let stop = scan(b, pos, VALUE);
        let mut length = Length::Before;
        if known == Known::ContentLength {
            // Fed up to the first byte that is not a value byte (or the end of the
            // buffer), so a bad length is refused as soon as it is seen.
            for &c in &b[value_start..stop.unwrap_or(b.len())] {
                length = length.feed(c)?;
            }
        }
        let value_end = or_partial!(stop);
        if b[value_end] != b'\r' && b[value_end] != b'\n' {
            return Err(Error::HeaderValue);
        }
        pos = or_partial!(line_end(b, value_end)?);

        match known {
            Known::ContentLength => {
                let n = length.finish()?;
                if content_length.is_some_and(|previous| previous != n) {
                    return Err(Error::ContentLength);
                }
                content_length = Some(n);
            }
            Known::Connection => {
                for token in b[value_start..value_end].split(|&c| c == b',') {
                    let token = trim_ows(token);
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Known::Other => {}
        }
        count += 1;
    };

    Ok(Some(RequestHead {
        method,
        path,
        query,
        minor_version,
        content_length: content_length.unwrap_or(0),
        close,
        keep_alive_token,
        headers: &b[headers_start..headers_end],
        head_len: pos,
    }))
}

/// At a line ending (`b[pos]` is CR or LF): where the next line starts. A CR must be
/// followed by LF; `Ok(None)` when the buffer ends before that is known.
fn line_end(b: &[u8], pos: usize) -> Result<Option<usize>, Error> {
    match (b.get(pos), b.get(pos + 1)) {
        (Some(b'\n'), _) => Ok(Some(pos + 1)),
        (Some(b'\r'), Some(b'\n')) => Ok(Some(pos + 2)),
        (Some(b'\r'), None) | (None, _) => Ok(None),
        _ => Err(Error::NewLine),
    }
}

/// Class bit of a `tchar` in [`CLASSES`].
const TCHAR: u8 = 1;
/// Class bit of a header value byte in [`CLASSES`].
const VALUE: u8 = 2;

/// The classes of every byte, so that scanning a token or a value costs one table
/// lookup per byte.
static CLASSES: [u8; 256] = {
    let mut table = [0; 256];
    let mut c = 0;
    while c < 256 {
        let byte = c as u8;
        if is_tchar(byte) {
            table[c] |= TCHAR;
        }
        if is_value_byte(byte) {
            table[c] |= VALUE;
        }
        c += 1;
    }
    table
};

/// Where the first byte at or after `pos` that is not of `class` lies; `None` when the
/// buffer ends first.
#[inline]
fn scan(b: &[u8], pos: usize, class: u8) -> Option<usize> {
    b[pos..]
        .iter()
        .position(|&c| CLASSES[usize::from(c)] & class == 0)
        .map(|n| pos + n)
}

/// RFC 9110 `tchar`: the bytes of methods and header names.
const fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Header value bytes: visible ASCII, obs-text (0x80..=0xFF), SP and HTAB.
const fn is_value_byte(c: u8) -> bool {
    c == b'\t' || (c >= b' ' && c != 0x7F)
}

/// Strips spaces and tabs at both ends.
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
