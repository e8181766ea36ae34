"""The worker pool: one batch split across several processes, each with its own
libngspice.

ngspice keeps global state, so there is one instance per process and parallel solves need
separate processes (docs/physics.md, "ngspice"). Both backends here split the B samples of a
batch into contiguous chunks, solve each chunk with :class:`~.ngspice.NgspiceBackend` in
another process and concatenate the :class:`~.base.Solution` objects in sample order:

* :class:`ParallelNgspiceBackend`: N long-lived worker processes started with the
  ``spawn`` start method (never ``fork``: a forked child would share the parent's
  libngspice state). A worker that dies (e.g. a segfault in libngspice) or exceeds
  ``timeout_s`` is killed, the failure is logged with the circuit's title, and its chunk is
  retried once in a fresh process; a second failure raises :class:`WorkerCrashedError`.
  Errors raised by the solver itself (``SimulationError``, ``CircuitError``...) are
  deterministic: they are re-raised in the parent with their class and ngspice messages,
  never retried.
* :class:`~analogeq.backends.dask_backend.DaskNgspiceBackend`: the same over a
  ``dask.distributed`` cluster (optional dependency: ``pip install -e .[dask]``).

Results versus one process. A single-process solve is one DC sweep over all B points, each
point warm-started from the previous one; here the first point of every chunk starts cold.
Both converge to the same operating point within the solver tolerances (``SolverOptions``:
reltol 1e-8, vntol 1e-9 V), so results are not bitwise equal: node voltages agreed to
1e-11 V or better (tests assert 1e-8 V). EP gradients, differences of nearby states, move
more: 1e-11 (block (16, 12, 4)) to 3e-5 (first layer of (196, 256, 10)) relative to
their largest entry, the same size as that layer's EP-versus-exact difference (3e-5). With
one chunk (one worker, or a small batch) results are bitwise those of one process. For
bitwise equality with any number of workers, fix the sweep length
(``SolverOptions(sweep_points=P)``, config ``train.sweep_points``, CLI ``--sweep-points``):
every process then solves the batch as the same consecutive sweeps of P points, each
starting cold, and chunks are cut only at multiples of P.
Chunk boundaries fall on multiples of ``align`` (default 6) so that the interleaved EP
phase groups of :meth:`~analogeq.blocks.ResistiveBlock.ep_gradients` (free, +beta, -beta:
3 points; +beta, -beta: 2 points) are never split: each nudged point still warm-starts from
its own free state, as in one process.

Cost. Every chunk pays the fixed cost of a sweep (netlist load, matrix ordering, a cold
first point): about 3 s of CPU on a (196, 256, 10) block, against 0.25 s per sample. Two
workers therefore use more CPU in total than one process and only pay off with idle cores
(see BENCHMARKS.md, "parallel workers").

Spawned workers import the parent's ``__main__`` module: scripts that use these backends
need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from multiprocessing import get_context

import numpy as np

from ..circuit import Circuit
from ..errors import SimulationError, WorkerCrashedError
from ..params import SolverOptions
from .base import Solution, concat_solutions
from .chunks import chunk_align, chunk_bounds, prepare_batch, split_values
from .faults import FAULT_ENV, run_fault

__all__ = ["ParallelNgspiceBackend", "STARTUP_TIMEOUT_S"]

log = logging.getLogger(__name__)

#: Seconds a fresh worker may take to import analogeq and load libngspice.
STARTUP_TIMEOUT_S = 120.0
#: Seconds a worker may take to exit after being asked to.
_JOIN_TIMEOUT_S = 5.0


# -- worker side -----------------------------------------------------------------------


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _worker_main(conn) -> None:
    """Worker loop: load libngspice, report ready, then solve chunks until told to stop
    (``None``) or the parent goes away (EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        from .ngspice import NgspiceBackend, engine

        engine()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        _send_error(conn, None, exc)
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job_id, circuit, values, options, fault = msg
        try:
            run_fault(fault)
            sol = NgspiceBackend(options).solve(circuit, values)
        except Exception as exc:  # noqa: BLE001 - re-raised in the parent
            _send_error(conn, job_id, exc)
            continue
        try:
            conn.send(("ok", job_id, sol))
        except (OSError, ValueError):  # the parent is gone
            return


def _send_error(conn, job_id, exc: BaseException) -> None:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        payload = pickle.dumps(exc)
        pickle.loads(payload)
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling
        payload = pickle.dumps(SimulationError(f"{type(exc).__name__}: {exc}"))
    try:
        conn.send(("error", job_id, payload, tb))
    except (OSError, ValueError):  # pragma: no cover - parent gone
        pass


# -- parent side -----------------------------------------------------------------------


class _Worker:
    """One worker process and its pipe."""

    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main, args=(child,), name="analogeq-ngspice-worker", daemon=True
        )
        self.proc.start()
        child.close()
        self.ready = False
        self.started = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def ask_to_stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass

    def kill(self) -> None:
        """Kill (SIGKILL) if still running, reap, close the pipe."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(_JOIN_TIMEOUT_S)
        self.conn.close()
        if self.proc.exitcode is not None:
            self.proc.close()


def _shutdown(workers: list[_Worker | None]) -> None:
    """Stop every worker: ask all first (they exit in parallel), then reap (or kill) each."""
    for w in workers:
        if w is not None:
            w.ask_to_stop()
    deadline = time.monotonic() + _JOIN_TIMEOUT_S
    for k, w in enumerate(workers):
        if w is not None:
            try:
                w.proc.join(max(0.0, deadline - time.monotonic()))
                w.kill()
            except Exception:  # noqa: BLE001 - best effort, possibly at interpreter exit
                pass
            workers[k] = None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Attempt:
    chunk: int
    attempt: int  # 1 or 2
    deadline: float | None
    failures: list[str]


class ParallelNgspiceBackend:
    """Solve a batch with ngspice in several worker processes (see the module docstring).

    Args:
        workers: number of worker processes (started lazily on the first solve and kept).
        options: solver tolerances passed to every worker's :class:`NgspiceBackend`.
        timeout_s: seconds one chunk attempt may take once its worker is ready (None: no
            limit); a worker that exceeds it is killed and the chunk retried once.
        min_samples_per_worker: batches smaller than ``workers * min_samples_per_worker``
            use fewer workers (at least one), since each chunk pays one matrix setup.
        align: chunk boundaries are multiples of this many samples (6 keeps EP phase
            groups of 2 or 3 points together).
    """

    name = "ngspice-parallel"

    def __init__(
        self,
        workers: int = 2,
        options: SolverOptions | None = None,
        timeout_s: float | None = 600,
        min_samples_per_worker: int = 8,
        *,
        align: int = 6,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")
        if min_samples_per_worker < 1 or align < 1:
            raise ValueError("min_samples_per_worker and align must be >= 1")
        self.options = options or SolverOptions()
        self.workers = int(workers)
        self.timeout_s = timeout_s
        self.min_samples_per_worker = int(min_samples_per_worker)
        self.align = int(align)
        self._ctx = get_context("spawn")
        self._slots: list[_Worker | None] = [None] * self.workers
        self._lock = threading.Lock()
        self._job = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._slots)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker process (idempotent). The backend cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> ParallelNgspiceBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def worker_pids(self) -> list[int | None]:
        """PIDs of the live worker processes (None for slots not started)."""
        return [w.proc.pid if w is not None and w.alive else None for w in self._slots]

    def _worker(self, slot: int) -> _Worker:
        w = self._slots[slot]
        if w is None or not w.alive:
            if w is not None:
                w.kill()
            w = self._slots[slot] = _Worker(self._ctx)
        return w

    def _discard(self, slot: int) -> None:
        w = self._slots[slot]
        self._slots[slot] = None
        if w is not None:
            w.kill()

    # -- solve --------------------------------------------------------------------------

    def plan(self, batch: int) -> list[tuple[int, int]]:
        """The chunks ``[(start, stop), ...]`` a batch of ``batch`` samples is split into."""
        n = max(1, min(self.workers, batch // self.min_samples_per_worker))
        return chunk_bounds(batch, n, chunk_align(self.align, self.options))

    def solve(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None = None,
    ) -> Solution:
        """DC operating point of ``circuit`` for each of B samples (see
        :meth:`NgspiceBackend.solve`), computed chunk-wise in the worker processes.

        Raises:
            CircuitError: the circuit is invalid (raised here, before any dispatch).
            SimulationError: ngspice failed in a worker (same class and messages).
            WorkerCrashedError: a chunk's worker died or timed out twice.
        """
        values, batch = prepare_batch(circuit, source_values)
        bounds = self.plan(batch) if values else [(0, 1)]
        chunks = split_values(values, bounds) if values else [{}]
        with self._lock:
            if self._closed:
                raise RuntimeError("ParallelNgspiceBackend is closed")
            parts = self._run(circuit, bounds, chunks, batch)
        return concat_solutions(parts)

    def _run(self, circuit, bounds, chunks, batch) -> list[Solution]:
        fault = os.environ.get(FAULT_ENV) or None
        self._job += 1
        job_id = self._job
        results: list[Solution | None] = [None] * len(chunks)
        running: dict[int, _Attempt] = {}

        def deadline(w: _Worker) -> float | None:
            if not w.ready:
                return w.started + STARTUP_TIMEOUT_S
            return None if self.timeout_s is None else time.monotonic() + self.timeout_s

        def send(slot: int) -> None:
            w = self._slots[slot]
            att = running[slot]
            try:
                w.conn.send((job_id, circuit, chunks[att.chunk], self.options, fault))
            except (OSError, ValueError):
                return  # a dead worker: its sentinel reports it below
            att.deadline = deadline(w)

        error: list[BaseException] = []  # the first failure, raised once all chunks end

        def fail(slot: int, what: str) -> None:
            att = running.pop(slot)
            a, b = bounds[att.chunk]
            self._discard(slot)
            att.failures.append(what)
            if error:  # the batch has already failed: no retry
                return
            if att.attempt >= 2:
                error.append(WorkerCrashedError(
                    f"ngspice worker failed twice on samples [{a}, {b}) of {batch}: "
                    + "; then ".join(att.failures),
                    [],
                    circuit.title,
                    (a, b),
                    att.failures,
                ))
                return
            where = f"circuit {circuit.title!r}, samples [{a}, {b}) of {batch}"
            log.warning("ngspice worker %s on %s; retrying once in a fresh process", what, where)
            w = self._worker(slot)
            running[slot] = _Attempt(att.chunk, 2, deadline(w), att.failures)

        try:
            for k in range(len(chunks)):
                w = self._worker(k)
                running[k] = _Attempt(k, 1, deadline(w), [])
                if w.ready:
                    send(k)
            while running:
                now = time.monotonic()
                dls = [a.deadline for a in running.values() if a.deadline is not None]
                wait_s = max(0.0, min(dls) - now) if dls else None
                handles = []
                for slot in running:
                    w = self._slots[slot]
                    handles += [w.conn, w.proc.sentinel]
                mp_connection.wait(handles, wait_s)
                for slot in list(running):
                    w = self._slots[slot]
                    att = running[slot]
                    if w.conn.poll():
                        try:
                            msg = w.conn.recv()
                        except (EOFError, OSError):
                            w.proc.join(1.0)
                            fail(slot, f"died ({_describe_exit(w.proc.exitcode)})")
                            continue
                        kind = msg[0]
                        if kind == "ready":
                            w.ready = True
                            send(slot)
                        elif kind == "ok" and msg[1] == job_id:
                            results[att.chunk] = msg[2]
                            del running[slot]
                        elif kind == "error" and msg[1] in (job_id, None):
                            # a deterministic solver error: not retried; the worker stays
                            # (unless it failed to start); other chunks finish first
                            del running[slot]
                            if msg[1] is None:
                                self._discard(slot)
                            if not error:
                                exc = pickle.loads(msg[2])
                                exc.__cause__ = _RemoteTraceback(msg[3])
                                error.append(exc)
                        continue
                    if not w.alive:
                        w.proc.join(1.0)
                        fail(slot, f"died ({_describe_exit(w.proc.exitcode)})")
                    elif att.deadline is not None and time.monotonic() >= att.deadline:
                        phase = "job" if w.ready else "start-up"
                        limit = self.timeout_s if w.ready else STARTUP_TIMEOUT_S
                        fail(slot, f"timed out ({phase} exceeded {limit:g} s; killed)")
        finally:
            for slot in running:  # interrupted (e.g. Ctrl-C): busy workers hold stale jobs
                self._discard(slot)
        if error:
            raise error[0]
        return [r for r in results if r is not None]


# -- dask ------------------------------------------------------------------------------


