//! Hash flooding: the time to insert N correlationIds whose 64-bit halves are equal,
//! against N random ones, into the accepted set (`Instance::accept`) and into the memory
//! ledger (`MemoryStore::record`). Rounds alternate random, adversarial, random, …; the
//! ratio adversarial/random is printed per round and as a median. A seeded hash gives
//! ≈1×; a hash an attacker can predict gives a ratio that grows with N.
//!
//! Usage: `cargo run --release -p bench --bin flood -- [N] [rounds]` (40000, 5).

use std::time::{Duration, Instant};

use bench::ids::Ids;
use gateway::app::config::GatewayConfig;
use gateway::app::state::Instance;
use gateway::ledger::memory::MemoryStore;
use gateway::ledger::Record;
use gateway::processor::Processor;
use net::env::Vars;

/// `requestedAt` of the first record: 2025-07-15T12:34:56Z in microseconds.
const T0: i64 = 1_752_582_896_000_000;

fn accept_all(ids: &[u128]) -> Duration {
    let config = GatewayConfig::from_vars(&Vars::from_pairs(&[])).expect("default config");
    let instance = Instance::new(config);
    let start = Instant::now();
    for &id in ids {
        assert!(instance.accept(id), "ids are distinct");
    }
    start.elapsed()
}

fn record_all(ids: &[u128]) -> Duration {
    let store = MemoryStore::default();
    let start = Instant::now();
    for (i, &id) in ids.iter().enumerate() {
        let rec = Record {
            id,
            processor: Processor::Default,
            requested_at: T0 + i as i64,
            cents: 1990,
        };
        assert!(store.record(rec), "ids are distinct");
    }
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(40_000, |s| s.parse().expect("N is a count"));
    let rounds: usize = args
        .next()
        .map_or(5, |s| s.parse().expect("rounds is a count"));
    let mut gen = Ids::new(7);
    let random: Vec<u128> = (0..n).map(|_| gen.random()).collect();
    let equal: Vec<u128> = (0..n).map(|_| gen.equal_halves()).collect();

    let mut ratios = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        for (k, (name, run)) in [
            ("accept", accept_all as fn(&[u128]) -> Duration),
            ("record", record_all),
        ]
        .into_iter()
        .enumerate()
        {
            let r = run(&random);
            let e = run(&equal);
            let ratio = e.as_secs_f64() / r.as_secs_f64();
            ratios[k].push(ratio);
            println!(
                "round {round} {name}: {n} random {:.2} ms, {n} equal halves {:.2} ms, ratio {ratio:.2}",
                r.as_secs_f64() * 1e3,
                e.as_secs_f64() * 1e3,
            );
        }
    }
    let [accept, record] = ratios;
    println!(
        "median ratio equal/random: accept {:.2}, record {:.2}",
        median(accept),
        median(record)
    );
}
