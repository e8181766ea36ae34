"""Solver backends: ngspice (in-process, the reference) and NumPy (independent, fast)."""

from __future__ import annotations

from ..params import SolverOptions
from .base import Backend, Solution

__all__ = ["Backend", "Solution", "get_backend", "BACKENDS"]

BACKENDS = ("ngspice", "numpy", "ngspice-parallel", "ngspice-dask")


def get_backend(
    name: str | Backend | None = None,
    options: SolverOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> Backend:
    """Return a backend by name or pass an instance through.

    Names: ``"ngspice"`` (default, in-process), ``"numpy"`` (independent NumPy solver),
    ``"ngspice-parallel"`` (worker processes, each with its own libngspice),
    ``"ngspice-dask"`` (a Dask cluster; needs ``pip install -e .[dask]``).

    Args:
        workers: number of worker processes of ``"ngspice-parallel"`` (default 2).
        scheduler: address of a running Dask scheduler for ``"ngspice-dask"``, e.g.
            ``"tcp://10.0.0.5:8786"`` (default: a local cluster, one process per core).
    """
    if name is None:
        name = "ngspice"
    if not isinstance(name, str):
        return name
    if workers is not None and name != "ngspice-parallel":
        raise ValueError(f"workers={workers!r} applies to the 'ngspice-parallel' backend, "
                         f"not {name!r}")
    if scheduler is not None and name != "ngspice-dask":
        raise ValueError(f"a Dask scheduler ({scheduler!r}) applies to the 'ngspice-dask' "
                         f"backend, not {name!r}")
    if name == "ngspice":
        from .ngspice import NgspiceBackend

        return NgspiceBackend(options)
    if name == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend(options)
    if name == "ngspice-parallel":
        from .pool import ParallelNgspiceBackend

        return ParallelNgspiceBackend(2 if workers is None else workers, options=options)
    if name == "ngspice-dask":
        from .dask_backend import DaskNgspiceBackend

        return DaskNgspiceBackend(scheduler, options=options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
