//! Configuration from environment variables (listed in the README's configuration
//! table, with their defaults).
//!
//! Every variable is read once at startup. A bad value is a [`ConfigError`] naming the
//! variable and what is wrong with it; the binary prints it and exits.

use std::time::Duration;

use net::addr::Addr;
use net::env::{default_cores, ConfigError, Vars, MAX_MILLIS};
use net::runtime::IoDriver;
use redis_wire::RedisTarget;

use crate::intake::token::Token;

/// Default processor requests in flight per processor for the whole instance (split
/// over its cores). Throughput is in-flight ÷ latency: the final test sends up to
/// 600 payments/s while the default answers after 1–2 s, and the processor itself
/// admits 800 at once (plus 500 queued) for all instances together: two instances at
/// 400 each fill it without reaching its 429s.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 400;
/// Default `DISPATCH_RATE`: processor requests a core starts per second at most. The
/// final test's peak is about 600 payments/s for the cluster, so a core never meets it
/// in steady traffic; a backlog of 1,000 payments drains in a quarter of a second.
pub const DEFAULT_DISPATCH_RATE: usize = 2000;
/// Official fees (final test): default 7 %, fallback 10 %.
pub const DEFAULT_FEES: [f64; 2] = [0.07, 0.10];
/// Default deadline: a payment sent now should be settled within this. The official
/// clients give up after 1.5 s; a processor slower than that is too slow while the
/// other one is fast, because a payment committed to it cannot be moved.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(1_500);
/// Default horizon: how long the run can be expected to go on, which prices waiting
/// (see `docs/routing.md`): a payment held back for a failing default waits at most
/// horizon × (fallback fee − default fee) ÷ (1 − default fee).
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(240);
/// Default interval between real payments sent to a failing (or too slow) processor to
/// learn when it recovers.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Default bound of each core's payment queue. At the final test's 600 payments/s, a
/// core of one of two instances takes ~150/s: this holds several minutes of backlog
/// (~64 bytes a payment, 4 MiB a core at most) before intake answers 503.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
/// Default ceiling of the processor request timeout (each timeout follows the observed
/// latency, see [`crate::engine::vitals`]): above the longest delay of the official scenarios
/// (5 s), so that a slow processor answers instead of leaving the outcome uncertain.
pub const DEFAULT_PROCESSOR_TIMEOUT: Duration = Duration::from_millis(6_000);
/// Default time a client has to finish sending a request it started.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(5_000);
/// Default keep-alive idle time; nginx's default is 75 s, the official test's virtual
/// users send every ~1 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_millis(60_000);
/// Default `SHUTDOWN_GRACE_MS`: time after a stop signal to settle what was accepted.
/// Docker's own default grace is 10 s; compose's `stop_grace_period` is set a little
/// above this, so the gateway's deadline comes first.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(8_000);
/// How long a gateway of the Redis ledger stays alive for the others without renewing
/// its journal's lease; it renews it three times per lease.
pub const DEFAULT_JOURNAL_LEASE: Duration = Duration::from_millis(3_000);
/// The shortest `JOURNAL_LEASE_MS`: renewals a third of it apart must not be missed by
/// a busy core.
pub const MIN_JOURNAL_LEASE: Duration = Duration::from_millis(300);
/// Default time after an uncertain attempt before a 404 from `GET /payments/{id}` is
/// believed: longer than any processor delay of the official scenarios (5 s), so the
/// uncertain request cannot still be waiting inside the processor.
pub const DEFAULT_UNCERTAIN_SETTLE: Duration = Duration::from_millis(10_000);
/// Default `PROCESSOR_QUEUE_MS`: the processors hold 800 requests at once and queue 500
/// more, and the default in-flight limits keep a whole cluster's requests within the 800,
/// so they never queue there.
pub const DEFAULT_PROCESSOR_QUEUE: Duration = Duration::ZERO;
/// Default pause before trying a payment again after both processors refused it.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Memory one client connection is assumed to cost at most, while it is busy: its read
/// and write buffers (grown to 4 KiB each, cut back to 1.5 KiB while it waits), its
/// task, and the kernel's socket memory charged to the cgroup (queued segments, the
/// socket itself).
pub const CONNECTION_BYTES: u64 = 16 * 1024;
/// Share of the memory limit the default `MAX_CONNECTIONS` gives to client
/// connections: one quarter (the rest holds the backlogs, the ledger, the processor
/// connections and the allocator's slack).
pub const CONNECTION_MEMORY_SHARE: u64 = 4;
/// Default `MAX_CONNECTIONS` when no memory limit can be read.
pub const DEFAULT_MAX_CONNECTIONS_UNLIMITED: usize = 10_000;
/// The least default `MAX_CONNECTIONS`, however small the memory limit.
pub const MIN_DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Default `MAX_CONNECTIONS` for a memory limit of `limit` bytes (`None`: no limit):
/// a quarter of the memory at [`CONNECTION_BYTES`] each. 165 MiB (a gateway's limit in
/// `docker-compose.yml`) gives 2,640.
pub fn max_connections_for(limit: Option<u64>) -> usize {
    match limit {
        None => DEFAULT_MAX_CONNECTIONS_UNLIMITED,
        Some(bytes) => {
            let n = bytes / CONNECTION_MEMORY_SHARE / CONNECTION_BYTES;
            usize::try_from(n).unwrap_or(usize::MAX).clamp(
                MIN_DEFAULT_MAX_CONNECTIONS,
                DEFAULT_MAX_CONNECTIONS_UNLIMITED,
            )
        }
    }
}

