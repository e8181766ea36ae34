"""Cutting one batch into chunks for the parallel backends (pool and Dask), so that EP
phase groups and fixed-length sweeps are never split."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..circuit import Circuit, validate, validate_source_values
from ..params import SolverOptions

__all__ = ["chunk_bounds", "chunk_align", "split_values", "prepare_batch"]


def chunk_bounds(batch: int, n_chunks: int, align: int = 1) -> list[tuple[int, int]]:
    """Split ``range(batch)`` into at most ``n_chunks`` contiguous, near-equal chunks whose
    inner boundaries are multiples of ``align``; returns ``[(start, stop), ...]``."""
    if batch < 1 or n_chunks < 1 or align < 1:
        raise ValueError(f"need batch, n_chunks, align >= 1, got {batch}, {n_chunks}, {align}")
    groups = math.ceil(batch / align)
    n = min(n_chunks, groups)
    edges = [min(batch, align * ((groups * k) // n)) for k in range(n + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def chunk_align(align: int, options: SolverOptions) -> int:
    """Chunk boundaries: multiples of ``align`` and, with ``options.sweep_points``, of the
    sweep length too, so every worker's sweeps are the ones a single process would run."""
    p = options.sweep_points
    return align if p is None else math.lcm(align, p)


def split_values(
    values: Mapping[str, np.ndarray], bounds: list[tuple[int, int]]
) -> list[dict[str, np.ndarray]]:
    """The per-sample source values cut at ``bounds`` (contiguous copies)."""
    return [{k: np.ascontiguousarray(v[a:b]) for k, v in values.items()} for a, b in bounds]


def prepare_batch(
    circuit: Circuit, source_values: Mapping[str, np.ndarray] | None
) -> tuple[dict[str, np.ndarray], int]:
    """Validate in the parent (nothing is dispatched for a bad circuit); return the values
    as float64 arrays and the batch size."""
    validate(circuit)
    return validate_source_values(circuit, source_values)
