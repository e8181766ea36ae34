"""Resident memory over many ngspice solves in one process.

Runs as a fresh subprocess of :mod:`benchmarks.run` (``python -m benchmarks.memory N
[--quick]``) so earlier benchmarks do not pollute its RSS. Three circuits alternate so
every solve loads a different netlist (exercising ``remcirc`` / ``destroy all``): a diode
with a series resistor (``.op``), and the free phase of two small resistive blocks with a
batch of one (a one-point DC sweep). Progress lines start with ``#``; the last line is JSON.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from analogeq import Circuit, Conductance, Diode, DiodeModel, ResistiveBlock, VoltageSource
from analogeq.backends.ngspice import NgspiceBackend

from .common import rss_mb

WARMUP = 200
REPORT_EVERY = 1000
QUICK_BUDGET_S = 120.0


def _solvers():
    be = NgspiceBackend()
    diode = Circuit(
        "diode and resistor",
        [
            VoltageSource("V1", "in", "0", 0.7),
            Conductance("R1", "in", "a", 1e-3),
            Diode("D1", "a", "0", "dm"),
        ],
        {"dm": DiodeModel("dm", 1e-14, 1.0)},
    )
    small = ResistiveBlock((4, 6, 2), seed=0)
    other = ResistiveBlock((8, 8, 2), seed=1, name="b1")
    rng = np.random.default_rng(0)
    u4, u8 = rng.uniform(-1, 1, (1, 4)), rng.uniform(-1, 1, (1, 8))
    return [
        lambda: be.solve(diode),
        lambda: small.free(u4, backend=be),
        lambda: other.free(u8, backend=be),
    ]


class CountingSolve:
    """Call ``solvers[k % len(solvers)]()`` for solve ``k``; count failures (keep the
    first five messages) instead of stopping."""

    def __init__(self, solvers: list) -> None:
        self.solvers = solvers
        self.n_err = 0
        self.errors: list[str] = []

    def __call__(self, k: int) -> None:
        try:
            self.solvers[k % len(self.solvers)]()
        except Exception as exc:  # noqa: BLE001 - count and report, keep going
            self.n_err += 1
            if len(self.errors) < 5:
                self.errors.append(f"solve {k}: {type(exc).__name__}: {exc}"[:300])


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    quick = "--quick" in sys.argv
    solvers = _solvers()
    solve = CountingSolve(solvers)

    rss_start = rss_mb()
    for k in range(WARMUP):
        solve(k)
    rss_warm = rss_mb()
    print(f"# RSS at start {rss_start:.1f} MB, after {WARMUP} warm-up solves {rss_warm:.1f} MB",
          flush=True)
    trace = [(0, rss_warm)]
    note = ""
    t0 = time.perf_counter()
    done = 0
    while done < total:
        for k in range(REPORT_EVERY):
            solve(WARMUP + done + k)
        done += REPORT_EVERY
        elapsed = time.perf_counter() - t0
        trace.append((done, rss_mb()))
        print(f"# {done:6d} solves  RSS {trace[-1][1]:8.1f} MB  ({elapsed:.1f} s)", flush=True)
        if quick and done == REPORT_EVERY and elapsed * total / REPORT_EVERY > QUICK_BUDGET_S:
            total = 2000
            note = (f"quick mode: {REPORT_EVERY} solves took {elapsed:.1f} s, so 10,000 would "
                    f"exceed {QUICK_BUDGET_S:.0f} s; stopped at {total}")
    elapsed = time.perf_counter() - t0
    counts = np.array([c for c, _ in trace], dtype=float)
    rss = np.array([r for _, r in trace])
    slope = float(np.polyfit(counts, rss, 1)[0] * 1000) if len(trace) > 2 else float("nan")
    print(json.dumps({
        "solves": done,
        "warmup": WARMUP,
        "rss_start_MB": rss_start,
        "rss_after_warmup_MB": rss_warm,
        "trace": trace,
        "growth_MB": float(rss[-1] - rss_warm),
        "slope_MB_per_1000": slope,
        "seconds": elapsed,
        "ms_per_solve": 1000 * elapsed / done,
        "errors": solve.n_err,
        "error_samples": solve.errors,
        "note": note,
    }), flush=True)


if __name__ == "__main__":
    main()
