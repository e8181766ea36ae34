"""Weight initialisers.

Every initialiser has the signature ``init(shape, rng, **options) -> np.ndarray``
and draws only from the explicit ``rng`` (a :class:`numpy.random.Generator`).
Fans are derived from the shape with :func:`compute_fans`, following this
package's layouts:

* 2-D ``(D, M)`` -- a :class:`digital.layers.Linear` weight (*in x out*):
  ``fan_in = D``, ``fan_out = M``;
* 4-D ``(F, C, KH, KW)`` -- a :class:`digital.layers.Conv2d` filter bank:
  ``fan_in = C*KH*KW``, ``fan_out = F*KH*KW`` (any ``ndim >= 3`` likewise);
* 1-D ``(D,)``: ``fan_in = fan_out = D``.

``fan_in``/``fan_out`` keyword arguments override the derived values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "INITIALIZERS",
    "compute_fans",
    "get_initializer",
    "he_normal",
    "he_uniform",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Shape = tuple[int, ...]
Initializer = Callable[..., np.ndarray]


def compute_fans(shape: Shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for a weight of the given shape (see module docstring)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        raise ValueError("cannot compute fans of a scalar shape")
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def _fans(shape: Shape, fan_in: int | None, fan_out: int | None) -> tuple[int, int]:
    fi, fo = compute_fans(shape)
    return (fi if fan_in is None else int(fan_in)), (fo if fan_out is None else int(fan_out))


def he_normal(
    shape: Shape,
    rng: np.random.Generator,
    *,
    gain: float = float(np.sqrt(2.0)),
    fan_in: int | None = None,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Kaiming/He normal: ``N(0, std^2)``, ``std = gain / sqrt(fan_in)`` (gain sqrt(2): ReLU)."""
    fi, _ = _fans(shape, fan_in, None)
    return (rng.standard_normal(shape) * (gain / np.sqrt(fi))).astype(dtype, copy=False)


def he_uniform(
    shape: Shape,
    rng: np.random.Generator,
    *,
    gain: float = float(np.sqrt(2.0)),
    fan_in: int | None = None,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Kaiming/He uniform: ``U(-a, a)`` with ``a = gain * sqrt(3 / fan_in)``."""
    fi, _ = _fans(shape, fan_in, None)
    a = gain * np.sqrt(3.0 / fi)
    return rng.uniform(-a, a, size=shape).astype(dtype, copy=False)


def xavier_uniform(
    shape: Shape,
    rng: np.random.Generator,
    *,
    gain: float = 1.0,
    fan_in: int | None = None,
    fan_out: int | None = None,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Glorot/Xavier uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fi, fo = _fans(shape, fan_in, fan_out)
    a = gain * np.sqrt(6.0 / (fi + fo))
    return rng.uniform(-a, a, size=shape).astype(dtype, copy=False)


def xavier_normal(
    shape: Shape,
    rng: np.random.Generator,
    *,
    gain: float = 1.0,
    fan_in: int | None = None,
    fan_out: int | None = None,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Glorot/Xavier normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fi, fo = _fans(shape, fan_in, fan_out)
    std = gain * np.sqrt(2.0 / (fi + fo))
    return (rng.standard_normal(shape) * std).astype(dtype, copy=False)


def uniform(
    shape: Shape,
    rng: np.random.Generator,
    low: float = -0.05,
    high: float = 0.05,
    *,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Plain ``U(low, high)`` (e.g. a conductance range); requires ``high > low``."""
    if not high > low:
        raise ValueError(f"uniform init needs high > low, got low={low}, high={high}")
    return rng.uniform(low, high, size=shape).astype(dtype, copy=False)


def zeros(
    shape: Shape,
    rng: np.random.Generator | None = None,
    *,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """All zeros (``rng`` is accepted for a uniform signature and ignored)."""
    return np.zeros(shape, dtype=dtype)


#: Name -> initialiser, used by layers that accept ``init="name"``.
INITIALIZERS: dict[str, Initializer] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "uniform": uniform,
    "zeros": zeros,
}


def get_initializer(init: str | Initializer) -> Initializer:
    """Resolve an initialiser given by name (a key of :data:`INITIALIZERS`) or callable."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(
            f"unknown initializer {init!r}; known: {', '.join(INITIALIZERS)}"
        ) from None
