//! Shared-secret tokens (`PEER_TOKEN`, `PURGE_TOKEN`): the headers that carry them,
//! their comparison in constant time, and a rate-limited log of refusals (leaf module).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header a peer request carries `PEER_TOKEN` in.
pub const PEER_TOKEN_HEADER: &str = "X-Peer-Token";
/// The header `POST /purge-payments` carries `PURGE_TOKEN` in.
pub const PURGE_TOKEN_HEADER: &str = "X-Purge-Token";
/// The shortest token accepted in the configuration.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Whether `a` and `b` are equal, in time that depends only on their lengths: every
/// byte of equal-length inputs is compared, with no early exit. Inputs of different
/// lengths are unequal; they still cost a pass over `a`, so that a guess of the
/// length learns nothing from an early return.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        // Past the end of `b`, compare with a byte that keeps `diff` as it is.
        let y = b.get(i).copied().unwrap_or(x);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// A configured token: printed as `Token(..)`, so that it never reaches a log; no
/// `PartialEq`, so that it is only ever compared by [`Token::matches`].
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A token from the configuration variable `var`: at least [`MIN_TOKEN_BYTES`]
    /// bytes, visible ASCII only (it travels in a header).
    pub fn parse(s: &str) -> Result<Token, String> {
        if s.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "expected at least {MIN_TOKEN_BYTES} bytes, got {}",
                s.len()
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("expected visible ASCII only (no spaces or control bytes)".to_string());
        }
        Ok(Token(s.to_string()))
    }

    /// Whether a request's token header (`got`, absent: `None`) is this token.
    pub fn matches(&self, got: Option<&[u8]>) -> bool {
        constant_time_eq(self.0.as_bytes(), got.unwrap_or_default())
    }

    /// The header line that carries this token in `header`, CRLF included.
    pub fn header_line(&self, header: &str) -> String {
        format!("{header}: {}\r\n", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// At most one log line per [`Refusals::EVERY`] about refused tokens, with how many
/// were refused since the last line: a flood of bad requests cannot fill the disk.
pub struct Refusals {
    /// Refusals not yet logged.
    pending: AtomicU64,
    /// When the last line was written.
    last: Mutex<Option<Instant>>,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals::new()
    }
}

impl Refusals {
    pub const EVERY: Duration = Duration::from_secs(1);

    pub const fn new() -> Refusals {
        Refusals {
            pending: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Counts one refusal on `what` (a route); returns the line to log when one is due.
    pub fn refused(&self, what: &str, now: Instant) -> Option<String> {
        self.pending.fetch_add(1, Relaxed);
        let mut last = self.last.try_lock().ok()?;
        if last.is_some_and(|t| now.saturating_duration_since(t) < Self::EVERY) {
            return None;
        }
        *last = Some(now);
        let n = self.pending.swap(0, Relaxed);
        Some(format!(
            "refused {n} request(s) with a missing or wrong token (latest: {what}); \
             at most one such line per second"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"x123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"abc", b""));
        assert!(!constant_time_eq(b"", b"abc"));
        // A prefix of the token is not the token, nor is the token plus more.
        assert!(!constant_time_eq(b"abc", b"abcabc"));
    }

    #[test]
    fn tokens_are_long_visible_ascii_and_never_printed() {
        let t = Token::parse("secret-secret-16").unwrap();
        assert!(t.matches(Some(b"secret-secret-16")));
        assert!(!t.matches(None));
        assert!(!t.matches(Some(b"")));
        assert!(!t.matches(Some(b"secret-secret-17")));
        assert_eq!(format!("{t:?}"), "Token(..)");
        assert_eq!(
            t.header_line(PEER_TOKEN_HEADER),
            "X-Peer-Token: secret-secret-16\r\n"
        );
        assert!(Token::parse("short").unwrap_err().contains("16 bytes"));
        assert!(Token::parse("has a space in it!").is_err());
        assert!(Token::parse("ctrl\x01-0123456789abcdef").is_err());
    }

    #[test]
    fn refusals_log_at_most_once_a_second_with_a_count() {
        let r = Refusals::new();
        let t0 = Instant::now();
        let first = r.refused("POST /internal/purge", t0).unwrap();
        assert!(first.contains("refused 1 "), "{first}");
        assert_eq!(r.refused("POST /internal/purge", t0), None);
        assert_eq!(
            r.refused("GET /internal/summary", t0 + Duration::from_millis(999)),
            None
        );
        let next = r
            .refused("POST /internal/health", t0 + Duration::from_secs(1))
            .unwrap();
        assert!(next.contains("refused 3 "), "{next}");
        assert!(next.contains("POST /internal/health"), "{next}");
    }
}
