"""Parallel ngspice backends: one batch split across several processes, each with its own
libngspice.

ngspice keeps global state, so there is one instance per process and parallel solves need
separate processes (see ``NGSPICE_NOTES.md``). Both backends here split the B samples of a
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
* :class:`DaskNgspiceBackend`: the same over a ``dask.distributed`` cluster (optional
  dependency: ``pip install -e .[dask]``).

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

from ..circuit import Circuit, validate, validate_source_values
from ..errors import SimulationError
from ..options import SolverOptions
from .base import Solution, concat_solutions

__all__ = [
    "ParallelNgspiceBackend",
    "DaskNgspiceBackend",
    "WorkerCrashedError",
    "chunk_bounds",
    "FAULT_ENV",
]

log = logging.getLogger(__name__)

#: Test-only fault injection, read by the parent at dispatch and executed by the worker
#: before it solves a chunk: ``abort`` (os.abort, SIGABRT), ``segv`` (SIGSEGV), ``exit``
#: (os._exit(3)), ``sleep:SECONDS`` or ``ngspice`` (the worker's ngspice is given a netlist
#: it rejects, a real ngspice error); append ``@PATH`` to fire only once (the first worker
#: that creates PATH fires, later attempts run normally). Never set it in production.
FAULT_ENV = "ANALOGEQ_PARALLEL_FAULT"
#: Seconds a fresh worker may take to import analogeq and load libngspice.
STARTUP_TIMEOUT_S = 120.0
#: Seconds a worker may take to exit after being asked to.
_JOIN_TIMEOUT_S = 5.0


class WorkerCrashedError(SimulationError):
    """A worker process died or timed out on a chunk twice (first attempt and one retry).

    Attributes:
        sample_range: ``(start, stop)`` of the chunk's samples in the batch (stop excluded).
        failures: one description per failed attempt (exit code or timeout).
    """

    def __init__(
        self,
        message: str,
        messages: list[str] | None = None,
        circuit_title: str = "",
        sample_range: tuple[int, int] = (0, 0),
        failures: list[str] | None = None,
    ):
        super().__init__(message, messages, circuit_title)
        self.sample_range = tuple(sample_range)
        self.failures = list(failures or [])


def chunk_bounds(batch: int, n_chunks: int, align: int = 1) -> list[tuple[int, int]]:
    """Split ``range(batch)`` into at most ``n_chunks`` contiguous, near-equal chunks whose
    inner boundaries are multiples of ``align``; returns ``[(start, stop), ...]``."""
    if batch < 1 or n_chunks < 1 or align < 1:
        raise ValueError(f"need batch, n_chunks, align >= 1, got {batch}, {n_chunks}, {align}")
    groups = math.ceil(batch / align)
    n = min(n_chunks, groups)
    edges = [min(batch, align * ((groups * k) // n)) for k in range(n + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _align(align: int, options: SolverOptions) -> int:
    """Chunk boundaries: multiples of ``align`` and, with ``options.sweep_points``, of the
    sweep length too, so every worker's sweeps are the ones a single process would run."""
    p = options.sweep_points
    return align if p is None else math.lcm(align, p)


def _split_values(
    values: Mapping[str, np.ndarray], bounds: list[tuple[int, int]]
) -> list[dict[str, np.ndarray]]:
    return [{k: np.ascontiguousarray(v[a:b]) for k, v in values.items()} for a, b in bounds]


def _prepare(circuit: Circuit, source_values: Mapping[str, np.ndarray] | None):
    """Validate in the parent (nothing is dispatched for a bad circuit); return the values
    as float64 arrays and the batch size."""
    validate(circuit)
    return validate_source_values(circuit, source_values)


# -- worker side -----------------------------------------------------------------------


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _run_fault(spec: str | None) -> None:
    """Execute the test-only fault ``spec`` (see :data:`FAULT_ENV`)."""
    if not spec:
        return
    kind, _, once = spec.partition("@")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    kind, _, arg = kind.partition(":")
    if kind in ("abort", "segv"):
        try:  # a simulated crash must not leave core files behind
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):  # pragma: no cover
            pass
        if kind == "abort":
            os.abort()
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)  # pragma: no cover - the signal is delivered before this
    elif kind == "exit":
        os._exit(3)
    elif kind == "sleep":
        time.sleep(float(arg))
    elif kind == "ngspice":
        from .ngspice import engine

        engine().load("rejected on purpose\nv1 a 0 1\nr1 a b nan\nr2 b 0 1k\n.op\n.end\n",
                      "tiny conductance")
    else:
        raise ValueError(f"unknown {FAULT_ENV} fault {spec!r}")


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
            _run_fault(fault)
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
        return chunk_bounds(batch, n, _align(self.align, self.options))

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
        values, batch = _prepare(circuit, source_values)
        bounds = self.plan(batch) if values else [(0, 1)]
        chunks = _split_values(values, bounds) if values else [{}]
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
        client=None,
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
        values, batch = _prepare(circuit, source_values)
        if values:
            n = max(1, min(self._n_workers(), batch // self.min_samples_per_worker))
            bounds = chunk_bounds(batch, n, _align(self.align, self.options))
            chunks = _split_values(values, bounds)
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
