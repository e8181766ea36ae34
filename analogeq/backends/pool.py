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
phase groups of :meth:`~analogeq.blocks.ResistiveBlock.ep_gradients` (+beta, free, -beta:
3 points; +beta, -beta: 2 points) are never split: each point still warm-starts from the
same neighbours as in one process.

Cost. Every chunk pays the fixed cost of a sweep (netlist load, matrix ordering, a cold
first point): about 3 s of CPU on a (196, 256, 10) block, against 0.25 s per sample. Two
workers therefore use more CPU in total than one process and only pay off with idle cores
(see BENCHMARKS.md, "parallel workers").

Spawned workers import the parent's ``__main__`` module: scripts that use these backends
need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import math
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

__all__ = ["ParallelNgspiceBackend", "STARTUP_TIMEOUT_S", "STOPPED_GRACE_S"]

log = logging.getLogger(__name__)

#: Default seconds a fresh worker may take to import analogeq and load libngspice.
STARTUP_TIMEOUT_S = 120.0
#: Seconds a worker may stay stopped (SIGSTOP, state "T") before it is killed and replaced.
STOPPED_GRACE_S = 5.0
#: Longest sleep of the dispatch loop between checks of the workers, in seconds.
_POLL_S = 1.0
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


def _process_state(pid: int) -> str | None:
    """The kernel's one-letter state of process ``pid`` (``"T"`` stopped, ``"Z"`` zombie,
    ...), or None where ``/proc`` is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    tail = stat.rpartition(b")")[2].split()
    return tail[0].decode() if tail else None


@dataclass
class _Attempt:
    chunk: int
    attempt: int  # 1 or 2
    deadline: float | None
    failures: list[str]
    stopped_since: float | None = None  # when the worker was first seen stopped


def _check_timeout(value, what: str) -> float | None:
    """``value`` as a float of seconds (> 0, finite) or None; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number of seconds or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be finite and > 0 seconds (or None), got {value!r}")
    return float(value)


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
        startup_timeout_s: seconds a fresh worker may take to import analogeq and load
            libngspice (default :data:`STARTUP_TIMEOUT_S`; None: no limit). A worker that
            dies is noticed at once, one that stays stopped (SIGSTOP) for
            :data:`STOPPED_GRACE_S` is killed; either way its chunk is retried once.
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
        startup_timeout_s: float | None = STARTUP_TIMEOUT_S,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if min_samples_per_worker < 1 or align < 1:
            raise ValueError("min_samples_per_worker and align must be >= 1")
        self.options = options or SolverOptions()
        self.workers = int(workers)
        self.timeout_s = _check_timeout(timeout_s, "timeout_s")
        self.startup_timeout_s = _check_timeout(startup_timeout_s, "startup_timeout_s")
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
            self._job += 1
            parts = _Scheduler(self, self._job, circuit, bounds, chunks, batch).run()
        return concat_solutions(parts)


