//! One gateway's memory at scale: inserts N settled payments into the memory ledger
//! (`MemoryStore::record`) and N accepted ids into the accepted set
//! (`Instance::accept`), and at 10k, 100k, 1M, 10M (up to N) prints the process's
//! resident memory (VmRSS, and its peak VmHWM, from /proc/self/status), the cost of one
//! record and one acceptance over the last stretch, and the latency of a summary.
//!
//! Records arrive as in service: `requestedAt` 100 µs apart, each shifted by up to 5 ms
//! of jitter (so about one in two arrives out of order), nine in ten on the default
//! processor. A summary asks for a one-minute window in the middle of what is recorded,
//! and for everything (no bounds); its latency is the median of repeated calls.
//!
//! Usage: `cargo run --release -p bench --bin ledger_memory -- [N]` (10000000).

use std::hint::black_box;
use std::time::Instant;

use bench::ids::Ids;
use gateway::app::config::GatewayConfig;
use gateway::app::state::Instance;
use gateway::ledger::memory::MemoryStore;
use gateway::ledger::{Record, Window};
use gateway::processor::Processor;
use net::env::Vars;

/// The gateway binary's allocator: resident memory is what the gateway would hold.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `requestedAt` of the first record: 2025-07-15T12:34:56Z in microseconds.
const T0: i64 = 1_752_582_896_000_000;
/// Spacing of consecutive records' `requestedAt`.
const STEP_US: i64 = 100;
/// Largest jitter of a `requestedAt` around its slot.
const JITTER_US: u64 = 5_000;
/// Summaries timed at each checkpoint (the median is reported).
const SUMMARIES: usize = 21;

/// A field of /proc/self/status in MiB (`VmRSS`, `VmHWM`).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    kib / 1024.0
}

/// Median latency of `SUMMARIES` summaries of `w`, in microseconds.
fn summary_us(store: &MemoryStore, w: Window) -> f64 {
    let mut us: Vec<f64> = (0..SUMMARIES)
        .map(|_| {
            let start = Instant::now();
            black_box(store.summary(black_box(w)));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    us[us.len() / 2]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(10_000_000, |s| s.parse().expect("N is a count"));
    let config = GatewayConfig::from_vars(&Vars::from_pairs(&[])).expect("default config");
    let instance = Instance::new(config);
    let store = MemoryStore::default();
    let mut gen = Ids::new(11);
    println!(
        "start: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        status_mib("VmRSS"),
        status_mib("VmHWM")
    );
    println!(
        "| records | VmRSS MiB | VmHWM MiB | ns/record | ns/accept | summary 1 min µs | summary all µs |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut done = 0u64;
    for checkpoint in [10_000, 100_000, 1_000_000, 10_000_000] {
        let checkpoint = checkpoint.min(n);
        if checkpoint <= done {
            break;
        }
        let stretch = checkpoint - done;
        let mut record_ns = 0f64;
        let mut accept_ns = 0f64;
        // Batches keep the clock's own cost out of the per-operation figures.
        const BATCH: u64 = 1_000;
        let mut ids = Vec::with_capacity(BATCH as usize);
        while done < checkpoint {
            let batch = BATCH.min(checkpoint - done);
            ids.clear();
            ids.extend((0..batch).map(|_| gen.random()));
            let start = Instant::now();
            for &id in &ids {
                assert!(instance.accept(id), "ids are distinct");
            }
            accept_ns += start.elapsed().as_secs_f64() * 1e9;
            let recs: Vec<Record> = ids
                .iter()
                .enumerate()
                .map(|(k, &id)| {
                    let slot = T0 + (done + k as u64) as i64 * STEP_US;
                    Record {
                        id,
                        processor: if gen.below(10) == 0 {
                            Processor::Fallback
                        } else {
                            Processor::Default
                        },
                        requested_at: slot + gen.below(JITTER_US) as i64,
                        cents: 1990,
                    }
                })
                .collect();
            let start = Instant::now();
            for &r in &recs {
                assert!(store.record(r), "ids are distinct");
            }
            record_ns += start.elapsed().as_secs_f64() * 1e9;
            done += batch;
        }
        let mid = T0 + (done as i64 * STEP_US) / 2;
        let minute = Window {
            from: Some(mid),
            to: Some(mid + 60_000_000),
        };
        let s1 = summary_us(&store, minute);
        let sall = summary_us(&store, Window::ALL);
        let all = store.summary(Window::ALL);
        assert_eq!(all.default.count + all.fallback.count, done);
        println!(
            "| {done} | {:.1} | {:.1} | {:.0} | {:.0} | {s1:.1} | {sall:.1} |",
            status_mib("VmRSS"),
            status_mib("VmHWM"),
            record_ns / stretch as f64,
            accept_ns / stretch as f64,
        );
    }
}
