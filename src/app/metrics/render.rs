//! The Prometheus text format of the instance's [`Metrics`]: one `# HELP` and
//! `# TYPE` line per family, then its samples.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::app::metrics::{CoreGauges, Metrics, ROUTE_LABELS};
use crate::engine::policy::Decision;
use crate::engine::settle::Resolved;
use crate::engine::vitals::State;
use crate::ledger::claims::ClaimVerdict;
use crate::processor::Processor;
use crate::upstream::api::PostOutcome;
use crate::upstream::report::Polled;

impl Metrics {
    /// Writes every metric in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let sum = |f: &dyn Fn(&CoreGauges) -> u64| self.cores.iter().map(f).sum::<u64>();
        let max = |f: &dyn Fn(&CoreGauges) -> u64| self.cores.iter().map(f).max().unwrap_or(0);
        let load = |a: &AtomicU64| a.load(Relaxed);

        family(
            out,
            "gateway_queue_depth",
            "gauge",
            "Payments waiting in the backlogs.",
        );
        sample(
            out,
            "gateway_queue_depth",
            "",
            sum(&|c| load(&c.queue_depth)),
        );
        family(
            out,
            "gateway_unsettled",
            "gauge",
            "Payments accepted and not settled yet: queued, in flight, or being recorded.",
        );
        sample(out, "gateway_unsettled", "", sum(&|c| load(&c.unsettled)));
        family(
            out,
            "gateway_in_flight",
            "gauge",
            "Processor requests in flight.",
        );
        per_processor(out, "gateway_in_flight", "", |i| {
            sum(&|c| load(&c.in_flight[i]))
        });
        family(
            out,
            "gateway_in_flight_limit",
            "gauge",
            "Current in-flight limit.",
        );
        per_processor(out, "gateway_in_flight_limit", "", |i| {
            sum(&|c| load(&c.limit[i]))
        });
        family(
            out,
            "gateway_processor_state",
            "gauge",
            "Routing state of each processor, one-hot per core.",
        );
        for (core, c) in self.cores.iter().enumerate() {
            for p in Processor::ALL {
                let now = load(&c.state[p.index()]) as usize;
                for s in State::ALL {
                    let labels = format!(
                        "core=\"{core}\",processor=\"{}\",state=\"{}\"",
                        p.name(),
                        s.name()
                    );
                    sample(
                        out,
                        "gateway_processor_state",
                        &labels,
                        u8::from(s.index() == now),
                    );
                }
            }
        }
        family(
            out,
            "gateway_latency_ms",
            "gauge",
            "Processor latency seen by our requests (worst core).",
        );
        per_processor(out, "gateway_latency_ms", ",stat=\"ewma\"", |i| {
            max(&|c| load(&c.latency_ewma_us[i])) as f64 / 1000.0
        });
        per_processor(out, "gateway_latency_ms", ",stat=\"p99\"", |i| {
            max(&|c| load(&c.latency_p99_us[i])) as f64 / 1000.0
        });
        family(
            out,
            "gateway_outcome_share",
            "gauge",
            "Share of recent requests that failed or timed out (worst core).",
        );
        per_processor(out, "gateway_outcome_share", ",outcome=\"failed\"", |i| {
            max(&|c| load(&c.error_ppm[i])) as f64 / 1e6
        });
        per_processor(
            out,
            "gateway_outcome_share",
            ",outcome=\"timed_out\"",
            |i| max(&|c| load(&c.timeout_ppm[i])) as f64 / 1e6,
        );
        family(
            out,
            "gateway_health_min_response_ms",
            "gauge",
            "minResponseTime of the last health poll made by this instance.",
        );
        per_processor(out, "gateway_health_min_response_ms", "", |i| {
            load(&self.health[i]) & !(1 << 63)
        });
        family(
            out,
            "gateway_health_failing",
            "gauge",
            "failing of the last health poll made by this instance.",
        );
        per_processor(out, "gateway_health_failing", "", |i| {
            load(&self.health[i]) >> 63
        });
        family(
            out,
            "gateway_accepted_total",
            "counter",
            "Payments accepted (202).",
        );
        sample(out, "gateway_accepted_total", "", load(&self.accepted));
        family(
            out,
            "gateway_duplicates_total",
            "counter",
            "Payments answered 202 and not queued: correlationId accepted before.",
        );
        sample(out, "gateway_duplicates_total", "", load(&self.duplicates));
        family(
            out,
            "gateway_refused_full_total",
            "counter",
            "Payments refused with 503: queue full.",
        );
        sample(
            out,
            "gateway_refused_full_total",
            "",
            load(&self.refused_full),
        );
        family(
            out,
            "gateway_decisions_total",
            "counter",
            "Routing decisions by outcome.",
        );
        for d in Decision::ALL {
            let labels = format!("decision=\"{}\"", d.name());
            sample(
                out,
                "gateway_decisions_total",
                &labels,
                load(&self.decisions[d.index()]),
            );
        }
        family(
            out,
            "gateway_probes_total",
            "counter",
            "Payments sent as probes.",
        );
        per_processor(out, "gateway_probes_total", "", |i| load(&self.probes[i]));
        family(
            out,
            "gateway_attempts_total",
            "counter",
            "POST /payments attempts.",
        );
        for o in PostOutcome::ALL {
            let extra = format!(",outcome=\"{}\"", o.name());
            per_processor(out, "gateway_attempts_total", &extra, |i| {
                load(&self.attempts[i][o.index()])
            });
        }
        family(
            out,
            "gateway_settled_total",
            "counter",
            "Payments recorded by this instance.",
        );
        per_processor(out, "gateway_settled_total", "", |i| load(&self.settled[i]));
        family(
            out,
            "gateway_uncertain_resolved_total",
            "counter",
            "Uncertain attempts resolved.",
        );
        for r in Resolved::ALL {
            let labels = format!("result=\"{}\"", r.name());
            let v = load(&self.resolved[r.index()]);
            sample(out, "gateway_uncertain_resolved_total", &labels, v);
        }
        family(
            out,
            "gateway_claims_total",
            "counter",
            "Claims made before a payment's first attempt, by verdict.",
        );
        for c in ClaimVerdict::ALL {
            let labels = format!("verdict=\"{}\"", c.name());
            let v = load(&self.claims[c.index()]);
            sample(out, "gateway_claims_total", &labels, v);
        }
        family(
            out,
            "gateway_request_duration_seconds",
            "histogram",
            "Public requests from the read of their first byte to the write of their answer, by route.",
        );
        for (h, name) in self.requests.iter().zip(ROUTE_LABELS) {
            h.render(
                out,
                "gateway_request_duration_seconds",
                &format!("route=\"{name}\""),
            );
        }
        family(
            out,
            "gateway_first_byte_seconds",
            "histogram",
            "Public connections from their accept to the read of their first bytes.",
        );
        self.first_bytes
            .render(out, "gateway_first_byte_seconds", "");
        family(
            out,
            "gateway_inherited_total",
            "counter",
            "Unsettled payments taken over from instances whose journal lease ran out.",
        );
        sample(out, "gateway_inherited_total", "", load(&self.inherited));
        family(
            out,
            "gateway_health_polls_total",
            "counter",
            "Health polls made by this instance.",
        );
        for r in Polled::ALL {
            let extra = format!(",result=\"{}\"", r.name());
            per_processor(out, "gateway_health_polls_total", &extra, |i| {
                load(&self.health_polls[i][r.index()])
            });
        }
        self.render_connections(out);
    }

    /// Client connections: open, the cap, refusals, failed accepts.
    fn render_connections(&self, out: &mut String) {
        if let Some(limit) = self.connections.get() {
            family(
                out,
                "gateway_connections_open",
                "gauge",
                "Client connections open (LISTEN and hand-off).",
            );
            sample(out, "gateway_connections_open", "", limit.open());
            family(
                out,
                "gateway_connections_limit",
                "gauge",
                "MAX_CONNECTIONS.",
            );
            sample(out, "gateway_connections_limit", "", limit.max());
            family(
                out,
                "gateway_connections_refused_total",
                "counter",
                "Client connections refused: at MAX_CONNECTIONS (limit), or handed over \
                 when the process had no file descriptor for them (fds).",
            );
            sample(
                out,
                "gateway_connections_refused_total",
                "reason=\"limit\"",
                limit.refused(),
            );
            sample(
                out,
                "gateway_connections_refused_total",
                "reason=\"fds\"",
                limit.out_of_fds(),
            );
        }
        family(
            out,
            "gateway_accept_errors_total",
            "counter",
            "Failed accepts (EMFILE and the like), every listener.",
        );
        sample(
            out,
            "gateway_accept_errors_total",
            "",
            net::listen::accept_failures(),
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// One sample per processor, labelled `processor="…"` followed by `extra` labels.
fn per_processor<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    extra: &str,
    value: impl Fn(usize) -> V,
) {
    for p in Processor::ALL {
        let labels = format!("processor=\"{}\"{extra}", p.name());
        sample(out, name, &labels, value(p.index()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_type() {
        let m = Metrics::new(2);
        m.accepted();
        m.duplicate();
        m.decision(Decision::Send {
            to: Processor::Fallback,
            probe: true,
        });
        m.attempt(Processor::Default, PostOutcome::NotCharged(500));
        m.attempt(Processor::Fallback, PostOutcome::TurnedAway(429));
        m.settled(Processor::Fallback);
        m.resolved(Resolved::Freed);
        m.claim(ClaimVerdict::Theirs);
        m.inherited();
        m.answered(0, 3, std::time::Duration::from_micros(120));
        m.answered(4, 1, std::time::Duration::from_micros(40));
        m.first_bytes(std::time::Duration::from_millis(2));
        m.core(1).queue_depth.store(7, Relaxed);
        m.core(0).queue_depth.store(3, Relaxed);
        m.core(1).state[0].store(2, Relaxed);
        m.core(0).error_ppm[0].store(250_000, Relaxed);
        let limit = http1::limit::ConnLimit::new(1);
        let _slot = limit.try_acquire();
        assert!(limit.try_acquire().is_none());
        m.watch_connections(limit);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "gateway_queue_depth 10",
            "gateway_accepted_total 1",
            "gateway_duplicates_total 1",
            "gateway_decisions_total{decision=\"fallback\"} 1",
            "gateway_probes_total{processor=\"fallback\"} 1",
            "gateway_attempts_total{processor=\"default\",outcome=\"not_charged\"} 1",
            "gateway_attempts_total{processor=\"fallback\",outcome=\"turned_away\"} 1",
            "gateway_settled_total{processor=\"fallback\"} 1",
            "gateway_outcome_share{processor=\"default\",outcome=\"failed\"} 0.25",
            "gateway_uncertain_resolved_total{result=\"freed\"} 1",
            "gateway_claims_total{verdict=\"theirs\"} 1",
            "gateway_claims_total{verdict=\"mine\"} 0",
            "gateway_inherited_total 1",
            "gateway_request_duration_seconds_bucket{route=\"payments\",le=\"0.0001\"} 0",
            "gateway_request_duration_seconds_bucket{route=\"payments\",le=\"0.00015\"} 3",
            "gateway_request_duration_seconds_count{route=\"payments\"} 3",
            "gateway_request_duration_seconds_count{route=\"other\"} 1",
            "gateway_request_duration_seconds_count{route=\"summary\"} 0",
            "gateway_first_byte_seconds_bucket{le=\"0.002\"} 1",
            "gateway_first_byte_seconds_count 1",
            "gateway_processor_state{core=\"1\",processor=\"default\",state=\"failing\"} 1",
            "gateway_processor_state{core=\"1\",processor=\"default\",state=\"healthy\"} 0",
            "gateway_connections_open 1",
            "gateway_connections_limit 1",
            "gateway_connections_refused_total{reason=\"limit\"} 1",
            "gateway_connections_refused_total{reason=\"fds\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // Every sample line belongs to a family declared with # TYPE (a histogram's
        // samples by its name with a suffix).
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let histogram = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|base| out.contains(&format!("# TYPE {base} histogram")));
            assert!(
                histogram.is_some() || out.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }
}
