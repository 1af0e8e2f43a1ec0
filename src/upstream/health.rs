//! The health monitor: exactly one `GET /payments/service-health` per processor per
//! 5 s window for the whole cluster, its answer shared with every instance.
//!
//! - **Redis ledger**: every instance tries a lease each second (`SET … NX PX`, one
//!   key per processor, living one health window); whoever gets it polls and stores
//!   the report in Redis; every instance copies the stored reports into its
//!   [`Board`].
//! - **Memory ledger**: the instance whose `INSTANCE_ID` sorts first among those its
//!   peers answer with on `/health` polls, and pushes each report to its peers'
//!   `/internal/health`. A peer that cannot be asked does not count: if the other
//!   instance is down, this one polls.
//!
//! The processor queues up to two health calls for its next window and answers 429 to
//! a third; one caller every [`HEALTH_INTERVAL`] never gets there.
//!
//! Cores read the [`Board`] when its version changes and feed the reports into their
//! [`crate::engine::vitals::Signals`].

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::processor::Processor;
use crate::upstream::report::{Health, PollCounter, PollError, Report};
use domain::time::{now_micros, Micros};
use http1::client::Client;
use net::addr::Addr;
use redis_wire::{RedisConn, RedisTarget};

/// One poll per processor per rate-limit window (5 s), with a margin so that two
/// polls never fall in one window of the processor's clock.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(5_100);
/// A poll may wait in the processor's queue for its next window (up to 5 s).
const POLL_TIMEOUT: Duration = Duration::from_millis(6_000);
/// How often an instance tries the Redis lease and copies the shared reports: the
/// reports reach every instance within this.
const REDIS_SYNC: Duration = Duration::from_millis(1_000);
/// Redis calls are answered in microseconds; a stalled Redis must not stall polling.
const REDIS_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Reports stored in Redis expire if nobody refreshes them (every poller gone).
const REPORT_TTL_MS: u64 = 30_000;
/// Peers answer `/health` and `/internal/health` at once; a slow one is skipped.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// Rounds a peer must stay silent before an instance it outranks takes over polling.
const TAKE_OVER_AFTER: u32 = 3;
/// How far ahead of this instance's clock a pushed report may be dated (clock skew).
pub const MAX_REPORT_AHEAD_US: Micros = 5_000_000;

/// The outcome of an election round.
enum Election {
    Won,
    Lost,
    /// No lower id answered, but a peer did not answer at all.
    PeerSilent,
}

/// The path peers push reports to.
pub const INTERNAL_HEALTH_PATH: &str = "/internal/health";

/// The latest report per processor, shared by the cores of this instance.
#[derive(Default)]
pub struct Board {
    reports: Mutex<[Option<Report>; 2]>,
    version: AtomicU64,
}

