//! Network addresses from configuration: where to listen, where peers and processors are.
//!
//! Two spellings are accepted. `host:port`, `[v6]:port` and `unix:/path` are used by
//! `LISTEN`, `PEERS`, `HANDOFF` and `UPSTREAMS`. Base URLs such as
//! `http://payment-processor-default:8080` are used by `PROCESSOR_*_URL`.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;

/// Port of a base URL that names none (`http://host`).
const HTTP_DEFAULT_PORT: u16 = 80;

/// Prefix of a Unix socket address in both spellings.
const UNIX_PREFIX: &str = "unix:";

/// Scheme prefix of the only URL scheme the gateway speaks (no TLS inside the stack).
const HTTP_PREFIX: &str = "http://";

/// Scheme prefix recognised only to refuse it with a clear message.
const HTTPS_PREFIX: &str = "https://";

/// Where to connect or listen: TCP host:port, or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A host name or IP literal (IPv6 without brackets) and a port.
    Tcp { host: String, port: u16 },
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Parses `host:port`, `[::1]:port` or `unix:/path` (the form of `LISTEN`, `PEERS`,
    /// `HANDOFF`). Port 0 is accepted (an ephemeral port when listening).
    pub fn parse(s: &str) -> Result<Addr, String> {
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            return parse_unix(path, s);
        }
        let (host, port) = split_authority(s, s)?;
        let port = port.ok_or_else(|| format!("missing port in {s:?} (expected host:port)"))?;
        let port = check_port(port, s)?;
        Ok(Addr::Tcp {
            host: check_host(host, s)?,
            port,
        })
    }

    /// Parses a base URL `http://host[:port][/]` (port defaults to 80) or `unix:/path`.
    pub fn parse_url(s: &str) -> Result<Addr, String> {
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            return parse_unix(path, s);
        }
        let rest = match s.get(..HTTP_PREFIX.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(HTTP_PREFIX) => &s[HTTP_PREFIX.len()..],
            _ if s
                .get(..HTTPS_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(HTTPS_PREFIX)) =>
            {
                return Err(format!("https is not supported, use http:// ({s:?})"));
            }
            _ => {
                return Err(format!(
                    "expected http://host[:port] or unix:/path, got {s:?}"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(format!(
                "a base URL cannot have a path, query or fragment, got {s:?} (expected http://host[:port])"
            ));
        }
        if authority.contains('@') {
            return Err(format!("user info is not supported in {s:?}"));
        }
        Addr::parse_authority(authority, HTTP_DEFAULT_PORT, s)
    }

    /// Parses the authority of a URL, `host[:port]` or `[v6][:port]`, to connect to:
    /// `default_port` when none is written, and port 0 refused. Errors quote `whole`,
    /// the URL the authority was taken from.
    pub fn parse_authority(
        authority: &str,
        default_port: u16,
        whole: &str,
    ) -> Result<Addr, String> {
        let (host, port) = split_authority(authority, whole)?;
        let port = match port {
            None => default_port,
            Some(p) => match check_port(p, whole)? {
                0 => return Err(format!("port 0 cannot be connected to, in {whole:?}")),
                p => p,
            },
        };
        Ok(Addr::Tcp {
            host: check_host(host, whole)?,
            port,
        })
    }

    /// Value for a Host header: `host:port`, or `localhost` for Unix sockets.
    pub fn host_header(&self) -> String {
        match self {
            Addr::Tcp { .. } => self.to_string(),
            Addr::Unix(_) => "localhost".to_string(),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "{host}:{port}"),
            Addr::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

fn parse_unix(path: &str, whole: &str) -> Result<Addr, String> {
    if path.is_empty() {
        return Err(format!(
            "empty Unix socket path in {whole:?} (expected unix:/path)"
        ));
    }
    if path.contains('\0') {
        return Err(format!("NUL byte in Unix socket path {whole:?}"));
    }
    Ok(Addr::Unix(PathBuf::from(path)))
}

/// A host as written: a name or IPv4 literal, or an IPv6 literal that was in brackets.
enum Host<'a> {
    Plain(&'a str),
    Bracketed(&'a str),
}

/// Splits `host[:port]` or `[v6][:port]`; malformed brackets are an error quoting
/// `whole`.
fn split_authority<'a>(s: &'a str, whole: &str) -> Result<(Host<'a>, Option<&'a str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("unclosed '[' in {whole:?} (expected [ipv6]:port)"))?;
        let host = Host::Bracketed(&rest[..end]);
        match &rest[end + 1..] {
            "" => Ok((host, None)),
            after => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!(
                    "{after:?} after its host in {whole:?} (expected [ipv6]:port)"
                )),
            },
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => Ok((Host::Plain(host), Some(port))),
            None => Ok((Host::Plain(s), None)),
        }
    }
}

