"""Soak test: resident memory over 100,000 ngspice solves in one process.

``python -m benchmarks.soak [N] [--budget-s SECONDS]`` (default N = 100,000, budget 330 s).
The solves cycle through the three small circuits of :mod:`benchmarks.memory` (a diode with
a series resistor, the free phase of two small blocks with a batch of one), so every solve
loads a new netlist and runs the package's full path (validation, emission, ngspice, the
post-solve check). RSS (VmRSS) is sampled every 5,000 solves after 1,000 warm-up solves.
If N solves would not fit in the budget (measured on the first 5,000), it stops when the
budget is spent and reports the measured growth and a linear extrapolation to N (the
``extrapolated`` flag says so). Progress lines start with ``#``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .common import machine, rss_mb
from .memory import CountingSolve, _solvers

WARMUP = 1000
REPORT_EVERY = 5000
TARGET_MB = 20.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("solves", nargs="?", type=int, default=100_000)
    ap.add_argument("--budget-s", type=float, default=330.0)
    args = ap.parse_args()
    solvers = _solvers()
    solve = CountingSolve(solvers)

    rss_start = rss_mb()
    for k in range(WARMUP):
        solve(k)
    rss_warm = rss_mb()
    print(f"# RSS at start {rss_start:.1f} MB, after {WARMUP} warm-up solves "
          f"{rss_warm:.1f} MB", flush=True)
    trace = [(0, rss_warm)]
    t0 = time.perf_counter()
    done = 0
    while done < args.solves:
        n = min(REPORT_EVERY, args.solves - done)
        for k in range(n):
            solve(WARMUP + done + k)
        done += n
        elapsed = time.perf_counter() - t0
        trace.append((done, rss_mb()))
        print(f"# {done:7d} solves  RSS {trace[-1][1]:8.1f} MB  ({elapsed:.1f} s)", flush=True)
        if elapsed + elapsed / done * REPORT_EVERY > args.budget_s and done < args.solves:
            print(f"# budget of {args.budget_s:.0f} s reached: stopping at {done}", flush=True)
            break
    elapsed = time.perf_counter() - t0
    counts = np.array([c for c, _ in trace], dtype=float)
    rss = np.array([r for _, r in trace])
    slope = float(np.polyfit(counts, rss, 1)[0]) if len(trace) > 2 else float("nan")
    growth = float(rss[-1] - rss_warm)
    extrapolated = done < args.solves
    growth_at_n = growth if not extrapolated else slope * args.solves
    print(json.dumps({
        "target_solves": args.solves,
        "solves": done,
        "warmup": WARMUP,
        "extrapolated": extrapolated,
        "rss_start_MB": rss_start,
        "rss_after_warmup_MB": rss_warm,
        "trace": trace,
        "growth_MB": growth,
        "slope_MB_per_1000": slope * 1000,
        "growth_at_target_MB": growth_at_n,
        "target_MB": TARGET_MB,
        "target_met": growth_at_n < TARGET_MB,
        "seconds": elapsed,
        "ms_per_solve": 1000 * elapsed / max(done, 1),
        "errors": solve.n_err,
        "error_samples": solve.errors,
        "machine": machine(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }), flush=True)


if __name__ == "__main__":
    main()
