//! Both official fault timelines (`docs/challenge.md`), replayed time-compressed
//! against two real gateways and two real simulators, under a ramping load of real
//! payments. Every processor delay and every routing setting is divided by the same
//! factor, so the routing sees the same stages at a faster pace.
//!
//! Checked, as the official test does and beyond it:
//! - audits every couple of seconds over the trailing window `[now − 15 s, now − lag]`
//!   compare each gateway's summary with both simulators' admin summaries: no
//!   mismatch, ever (counted as `|Δdefault| + |Δfallback|`);
//! - at the end nothing is queued or in flight, every accepted payment is recorded
//!   once, and the simulators hold exactly the accepted payments: none on both;
//! - the split the policy promises: the preview all on default, the final mostly on
//!   default with the fallback covering the default's outages.
//!
//! The figures (split, net per payment) are printed for the record.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// One stage: from this offset (official seconds), the processors' settings.
struct Stage {
    at_s: u64,
    default: (u64, bool),
    fallback: (u64, bool),
}

const fn st(at_s: u64, dd: u64, df: bool, fd: u64, ff: bool) -> Stage {
    Stage {
        at_s,
        default: (dd, df),
        fallback: (fd, ff),
    }
}

struct Scenario {
    name: &'static str,
    /// Official length in seconds.
    length_s: u64,
    /// Time divided by this.
    compress: u64,
    amount: &'static str,
    fees: (&'static str, &'static str),
    /// End of the audit window before now (official, not compressed: the race it
    /// guards against does not shrink with the delays).
    lag: Duration,
    stages: &'static [Stage],
    /// Payments per second at the end of the ramp (both gateways together).
    peak_rate: f64,
    ledger_redis: bool,
    tag: u16,
}

const PREVIEW: Scenario = Scenario {
    name: "preview",
    length_s: 60,
    compress: 2,
    amount: "19.90",
    fees: ("0.05", "0.15"),
    lag: Duration::from_millis(1_500),
    stages: &[
        st(0, 0, false, 0, false),
        st(10, 100, false, 0, false),
        st(20, 100, true, 0, false),
        st(30, 2000, true, 1000, true),
        st(40, 20, false, 20, false),
        st(50, 0, false, 5000, false),
    ],
    peak_rate: 150.0,
    ledger_redis: false,
    tag: 501,
};

const FINAL: Scenario = Scenario {
    name: "final",
    length_s: 300,
    compress: 5,
    amount: "20.05",
    fees: ("0.07", "0.10"),
    lag: Duration::from_millis(2_000),
    stages: &[
        st(0, 0, false, 0, false),
        st(30, 1000, false, 0, false),
        st(60, 500, false, 0, false),
        st(90, 2000, true, 1000, false),
        st(120, 5000, true, 5, false),
        st(150, 0, false, 5, true),
        st(180, 100, false, 5, false),
        st(210, 50, false, 0, false),
        st(240, 103, false, 10, false),
        st(270, 2000, false, 0, false),
    ],
    peak_rate: 200.0,
    ledger_redis: true,
    tag: 502,
};

struct Stack {
    gw: Vec<Proc>,
    default: Proc,
    fallback: Proc,
    _redis: Option<Redis>,
    _dir: RunDir,
}

fn stack(s: &Scenario) -> Stack {
    let dir = temp_dir(s.name);
    let default = sim("sim-default", s.fees.0, &[]);
    let fallback = sim("sim-fallback", s.fees.1, &[]);
    let redis = s.ledger_redis.then(|| redis(&dir));
    let socks = [dir.sock("gw1.sock"), dir.sock("gw2.sock")];
    let k = s.compress;
    let gw = (0..2)
        .map(|i| {
            let spec = GatewaySpec {
                fees: Some([s.fees.0.to_string(), s.fees.1.to_string()]),
                ledger: match &redis {
                    Some(r) => GatewayLedger::Redis(r.url()),
                    None => GatewayLedger::Peers(vec![internal_of(&socks[1 - i])]),
                },
                ..gateway_spec(
                    &format!("gw{}", i + 1),
                    &socks[i],
                    [default.url(), fallback.url()],
                )
            };
            let env = [
                ("CORES", "1".to_string()),
                ("ROUTE_DEADLINE_MS", (1_500 / k).to_string()),
                ("ROUTE_HORIZON_S", (240 / k).to_string()),
                ("PROBE_INTERVAL_MS", (200 / k).to_string()),
                ("UNCERTAIN_SETTLE_MS", (10_000 / k).to_string()),
                ("PROCESSOR_TIMEOUT_MS", (6_000 / k).to_string()),
                ("RETRY_DELAY_MS", (50 / k).to_string()),
            ];
            gateway(&spec, &env)
        })
        .collect();
    Stack {
        gw,
        default,
        fallback,
        _redis: redis,
        _dir: dir,
    }
}

