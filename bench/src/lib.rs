//! Microbenchmarks of the gateway's hot path, with [criterion].
//!
//! The criterion benches live in `benches/hot_path.rs`; the bench binaries in `src/bin/`
//! (listed below); the library holds only their shared id generator ([`ids`]). Run the
//! criterion benches with
//!
//! ```text
//! cargo bench -p bench
//! cargo bench -p bench -- --warm-up-time 1 --measurement-time 3   # a quicker pass
//! cargo bench -p bench -- http/request                             # one group only
//! ```
//!
//! Benches run with the workspace's release profile (fat LTO, one codegen unit), so the
//! numbers are those of the shipped binary. Every bench reports a throughput, in bytes
//! or in elements per second.
//!
//! | Bench | What it measures | Throughput |
//! |---|---|---|
//! | `http/request/parse/post_payments` | `http::request::parse` on one `POST /payments` as k6 sends it (Host, User-Agent, Content-Type, Content-Length and a ~70-byte body) | bytes of the request |
//! | `http/request/parse/get_summary` | the same on a `GET /payments-summary?from=…&to=…` | bytes of the request |
//! | `http/request/parse/pipelined_16` | 16 pipelined `POST /payments` in one buffer, parsed back to back as the connection loop does | bytes of the buffer |
//! | `payment/parse_body` | `payment::parse_body` on a typical body: JSON, UUID and amount | bytes of the body |
//! | `api/write_summary` | `api::write_summary` of realistic totals into a reused buffer | bytes written |
//! | `queue/backlog/push_pop_one` | `queue::Backlog::push` then `try_pop` of one payment on a 65,536-slot backlog | payments |
//! | `queue/backlog/fill_drain_1024` | 1,024 pushes, then 1,024 `try_pop`s, on the same backlog | payments |
//! | `intake/accepted/accept_unaccept_fresh` | `Instance::accept` of a fresh correlationId then `unaccept` (what a full queue does), on a set of 100,000 | ids |
//! | `intake/accepted/accept_duplicate` | `Instance::accept` of an id already in that set: the duplicate's lookup | ids |
//! | `money/parse_amount/*` | `money::parse_amount` on a two-decimal amount and on one needing rounding | bytes of the token |
//! | `time/parse_iso` | `time::parse_iso` of a `from`/`to` bound (`…T12:34:56.000Z`) | bytes of the timestamp |
//! | `time/write_iso` | `time::write_iso` into a reused buffer | bytes written |
//! | `http/response/preserialized_accepted` | `http::response::Reply::preserialized(ACCEPTED)` into a reused buffer: the 202 of every accepted payment | bytes written |
//!
//! Bench binaries (`cargo run --release -p bench --bin <name> -- <args>`):
//!
//! | Binary | What it measures |
//! |---|---|
//! | `flood` | inserting N correlationIds with equal 64-bit halves against N random ones, into the accepted set and into the memory ledger: the ratio shows whether the hash can be flooded |
//! | `ledger_memory` | resident memory, insert cost and summary latency of the memory ledger and the accepted set at 10k, 100k, 1M and 10M payments |
//!
//! Criterion keeps its history under the target directory (`criterion/`) and reports
//! the change against the previous run.
//!
//! [criterion]: https://docs.rs/criterion

pub mod ids;
