"""Batched dense solves of the NumPy backend and the BLAS thread limit they run under.

``np.linalg.solve`` on a stack of B small systems calls LAPACK once per matrix; with
OpenBLAS's thread pool at 2+ threads every such call wakes the pool, which costs more
than it gains on matrices of a few hundred rows. Measured on the 2-core machine of
BENCHMARKS.md with another job running: (96, 148, 148) stacks 0.65 s with 2 threads,
0.045 s with 1; (192, 120, 120) 0.29 s against 0.068 s. :class:`~.numpy_backend.NumpyBackend`
therefore runs each solve and adjoint (every :func:`solve_batched` call included: the
Newton steps of the dense, sparse and amplified paths) inside :func:`blas_limit` with
``blas_threads`` threads (1 by default); BLAS is restored afterwards, so large products
outside a solve still use every thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np

__all__ = ["blas_limit", "solve_batched"]

_BLAS: dict = {}


def blas_limit(threads: int) -> AbstractContextManager:
    """Limit the BLAS libraries NumPy and SciPy use to ``threads`` threads for a ``with``
    block (threadpoolctl); a no-op context when threadpoolctl is not installed."""
    ctl = _BLAS.get("controller")
    if ctl is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - installed with scikit-learn
            return nullcontext()
        import scipy.linalg  # noqa: F401 - load SciPy's BLAS too, so it is limited

        ctl = _BLAS["controller"] = ThreadpoolController()
    return ctl.limit(limits=int(threads), user_api="blas")


def solve_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``a[k] x[k] = b[k]`` for every k: ``a`` (B, F, F), ``b`` (B, F); returns
    ``x`` (B, F). Called inside the solver's :func:`blas_limit` (module docstring)."""
    return np.linalg.solve(a, b[..., None])[..., 0]


def greedy_independent_set(adjacent: np.ndarray, excluded: np.ndarray | None = None
                           ) -> np.ndarray:
    """(F,) bool mask of an independent set of the graph ``adjacent`` ((F, F) bool,
    symmetric, False on the diagonal), chosen greedily, nodes of fewest neighbours first;
    nodes in ``excluded`` are never chosen. Used to eliminate a diagonal block of a
    Newton Jacobian."""
    n = len(adjacent)
    chosen = np.zeros(n, dtype=bool)
    blocked = np.zeros(n, dtype=bool) if excluded is None else np.array(excluded, dtype=bool)
    for k in np.argsort(adjacent.sum(axis=1), kind="stable").tolist():
        if not blocked[k]:
            chosen[k] = True
            blocked[adjacent[k]] = True
    return chosen
