#!/usr/bin/env python3
"""Pairs A B A B runs and prints their ratios (min / median / max).

Reads lines `name rps=<n> p50=<wrk latency> p99=<wrk latency>` on stdin, as
compare_nginx.sh and compare_drivers.sh print them. The first name seen is A, the second B;
each A run is paired with the B run after it. Echoes the runs, then one line per figure:
    rps A/B  min 0.72  median 0.79  max 0.85  (4 pairs)
and, with --markdown, a table row per pair for BENCHMARKS.md.
"""

import re
import statistics
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def main():
    markdown = "--markdown" in sys.argv[1:]
    runs = []
    for line in sys.stdin:
        print(line, end="")
        m = re.match(r"(\S+) rps=([0-9.]+) p50=(\S+) p99=(\S+)", line.strip())
        if m:
            runs.append((m.group(1), float(m.group(2)), ms(m.group(3)), ms(m.group(4))))
    names = list(dict.fromkeys(r[0] for r in runs))
    if len(names) != 2:
        sys.exit(f"expected runs of two names, got {names}")
    a, b = names
    pairs = []
    pending = None
    for r in runs:
        if r[0] == a:
            pending = r
        elif pending is not None:
            pairs.append((pending, r))
            pending = None
    if not pairs:
        sys.exit("no A B pair")
    figures = {
        f"rps {a}/{b}": [x[1] / y[1] for x, y in pairs],
        f"p50 {a}/{b}": [x[2] / y[2] for x, y in pairs],
        f"p99 {a}/{b}": [x[3] / y[3] for x, y in pairs],
    }
    for name, vals in figures.items():
        print(f"{name:<22} min {min(vals):.2f}  median {statistics.median(vals):.2f}  "
              f"max {max(vals):.2f}  ({len(vals)} pairs)")
    if markdown:
        print(f"\n| pair | {a} rps | {b} rps | rps ratio | {a} p99 | {b} p99 | p99 ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for i, (x, y) in enumerate(pairs, 1):
            print(f"| {i} | {x[1]:,.0f} | {y[1]:,.0f} | {x[1] / y[1]:.2f} | {x[3]:.2f} ms | "
                  f"{y[3]:.2f} ms | {x[3] / y[3]:.2f} |")


if __name__ == "__main__":
    main()
