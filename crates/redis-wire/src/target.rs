//! Where Redis listens: a [`RedisTarget`] is a [`net::addr::Addr`] and a database
//! number, parsed from `REDIS_URL`.

use std::fmt;

use net::addr::Addr;

/// The port Redis listens on when `REDIS_URL` names none: Redis's own default.
pub const DEFAULT_PORT: u16 = 6379;

/// The accepted forms, shown in every parse error.
const FORMS: &str = "expected redis://host[:port][/db] or unix:/path";

/// Where Redis listens: `REDIS_URL` is `redis://host[:port][/db]` (port defaults to
/// 6379; a database number other than 0 is selected right after connecting) or
/// `unix:/path` (also accepted as `unix:///path`). IPv6 hosts go in brackets:
/// `redis://[::1]:6379`. Credentials, query strings and TLS are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    addr: Addr,
    db: u32,
}

impl RedisTarget {
    /// Parses a `REDIS_URL`. The error names what is wrong and shows the accepted forms.
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        if let Some(path) = url.strip_prefix("unix:") {
            // `unix:///path` is the URL spelling of `unix:/path`.
            let path = match path.strip_prefix("//") {
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            };
            if path.is_empty() {
                return Err(format!(
                    "REDIS_URL {url:?} has an empty socket path; {FORMS}"
                ));
            }
            let addr = Addr::parse(&format!("unix:{path}"))
                .map_err(|e| format!("REDIS_URL: {e}; {FORMS}"))?;
            return Ok(RedisTarget { addr, db: 0 });
        }
        let Some(rest) = url.strip_prefix("redis://") else {
            return Err(format!(
                "REDIS_URL {url:?} has an unsupported scheme; {FORMS}"
            ));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(format!(
                "REDIS_URL {url:?} has a query or fragment, which is not supported; {FORMS}"
            ));
        }
        let (authority, db) = match rest.split_once('/') {
            None => (rest, 0),
            Some((authority, "")) => (authority, 0),
            Some((authority, db)) => match db.parse::<u32>() {
                Ok(n) if db.bytes().all(|b| b.is_ascii_digit()) => (authority, n),
                _ => {
                    return Err(format!(
                        "REDIS_URL {url:?} has database {db:?}, which is not a number; {FORMS}"
                    ))
                }
            },
        };
        if authority.contains('@') {
            return Err(format!(
                "REDIS_URL {url:?} has credentials, which are not supported; {FORMS}"
            ));
        }
        let addr = Addr::parse_authority(authority, DEFAULT_PORT, url)
            .map_err(|e| format!("REDIS_URL: {e}; {FORMS}"))?;
        Ok(RedisTarget { addr, db })
    }

    /// The server's address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The database selected after connecting (0 needs no `SELECT`).
    pub fn db(&self) -> u32 {
        self.db
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            // `unix:/path`, as Addr shows it.
            Addr::Unix(_) => self.addr.fmt(f),
            Addr::Tcp { .. } => {
                write!(f, "redis://{}", self.addr)?;
                if self.db != 0 {
                    write!(f, "/{}", self.db)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn parse_targets() {
        let tcp = |host: &str, port, db| RedisTarget {
            addr: Addr::Tcp {
                host: host.to_owned(),
                port,
            },
            db,
        };
        let unix = |path: &str| RedisTarget {
            addr: Addr::Unix(PathBuf::from(path)),
            db: 0,
        };
        let ok: &[(&str, RedisTarget, &str)] = &[
            (
                "redis://redis:6379",
                tcp("redis", 6379, 0),
                "redis://redis:6379",
            ),
            ("redis://redis", tcp("redis", 6379, 0), "redis://redis:6379"),
            (
                "redis://redis/",
                tcp("redis", 6379, 0),
                "redis://redis:6379",
            ),
            (
                "redis://10.0.0.2:7000/3",
                tcp("10.0.0.2", 7000, 3),
                "redis://10.0.0.2:7000/3",
            ),
            ("redis://h:1/0", tcp("h", 1, 0), "redis://h:1"),
            (
                "redis://[::1]:6380",
                tcp("::1", 6380, 0),
                "redis://[::1]:6380",
            ),
            ("redis://[::1]", tcp("::1", 6379, 0), "redis://[::1]:6379"),
            (
                "unix:/run/redis.sock",
                unix("/run/redis.sock"),
                "unix:/run/redis.sock",
            ),
            (
                "unix:///run/redis.sock",
                unix("/run/redis.sock"),
                "unix:/run/redis.sock",
            ),
            ("unix:redis.sock", unix("redis.sock"), "unix:redis.sock"),
        ];
        for (url, want, shown) in ok {
            let got = RedisTarget::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(&got, want, "{url}");
            assert_eq!(got.to_string(), *shown, "{url}");
            assert_eq!(
                RedisTarget::parse(shown).as_ref(),
                Ok(want),
                "{shown} again"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("", "scheme"),
            ("redis:6379", "scheme"),
            ("http://redis:6379", "scheme"),
            ("rediss://redis:6379", "scheme"),
            ("unix:", "empty socket path"),
            ("redis://", "empty host"),
            ("redis://:6379", "empty host"),
            ("redis://redis:", "port"),
            ("redis://redis:0", "port"),
            ("redis://redis:65536", "port"),
            ("redis://redis:+1", "port"),
            ("redis://redis:63x9", "port"),
            ("redis://::1:6379", "port"),
            ("redis://redis:6379/x", "database"),
            ("redis://redis:6379/+1", "database"),
            ("redis://redis:6379/1/2", "database"),
            ("redis://user:pw@redis:6379", "credentials"),
            ("redis://redis:6379?db=1", "query"),
            ("redis://[::1:6379", "unclosed"),
            ("redis://[::1]x", "after its host"),
        ];
        for (url, needle) in bad {
            match RedisTarget::parse(url) {
                Ok(t) => panic!("{url:?} parsed as {t:?}"),
                Err(e) => assert!(e.contains(needle), "{url:?}: {e:?} lacks {needle:?}"),
            }
        }
    }
}