/// This process's cgroup memory limit: cgroup v2's `memory.max`, else v1's
/// `memory.limit_in_bytes`; `None` when neither is readable or the limit is unset
/// (`max`, or v1's near-2^63 "unlimited").
pub fn cgroup_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| text.trim().parse::<u64>().ok())
    .filter(|&bytes| bytes < 1 << 60)
}

/// Where settled payments are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerConfig {
    /// In this instance's memory; summaries add the partial sums of `peers`.
    Memory { peers: Vec<Addr> },
    /// In Redis, shared by every instance.
    Redis(RedisTarget),
}

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: Addr,
    /// `HANDOFF`: the Unix socket on which the lb hands over client connections.
    pub handoff: Option<Addr>,
    /// `INTERNAL_LISTEN`: where the internal plane (peer routes, `/metrics`) listens;
    /// `None`: no internal plane (a lone instance).
    pub internal: Option<Addr>,
    /// `PEER_TOKEN`: the secret peer requests carry; set whenever `internal` or a peer is.
    pub peer_token: Option<Token>,
    /// `PURGE_TOKEN`: when set, `POST /purge-payments` must carry it.
    pub purge_token: Option<Token>,
    /// Base addresses of the default and fallback processors, by `Processor::index`.
    pub processors: [Addr; 2],
    pub ledger: LedgerConfig,
    pub instance_id: String,
    pub cores: usize,
    pub io_driver: IoDriver,
    /// `SCHED_SLICE_US`: the scheduler slice of each core thread ([`net::sched`]);
    /// `None`: the kernel's.
    pub sched_slice: Option<Duration>,
    /// Processor requests in flight per processor for the instance.
    pub max_in_flight: usize,
    /// `DISPATCH_RATE`: most processor requests a core starts per second, after a
    /// burst ([`crate::engine::pace`]).
    pub dispatch_rate: usize,
    /// Fee of each processor (fraction of the amount), by `Processor::index`.
    pub fees: [f64; 2],
    pub deadline: Duration,
    pub horizon: Duration,
    pub probe_interval: Duration,
    pub queue_capacity: usize,
    pub processor_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// `JOURNAL_DIR`: where the memory ledger journals every payment's life
    /// ([`crate::ledger::journal`]); `None`: no journal.
    pub journal_dir: Option<std::path::PathBuf>,
    /// `JOURNAL_SYNC`: an `fdatasync` after every journal append.
    pub journal_sync: bool,
    /// `JOURNAL_LEASE_MS` (Redis ledger): how long after its last heartbeat a gateway
    /// is taken for dead, and its unsettled payments are taken over
    /// ([`crate::ledger::redis::stream`]).
    pub journal_lease: Duration,
    /// `SHUTDOWN_GRACE_MS`: after a stop signal, how long the cores may take to settle
    /// every payment they accepted before the process exits anyway.
    pub shutdown_grace: Duration,
    /// `UNCERTAIN_SETTLE_MS`: longer than `processor_timeout` plus `processor_queue`
    /// (checked), so that a 404 after it proves a timed-out attempt will not land.
    pub uncertain_settle: Duration,
    /// `PROCESSOR_QUEUE_MS`: the longest a request may wait in a processor's queue before
    /// its delay starts.
    pub processor_queue: Duration,
    pub retry_delay: Duration,
    /// `MAX_CONNECTIONS`: client connections open at once, `LISTEN` and hand-off
    /// together, over every core.
    pub max_connections: usize,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gateway".to_string())
}

