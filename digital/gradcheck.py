"""Central finite differences: the independent check of every backward pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numerical_gradient"]


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite difference of the scalar ``f()`` with respect to ``x``.

    ``x`` is perturbed in place, one entry at a time, by ``+h`` and ``-h`` (restored
    after), so ``f`` must read ``x`` when called. Returns an array shaped like ``x``:
    ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` per entry (error O(h^2)).
    """
    g = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g
