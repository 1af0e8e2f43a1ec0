//! RESP2 reply framing: where each reply in a byte stream ends, so that a reply split
//! across reads at any byte is parsed (by the `redis` crate) only once it is complete.

use crate::error::RespError;

/// Largest single reply a connection accepts. The gateway's replies are tiny; this bound
/// only stops a confused or hostile peer from growing memory without limit, and leaves
/// room for diagnostic commands. Each reply of a pipeline is bounded on its own.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Deepest array nesting [`frame_len`] accepts. The gateway's replies nest at most two
/// deep and Redis's deepest replies (e.g. `COMMAND DOCS`) stay well below this; the bound
/// keeps the scanner's state and the reply parser's recursion small.
pub const MAX_NESTING: usize = 16;

/// Longest decimal length header (`$n` or `*n`) accepted: `u64::MAX` has 20 digits, so
/// anything longer is garbage, rejected before any arithmetic.
const MAX_LENGTH_DIGITS: usize = 20;

/// Length of the complete RESP2 frame at the start of `buf`, `Ok(None)` while more
/// bytes are needed, or an error if the bytes cannot be the start of a RESP2 reply.
///
/// Accepts `+`, `-` and `:` lines, `$n` bulk strings (including the null `$-1`) and `*n`
/// arrays (including the null `*-1`), nested up to [`MAX_NESTING`] deep. The contents of
/// lines are left to the reply parser; lengths are checked here.
///
/// The scan starts over from the frame's first byte after every read. That costs
/// nothing for the gateway's small replies and stays cheap for long bulk strings (their
/// bodies are skipped by length); only huge arrays arriving in many reads pay for it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, RespError> {
    // remaining[d]: values still to come at nesting level d (level 0 is the frame).
    let mut remaining = [0usize; MAX_NESTING + 1];
    let mut depth = 0;
    remaining[0] = 1;
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(line_end) = line_end(buf, pos + 1)? else {
            return Ok(None);
        };
        let line = &buf[pos + 1..line_end - 2];
        match kind {
            b'+' | b'-' | b':' => pos = line_end,
            b'$' => match parse_length(line)? {
                None => pos = line_end,
                Some(n) => {
                    if n > MAX_REPLY_BYTES {
                        return Err(RespError::Protocol(format!(
                            "bulk string of {n} bytes exceeds {MAX_REPLY_BYTES}"
                        )));
                    }
                    let end = line_end + n + 2;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(RespError::Protocol(
                            "bulk string not followed by CRLF".to_owned(),
                        ));
                    }
                    pos = end;
                }
            },
            b'*' => {
                pos = line_end;
                match parse_length(line)? {
                    None | Some(0) => {}
                    Some(n) => {
                        // Every element takes at least 3 bytes (`:0\r\n` is 4).
                        if n > MAX_REPLY_BYTES / 3 {
                            return Err(RespError::Protocol(format!(
                                "array of {n} elements exceeds {MAX_REPLY_BYTES} bytes"
                            )));
                        }
                        if depth == MAX_NESTING {
                            return Err(RespError::Protocol(format!(
                                "arrays nested deeper than {MAX_NESTING}"
                            )));
                        }
                        depth += 1;
                        remaining[depth] = n;
                        continue;
                    }
                }
            }
            other => {
                return Err(RespError::Protocol(format!(
                    "unexpected reply type byte 0x{other:02x}"
                )))
            }
        }
        // One value is complete; so is every array it was the last element of.
        loop {
            remaining[depth] -= 1;
            if remaining[depth] > 0 {
                break;
            }
            if depth == 0 {
                return Ok(Some(pos));
            }
            depth -= 1;
        }
    }
}

/// Index just past the CRLF ending the line that starts at `from`, or `None` if the line
/// is not complete yet. A CR not followed by LF is a protocol error.
fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, RespError> {
    let Some(rest) = buf.get(from..) else {
        return Ok(None);
    };
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(from + cr + 2)),
        Some(_) => Err(RespError::Protocol("CR not followed by LF".to_owned())),
    }
}