impl GatewayConfig {
    /// How long a payment may wait for a failing default before the fallback's fee is
    /// worth paying: waiting risks losing the payment (modelled as the run ending at
    /// any moment within the horizon), the fallback costs the fee difference.
    pub fn patience(&self) -> Duration {
        let gap = self.fees[1] - self.fees[0];
        if gap <= 0.0 {
            return Duration::ZERO;
        }
        self.horizon.mul_f64(gap / (1.0 - self.fees[0]))
    }

    /// This instance's in-flight limit per processor on one core.
    pub fn max_in_flight_per_core(&self) -> usize {
        self.max_in_flight.div_ceil(self.cores).max(1)
    }

    pub fn from_env() -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_vars(&Vars(|k| std::env::var(k).ok()))
    }

    pub fn from_vars<F: Fn(&str) -> Option<String>>(
        v: &Vars<F>,
    ) -> Result<GatewayConfig, ConfigError> {
        let url = |var: &'static str, default: &str| -> Result<Addr, ConfigError> {
            let s = v.get(var).unwrap_or_else(|| default.to_string());
            Addr::parse_url(s.trim()).map_err(|reason| ConfigError { var, reason })
        };
        let processors = [
            url(
                "PROCESSOR_DEFAULT_URL",
                "http://payment-processor-default:8080",
            )?,
            url(
                "PROCESSOR_FALLBACK_URL",
                "http://payment-processor-fallback:8080",
            )?,
        ];
        let peers = v.parse("PEERS", Vec::new(), |s| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Addr::parse)
                .collect::<Result<Vec<_>, _>>()
        })?;
        let ledger = match v.get("REDIS_URL") {
            Some(url) => {
                if !peers.is_empty() {
                    return Err(ConfigError {
                        var: "PEERS",
                        reason: "PEERS is for the memory ledger; with REDIS_URL every \
                                 instance already shares one ledger"
                            .to_string(),
                    });
                }
                LedgerConfig::Redis(RedisTarget::parse(url.trim()).map_err(|reason| {
                    ConfigError {
                        var: "REDIS_URL",
                        reason,
                    }
                })?)
            }
            None => LedgerConfig::Memory { peers },
        };
        let handoff = v.parse("HANDOFF", None, |s| match Addr::parse(s)? {
            a @ Addr::Unix(_) => Ok(Some(a)),
            Addr::Tcp { .. } => Err(format!(
                "expected unix:/path (connections are handed over a Unix socket), got {s:?}"
            )),
        })?;
        let internal = v.parse("INTERNAL_LISTEN", None, |s| Addr::parse(s).map(Some))?;
        if internal.is_none()
            && matches!(&ledger, LedgerConfig::Memory { peers } if !peers.is_empty())
        {
            return Err(ConfigError {
                var: "INTERNAL_LISTEN",
                reason: "required with PEERS: peers ask this instance on its internal plane"
                    .to_string(),
            });
        }
        if let (LedgerConfig::Memory { peers }, Some(me)) = (&ledger, &internal) {
            if !peers.is_empty() {
                // The claims ring is every instance's internal address: the peers must
                // know this one as it is spelled here, and it must not be among them.
                if matches!(me, Addr::Tcp { port: 0, .. }) {
                    return Err(ConfigError {
                        var: "INTERNAL_LISTEN",
                        reason: "with PEERS it must be a fixed address (port 0 cannot be \
                                 named in the peers' PEERS)"
                            .to_string(),
                    });
                }
                if peers.iter().any(|p| p.to_string() == me.to_string()) {
                    return Err(ConfigError {
                        var: "PEERS",
                        reason: format!("{me} is this instance's own INTERNAL_LISTEN"),
                    });
                }
            }
        }
        let token = |var: &'static str| v.parse(var, None, |s| Token::parse(s).map(Some));
        let peer_token = token("PEER_TOKEN")?;
        if peer_token.is_none() && internal.is_some() {
            return Err(ConfigError {
                var: "PEER_TOKEN",
                reason: "required with INTERNAL_LISTEN (and PEERS): the shared secret of \
                         peer requests"
                    .to_string(),
            });
        }
        let purge_token = token("PURGE_TOKEN")?;
        let config = GatewayConfig {
            listen: v.addr("LISTEN", "0.0.0.0:8080")?,
            handoff,
            internal,
            peer_token,
            purge_token,
            processors,
            ledger,
            instance_id: v
                .get("INSTANCE_ID")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(hostname),
            cores: v.count("CORES", default_cores())?,
            io_driver: v.io_driver()?,
            sched_slice: v.sched_slice(net::sched::DEFAULT_SLICE)?,
            max_in_flight: v.count("MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?,
            dispatch_rate: v.count("DISPATCH_RATE", DEFAULT_DISPATCH_RATE)?,
            fees: [
                v.fee("PROCESSOR_DEFAULT_FEE", DEFAULT_FEES[0])?,
                v.fee("PROCESSOR_FALLBACK_FEE", DEFAULT_FEES[1])?,
            ],
            deadline: v.millis("ROUTE_DEADLINE_MS", DEFAULT_DEADLINE)?,
            horizon: v.parse("ROUTE_HORIZON_S", DEFAULT_HORIZON, |s| {
                match s.parse::<u64>() {
                    Ok(n) if n > 0 && n <= MAX_MILLIS / 1000 => Ok(Duration::from_secs(n)),
                    _ => Err(format!(
                        "expected a positive number of seconds up to {} (a day), got {s:?}",
                        MAX_MILLIS / 1000
                    )),
                }
            })?,
            probe_interval: v.millis("PROBE_INTERVAL_MS", DEFAULT_PROBE_INTERVAL)?,
            queue_capacity: v.count("QUEUE_CAPACITY", DEFAULT_QUEUE_CAPACITY)?,
            processor_timeout: v.millis("PROCESSOR_TIMEOUT_MS", DEFAULT_PROCESSOR_TIMEOUT)?,
            request_timeout: v.millis("REQUEST_TIMEOUT_MS", DEFAULT_REQUEST_TIMEOUT)?,
            idle_timeout: v.millis("IDLE_TIMEOUT_MS", DEFAULT_IDLE_TIMEOUT)?,
            shutdown_grace: v.millis("SHUTDOWN_GRACE_MS", DEFAULT_SHUTDOWN_GRACE)?,
            journal_dir: v.parse("JOURNAL_DIR", None, |s| match s {
                "" => Ok(None),
                s if s.starts_with('/') => Ok(Some(std::path::PathBuf::from(s))),
                s => Err(format!("expected an absolute directory path, got {s:?}")),
            })?,
            journal_sync: v.parse("JOURNAL_SYNC", false, |s| match s {
                "0" => Ok(false),
                "1" => Ok(true),
                s => Err(format!("expected 0 or 1, got {s:?}")),
            })?,
            journal_lease: v.millis("JOURNAL_LEASE_MS", DEFAULT_JOURNAL_LEASE)?,
            uncertain_settle: v.millis("UNCERTAIN_SETTLE_MS", DEFAULT_UNCERTAIN_SETTLE)?,
            processor_queue: v.parse("PROCESSOR_QUEUE_MS", DEFAULT_PROCESSOR_QUEUE, |s| match s
                .parse::<u64>()
            {
                Ok(n) if n <= MAX_MILLIS => Ok(Duration::from_millis(n)),
                _ => Err(format!(
                    "expected a number of milliseconds up to {MAX_MILLIS} (a day), got {s:?}"
                )),
            })?,
            retry_delay: v.millis("RETRY_DELAY_MS", DEFAULT_RETRY_DELAY)?,
            max_connections: v.count(
                "MAX_CONNECTIONS",
                max_connections_for(cgroup_memory_limit()),
            )?,
        };
        if config.journal_dir.is_some() && matches!(config.ledger, LedgerConfig::Redis(_)) {
            return Err(ConfigError {
                var: "JOURNAL_DIR",
                reason: "the journal is the memory ledger's; unset it with REDIS_URL".to_string(),
            });
        }
        if config.journal_lease < MIN_JOURNAL_LEASE {
            return Err(ConfigError {
                var: "JOURNAL_LEASE_MS",
                reason: format!(
                    "must be at least {} ms: a shorter lease can run out while its gateway \
                     is alive but busy",
                    MIN_JOURNAL_LEASE.as_millis()
                ),
            });
        }
        let unsafe_below = config.processor_timeout + config.processor_queue;
        if config.uncertain_settle <= unsafe_below {
            return Err(ConfigError {
                var: "UNCERTAIN_SETTLE_MS",
                reason: format!(
                    "must exceed PROCESSOR_TIMEOUT_MS plus PROCESSOR_QUEUE_MS ({} ms): a \
                     timed-out attempt can be stored that long after it was sent, so an \
                     earlier 404 proves nothing (docs/payment-life.md)",
                    unsafe_below.as_millis()
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER_TOKEN: &str = "0123456789abcdef0123";

    fn cfg(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_vars(&Vars::from_pairs(pairs))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.listen,
            Addr::Tcp {
                host: "0.0.0.0".into(),
                port: 8080
            }
        );
        assert_eq!(
            c.processors[0],
            Addr::Tcp {
                host: "payment-processor-default".into(),
                port: 8080
            }
        );
        assert_eq!(c.ledger, LedgerConfig::Memory { peers: vec![] });
        assert_eq!(c.handoff, None);
        let c = cfg(&[("HANDOFF", "unix:/run/gw1.sock")]).unwrap();
        assert_eq!(c.handoff, Some(Addr::Unix("/run/gw1.sock".into())));
        assert_eq!(c.io_driver, IoDriver::Auto);
        assert!(c.cores >= 1);
        assert_eq!(c.fees, [0.07, 0.10]);
        assert_eq!(c.sched_slice, net::sched::DEFAULT_SLICE);
        let c = cfg(&[("SCHED_SLICE_US", "0")]).unwrap();
        assert_eq!(c.sched_slice, None);
        let c = cfg(&[("SCHED_SLICE_US", "250")]).unwrap();
        assert_eq!(c.sched_slice, Some(Duration::from_micros(250)));
    }

    #[test]
    fn the_settle_time_must_outlast_a_timed_out_attempt() {
        let c = cfg(&[]).unwrap();
        assert!(c.uncertain_settle > c.processor_timeout + c.processor_queue);
        for pairs in [
            &[("UNCERTAIN_SETTLE_MS", "6000")][..],
            &[("PROCESSOR_TIMEOUT_MS", "10000")],
            &[("PROCESSOR_QUEUE_MS", "4000")],
            &[
                ("UNCERTAIN_SETTLE_MS", "3000"),
                ("PROCESSOR_TIMEOUT_MS", "2000"),
                ("PROCESSOR_QUEUE_MS", "1000"),
            ],
        ] {
            let e = cfg(pairs).unwrap_err();
            assert_eq!(e.var, "UNCERTAIN_SETTLE_MS", "{pairs:?}");
            assert!(
                e.reason
                    .contains("PROCESSOR_TIMEOUT_MS plus PROCESSOR_QUEUE_MS"),
                "{e}"
            );
        }
        let c = cfg(&[
            ("UNCERTAIN_SETTLE_MS", "3001"),
            ("PROCESSOR_TIMEOUT_MS", "2000"),
            ("PROCESSOR_QUEUE_MS", "1000"),
        ])
        .unwrap();
        assert_eq!(c.processor_queue, Duration::from_millis(1000));
        assert_eq!(
            cfg(&[("PROCESSOR_QUEUE_MS", "x")]).unwrap_err().var,
            "PROCESSOR_QUEUE_MS"
        );
    }

    #[test]
    fn the_journal_lease_has_a_floor() {
        assert_eq!(cfg(&[]).unwrap().journal_lease, DEFAULT_JOURNAL_LEASE);
        let e = cfg(&[("JOURNAL_LEASE_MS", "299")]).unwrap_err();
        assert_eq!(e.var, "JOURNAL_LEASE_MS");
        assert!(e.reason.contains("at least 300 ms"), "{e}");
        let c = cfg(&[("JOURNAL_LEASE_MS", "300")]).unwrap();
        assert_eq!(c.journal_lease, MIN_JOURNAL_LEASE);
        assert_eq!(
            cfg(&[("JOURNAL_LEASE_MS", "x")]).unwrap_err().var,
            "JOURNAL_LEASE_MS"
        );
    }

    #[test]
    fn the_connection_cap_follows_the_memory_limit() {
        assert_eq!(max_connections_for(Some(165 << 20)), 2_640);
        assert_eq!(
            max_connections_for(Some(1 << 20)),
            MIN_DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(
            max_connections_for(Some(1 << 40)),
            DEFAULT_MAX_CONNECTIONS_UNLIMITED
        );
        assert_eq!(max_connections_for(None), DEFAULT_MAX_CONNECTIONS_UNLIMITED);
        assert_eq!(cfg(&[("MAX_CONNECTIONS", "3")]).unwrap().max_connections, 3);
        let e = cfg(&[("MAX_CONNECTIONS", "0")]).unwrap_err();
        assert_eq!(e.var, "MAX_CONNECTIONS");
    }

    #[test]
    fn patience_prices_the_fee_gap() {
        // Final test fees: 240 s × 0.03 / 0.93 ≈ 7.7 s.
        let c = cfg(&[]).unwrap();
        assert_eq!(c.patience().as_millis(), 7_741);
        // Preview fees: 240 s × 0.10 / 0.95 ≈ 25.3 s, longer than its 20 s outage.
        let c = cfg(&[
            ("PROCESSOR_DEFAULT_FEE", "0.05"),
            ("PROCESSOR_FALLBACK_FEE", "0.15"),
        ])
        .unwrap();
        assert_eq!(c.patience().as_millis(), 25_263);
        // A fallback no dearer than the default is never worth waiting for.
        let c = cfg(&[
            ("PROCESSOR_DEFAULT_FEE", "0.1"),
            ("PROCESSOR_FALLBACK_FEE", "0.1"),
        ])
        .unwrap();
        assert_eq!(c.patience(), Duration::ZERO);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            ("CORES", "0"),
            ("CORES", "two"),
            ("IO_DRIVER", "kqueue"),
            ("SCHED_SLICE_US", "50"),
            ("SCHED_SLICE_US", "100001"),
            ("SCHED_SLICE_US", "short"),
            ("LISTEN", "nowhere"),
            ("HANDOFF", "127.0.0.1:9000"),
            ("HANDOFF", "unix:"),
            ("PEERS", "a:1,b"),
            ("PROCESSOR_DEFAULT_URL", "https://x:1"),
            ("PROCESSOR_FALLBACK_URL", "ftp://x"),
            ("REDIS_URL", "http://x"),
            ("MAX_IN_FLIGHT", "-3"),
            ("DISPATCH_RATE", "0"),
            ("PROCESSOR_DEFAULT_FEE", "5%"),
            ("PROCESSOR_FALLBACK_FEE", "1.5"),
            ("ROUTE_DEADLINE_MS", "0"),
            ("ROUTE_HORIZON_S", "forever"),
            ("PROBE_INTERVAL_MS", "x"),
            ("PROBE_INTERVAL_MS", "18446744073709551615"),
            ("RETRY_DELAY_MS", "86400001"),
            ("ROUTE_HORIZON_S", "86401"),
            ("QUEUE_CAPACITY", "0"),
            ("PROCESSOR_TIMEOUT_MS", "1.5"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("INTERNAL_LISTEN", "nowhere"),
            ("PEER_TOKEN", "too-short"),
            ("PURGE_TOKEN", "0123456789 abcdef"),
        ];
        for (var, value) in cases {
            let err = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(&err.var, var, "{var}={value} gave {err}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn peers_and_redis_are_exclusive() {
        let err = cfg(&[
            ("PEERS", "unix:/tmp/a.sock"),
            ("REDIS_URL", "redis://r:6379"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PEERS");
        let c = cfg(&[
            ("PEERS", "unix:/tmp/a.sock, 10.0.0.2:8080"),
            ("INTERNAL_LISTEN", "unix:/tmp/b.internal"),
            ("PEER_TOKEN", PEER_TOKEN),
        ])
        .unwrap();
        assert_eq!(
            c.ledger,
            LedgerConfig::Memory {
                peers: vec![
                    Addr::Unix("/tmp/a.sock".into()),
                    Addr::Tcp {
                        host: "10.0.0.2".into(),
                        port: 8080
                    }
                ]
            }
        );
    }

    #[test]
    fn peers_need_the_internal_plane_and_it_needs_the_token() {
        let err = cfg(&[("PEERS", "unix:/tmp/a.internal")]).unwrap_err();
        assert_eq!(err.var, "INTERNAL_LISTEN");
        let err = cfg(&[
            ("PEERS", "unix:/tmp/a.internal"),
            ("INTERNAL_LISTEN", "unix:/tmp/b.internal"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PEER_TOKEN");
        let err = cfg(&[
            ("PEERS", "unix:/tmp/a.internal"),
            ("INTERNAL_LISTEN", "127.0.0.1:0"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "INTERNAL_LISTEN");
        assert!(err.to_string().contains("port 0"), "{err}");
        let err = cfg(&[
            ("PEERS", "unix:/tmp/a.internal,unix:/tmp/b.internal"),
            ("INTERNAL_LISTEN", "unix:/tmp/b.internal"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PEERS");
        let err = cfg(&[("INTERNAL_LISTEN", "127.0.0.1:0")]).unwrap_err();
        assert_eq!(err.var, "PEER_TOKEN");
        let err = cfg(&[
            ("INTERNAL_LISTEN", "127.0.0.1:0"),
            ("PEER_TOKEN", "0123456789abcde"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PEER_TOKEN");
        assert!(err.to_string().contains("16 bytes"), "{err}");
        let c = cfg(&[
            ("INTERNAL_LISTEN", "127.0.0.1:0"),
            ("PEER_TOKEN", PEER_TOKEN),
        ])
        .unwrap();
        assert!(c.peer_token.unwrap().matches(Some(PEER_TOKEN.as_bytes())));
        // A lone instance: no internal plane, no token, and an open purge.
        let c = cfg(&[]).unwrap();
        assert!(c.internal.is_none() && c.peer_token.is_none() && c.purge_token.is_none());
        let c = cfg(&[("PURGE_TOKEN", "purge-purge-purge-1")]).unwrap();
        assert!(c.purge_token.unwrap().matches(Some(b"purge-purge-purge-1")));
    }
}
