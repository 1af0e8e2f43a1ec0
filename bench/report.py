#!/usr/bin/env python3
"""One Markdown table row per scenario run, for BENCHMARKS.md.

    bench/report.py bench/results/final-*/ ...     # rows in the order given
"""

import json
import os
import sys

HEAD = ("| run | commit | score | p99 ms | inconsistencies | default / fallback | "
        "accepted / counted | lag | net per accepted | CPU s per 1k | peak RSS | throttled |")


def row(run):
    with open(os.path.join(run, "result.json")) as f:
        r = json.load(f)
    st = r.get("stack", {})
    rss = st.get("cgroup_peak_bytes_sum") or st.get("peak_rss_bytes_sum") or 0
    thr = st.get("nr_throttled_sum")
    fails = r.get("summary_failures", 0)
    inc = f"{r['inconsistencies']:.0f}" + (f" ({fails:.0f} summary failures)" if fails else "")
    return (f"| {os.path.basename(os.path.normpath(run))} | {r.get('run', {}).get('commit', '?')} "
            f"| {r['score']:,.0f} | {r['p99_ms']:.2f} | {inc} "
            f"| {r['default']['requests']:,} / {r['fallback']['requests']:,} "
            f"| {r['payments_accepted']:,} / {r['payments_counted']:,} | {r['lag_payments']} "
            f"| {r['net_per_accepted_payment']:.2f} "
            f"| {st.get('cpu_s_per_1000_payments') or 0:.3f} | {rss / 2**20:.0f} MiB "
            f"| {'' if thr is None else thr} |")


if __name__ == "__main__":
    print(HEAD)
    print("| " + " | ".join(["---"] * (HEAD.count("|") - 1)) + " |")
    for d in sys.argv[1:]:
        print(row(d))
