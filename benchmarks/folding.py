"""Norton folding: EP step (free + two nudged phases) full vs condensed, ngspice and NumPy,
and bare batched Newton solves of the condensed equations (the NumPy backend's floor).

``python -m benchmarks.run --only fold``. The full form of K on ngspice costs ~0.6 s per
sample, so it runs at a smaller batch (``FULL_BATCH``); everything else at ``BATCH``.

Two floors: ``bare_newton`` is the plain method (dense (B, F, F) solves of all three
phases from 0 V, no step limiting or bookkeeping); ``bare_newton_eliminated`` is the
NumPy backend's own method without its bookkeeping (the independent-set elimination of
the dense Newton step, the free phase from 0 V, then both nudged phases from the free
state). Both run with BLAS limited to one thread, as the backend does.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from analogeq import ResistiveBlock, SolverOptions
from analogeq.backends.ngspice import STAGES, NgspiceBackend
from analogeq.backends.numpy_backend import (
    CompiledCircuit,
    NumpyBackend,
    blas_limit,
    diode_current,
)
from analogeq.circuit import fold_pinned

from .common import inputs, median

BLOCKS = {"S": (64, 32, 10), "M": (196, 256, 10), "K": (784, 100, 10)}
BATCH = 64
FULL_BATCH = {"S": 64, "M": 16, "K": 8}
REPEATS = {"quick": 1, "full": 3}


def _log(msg: str) -> None:
    print(msg, flush=True)


def _ngspice_once(block, u, delta, fold: bool) -> dict:
    be = NgspiceBackend(
        SolverOptions(fold_pinned_nodes=fold), timings=defaultdict(float)
    )
    t0 = time.perf_counter()
    block.ep_gradients(u, delta, backend=be)
    total = time.perf_counter() - t0
    parts = {s: be.timings.get(s, 0.0) for s in STAGES}
    parts["glue"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def _condensed(block: ResistiveBlock, u: np.ndarray, delta: np.ndarray, phases: list[float]):
    """The compiled condensed circuit of the EP phases ``phases`` (nudge signs) of every
    sample (interleaved), its (B, D) driven voltages and (B, F) free-node injections."""
    beta = block.default_beta(delta)
    n, k = u.shape[0], len(phases)
    values = block.input_source_values(np.repeat(u, k, axis=0))
    sign = np.tile(phases, n)
    values.update(block.nudge_source_values(-beta * np.repeat(delta, k, axis=0) * sign[:, None]))
    folded = fold_pinned(block.circuit(nudge=True))
    cc = CompiledCircuit.build(folded.condensed, SolverOptions())
    cvals = folded.condensed_values(values, k * n)
    v_driven, injected = cc.source_arrays(cvals, k * n)
    b = injected[:, cc.free] - (cc.g_fd @ np.c_[v_driven, np.zeros(k * n)].T).T
    return cc, v_driven, b


def bare_newton(block: ResistiveBlock, u: np.ndarray, delta: np.ndarray) -> tuple[float, int]:
    """Seconds and iterations of a plain batched Newton solve of the same three EP phases
    on the condensed equations: J = G_ff + diode conductances, dense (B, F, F) solves, no
    step limiting or per-sample bookkeeping (converges here from 0 V)."""
    n = u.shape[0]
    cc, v_driven, b = _condensed(block, u, delta, [0.0, 1.0, -1.0])
    with blas_limit(1):
        t0 = time.perf_counter()
        g = cc.g_ff
        pos = np.full(len(cc.nodes) + 1, -1)
        pos[cc.free] = np.arange(len(cc.free))
        full = cc.full_voltages(np.zeros((3 * n, len(cc.free))), v_driven)
        a, c = pos[cc.diode_a], pos[cc.diode_c]
        v = np.zeros((3 * n, len(cc.free)))
        it = 0
        for it in range(1, 100):  # noqa: B007
            full[:, cc.free] = v
            i_d, g_d = diode_current(full[:, cc.diode_a] - full[:, cc.diode_c],
                                     cc.diode_is, cc.diode_vte, 1e-12)
            r = v @ g.T - b
            jac = np.broadcast_to(g, (3 * n, *g.shape)).copy()
            for idx, s in ((a, 1.0), (c, -1.0)):
                ok = idx >= 0
                r[:, idx[ok]] += s * i_d[:, ok]
                jac[:, idx[ok], idx[ok]] += g_d[:, ok]
            step = np.linalg.solve(jac, r[..., None])[..., 0]
            # diode steps bounded to 0.1 V (a crude limit; enough from 0 V here)
            step = np.clip(step, -0.1, 0.1)
            v -= step
            if np.abs(step).max() < 1e-13:
                break
        return time.perf_counter() - t0, it


def bare_newton_eliminated(
    block: ResistiveBlock, u: np.ndarray, delta: np.ndarray
) -> tuple[float, float]:
    """Seconds and mean Newton iterations per sample solve of the NumPy backend's method
    without its bookkeeping: the Newton steps of :meth:`CompiledCircuit.solve_jacobian`
    (eliminated dense path), the free phase from 0 V, then the two nudged phases from the
    free state; the whole batch iterates until its largest step is below 1e-13 V (no
    validation, step limiting, per-sample mask, recovery or KCL checks)."""
    n = u.shape[0]
    free = _condensed(block, u, delta, [0.0])
    nudged = _condensed(block, u, delta, [1.0, -1.0])
    with blas_limit(1):
        t0 = time.perf_counter()
        sample_its = 0
        start = None
        for cc, v_driven, b in (free, nudged):
            g = cc.g_ff
            rows = v_driven.shape[0]
            v = np.zeros((rows, len(cc.free))) if start is None else np.repeat(start, 2, axis=0)
            full = cc.full_voltages(v, v_driven)
            it = 0
            for it in range(1, 100):  # noqa: B007
                full[:, cc.free] = v
                r = v @ g.T - b
                i_d = diode_current(full[:, cc.diode_a] - full[:, cc.diode_c],
                                    cc.diode_is, cc.diode_vte, 1e-12)[0]
                d = np.zeros((rows, len(cc.nodes) + 1))
                np.add.at(d, (slice(None), cc.diode_a), i_d)
                np.add.at(d, (slice(None), cc.diode_c), -i_d)
                r += d[:, cc.free]
                step = cc.solve_jacobian(full, r)
                v -= step
                if np.abs(step).max() < 1e-13:
                    break
            sample_its += it * rows
            start = v
        return time.perf_counter() - t0, sample_its / (3 * n)


def bench_fold(mode: str) -> dict:
    rows = []
    repeats = REPEATS[mode]
    for name, sizes in BLOCKS.items():
        block = ResistiveBlock(sizes, seed=0)
        row: dict = {"block": name, "sizes": sizes, "batch": BATCH}
        u, delta = inputs(sizes[0], sizes[-1], BATCH)
        # NumPy first (see run.py: NumPy work slows down after a large ngspice solve)
        for label, fold in (("numpy_condensed", True), ("numpy_full", False)):
            be = NumpyBackend(SolverOptions(fold_pinned_nodes=fold))
            ts = []
            for _ in range(repeats + 1):  # the first call warms caches: not counted
                before = dict(be.stats)
                t0 = time.perf_counter()
                block.ep_gradients(u, delta, backend=be)
                ts.append(time.perf_counter() - t0)
            row[label + "_ms_per_sample"] = 1e3 * median(ts[1:]) / BATCH
            row[label + "_iterations"] = be.last_iterations
            # Newton iterations per sample solve of one EP step (free and nudged phases)
            row[label + "_mean_sample_iterations"] = (
                (be.stats["sample_iterations"] - before["sample_iterations"])
                / (be.stats["samples"] - before["samples"]))
        for label, fn in (("bare_newton", bare_newton),
                          ("bare_eliminated", bare_newton_eliminated)):
            ts, its = [], 0
            for _ in range(repeats + 1):
                t, its = fn(block, u, delta)
                ts.append(t)
            row[label + "_ms_per_sample"] = 1e3 * median(ts[1:]) / BATCH
            row[label + "_iterations"] = its
        row["numpy_over_bare"] = (row["numpy_condensed_ms_per_sample"]
                                  / row["bare_newton_ms_per_sample"])
        row["numpy_over_bare_eliminated"] = (row["numpy_condensed_ms_per_sample"]
                                             / row["bare_eliminated_ms_per_sample"])
        _log(f"    fold {name}: numpy condensed {row['numpy_condensed_ms_per_sample']:.2f}, "
             f"full {row['numpy_full_ms_per_sample']:.2f}, bare Newton "
             f"{row['bare_newton_ms_per_sample']:.2f}, bare eliminated "
             f"{row['bare_eliminated_ms_per_sample']:.2f} ms/sample")
        runs = [_ngspice_once(block, u, delta, True) for _ in range(repeats)]
        med = {k: median([x[k] for x in runs]) for k in runs[0]}
        row["ngspice_condensed"] = med
        row["ngspice_condensed_ms_per_sample"] = 1e3 * med["total"] / BATCH
        row["ngspice_condensed_outside_analysis"] = 1.0 - med["analysis"] / med["total"]
        fb = FULL_BATCH[name]
        uf, df = u[:fb], delta[:fb]
        full = _ngspice_once(block, uf, df, False)
        row["full_batch"] = fb
        row["ngspice_full"] = full
        row["ngspice_full_ms_per_sample"] = 1e3 * full["total"] / fb
        _log(f"    fold {name}: ngspice condensed {row['ngspice_condensed_ms_per_sample']:.2f} "
             f"ms/sample (B={BATCH}), full {row['ngspice_full_ms_per_sample']:.1f} ms/sample "
             f"(B={fb})")
        rows.append(row)
    by = {r["block"]: r for r in rows}
    return {
        "rows": rows,
        "targets": {
            "K_ngspice_le_5ms": by["K"]["ngspice_condensed_ms_per_sample"] <= 5.0,
            "M_ngspice_le_5ms": by["M"]["ngspice_condensed_ms_per_sample"] <= 5.0,
            **{f"{b}_numpy_within_2x_of_bare": by[b]["numpy_over_bare"] <= 2.0
               for b in BLOCKS},
        },
    }


def markdown(res: dict) -> list[str]:
    out = [
        "### fold: Norton folding, EP step (3 phases) per sample",
        "",
        "| block | ngspice condensed (ms, B=64) | emit | load | analysis | expand | outside "
        "analysis | ngspice full (ms, B) | NumPy condensed (ms) | NumPy full (ms) | bare "
        "Newton (ms) | bare eliminated (ms) | NumPy / bare | Newton its per sample solve "
        "(NumPy / bare / bare eliminated) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        c = r["ngspice_condensed"]
        out.append(
            f"| {r['block']} {tuple(r['sizes'])} | {r['ngspice_condensed_ms_per_sample']:.2f} "
            f"| {c['emit']:.3f} | {c['load']:.3f} | {c['analysis']:.3f} | {c['expand']:.3f} "
            f"| {100 * r['ngspice_condensed_outside_analysis']:.0f}% "
            f"| {r['ngspice_full_ms_per_sample']:.1f} (B={r['full_batch']}) "
            f"| {r['numpy_condensed_ms_per_sample']:.2f} | {r['numpy_full_ms_per_sample']:.2f} "
            f"| {r['bare_newton_ms_per_sample']:.2f} | {r['bare_eliminated_ms_per_sample']:.2f} "
            f"| {r['numpy_over_bare']:.2f} "
            f"| {r['numpy_condensed_mean_sample_iterations']:.2f} / "
            f"{r['bare_newton_iterations']} / {r['bare_eliminated_iterations']:.2f} |"
        )
    out += ["", f"Targets: {res['targets']}", ""]
    return out
