"""Solver backends over the circuit IR: ngspice in-process (the reference; the only module
that imports PySpice), an independent NumPy solver, a worker pool and a Dask cluster of
ngspice processes. :func:`get_backend` picks one by name."""

from .base import Backend, Solution, concat_solutions
from .registry import BACKENDS, get_backend

__all__ = ["BACKENDS", "Backend", "Solution", "concat_solutions", "get_backend"]
