"""EP step on N worker processes (``ParallelNgspiceBackend``) vs one process.

``python -m benchmarks.parallel [--quick] [--workers N]`` prints JSON; ``benchmarks.run``
calls :func:`bench_parallel`. Single-process and parallel repeats alternate, so a load
change on a shared machine hits both alike; the first parallel call (which starts the
workers) is reported separately and not in the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from analogeq import ResistiveBlock
from analogeq.backends.ngspice import NgspiceBackend
from analogeq.backends.pool import ParallelNgspiceBackend

from .common import BLOCKS, inputs, median

# (block, batch, repeats) per mode
PLAN = {
    "quick": [("S", 64, 3)],
    "full": [("S", 64, 3), ("M", 32, 3), ("K", 32, 3)],
}


def _log(msg: str) -> None:
    print(msg, flush=True)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _timed_ep(block: ResistiveBlock, u, delta, backend, pids=()):
    """Wall time, parent CPU time, CPU time of each process in ``pids``, gradients."""
    before = [_cpu_s(p) for p in pids]
    c0, t0 = time.process_time(), time.perf_counter()
    g = block.ep_gradients(u, delta, backend=backend)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, [_cpu_s(p) - b for p, b in zip(pids, before, strict=True)], g


def bench_parallel(mode: str, workers: int = 2) -> dict:
    rows = []
    load_start = os.getloadavg()
    with ParallelNgspiceBackend(workers) as par:
        for name, batch, repeats in PLAN[mode]:
            sizes = BLOCKS[name]
            block = ResistiveBlock(sizes, seed=0)
            par.options = block.options
            single = NgspiceBackend(block.options)
            u, delta = inputs(sizes[0], sizes[-1], batch)
            t_first = _timed_ep(block, u, delta, par)[0]  # starts workers if needed
            t1, t_n, cpu1, cpu_n = [], [], [], []
            g1 = g_n = None
            for r in range(repeats):
                t, c, _, g1 = _timed_ep(block, u, delta, single)
                t1.append(t)
                cpu1.append(c)
                pids = [p for p in par.worker_pids() if p is not None]
                t, c, cw, g_n = _timed_ep(block, u, delta, par, pids)
                t_n.append(t)
                cpu_n.append({"parent": c, "workers": cw})
                _log(f"    parallel {name} B={batch} repeat {r + 1}/{repeats}: "
                     f"1 process {t1[-1]:.2f} s ({cpu1[-1]:.2f} s CPU), {workers} workers "
                     f"{t_n[-1]:.2f} s (CPU parent {c:.2f} s, workers "
                     + ", ".join(f"{x:.2f}" for x in cw) + " s)")
            # on an idle machine the parallel wall time would be about the parent's CPU
            # time plus the busiest worker's (the workers run concurrently)
            idle_par = [x["parent"] + max(x["workers"], default=0.0) for x in cpu_n]
            grad_rel = max(
                float(np.abs(a - b).max() / np.abs(b).max())
                for a, b in zip(g_n.conductances, g1.conductances, strict=True)
            )
            rows.append({
                "block": name, "sizes": sizes, "batch": batch, "repeats": repeats,
                "workers": workers, "chunks": par.plan(3 * batch),
                "single_s": t1, "parallel_s": t_n, "parallel_first_call_s": t_first,
                "single_median_s": median(t1), "parallel_median_s": median(t_n),
                "speedup": median(t1) / median(t_n),
                "single_cpu_s": cpu1, "parallel_cpu_s": cpu_n,
                "single_cpu_median_s": median(cpu1),
                "parallel_cpu_total_median_s": median(
                    [x["parent"] + sum(x["workers"]) for x in cpu_n]
                ),
                "projected_idle_speedup": median(cpu1) / median(idle_par),
                "grad_max_abs_diff_rel": grad_rel,
                "outputs_max_abs_diff_V": float(np.abs(g_n.outputs - g1.outputs).max()),
            })
    return {
        "rows": rows,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "cores": os.cpu_count(),
    }


def markdown(res: dict) -> list[str]:
    out = [
        "### parallel: EP step, N worker processes vs one process (seconds, medians)",
        "",
        "| block | B | workers | 1 process | N workers | speed-up | first call "
        "| CPU 1 process | CPU N workers (total) | projected idle speed-up "
        "| grad diff (rel) | output diff (V) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        out.append(
            f"| {r['block']} {tuple(r['sizes'])} | {r['batch']} | {r['workers']} "
            f"| {r['single_median_s']:.2f} | {r['parallel_median_s']:.2f} "
            f"| {r['speedup']:.2f}x | {r['parallel_first_call_s']:.2f} "
            f"| {r['single_cpu_median_s']:.2f} | {r['parallel_cpu_total_median_s']:.2f} "
            f"| {r['projected_idle_speedup']:.2f}x "
            f"| {r['grad_max_abs_diff_rel']:.1e} | {r['outputs_max_abs_diff_V']:.1e} |"
        )
    la, lb = res["loadavg_start"], res["loadavg_end"]
    out += ["", f"Load average (1 min) {la[0]:.2f} at start, {lb[0]:.2f} at end, "
            f"on {res['cores']} cores.", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    res = bench_parallel("quick" if args.quick else "full", args.workers)
    print("\n".join(markdown(res)))
    print(json.dumps(res, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
