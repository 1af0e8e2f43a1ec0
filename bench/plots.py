#!/usr/bin/env python3
"""Plots of one scenario run (bench/scenario.py), over the test's time:

- latency.png    p50/p99 per second of every HTTP request (k6), payments per second by
                 outcome and the number of users;
- queue.png      the gateways' queue depth (sum over instances);
- in_flight.png  processor requests in flight, per processor (sum over instances);
- decisions.png  routing decisions per second (default / fallback / wait);
- resources.png  CPU (% of one core) and RSS of every stack process;
- timeline.png   all of the above, stacked.
Fault stages are shaded (failing) and marked (delays) on every panel.

    bench/plots.py bench/results/<run>     # regenerate from raw/ and result.json

Inputs: <run>/result.json, <run>/raw/k6.csv.gz, <run>/raw/metrics.jsonl.
"""

import csv
import gzip
import json
import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"default": "tab:blue", "fallback": "tab:orange", "wait": "tab:gray"}
LABEL_RE = re.compile(r'(\w+)="([^"]*)"')


def split_key(key):
    """`name{a="b"}` into ("name", {"a": "b"})."""
    name, _, rest = key.partition("{")
    return name, dict(LABEL_RE.findall(rest))


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[i]


def load_k6(run, t0_ms):
    """Per second since t0: latencies, payments by outcome, users."""
    lat = defaultdict(list)
    outcome = defaultdict(lambda: defaultdict(int))
    vus = {}
    path = os.path.join(run, "raw", "k6.csv.gz")
    if not os.path.exists(path):
        return lat, outcome, vus
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            name = row["metric_name"]
            if name not in ("http_req_duration", "http_reqs", "vus"):
                continue
            sec = (int(row["timestamp"]) - t0_ms) // 1000
            if name == "http_req_duration":
                lat[sec].append(float(row["metric_value"]))
            elif name == "vus":
                vus[sec] = float(row["metric_value"])
            elif "kind=payment" in row["extra_tags"]:
                st = row["status"]
                if st.startswith("2"):
                    key = "accepted (2XX)"
                elif st in ("", "0"):
                    key = "timeout / no answer"
                else:
                    key = f"HTTP {st}"
                outcome[key][sec] += 1
    return lat, outcome, vus


def load_metrics(run, t0_ms):
    """Gateway samples summed over instances, per sampling instant; process samples."""
    sums = defaultdict(lambda: defaultdict(float))  # t -> key -> value (summed)
    first = defaultdict(dict)  # t -> key -> value of the first instance (states)
    procs = []
    path = os.path.join(run, "raw", "metrics.jsonl")
    if not os.path.exists(path):
        return sums, first, procs
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            t = (rec["wall_ms"] - t0_ms) / 1000
            if "procs" in rec:
                procs.append((t, rec["procs"]))
            elif "metrics" in rec:
                for k, v in rec["metrics"].items():
                    sums[t][k] += v
                    if rec["instance"].endswith("1"):
                        first[t][k] = v
    return sums, first, procs


def series(sums, name, label=None):
    """{label value: ([t], [v])} for metric `name`, summed over other labels."""
    out = defaultdict(lambda: ([], []))
    for t in sorted(sums):
        acc = defaultdict(float)
        for k, v in sums[t].items():
            n, labels = split_key(k)
            if n == name:
                acc[labels.get(label, "") if label else ""] += v
        for lv, v in acc.items():
            out[lv][0].append(t)
            out[lv][1].append(v)
    return out


def rate(ts, vs):
    rt, rv = [], []
    for i in range(1, len(ts)):
        dt = ts[i] - ts[i - 1]
        if dt > 0:
            rt.append(ts[i])
            rv.append(max(0.0, (vs[i] - vs[i - 1]) / dt))
    return rt, rv


def mark_faults(ax, result, label=False):
    """Shades failing periods and marks each stage's delays."""
    faults = result.get("faults") or []
    compress = result.get("compress", 1) or 1
    end = result.get("test_ms", 0) / 1000
    starts = [f[0] / compress for f in faults] + [end]
    for i, f in enumerate(faults):
        a, b = starts[i], starts[i + 1]
        ax.axvline(a, color="k", lw=0.5, alpha=0.4)
        if f[2] and f[4]:
            ax.axvspan(a, b, color="tab:red", alpha=0.15)
        elif f[2]:
            ax.axvspan(a, b, color="tab:red", alpha=0.07)
        elif f[4]:
            ax.axvspan(a, b, color="tab:orange", alpha=0.10)
        if label:
            txt = f"D {f[1]}ms{' FAIL' if f[2] else ''}\nF {f[3]}ms{' FAIL' if f[4] else ''}"
            ax.annotate(txt, (a, 1.0), xycoords=("data", "axes fraction"), fontsize=6,
                        va="bottom", ha="left", xytext=(2, 2), textcoords="offset points")


def no_data(ax, what):
    ax.text(0.5, 0.5, f"{what}: no data (GET /metrics not served by this build)",
            transform=ax.transAxes, ha="center", va="center", fontsize=8, color="gray")


def panel_latency(ax, lat, outcome, vus):
    secs = sorted(lat)
    p99 = [percentile(sorted(lat[s]), 0.99) for s in secs]
    p50 = [percentile(sorted(lat[s]), 0.50) for s in secs]
    ax.plot(secs, p99, label="p99", color="tab:red", lw=1)
    ax.plot(secs, p50, label="p50", color="tab:green", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("request ms")
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)


