#!/usr/bin/env python3
"""Where the slow requests of a scenario run are: joins k6's per-request CSV with the
gateways' /metrics samples of the same run.

    bench/slow.py bench/results/<run>/ [...]     # one markdown block per run

For each run:
- the p50 and p99 of `http_req_duration` over every request (the score's p99), and per
  kind (payment, summary, admin);
- the requests at or above that p99 ("slow"), and the share of them that were the
  first on a new connection (k6 connected for them), that started within 20 ms after
  a summary request started, that ran while a gateway had payments queued (the
  nearest /metrics sample), and in which tenth of the run they fell; with the same
  shares over every request, for comparison;
- k6's phases of a slow request (sending, waiting, receiving) against every request's;
- the gateways' own view from their last /metrics sample: the p50 and p99 of
  `gateway_request_duration_seconds` (first byte read to answer written) for payments
  and of `gateway_first_byte_seconds`. A slow request whose time the gateway does not
  see was slow before the gateway read it, or after it wrote the answer.
"""
import bisect
import gzip
import json
import os
import sys

SUMMARY_NEAR_MS = 20


def requests(raw):
    """One dict per HTTP request: its metrics rows are consecutive, from http_reqs on."""
    out, cur = [], None
    with gzip.open(os.path.join(raw, "k6.csv.gz"), "rt") as f:
        header = f.readline().rstrip("\n").split(",")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            row = line.rstrip("\n").split(",")
            name = row[col["metric_name"]]
            if name == "http_reqs":
                tags = dict(t.split("=", 1) for t in row[col["extra_tags"]].split("&") if "=" in t)
                cur = {"ts": int(row[col["timestamp"]]), "kind": tags.get("kind", "?")}
                out.append(cur)
            elif cur is not None and name.startswith("http_req_"):
                cur[name[len("http_req_"):]] = float(row[col["metric_value"]])
    return [r for r in out if "duration" in r]


def quantile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def samples(raw):
    """(wall_ms, instance, metrics) of every /metrics sample, in time order."""
    path = os.path.join(raw, "metrics.jsonl")
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                s = json.loads(line)
                if s.get("status") == 200:
                    out.append((s["wall_ms"], s["instance"], s.get("metrics", {})))
    out.sort(key=lambda s: s[0])
    return out


def backlog_at(samples_, times, ts):
    """Whether the samples nearest `ts` (one per instance, within 1.5 s) show
    queued payments (a backlog)."""
    i = bisect.bisect_left(times, ts)
    seen = {}
    for j in range(max(0, i - 4), min(len(samples_), i + 4)):
        wall, inst, m = samples_[j]
        if abs(wall - ts) <= 1500:
            d = abs(wall - ts)
            if inst not in seen or d < seen[inst][0]:
                seen[inst] = (d, m.get("gateway_queue_depth", 0) > 0)
    return any(v for _, v in seen.values())


def histogram_quantiles(metrics, family, labels=""):
    """p50 and p99 (upper bucket bounds, ms) of a Prometheus histogram in one sample."""
    buckets = []
    for k, v in metrics.items():
        if not k.startswith(family + "_bucket{"):
            continue
        tags = k[len(family + "_bucket{"):-1]
        if labels and labels not in tags:
            continue
        le = tags.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]

    def q(p):
        for le, c in buckets:
            if c >= p * total:
                return le * 1000
        return float("inf")

    return q(0.5), q(0.99), int(total)


def share(items, pred):
    return f"{100 * sum(1 for r in items if pred(r)) / len(items):.0f} %" if items else "-"


def report(run):
    raw = os.path.join(run, "raw")
    reqs = requests(raw)
    if not reqs:
        return f"### {run}\n\nno requests in {raw}/k6.csv.gz\n"
    durations = sorted(r["duration"] for r in reqs)
    p99 = quantile(durations, 0.99)
    slow = [r for r in reqs if r["duration"] >= p99]
    t0, t1 = reqs[0]["ts"], max(r["ts"] for r in reqs)
    span = max(1, t1 - t0)
    summaries = sorted(r["ts"] for r in reqs if r["kind"] == "summary")
    smp = samples(raw)
    times = [s[0] for s in smp]

    def near_summary(r):
        i = bisect.bisect_right(summaries, r["ts"])
        return i > 0 and r["ts"] - summaries[i - 1] <= SUMMARY_NEAR_MS

    def new_conn(r):
        return r.get("connecting", 0) > 0

    def backlog(r):
        return backlog_at(smp, times, r["ts"])

    lines = [f"### {run}", ""]
    lines.append(f"{len(reqs)} requests, p50 {quantile(durations, 0.5):.2f} ms, "
                 f"p99 {p99:.2f} ms; {len(slow)} at or above the p99.")
    lines.append("")
    lines.append("| kind | requests | p50 ms | p99 ms | slow |")
    lines.append("| --- | --- | --- | --- | --- |")
    for kind in sorted({r["kind"] for r in reqs}):
        d = sorted(r["duration"] for r in reqs if r["kind"] == kind)
        n_slow = sum(1 for r in slow if r["kind"] == kind)
        lines.append(f"| {kind} | {len(d)} | {quantile(d, 0.5):.2f} | {quantile(d, 0.99):.2f} | {n_slow} |")
    lines.append("")
    lines.append("| share of | slow | all |")
    lines.append("| --- | --- | --- |")
    for name, pred in [("first on a new connection", new_conn),
                       (f"within {SUMMARY_NEAR_MS} ms after a summary", near_summary),
                       ("while a gateway had payments queued", backlog)]:
        lines.append(f"| {name} | {share(slow, pred)} | {share(reqs, pred)} |")
    for tenth in range(10):
        def in_tenth(r, tenth=tenth):
            return min(9, (r["ts"] - t0) * 10 // span) == tenth
        lines.append(f"| tenth {tenth + 1} of the run | {share(slow, in_tenth)} | {share(reqs, in_tenth)} |")
    lines.append("")
    lines.append("| k6 phase, mean ms | slow | all |")
    lines.append("| --- | --- | --- |")
    for phase in ["sending", "waiting", "receiving"]:
        def mean(items):
            return sum(r.get(phase, 0) for r in items) / len(items)
        lines.append(f"| {phase} | {mean(slow):.3f} | {mean(reqs):.3f} |")
    last = {}
    for _, inst, m in smp:
        last[inst] = m
    if last:
        lines.append("")
        lines.append("| gateway | payments p50 / p99 ms (first byte to answer) | payments counted | "
                     "first bytes p50 / p99 ms (accept to first byte) |")
        lines.append("| --- | --- | --- | --- |")
        for inst, m in sorted(last.items()):
            pay = histogram_quantiles(m, "gateway_request_duration_seconds", 'route="payments"')
            fb = histogram_quantiles(m, "gateway_first_byte_seconds")
            fmt = (lambda q: f"≤ {q[0]:.2f} / ≤ {q[1]:.2f}" if q else "-")
            lines.append(f"| {inst} | {fmt(pay)} | {pay[2] if pay else '-'} | {fmt(fb)} |")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for run in sys.argv[1:]:
        print(report(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
