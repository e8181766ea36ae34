"""The ngspice backend over a ``dask.distributed`` cluster (optional dependency:
``pip install -e .[dask]``): each chunk of a batch is one task solved by
:class:`~analogeq.backends.ngspice.NgspiceBackend` in a worker process. Results versus
one process are as for the worker pool (:mod:`analogeq.backends.pool`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..circuit import Circuit
from ..errors import WorkerCrashedError
from ..params import SolverOptions
from .base import Solution, concat_solutions
from .chunks import chunk_align, chunk_bounds, prepare_batch, split_values

if TYPE_CHECKING:  # an optional dependency
    from dask import distributed

__all__ = ["DaskNgspiceBackend"]


def _dask_solve_chunk(circuit: Circuit, values: dict, options: SolverOptions) -> Solution:
    """Task run in a dask worker process: one chunk on that process's ngspice."""
    from .ngspice import NgspiceBackend

    return NgspiceBackend(options).solve(circuit, values)


class DaskNgspiceBackend:
    """Solve a batch with ngspice on a ``dask.distributed`` cluster.

    Each chunk is one task running :class:`NgspiceBackend` in a worker process. The cluster
    must use process workers (``processes=True``, the default of ``LocalCluster`` and of
    ``dask worker``): threads of one process share a single libngspice and are serialized.

    Args:
        scheduler: address of a running scheduler (``"tcp://host:8786"``).
        client: an existing ``distributed.Client`` (takes precedence over ``scheduler``).
            With neither, a ``LocalCluster`` of ``os.cpu_count()`` single-threaded process
            workers is created and closed by :meth:`close`.
        options: solver tolerances.
        min_samples_per_worker, align: as for :class:`ParallelNgspiceBackend`.
    """

    name = "ngspice-dask"

    def __init__(
        self,
        scheduler: str | None = None,
        client: distributed.Client | None = None,
        options: SolverOptions | None = None,
        *,
        min_samples_per_worker: int = 8,
        align: int = 6,
    ) -> None:
        try:
            from dask import distributed
        except ImportError as exc:
            raise ImportError(
                "DaskNgspiceBackend needs dask.distributed, an optional dependency: install it "
                "with `pip install -e .[dask]` (or `pip install \"dask[distributed]\"`)"
            ) from exc
        self._distributed = distributed
        self.options = options or SolverOptions()
        self.min_samples_per_worker = int(min_samples_per_worker)
        self.align = int(align)
        self._own: list = []  # client and cluster created here, closed by close()
        if client is None:
            if scheduler is None:
                cluster = distributed.LocalCluster(
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                client = distributed.Client(cluster)
                self._own = [client, cluster]
            else:
                client = distributed.Client(scheduler)
                self._own = [client]
        self.client = client

    def close(self) -> None:
        """Close the client and cluster created by this backend (not a given client)."""
        while self._own:
            self._own.pop(0).close()

    def __enter__(self) -> DaskNgspiceBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _n_workers(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def solve(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None = None,
    ) -> Solution:
        """As :meth:`ParallelNgspiceBackend.solve`, with chunks as dask tasks.

        Raises:
            CircuitError: the circuit is invalid (before any task is submitted).
            SimulationError: ngspice failed in a task (re-raised by dask as is).
            WorkerCrashedError: dask gave up on a task whose workers kept dying.
        """
        values, batch = prepare_batch(circuit, source_values)
        if values:
            n = max(1, min(self._n_workers(), batch // self.min_samples_per_worker))
            bounds = chunk_bounds(batch, n, chunk_align(self.align, self.options))
            chunks = split_values(values, bounds)
        else:
            bounds, chunks = [(0, 1)], [{}]
        # one copy of the circuit per worker instead of one per task (and no dask warning
        # about large graphs for big conductance matrices)
        [circ] = self.client.scatter([circuit], broadcast=len(chunks) > 1, hash=False)
        futures = [
            self.client.submit(_dask_solve_chunk, circ, ch, self.options, pure=False)
            for ch in chunks
        ]
        try:
            parts = self.client.gather(futures, errors="raise")
        except self._distributed.KilledWorker as exc:
            raise WorkerCrashedError(
                f"dask workers kept dying on a chunk: {exc}", [], circuit.title, (0, batch)
            ) from exc
        finally:
            for f in futures:
                f.release()
            circ.release()
        return concat_solutions(parts)
