//! The health monitor: who polls each processor, once per 5 s window for the whole
//! cluster, and how the reports reach every instance.
//!
//! - **Redis ledger**: every instance tries a lease each second (`SET … NX PX`, one
//!   key per processor, living one health window); whoever gets it polls and stores
//!   the report in Redis; every instance copies the stored reports into its
//!   [`Board`].
//! - **Memory ledger**: the instance whose `INSTANCE_ID` sorts first among those its
//!   peers answer with on `/health` polls (of their internal plane), and pushes each
//!   report to its peers' `/internal/health` with [`Monitor::peer_headers`] (the
//!   shared `PEER_TOKEN`). A peer that cannot be asked does not count: if the other
//!   instance is down, this one polls.
//!
//! The processor queues up to two health calls for its next window and answers 429 to
//! a third; one caller every [`HEALTH_INTERVAL`] never gets there.
//!
//! Cores read the [`Board`] when its version changes (see [`super::board`]).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::processor::Processor;
use crate::upstream::health::board::Board;
use crate::upstream::health::encoding::{
    decode_report, encode_push, encode_report, INTERNAL_HEALTH_PATH,
};
use crate::upstream::health::poll::poll;
use crate::upstream::report::{PollCounter, Report};
use http1::client::Client;
use net::addr::Addr;
use redis_wire::{RedisConn, RedisTarget};

/// One poll per processor per rate-limit window (5 s), with a margin so that two
/// polls never fall in one window of the processor's clock.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(5_100);
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
/// The outcome of an election round.
enum Election {
    Won,
    Lost,
    /// No lower id answered, but a peer did not answer at all.
    PeerSilent,
}

/// Where the monitor shares its reports.
pub enum Sharing {
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
    /// Header lines (each ending in CRLF) a push to a peer carries: its token.
    pub peer_headers: String,
}

impl Monitor {
    /// Runs the monitor of this instance forever: one task per processor.
    pub async fn run(self: Rc<Self>, sharing: Sharing) {
        match sharing {
            Sharing::Peers(peers) => {
                let peers: Rc<Vec<Client>> =
                    Rc::new(peers.into_iter().map(|a| Client::new(a, 1)).collect());
                let other = monoio::spawn({
                    let (m, peers) = (self.clone(), peers.clone());
                    async move { m.run_peers(Processor::Fallback, &peers).await }
                });
                self.run_peers(Processor::Default, &peers).await;
                other.await;
            }
            Sharing::Redis(target) => {
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
                    let headers =
                        format!("Content-Type: application/json\r\n{}", self.peer_headers);
                    for peer in peers {
                        let _ = peer
                            .request("POST", INTERNAL_HEALTH_PATH, &headers, &body, PEER_TIMEOUT)
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