fn check_host(host: Host<'_>, whole: &str) -> Result<String, String> {
    let host = match host {
        Host::Bracketed(v6) => {
            return match v6.parse::<Ipv6Addr>() {
                Ok(_) => Ok(v6.to_string()),
                Err(_) => Err(format!("bad IPv6 address [{v6}] in {whole:?}")),
            };
        }
        Host::Plain(host) => host,
    };
    if host.is_empty() {
        return Err(format!("empty host in {whole:?}"));
    }
    if host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        Ok(host.to_string())
    } else {
        Err(format!("bad character in host {host:?} of {whole:?}"))
    }
}

fn check_port(port: &str, whole: &str) -> Result<u16, String> {
    if port.contains(':') {
        return Err(format!(
            "too many ':' in {whole:?} (IPv6 addresses are written [addr]:port)"
        ));
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {port:?} in {whole:?} (expected 0-65535)"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port:?} out of range in {whole:?} (expected 0-65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Addr {
        Addr::Tcp {
            host: host.to_string(),
            port,
        }
    }

    fn unix(path: &str) -> Addr {
        Addr::Unix(PathBuf::from(path))
    }

    #[test]
    fn parse_accepts() {
        let table = [
            ("127.0.0.1:8080", tcp("127.0.0.1", 8080)),
            ("0.0.0.0:0", tcp("0.0.0.0", 0)),
            ("localhost:9999", tcp("localhost", 9999)),
            ("gateway-1:8080", tcp("gateway-1", 8080)),
            (
                "my_host.example.com:65535",
                tcp("my_host.example.com", 65535),
            ),
            ("[::1]:80", tcp("::1", 80)),
            ("[::]:8080", tcp("::", 8080)),
            ("unix:/tmp/gw.sock", unix("/tmp/gw.sock")),
            ("unix:relative.sock", unix("relative.sock")),
        ];
        for (input, want) in table {
            assert_eq!(Addr::parse(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn parse_rejects() {
        let table = [
            "",
            "x",
            "localhost",
            "localhost:",
            ":8080",
            "host:port",
            "host:65536",
            "host:-1",
            "host:+80",
            "::1:80",
            "::1",
            "[::1]",
            "[::1]80",
            "[::1:80",
            "[nothex]:80",
            "[]:80",
            "unix:",
            "ho st:80",
            "host/x:80",
            "user@host:80",
            "http://host:80",
        ];
        for input in table {
            let err = Addr::parse(input).expect_err(input);
            assert!(!err.is_empty(), "input {input:?}");
        }
    }

    #[test]
    fn parse_error_names_the_input() {
        let err = Addr::parse("x").unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
        assert!(err.contains("host:port"), "{err}");
        let err = Addr::parse("::1:80").unwrap_err();
        assert!(err.contains("[addr]:port"), "{err}");
    }

    #[test]
    fn parse_url_accepts() {
        let table = [
            (
                "http://payment-processor-default:8080",
                tcp("payment-processor-default", 8080),
            ),
            ("http://127.0.0.1:8001/", tcp("127.0.0.1", 8001)),
            ("http://example.com", tcp("example.com", 80)),
            ("http://example.com/", tcp("example.com", 80)),
            ("HTTP://Example.com:81", tcp("Example.com", 81)),
            ("http://[::1]:8080", tcp("::1", 8080)),
            ("http://[::1]", tcp("::1", 80)),
            ("http://[::1]/", tcp("::1", 80)),
            ("unix:/run/processor.sock", unix("/run/processor.sock")),
        ];
        for (input, want) in table {
            assert_eq!(Addr::parse_url(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn parse_url_rejects() {
        let table = [
            ("", "expected"),
            ("example.com:80", "expected"),
            ("https://example.com", "https"),
            ("HTTPS://example.com", "https"),
            ("ftp://example.com", "expected"),
            ("http://", "empty host"),
            ("http://:8080", "empty host"),
            ("http:///", "empty host"),
            ("http://host/payments", "path"),
            ("http://host:80/x/", "path"),
            ("http://host//", "path"),
            ("http://user@host", "user info"),
            ("http://user:pw@host:80", "user info"),
            ("http://host:", "bad port"),
            ("http://host:0", "port 0"),
            ("http://host:99999", "out of range"),
            ("http://host?x=1", "bad character"),
            ("http://host#frag", "bad character"),
            ("http://[::1", "unclosed"),
            ("http://[::1]x", "after its host"),
            ("unix:", "empty"),
        ];
        for (input, needle) in table {
            let err = Addr::parse_url(input).expect_err(input);
            assert!(err.contains(needle), "input {input:?}: {err}");
        }
    }

    #[test]
    fn display_and_host_header() {
        let table = [
            (tcp("127.0.0.1", 80), "127.0.0.1:80", "127.0.0.1:80"),
            (tcp("::1", 8080), "[::1]:8080", "[::1]:8080"),
            (unix("/tmp/a.sock"), "unix:/tmp/a.sock", "localhost"),
        ];
        for (addr, display, host) in table {
            assert_eq!(addr.to_string(), display);
            assert_eq!(addr.host_header(), host);
            // Display output parses back to the same address.
            assert_eq!(Addr::parse(display), Ok(addr));
        }
    }
}