/// Posts payments on one keep-alive connection per gateway, ramping linearly to
/// `peak_rate` over `length`, like the official ramping virtual users.
fn start_load(
    s: &'static Scenario,
    gws: [String; 2],
    length: Duration,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> Vec<thread::JoinHandle<()>> {
    gws.into_iter()
        .enumerate()
        .map(|(lane, addr)| {
            let (sent, failed) = (sent.clone(), failed.clone());
            thread::spawn(move || {
                let mut conn = RawSocket::open(&addr);
                let mut pending = Vec::new();
                let start = Instant::now();
                let mut n: u32 = lane as u32;
                let mut next = start;
                while start.elapsed() < length {
                    let body = payment_body(&uuid(s.tag, n), s.amount);
                    let req = format!(
                        "POST /payments HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    conn.send(req.as_bytes());
                    match conn.response(&mut pending) {
                        Some(r) if r.status == 202 => sent.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    n += 2;
                    let progress = start.elapsed().as_secs_f64() / length.as_secs_f64();
                    let rate = (s.peak_rate * progress).max(2.0) / 2.0;
                    next += Duration::from_secs_f64(1.0 / rate);
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        thread::sleep(d);
                    }
                }
            })
        })
        .collect()
}

/// The official audit: the backend's summary against both processors' over the
/// trailing window. Returns `|Δdefault| + |Δfallback|` of the counts.
fn audit(st: &Stack, gw: usize, lag: Duration) -> u64 {
    let now = now_micros();
    let q = format!(
        "?from={}&to={}",
        iso(now - 15_000_000),
        iso(now - lag.as_micros() as i64)
    );
    let ours = get(&st.gw[gw].addr, &format!("/payments-summary{q}"));
    assert_eq!(ours.status, 200, "{}", String::from_utf8_lossy(&ours.body));
    let ours = ours.json();
    let d = sim_totals(&st.default, &q);
    let f = sim_totals(&st.fallback, &q);
    let diff = totals(&ours, "default").0.abs_diff(d.0) + totals(&ours, "fallback").0.abs_diff(f.0);
    if diff > 0 {
        eprintln!(
            "audit mismatch on gw{} over {q}: ours {ours}, default {d:?}, fallback {f:?}",
            gw + 1
        );
    }
    diff
}

/// Net amount (amount − fee) a simulator recorded.
fn net(sim: &Proc, fee: &str) -> f64 {
    let amount = sim_totals(sim, "").1 as f64 / 100.0;
    amount * (1.0 - fee.parse::<f64>().unwrap())
}

fn replay(s: &'static Scenario) -> (u64, u64, u64) {
    let st = stack(s);
    let k = s.compress;
    for gw in &st.gw {
        assert_eq!(post_json(&gw.addr, "/purge-payments", "").status, 200);
    }
    let length = Duration::from_secs(s.length_s) / k as u32;
    let start = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load = start_load(
        s,
        [st.gw[0].addr.clone(), st.gw[1].addr.clone()],
        length,
        sent.clone(),
        failed.clone(),
    );
    // Faults at their compressed offsets; audits every 2 s in between.
    let mut inconsistencies = 0;
    let mut audits = 0;
    let mut next_audit = start + Duration::from_secs(3);
    let mut stages = s.stages.iter().peekable();
    while start.elapsed() < length {
        if let Some(stage) =
            stages.next_if(|x| start.elapsed() >= Duration::from_secs(x.at_s) / k as u32)
        {
            set_delay(&st.default, stage.default.0 / k);
            set_failure(&st.default, stage.default.1);
            set_delay(&st.fallback, stage.fallback.0 / k);
            set_failure(&st.fallback, stage.fallback.1);
            continue;
        }
        if Instant::now() >= next_audit {
            inconsistencies += audit(&st, audits % 2, s.lag);
            audits += 1;
            next_audit += Duration::from_secs(2);
        }
        thread::sleep(Duration::from_millis(5));
    }
    for h in load {
        h.join().unwrap();
    }
    let accepted = sent.load(Ordering::Relaxed);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "every payment answered 202"
    );
    // Drain: nothing queued or in flight, everything recorded.
    wait_for("every accepted payment to be recorded", || {
        let s = get(&st.gw[0].addr, "/payments-summary").json();
        (totals(&s, "default").0 + totals(&s, "fallback").0 == accepted).then_some(())
    });
    for gw in &st.gw {
        wait_for("empty queues", || {
            let idle = metric(gw, "gateway_queue_depth", &[]) == 0.0
                && metric(gw, "gateway_in_flight", &[]) == 0.0;
            idle.then_some(())
        });
    }
    // Final audits over everything and over the trailing windows.
    for gw in 0..2 {
        inconsistencies += audit(&st, gw, s.lag);
        let ours = get(&st.gw[gw].addr, "/payments-summary").json();
        assert_eq!(totals(&ours, "default"), sim_totals(&st.default, ""));
        assert_eq!(totals(&ours, "fallback"), sim_totals(&st.fallback, ""));
    }
    let on_default = sim_totals(&st.default, "").0;
    let on_fallback = sim_totals(&st.fallback, "").0;
    // Each accepted payment is recorded once and the processors hold exactly as many:
    // none is on both.
    assert_eq!(
        on_default + on_fallback,
        accepted,
        "no payment on both processors"
    );
    let net = net(&st.default, s.fees.0) + net(&st.fallback, s.fees.1);
    let resolved = metric(&st.gw[0], "gateway_uncertain_resolved_total", &[])
        + metric(&st.gw[1], "gateway_uncertain_resolved_total", &[]);
    // One health poller per processor for the cluster, never answered 429.
    let polls = |p: &str, result: &str| -> f64 {
        let labels = [format!("processor=\"{p}\""), format!("result=\"{result}\"")];
        let labels = [labels[0].as_str(), labels[1].as_str()];
        let name = "gateway_health_polls_total";
        metric(&st.gw[0], name, &labels) + metric(&st.gw[1], name, &labels)
    };
    let elapsed = start.elapsed().as_secs_f64();
    for p in ["default", "fallback"] {
        assert_eq!(
            polls(p, "limited"),
            0.0,
            "no {p} health poll was answered 429"
        );
        let made = polls(p, "ok") + polls(p, "error");
        assert!(made >= 1.0, "{p} health was polled");
        assert!(
            made <= (elapsed / 5.0).ceil() + 1.0,
            "{made} {p} health polls in {elapsed:.0} s: more than one poller"
        );
    }
    eprintln!(
        "{} (time / {k}): {accepted} payments, {on_default} default, {on_fallback} fallback, \
         net {:.4} per payment, {audits} audits, {inconsistencies} inconsistencies, \
         {resolved} uncertain resolved",
        s.name,
        net / accepted as f64,
    );
    assert_eq!(inconsistencies, 0, "no audit mismatch");
    (accepted, on_default, on_fallback)
}

#[test]
fn preview_timeline_all_on_default_and_consistent() {
    let (accepted, on_default, on_fallback) = replay(&PREVIEW);
    assert!(accepted > 1_000);
    // The default's outage is shorter than the preview's patience: nothing needed the
    // fallback's 15 %.
    assert_eq!(on_fallback, 0, "{on_default} on default");
}

#[test]
fn final_timeline_mostly_default_and_consistent() {
    let (accepted, on_default, on_fallback) = replay(&FINAL);
    assert!(accepted > 1_000);
    // The fallback covers the default's outage beyond the patience and its 2 s stage.
    assert!(on_fallback > 0, "the fallback took the outages");
    assert!(
        on_default > on_fallback,
        "most payments on default: {on_default} against {on_fallback}"
    );
}
