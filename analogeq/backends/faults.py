"""Fault injection for the worker pool's own tests: makes a worker crash, hang or fail the
way a real libngspice can, so that recovery is tested against real process deaths."""

from __future__ import annotations

import os
import signal
import time

__all__ = ["FAULT_ENV", "run_fault"]


#: Test-only fault injection, read by the parent at dispatch and executed by the worker
#: before it solves a chunk: ``abort`` (os.abort, SIGABRT), ``segv`` (SIGSEGV), ``exit``
#: (os._exit(3)), ``sleep:SECONDS`` or ``ngspice`` (the worker's ngspice is given a netlist
#: it rejects, a real ngspice error); append ``@PATH`` to fire only once (the first worker
#: that creates PATH fires, later attempts run normally). Never set it in production.
FAULT_ENV = "ANALOGEQ_PARALLEL_FAULT"


def run_fault(spec: str | None) -> None:
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
