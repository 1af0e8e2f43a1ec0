//! The runner's configuration, from its environment variables (empty counts as unset;
//! a bad value is an error naming the variable).

use crate::redis::Persistence;

/// Default lb address.
const DEFAULT_LISTEN: &str = "127.0.0.1:9999";
/// Default simulator fees: the default processor is the cheaper one.
const DEFAULT_FEE_DEFAULT: &str = "0.07";
const DEFAULT_FEE_FALLBACK: &str = "0.10";
/// Where simulators listen unless told: an ephemeral port, read back from their ready
/// line.
const DEFAULT_SIM_LISTEN: &str = "127.0.0.1:0";

/// Which ledger the gateways share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    Memory,
    Redis,
}

/// Where the payment processors come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Processors {
    /// Two simulators started by the runner: fee and `LISTEN` of each.
    Simulated {
        default_fee: String,
        fallback_fee: String,
        default_listen: String,
        fallback_listen: String,
    },
    /// Both URLs given: nothing to start.
    External {
        default_url: String,
        fallback_url: String,
    },
}

/// The runner's configuration (environment variables; empty counts as unset).
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    pub ledger: LedgerKind,
    pub processors: Processors,
    /// The lb's `LISTEN`.
    pub listen: String,
    /// `handoff` or `proxy`.
    pub lb_mode: String,
    /// The lb's `CORES`, from `LB_CORES`; `None` keeps the lb's default.
    pub lb_cores: Option<String>,
    /// redis-server's persistence, from `REDIS_AOF` (`everysec`, the default; `always`;
    /// `off`), with `LEDGER=redis`.
    pub redis_aof: Persistence,
}

impl StackConfig {
    pub fn from_env() -> Result<StackConfig, String> {
        StackConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (a variable's value, if set).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<StackConfig, String> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let ledger = match get("LEDGER").as_deref() {
            None | Some("memory") => LedgerKind::Memory,
            Some("redis") => LedgerKind::Redis,
            Some(other) => return Err(format!("LEDGER: expected memory or redis, got {other:?}")),
        };
        let processors = match (get("PROCESSOR_DEFAULT_URL"), get("PROCESSOR_FALLBACK_URL")) {
            (Some(d), Some(f)) => {
                for (var, url) in [
                    ("PROCESSOR_DEFAULT_URL", &d),
                    ("PROCESSOR_FALLBACK_URL", &f),
                ] {
                    net::addr::Addr::parse_url(url).map_err(|e| format!("{var}: {e}"))?;
                }
                Processors::External {
                    default_url: d,
                    fallback_url: f,
                }
            }
            (Some(_), None) => {
                return Err(one_url_only(
                    "PROCESSOR_DEFAULT_URL",
                    "PROCESSOR_FALLBACK_URL",
                ))
            }
            (None, Some(_)) => {
                return Err(one_url_only(
                    "PROCESSOR_FALLBACK_URL",
                    "PROCESSOR_DEFAULT_URL",
                ))
            }
            (None, None) => Processors::Simulated {
                default_fee: fee(&get, "PROCESSOR_DEFAULT_FEE", DEFAULT_FEE_DEFAULT)?,
                fallback_fee: fee(&get, "PROCESSOR_FALLBACK_FEE", DEFAULT_FEE_FALLBACK)?,
                default_listen: listen(&get, "SIM_DEFAULT_LISTEN", DEFAULT_SIM_LISTEN)?,
                fallback_listen: listen(&get, "SIM_FALLBACK_LISTEN", DEFAULT_SIM_LISTEN)?,
            },
        };
        let lb_mode = match get("LB_MODE").as_deref() {
            None | Some("handoff") => "handoff".to_string(),
            Some("proxy") => "proxy".to_string(),
            Some(other) => {
                return Err(format!("LB_MODE: expected handoff or proxy, got {other:?}"))
            }
        };
        let lb_cores = match get("LB_CORES") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(v),
                _ => {
                    return Err(format!(
                        "LB_CORES: expected a whole number of at least 1, got {v:?}"
                    ))
                }
            },
        };
        let redis_aof = match get("REDIS_AOF").as_deref() {
            None | Some("everysec") => Persistence::AofEverySec,
            Some("always") => Persistence::AofAlways,
            Some("off") => Persistence::None,
            Some(other) => {
                return Err(format!(
                    "REDIS_AOF: expected everysec, always or off, got {other:?}"
                ))
            }
        };
        Ok(StackConfig {
            ledger,
            processors,
            listen: listen(&get, "LISTEN", DEFAULT_LISTEN)?,
            lb_mode,
            lb_cores,
            redis_aof,
        })
    }
}

