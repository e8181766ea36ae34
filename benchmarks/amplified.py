"""Amplified blocks on the NumPy backend: EP step (free + two nudged phases) with the
Newton and adjoint systems solved by block elimination (the backend's method) against a
dense solve of every system (the method before it), and the largest difference between
the two results.

``python -m benchmarks.run --only amplified``. Blocks: the Kendall-size block with a
bidirectional amplifier (A = 4) after its hidden layer and the piecewise-linear clamp
(``kendall_fashion.toml``'s block), and the deep block of ``splitting.toml`` (four hidden
layers of 32, A = 8, 8, 8, 2). Inputs: uniform 0..1 V (K) or -1..1 V (deep), batch 64.
"""

from __future__ import annotations

import os
import time

import numpy as np

from analogeq import ResistiveBlock, ResistiveBlockParams
from analogeq.backends import amplifiers
from analogeq.backends.linalg import solve_batched
from analogeq.backends.numpy_backend import NumpyBackend

from .common import median

BATCH = 64
REPEATS = {"quick": 3, "full": 7}


def _blocks() -> dict[str, tuple[ResistiveBlock, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    k = ResistiveBlock((784, 100, 10), seed=0, amplifier_gain=4.0,
                       params=ResistiveBlockParams(diode_model="pwl"))
    deep = ResistiveBlock((32, 32, 32, 32, 32, 10), seed=0,
                          amplifier_gain=(8.0, 8.0, 8.0, 2.0),
                          params=ResistiveBlockParams(diode_rail_V=0.4))
    return {
        "K amplified (784, 100, 10), A = 4, pwl": (
            k, rng.uniform(0, 1, (BATCH, 784)), rng.normal(0, 0.1, (BATCH, 10))),
        "deep (32, 4 x 32, 10), A = 8, 8, 8, 2": (
            deep, rng.uniform(-1, 1, (BATCH, 32)), rng.normal(0, 0.1, (BATCH, 10))),
    }


def _dense(self, jac, rhs, *, transpose=False):
    return solve_batched(np.swapaxes(jac, 1, 2) if transpose else jac, rhs)


METHODS = {"eliminated": {}, "dense": {"solve": _dense}}


def _step(block, backend, u, delta):
    t0 = time.perf_counter()
    grads = block.ep_gradients(u, delta, backend=backend)
    return time.perf_counter() - t0, grads


def bench_amplified(mode: str) -> dict:
    rows = []
    for name, (block, u, delta) in _blocks().items():
        backend = NumpyBackend(block.options)
        times: dict[str, list[float]] = {m: [] for m in METHODS}
        results, iterations = {}, {}
        for method in [*METHODS, *METHODS]:  # interleaved
            saved = {k: getattr(amplifiers.AmplifiedSystem, k) for k in METHODS[method]}
            for k, fn in METHODS[method].items():
                setattr(amplifiers.AmplifiedSystem, k, fn)
            try:
                for _ in range(REPEATS[mode]):
                    t, g = _step(block, backend, u, delta)
                    times[method].append(t)
                results[method] = g
                free = block.free(u, backend).solution
                iterations[method] = int(free.messages[0].split(":")[1])
            finally:
                for k, fn in saved.items():
                    setattr(amplifiers.AmplifiedSystem, k, fn)
        diff = max(float(np.abs(a - b).max() / np.abs(b).max())
                   for a, b in zip(results["eliminated"].conductances,
                                   results["dense"].conductances, strict=True))
        rows.append({
            "block": name, "batch": BATCH,
            **{f"{m}_median_s": median(times[m]) for m in METHODS},
            **{f"{m}_free_iterations": iterations[m] for m in METHODS},
            "speedup": median(times["dense"]) / median(times["eliminated"]),
            "grad_max_diff_rel": diff,
        })
        print(f"   {name}: " + ", ".join(f"{m} {median(times[m]):.3f} s" for m in METHODS),
              flush=True)
    return {"rows": rows, "loadavg": list(os.getloadavg())}


def markdown(res: dict) -> list[str]:
    out = [
        "### amplified: NumPy EP step of amplified blocks (seconds, medians; free-phase "
        "Newton iterations)",
        "",
        "| block | B | eliminated | dense | speed-up | gradient diff (rel. to max) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        cells = " | ".join(f"{r[f'{m}_median_s']:.3f} ({r[f'{m}_free_iterations']})"
                           for m in METHODS)
        out.append(f"| {r['block']} | {r['batch']} | {cells} | {r['speedup']:.2f}x "
                   f"| {r['grad_max_diff_rel']:.1e} |")
    out += ["", f"Load average (1 min) {res['loadavg'][0]:.2f} at the end.", ""]
    return out
