"""Solver backends: ngspice (in-process, the reference) and NumPy (independent, fast)."""

from __future__ import annotations

from ..options import SolverOptions
from .base import Backend, Solution

__all__ = ["Backend", "Solution", "get_backend", "BACKENDS"]

BACKENDS = ("ngspice", "numpy")


def get_backend(name: str | Backend | None = None, options: SolverOptions | None = None) -> Backend:
    """Return a backend by name (``"ngspice"``, the default, or ``"numpy"``) or pass one through."""
    if name is None:
        name = "ngspice"
    if not isinstance(name, str):
        return name
    if name == "ngspice":
        from .ngspice import NgspiceBackend

        return NgspiceBackend(options)
    if name == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend(options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