impl Board {
    /// Keeps `r` unless a newer report is already there.
    pub fn set(&self, p: Processor, r: Report) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut reports[p.index()];
        if slot.is_none_or(|old| old.at < r.at) {
            *slot = Some(r);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    pub fn get(&self) -> [Option<Report>; 2] {
        *self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes whenever a report is replaced.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

#[derive(Deserialize)]
struct HealthBody {
    failing: bool,
    #[serde(rename = "minResponseTime")]
    min_response_time: u64,
}

/// Reads a `service-health` body.
pub fn parse_health(body: &[u8]) -> Option<Health> {
    let b: HealthBody = serde_json::from_slice(body).ok()?;
    Some(Health::from_millis(b.failing, b.min_response_time))
}

/// Polls one processor's health.
pub async fn poll(client: &Client) -> Result<Report, PollError> {
    let r = client
        .request("GET", "/payments/service-health", "", b"", POLL_TIMEOUT)
        .await
        .map_err(|e| PollError::Other(e.to_string()))?;
    match r.status {
        200 => parse_health(&r.body)
            .map(|health| Report {
                health,
                at: now_micros(),
            })
            .ok_or_else(|| PollError::Other("unreadable answer".into())),
        429 => Err(PollError::Limited),
        s => Err(PollError::Other(format!("answered {s}"))),
    }
}

/// `"<failing 0|1>:<minResponseTime ms>:<at µs>"`, as stored in Redis.
pub fn encode_report(r: &Report) -> String {
    format!(
        "{}:{}:{}",
        u8::from(r.health.failing),
        r.health.min_response.as_millis(),
        r.at
    )
}

pub fn decode_report(s: &str) -> Option<Report> {
    let mut it = s.split(':');
    let failing = match it.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let ms: u64 = it.next()?.parse().ok()?;
    let at: Micros = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(Report {
        health: Health::from_millis(failing, ms),
        at,
    })
}

#[derive(Deserialize)]
struct Pushed {
    processor: String,
    report: String,
}

/// The body of a push to a peer's `/internal/health`.
pub fn encode_push(p: Processor, r: &Report) -> Vec<u8> {
    format!(
        r#"{{"processor":"{}","report":"{}"}}"#,
        p.name(),
        encode_report(r)
    )
    .into_bytes()
}

/// Reads a push; `Err` says what is wrong with it.
pub fn parse_push(body: &[u8]) -> Result<(Processor, Report), String> {
    let p: Pushed = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let processor = Processor::ALL
        .into_iter()
        .find(|x| x.name() == p.processor)
        .ok_or_else(|| format!("unknown processor {:?}", p.processor))?;
    let report = decode_report(&p.report).ok_or_else(|| format!("bad report {:?}", p.report))?;
    Ok((processor, report))
}

/// Where the monitor shares its reports.
pub enum Mode {
    /// Memory ledger: elect among `peers`, push to them.
    Peers(Vec<Addr>),
    /// Redis ledger: lease and share through Redis.
    Redis(RedisTarget),
}

/// Everything a monitor task needs.
pub struct Monitor {
    pub instance_id: String,
    pub processors: [Rc<Client>; 2],
    pub board: Arc<Board>,
    /// Counts every poll this instance makes.
    pub counter: Arc<dyn PollCounter>,
}

impl Monitor {
    /// Runs the monitor of this instance forever: one task per processor.
    pub async fn run(self: Rc<Self>, mode: Mode) {
        match mode {
            Mode::Peers(peers) => {
                let peers: Rc<Vec<Client>> =
                    Rc::new(peers.into_iter().map(|a| Client::new(a, 1)).collect());
                let other = monoio::spawn({
                    let (m, peers) = (self.clone(), peers.clone());
                    async move { m.run_peers(Processor::Fallback, &peers).await }
                });
                self.run_peers(Processor::Default, &peers).await;
                other.await;
            }
            Mode::Redis(target) => {
                let other = monoio::spawn({
                    let (m, t) = (self.clone(), target.clone());
                    async move { m.run_redis(Processor::Fallback, &t).await }
                });
                self.run_redis(Processor::Default, &target).await;
                other.await;
            }
        }
    }

    async fn poll_and_count(&self, p: Processor) -> Option<Report> {
        let result = poll(&self.processors[p.index()]).await;
        self.counter.health_poll(p, &result);
        match result {
            Ok(r) => {
                self.board.set(p, r);
                Some(r)
            }
            Err(e) => {
                net::log!("health of {}: {e:?}", p.name());
                None
            }
        }
    }

    async fn run_peers(&self, p: Processor, peers: &[Client]) {
        let mut polling = None;
        let mut silent_rounds = 0;
        loop {
            let elected = match self.elected(peers).await {
                Election::Won => {
                    silent_rounds = 0;
                    true
                }
                Election::Lost => {
                    silent_rounds = 0;
                    false
                }
                Election::PeerSilent => {
                    // A peer that is slow, not gone, may be polling: take over only
                    // after it stayed silent for a few rounds.
                    silent_rounds += 1;
                    silent_rounds >= TAKE_OVER_AFTER
                }
            };

            if polling != Some(elected) {
                net::log!(
                    "{} health: {}",
                    p.name(),
                    if elected {
                        "this instance polls and pushes to its peers"
                    } else {
                        "a peer polls"
                    }
                );
                polling = Some(elected);
            }
            if elected {
                if let Some(r) = self.poll_and_count(p).await {
                    let body = encode_push(p, &r);
                    for peer in peers {
                        let _ = peer
                            .request(
                                "POST",
                                INTERNAL_HEALTH_PATH,
                                "Content-Type: application/json\r\n",
                                &body,
                                PEER_TIMEOUT,
                            )
                            .await;
                    }
                }
            }
            monoio::time::sleep(HEALTH_INTERVAL).await;
        }
    }

    /// Whether this instance's id sorts first among its peers'.
    async fn elected(&self, peers: &[Client]) -> Election {
        let mut silent = false;
        for peer in peers {
            let Ok(r) = peer.request("GET", "/health", "", b"", PEER_TIMEOUT).await else {
                silent = true;
                continue;
            };
            let id = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["instance"].as_str().map(str::to_owned));
            if id.is_some_and(|id| id < self.instance_id) {
                return Election::Lost;
            }
        }
        if silent {
            Election::PeerSilent
        } else {
            Election::Won
        }
    }

    async fn run_redis(&self, p: Processor, target: &RedisTarget) {
        let lease = format!("rinha:health:lease:{}", p.name());
        let shared = format!("rinha:health:{}", p.name());
        let mut conn: Option<RedisConn> = None;
        loop {
            if let Err(e) = self
                .redis_round(p, target, &mut conn, &lease, &shared)
                .await
            {
                net::log!("{} health through redis: {e}", p.name());
                conn = None;
            }
            monoio::time::sleep(REDIS_SYNC).await;
        }
    }

    async fn redis_round(
        &self,
        p: Processor,
        target: &RedisTarget,
        conn: &mut Option<RedisConn>,
        lease: &str,
        shared: &str,
    ) -> Result<(), String> {
        let got = redis_call(
            target,
            conn,
            redis::cmd("SET")
                .arg(lease)
                .arg(&self.instance_id)
                .arg("NX")
                .arg("PX")
                .arg(HEALTH_INTERVAL.as_millis() as u64),
        )
        .await?;
        if matches!(got, redis::Value::Okay) {
            if let Some(r) = self.poll_and_count(p).await {
                redis_call(
                    target,
                    conn,
                    redis::cmd("SET")
                        .arg(shared)
                        .arg(encode_report(&r))
                        .arg("PX")
                        .arg(REPORT_TTL_MS),
                )
                .await?;
            }
        }
        let stored = redis_call(target, conn, redis::cmd("GET").arg(shared)).await?;
        if let redis::Value::BulkString(b) = stored {
            if let Some(r) = std::str::from_utf8(&b).ok().and_then(decode_report) {
                self.board.set(p, r);
            }
        }
        Ok(())
    }
}

async fn redis_call(
    target: &RedisTarget,
    conn: &mut Option<RedisConn>,
    cmd: &redis::Cmd,
) -> Result<redis::Value, String> {
    let call = async {
        if conn.is_none() {
            *conn = Some(
                RedisConn::connect(target)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        match conn.as_mut() {
            Some(c) => c.query(cmd).await.map_err(|e| e.to_string()),
            None => Err("not connected".to_string()),
        }
    };
    match monoio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err("timed out".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::report::MAX_MIN_RESPONSE;

    #[test]
    fn health_bodies() {
        assert_eq!(
            parse_health(br#"{"failing":true,"minResponseTime":2000}"#),
            Some(Health {
                failing: true,
                min_response: Duration::from_millis(2_000)
            })
        );
        assert_eq!(parse_health(br#"{"failing":"no"}"#), None);
        // An absurd delay is clamped: it feeds timeouts and requestedAt.
        assert_eq!(
            parse_health(br#"{"failing":false,"minResponseTime":18446744073709551615}"#)
                .map(|h| h.min_response),
            Some(MAX_MIN_RESPONSE)
        );
        assert_eq!(parse_health(b"Too Many Requests"), None);
    }

    #[test]
    fn reports_round_trip_and_bad_ones_are_refused() {
        let r = Report {
            health: Health {
                failing: true,
                min_response: Duration::from_millis(5_000),
            },
            at: 1_752_150_896_123_456,
        };
        assert_eq!(encode_report(&r), "1:5000:1752150896123456");
        assert_eq!(decode_report(&encode_report(&r)), Some(r));
        for bad in ["", "2:0:1", "1:x:1", "1:0", "1:0:1:9", "0:-5:1"] {
            assert_eq!(decode_report(bad), None, "{bad:?}");
        }
        let body = encode_push(Processor::Fallback, &r);
        assert_eq!(parse_push(&body), Ok((Processor::Fallback, r)));
        assert!(parse_push(br#"{"processor":"other","report":"0:0:1"}"#)
            .unwrap_err()
            .contains("unknown processor"));
        assert!(parse_push(br#"{"processor":"default","report":"zz"}"#)
            .unwrap_err()
            .contains("bad report"));
        assert!(parse_push(b"{").unwrap_err().contains("JSON"));
    }

    #[test]
    fn the_board_keeps_the_newest_report() {
        let b = Board::default();
        let at = |t, failing| Report {
            health: Health {
                failing,
                min_response: Duration::ZERO,
            },
            at: t,
        };
        let v0 = b.version();
        b.set(Processor::Default, at(10, true));
        b.set(Processor::Default, at(5, false));
        assert_eq!(b.get()[0], Some(at(10, true)));
        assert_eq!(b.get()[1], None);
        assert_eq!(b.version(), v0 + 1);
        b.set(Processor::Default, at(11, false));
        assert_eq!(b.get()[0], Some(at(11, false)));
    }
}