fn one_url_only(given: &str, missing: &str) -> String {
    format!(
        "{missing}: not set while {given} is; give both processor URLs, \
         or neither to run two simulators"
    )
}

/// A fee: a decimal fraction in [0, 1), kept as written (it is passed on as text).
fn fee(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> Result<String, String> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..1.0).contains(&f) => Ok(v),
        _ => Err(format!(
            "{var}: expected a fee between 0 and 1 such as 0.05, got {v:?}"
        )),
    }
}

/// A `LISTEN`-style address (`host:port` or `unix:/path`), checked, kept as written.
fn listen(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: &str,
) -> Result<String, String> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    net::addr::Addr::parse(&v).map_err(|e| format!("{var}: {e}"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<StackConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StackConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.ledger, LedgerKind::Memory);
        assert_eq!(c.listen, "127.0.0.1:9999");
        assert_eq!(c.lb_mode, "handoff");
        assert_eq!(c.lb_cores, None);
        assert_eq!(c.redis_aof, Persistence::AofEverySec);
        assert_eq!(
            config(&[("REDIS_AOF", "always")]).unwrap().redis_aof,
            Persistence::AofAlways
        );
        assert_eq!(
            config(&[("REDIS_AOF", "off")]).unwrap().redis_aof,
            Persistence::None
        );
        assert_eq!(
            c.processors,
            Processors::Simulated {
                default_fee: "0.07".into(),
                fallback_fee: "0.10".into(),
                default_listen: "127.0.0.1:0".into(),
                fallback_listen: "127.0.0.1:0".into(),
            }
        );
    }

    #[test]
    fn both_urls_mean_no_simulators() {
        let c = config(&[
            ("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001"),
            ("PROCESSOR_FALLBACK_URL", "unix:/tmp/fallback.sock"),
            ("LEDGER", "redis"),
            ("LB_MODE", "proxy"),
        ])
        .unwrap();
        assert_eq!(c.ledger, LedgerKind::Redis);
        assert_eq!(c.lb_mode, "proxy");
        assert!(matches!(c.processors, Processors::External { .. }));
    }

    /// Each bad setting is refused with a message naming the variable to fix.
    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LEDGER", "postgres")], "LEDGER"),
            (
                &[("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001")],
                "PROCESSOR_FALLBACK_URL",
            ),
            (
                &[("PROCESSOR_FALLBACK_URL", "http://127.0.0.1:8002")],
                "PROCESSOR_DEFAULT_URL",
            ),
            (
                &[
                    ("PROCESSOR_DEFAULT_URL", "ftp://x"),
                    ("PROCESSOR_FALLBACK_URL", "http://y:1"),
                ],
                "PROCESSOR_DEFAULT_URL",
            ),
            (&[("PROCESSOR_DEFAULT_FEE", "7%")], "PROCESSOR_DEFAULT_FEE"),
            (
                &[("PROCESSOR_FALLBACK_FEE", "1.5")],
                "PROCESSOR_FALLBACK_FEE",
            ),
            (
                &[("PROCESSOR_FALLBACK_FEE", "NaN")],
                "PROCESSOR_FALLBACK_FEE",
            ),
            (&[("SIM_DEFAULT_LISTEN", "8001")], "SIM_DEFAULT_LISTEN"),
            (&[("LISTEN", "9999")], "LISTEN"),
            (&[("LB_MODE", "dsr")], "LB_MODE"),
            (&[("LB_CORES", "0")], "LB_CORES"),
            (&[("REDIS_AOF", "yes")], "REDIS_AOF"),
        ];
        for (vars, var) in cases {
            let e = config(vars).unwrap_err();
            assert!(
                e.starts_with(&format!("{var}:")),
                "{vars:?} should name {var}: {e}"
            );
        }
    }

    #[test]
    fn empty_counts_as_unset() {
        assert_eq!(
            config(&[("LEDGER", ""), ("PROCESSOR_DEFAULT_URL", "")]).unwrap(),
            config(&[]).unwrap()
        );
    }
}