def panel_outcome(ax, outcome, vus):
    for key in sorted(outcome):
        d = outcome[key]
        xs = sorted(d)
        ax.plot(xs, [d[x] for x in xs], label=key, lw=1)
    ax.set_ylabel("payments/s")
    ax.grid(alpha=0.3)
    if vus:
        ax2 = ax.twinx()
        xs = sorted(vus)
        ax2.plot(xs, [vus[x] for x in xs], color="k", lw=0.6, ls=":", label="users")
        ax2.set_ylabel("users", fontsize=7)
    ax.legend(loc="upper left", fontsize=7)


def panel_metric(ax, sums, name, label, ylabel, as_rate=False, limit=None):
    s = series(sums, name, label)
    if limit:  # e.g. the in-flight limit, dashed in the same colour, when it moved
        for lv, (ts, vs) in sorted(series(sums, limit, label).items()):
            if min(vs) == max(vs):
                continue
            ax.plot(ts, vs, color=COLORS.get(lv), lw=0.8, ls="--", label=f"{lv} limit")
    if not s:
        no_data(ax, name)
    for lv in sorted(s):
        ts, vs = s[lv]
        if as_rate:
            ts, vs = rate(ts, vs)
        ax.plot(ts, vs, label=lv or name, color=COLORS.get(lv), lw=1)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if s:
        ax.legend(loc="upper left", fontsize=7)


STATES = ["healthy", "degraded", "probing", "failing"]


def panel_state(ax, first):
    s = defaultdict(lambda: ([], []))
    for t in sorted(first):
        for k, v in first[t].items():
            n, labels = split_key(k)
            if n == "gateway_processor_state" and v >= 0.5 and labels.get("state") in STATES:
                p = labels.get("processor", "")
                off = 0.1 if p == "fallback" else -0.1
                s[p][0].append(t)
                s[p][1].append(STATES.index(labels["state"]) + off)
    if not s:
        no_data(ax, "gateway_processor_state")
    for p in sorted(s):
        ax.scatter(s[p][0], s[p][1], s=3, label=p, color=COLORS.get(p))
    ax.set_yticks(range(len(STATES)))
    ax.set_yticklabels(STATES, fontsize=7)
    ax.set_ylabel("state (gw 1)")
    ax.grid(alpha=0.3)
    if s:
        ax.legend(loc="upper left", fontsize=7)


def panel_resources(ax, procs):
    if len(procs) < 2:
        no_data(ax, "process samples")
        return
    names = sorted({n for _, p in procs for n in p})
    ax2 = ax.twinx()
    for n in names:
        pts = [(t, p[n]) for t, p in procs if n in p]
        ts = [t for t, _ in pts]
        rt, rv = rate(ts, [v["cpu_s"] for _, v in pts])
        line, = ax.plot(rt, [v * 100 for v in rv], lw=1, label=f"{n} CPU %")
        ax2.plot(ts, [v["rss"] / 2**20 for _, v in pts], lw=0.8, ls="--",
                 color=line.get_color(), label=f"{n} RSS")
    ax.set_ylabel("CPU % of a core")
    ax2.set_ylabel("RSS MiB (dashed)", fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)


def make_all(run):
    with open(os.path.join(run, "result.json")) as f:
        result = json.load(f)
    t0 = result["t0_ms"]
    lat, outcome, vus = load_k6(run, t0)
    sums, first, procs = load_metrics(run, t0)
    title = (f"{result['scenario']} (compress {result.get('compress', 1):g}): score "
             f"{result['score']:,.0f}, p99 {result['p99_ms']:.2f} ms, "
             f"{result['inconsistencies']} inconsistencies, commit "
             f"{result.get('run', {}).get('commit', '?')}")
    panels = [
        ("latency", lambda ax: panel_latency(ax, lat, outcome, vus)),
        ("payments", lambda ax: panel_outcome(ax, outcome, vus)),
        ("queue", lambda ax: panel_metric(ax, sums, "gateway_queue_depth", None, "queued")),
        ("in_flight", lambda ax: panel_metric(ax, sums, "gateway_in_flight", "processor",
                                              "in flight", limit="gateway_in_flight_limit")),
        ("decisions", lambda ax: panel_metric(ax, sums, "gateway_decisions_total", "decision",
                                              "decisions/s", as_rate=True)),
        ("state", lambda ax: panel_state(ax, first)),
        ("resources", lambda ax: panel_resources(ax, procs)),
    ]
    if not sums:  # no /metrics: the timeline keeps latency, payments and resources
        panels = [p for p in panels if p[0] in ("latency", "payments", "resources")]
    made = []
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.2 * len(panels)), sharex=True)
    for i, (ax, (_, draw)) in enumerate(zip(axes, panels)):
        draw(ax)
        mark_faults(ax, result, label=(i == 0))
    axes[-1].set_xlabel("seconds since the test started")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = os.path.join(run, "timeline.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    made.append(path)
    singles = {"latency": ["latency", "payments"], "queue": ["queue"],
               "in_flight": ["in_flight"], "decisions": ["decisions", "state"],
               "resources": ["resources"]}
    by_name = dict(panels)
    singles = {k: v for k, v in singles.items() if all(n in by_name for n in v)}
    for fname, names in singles.items():
        fig, axes = plt.subplots(len(names), 1, figsize=(11, 2.8 * len(names)), sharex=True,
                                 squeeze=False)
        for i, (ax, n) in enumerate(zip(axes[:, 0], names)):
            by_name[n](ax)
            mark_faults(ax, result, label=(i == 0))
        axes[-1, 0].set_xlabel("seconds since the test started")
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        path = os.path.join(run, f"{fname}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/plots.py <result dir>")
    for p in make_all(sys.argv[1]):
        print(p)
