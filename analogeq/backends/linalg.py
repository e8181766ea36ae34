"""Batched dense solves of the NumPy backend, on one BLAS thread.

``np.linalg.solve`` on a stack of B small systems calls LAPACK once per matrix; with
OpenBLAS's thread pool at 2+ threads every such call wakes the pool, which costs more
than it gains on matrices of a few hundred rows. Measured on the 2-core machine of
BENCHMARKS.md with another job running: (96, 148, 148) stacks 0.65 s with 2 threads,
0.045 s with 1; (192, 120, 120) 0.29 s against 0.068 s. Large matrix products (a crossbar
times a batch) still use every thread: the limit applies only inside :func:`solve_batched`.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["solve_batched"]

_CONTROLLER: ThreadpoolController | None = None


def _controller() -> ThreadpoolController:
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def solve_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``a[k] x[k] = b[k]`` for every k: ``a`` (B, F, F), ``b`` (B, F); returns
    ``x`` (B, F). One BLAS thread (module docstring)."""
    with _controller().limit(limits=1, user_api="blas"):
        return np.linalg.solve(a, b[..., None])[..., 0]