/// Parses the length of a `$` or `*` header: `Some(n)`, or `None` for the null `-1`.
fn parse_length(line: &[u8]) -> Result<Option<usize>, RespError> {
    if line == b"-1" {
        return Ok(None);
    }
    let bad = || {
        RespError::Protocol(format!(
            "invalid length {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    if line.is_empty() || line.len() > MAX_LENGTH_DIGITS || !line.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    line.iter()
        .try_fold(0usize, |n, &d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! frames {
        ($($name:literal: $input:expr => $expected:expr,)*) => {
            &[$(($name, $input as &[u8], $expected)),*]
        };
    }

    /// Complete frames and their lengths.
    const COMPLETE: &[(&str, &[u8], usize)] = frames! {
        "simple": b"+OK\r\n" => 5,
        "empty simple": b"+\r\n" => 3,
        "error": b"-ERR unknown command 'FOO'\r\n" => 28,
        "integer": b":1\r\n" => 4,
        "negative integer": b":-42\r\n" => 6,
        "bulk": b"$5\r\nhello\r\n" => 11,
        "bulk with CRLF inside": b"$4\r\na\r\nb\r\n" => 10,
        "empty bulk": b"$0\r\n\r\n" => 6,
        "null bulk": b"$-1\r\n" => 5,
        "empty array": b"*0\r\n" => 4,
        "null array": b"*-1\r\n" => 5,
        "flat array": b"*4\r\n:1\r\n:250\r\n:0\r\n:0\r\n" => 22,
        "mixed array": b"*3\r\n$3\r\nfoo\r\n$-1\r\n+OK\r\n" => 23,
        "nested": b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$1\r\nx\r\n" => 27,
        "nested empty last": b"*2\r\n:1\r\n*0\r\n" => 12,
        "deep last": b"*1\r\n*1\r\n*1\r\n:7\r\n" => 16,
    };

    /// Byte strings that can never become a valid frame.
    const INVALID: &[(&str, &[u8])] = &[
        ("unknown type", b"!3\r\n"),
        ("resp3 map", b"%1\r\n+a\r\n+b\r\n"),
        ("CR without LF", b"+OK\rX\n"),
        ("bulk missing CRLF", b"$3\r\nabcde\r\n"),
        ("negative bulk", b"$-2\r\n"),
        ("non-numeric bulk", b"$x\r\n"),
        ("empty bulk length", b"$\r\n"),
        ("signed bulk", b"$+3\r\nabc\r\n"),
        ("huge bulk", b"$99999999999999999999999\r\n"),
        ("bulk over max", b"$999999999\r\n"),
        ("negative array", b"*-5\r\n"),
        ("array over max", b"*999999999\r\n"),
    ];

    #[test]
    fn complete_frames_and_every_split() {
        for &(name, input, len) in COMPLETE {
            assert_eq!(input.len(), len, "{name}: table length");
            assert_eq!(frame_len(input).unwrap(), Some(len), "{name}");
            for cut in 0..len {
                assert_eq!(
                    frame_len(&input[..cut]).unwrap(),
                    None,
                    "{name}: cut at {cut}"
                );
            }
            // A following frame does not change where this one ends.
            let mut two = input.to_vec();
            two.extend_from_slice(b":5\r\n");
            assert_eq!(frame_len(&two).unwrap(), Some(len), "{name}: followed");
        }
    }

    #[test]
    fn invalid_frames() {
        for &(name, input) in INVALID {
            assert!(
                matches!(frame_len(input), Err(RespError::Protocol(_))),
                "{name}: {:?}",
                frame_len(input)
            );
        }
    }

    #[test]
    fn nesting_limit() {
        let mut ok = b"*1\r\n".repeat(MAX_NESTING);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&ok).unwrap(), Some(ok.len()));
        let mut deep = b"*1\r\n".repeat(MAX_NESTING + 1);
        deep.extend_from_slice(b":1\r\n");
        assert!(matches!(frame_len(&deep), Err(RespError::Protocol(_))));
    }

    #[test]
    fn frames_parse_with_redis_crate() {
        for &(name, input, _) in COMPLETE {
            assert!(redis::parse_redis_value(input).is_ok(), "{name}");
        }
    }
}
