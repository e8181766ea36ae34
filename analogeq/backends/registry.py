"""Solver backends: ngspice (in-process, the reference) and NumPy (independent, fast)."""

from __future__ import annotations

from ..params import SolverOptions
from .base import Backend, Solution

__all__ = ["Backend", "Solution", "get_backend", "BACKENDS"]

BACKENDS = ("ngspice", "numpy", "ngspice-parallel", "ngspice-dask")
#: Marks a keyword of :func:`get_backend` left at the backend's own default.
DEFAULT = object()


def get_backend(
    name: str | Backend | None = None,
    options: SolverOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout_s: float | None | object = DEFAULT,
    startup_timeout_s: float | None | object = DEFAULT,
) -> Backend:
    """Return a backend by name or pass an instance through.

    Names: ``"ngspice"`` (default, in-process), ``"numpy"`` (independent NumPy solver),
    ``"ngspice-parallel"`` (worker processes, each with its own libngspice),
    ``"ngspice-dask"`` (a Dask cluster; needs ``pip install -e .[dask]``).

    Args:
        workers: number of worker processes of ``"ngspice-parallel"`` (default 2).
        scheduler: address of a running Dask scheduler for ``"ngspice-dask"``, e.g.
            ``"tcp://10.0.0.5:8786"`` (default: a local cluster, one process per core).
        timeout_s: seconds one chunk may take in an ``"ngspice-parallel"`` worker (None: no
            limit; default that backend's 600 s).
        startup_timeout_s: seconds an ``"ngspice-parallel"`` worker may take to start
            (None: no limit; default 120 s).

    Raises:
        ValueError: unknown name, an option given to a backend it does not apply to, or an
            invalid timeout.
    """
    if name is None:
        name = "ngspice"
    if not isinstance(name, str):
        return name
    if workers is not None and name != "ngspice-parallel":
        raise ValueError(f"workers={workers!r} applies to the 'ngspice-parallel' backend, "
                         f"not {name!r}")
    for key, value in (("timeout_s", timeout_s), ("startup_timeout_s", startup_timeout_s)):
        if value is not DEFAULT and name != "ngspice-parallel":
            raise ValueError(f"{key}={value!r} applies to the 'ngspice-parallel' backend, "
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

        timeouts = {
            key: value
            for key, value in (("timeout_s", timeout_s), ("startup_timeout_s", startup_timeout_s))
            if value is not DEFAULT
        }
        return ParallelNgspiceBackend(
            2 if workers is None else workers, options=options, **timeouts
        )
    if name == "ngspice-dask":
        from .dask_backend import DaskNgspiceBackend

        return DaskNgspiceBackend(scheduler, options=options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
