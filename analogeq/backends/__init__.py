"""Solver backends: ngspice (in-process, the reference) and NumPy (independent, fast)."""

from __future__ import annotations

from ..options import SolverOptions
from .base import Backend, Solution

__all__ = ["Backend", "Solution", "get_backend", "BACKENDS"]

BACKENDS = ("ngspice", "numpy", "ngspice-parallel", "ngspice-dask")


def get_backend(name: str | Backend | None = None, options: SolverOptions | None = None) -> Backend:
    """Return a backend by name or pass an instance through.

    Names: ``"ngspice"`` (default, in-process), ``"numpy"`` (independent NumPy solver),
    ``"ngspice-parallel"`` (worker processes, each with its own libngspice),
    ``"ngspice-dask"`` (a local Dask cluster; needs ``pip install -e .[dask]``).
    """
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
    if name == "ngspice-parallel":
        from .parallel import ParallelNgspiceBackend

        return ParallelNgspiceBackend(options=options)
    if name == "ngspice-dask":
        from .parallel import DaskNgspiceBackend

        return DaskNgspiceBackend(options=options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