class _Scheduler:
    """One batch on the pool: every chunk goes to its own worker slot; a worker that dies,
    times out or stays stopped is replaced and its chunk retried once; the first failure
    is raised once every chunk has ended.

    Slot k runs chunk k. Per slot, :meth:`poll` handles at most one event per wake-up
    (a message, a death, a timeout), as the loop in :meth:`run` waits on every busy
    worker's pipe and process sentinel.
    """

    def __init__(self, pool: ParallelNgspiceBackend, job_id: int, circuit: Circuit,
                 bounds: list[tuple[int, int]], chunks: list[dict], batch: int) -> None:
        self.pool = pool
        self.job_id = job_id
        self.circuit = circuit
        self.bounds = bounds
        self.chunks = chunks
        self.batch = batch
        self.fault = os.environ.get(FAULT_ENV) or None
        self.results: list[Solution | None] = [None] * len(chunks)
        self.running: dict[int, _Attempt] = {}
        self.error: BaseException | None = None

    def run(self) -> list[Solution]:
        try:
            for k in range(len(self.chunks)):
                self.start(k, _Attempt(k, 1, None, []))
            while self.running:
                self.wait()
                for slot in list(self.running):
                    self.poll(slot)
        finally:
            for slot in self.running:  # interrupted (e.g. Ctrl-C): busy workers hold stale jobs
                self.pool._discard(slot)
        if self.error is not None:
            raise self.error
        return [r for r in self.results if r is not None]

    # -- dispatch -------------------------------------------------------------------------

    def deadline(self, w: _Worker) -> float | None:
        if not w.ready:
            limit = self.pool.startup_timeout_s
            return None if limit is None else w.started + limit
        limit = self.pool.timeout_s
        return None if limit is None else time.monotonic() + limit

    def start(self, slot: int, attempt: _Attempt) -> None:
        """Give ``attempt`` to slot's worker (started if needed); a worker still starting
        gets its job when it reports ready."""
        w = self.pool._worker(slot)
        attempt.deadline = self.deadline(w)
        self.running[slot] = attempt
        if w.ready:
            self.send(slot)

    def send(self, slot: int) -> None:
        w = self.pool._slots[slot]
        att = self.running[slot]
        try:
            w.conn.send((self.job_id, self.circuit, self.chunks[att.chunk],
                         self.pool.options, self.fault))
        except (OSError, ValueError):
            return  # a dead worker: its sentinel reports it
        att.deadline = self.deadline(w)

    def wait(self) -> None:
        """Sleep until a busy worker's pipe or sentinel is ready, the next deadline, or
        :data:`_POLL_S` (to notice stopped workers)."""
        now = time.monotonic()
        wait_s = _POLL_S
        for att in self.running.values():
            if att.deadline is not None:
                wait_s = min(wait_s, max(0.0, att.deadline - now))
        handles = []
        for slot in self.running:
            w = self.pool._slots[slot]
            handles += [w.conn, w.proc.sentinel]
        mp_connection.wait(handles, wait_s)

    # -- events ---------------------------------------------------------------------------

    def poll(self, slot: int) -> None:
        w = self.pool._slots[slot]
        att = self.running[slot]
        if w.conn.poll():
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                w.proc.join(1.0)
                self.fail(slot, f"died ({_describe_exit(w.proc.exitcode)})")
                return
            self.on_message(slot, att, msg)
            return
        if not w.alive:
            w.proc.join(1.0)
            self.fail(slot, f"died ({_describe_exit(w.proc.exitcode)})")
        elif att.deadline is not None and time.monotonic() >= att.deadline:
            phase = "job" if w.ready else "start-up"
            limit = self.pool.timeout_s if w.ready else self.pool.startup_timeout_s
            self.fail(slot, f"timed out ({phase} exceeded {limit:g} s; killed)")
        elif _process_state(w.proc.pid) == "T":
            now = time.monotonic()
            if att.stopped_since is None:
                att.stopped_since = now
            elif now - att.stopped_since >= STOPPED_GRACE_S:
                phase = "job" if w.ready else "start-up"
                self.fail(slot, f"stopped during {phase} for {now - att.stopped_since:.0f} s "
                                "(SIGSTOP; killed)")
        else:
            att.stopped_since = None

    def on_message(self, slot: int, att: _Attempt, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ready":
            self.pool._slots[slot].ready = True
            self.send(slot)
        elif kind == "ok" and msg[1] == self.job_id:
            self.results[att.chunk] = msg[2]
            del self.running[slot]
        elif kind == "error" and msg[1] in (self.job_id, None):
            # a deterministic solver error: not retried; the worker stays (unless it
            # failed to start); other chunks finish first
            del self.running[slot]
            if msg[1] is None:
                self.pool._discard(slot)
            if self.error is None:
                exc = pickle.loads(msg[2])
                exc.__cause__ = _RemoteTraceback(msg[3])
                self.error = exc

    def fail(self, slot: int, what: str) -> None:
        """Slot's worker died, timed out or stopped: replace it and retry the chunk once
        (unless the batch has already failed)."""
        att = self.running.pop(slot)
        a, b = self.bounds[att.chunk]
        self.pool._discard(slot)
        att.failures.append(what)
        if self.error is not None:  # the batch has already failed: no retry
            return
        if att.attempt >= 2:
            self.error = WorkerCrashedError(
                f"ngspice worker failed twice on samples [{a}, {b}) of {self.batch}: "
                + "; then ".join(att.failures),
                [],
                self.circuit.title,
                (a, b),
                att.failures,
            )
            return
        where = f"circuit {self.circuit.title!r}, samples [{a}, {b}) of {self.batch}"
        log.warning("ngspice worker %s on %s; retrying once in a fresh process", what, where)
        self.start(slot, _Attempt(att.chunk, 2, None, att.failures))


# -- dask ------------------------------------------------------------------------------


