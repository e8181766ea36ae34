"""An instrumented copy of the ngspice solve path, timing each stage (with Norton folding:
fold + current tables + text in ``emit``, recovery of the full solution in ``expand``).

It mirrors :meth:`analogeq.backends.ngspice.NgspiceBackend.solve` with the engine's own
methods (``load``, ``run``, ``vector``, ``reset``) and is passed to
``ResistiveBlock.ep_gradients(..., backend=...)`` so the package's EP code runs unchanged;
whatever ``ep_gradients`` spends outside ``solve`` is our NumPy glue (source tables,
gradient formulas).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from analogeq import SimulationError, Solution, VoltageSource, to_spice
from analogeq.backends.ngspice import NgspiceBackend, engine
from analogeq.circuit import validate_source_values
from analogeq.spice import swept_source_name

STAGES = ("emit", "load", "analysis", "read", "reset", "expand")


class TimedNgspiceBackend(NgspiceBackend):
    """NgspiceBackend that accumulates wall time per stage in ``self.times`` (seconds)."""

    name = "ngspice-timed"

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.times: dict[str, float] = defaultdict(float)

    def solve(self, circuit, source_values=None) -> Solution:
        t0 = time.perf_counter()
        folded = self.fold(circuit)  # Norton folding (SolverOptions.fold_pinned_nodes)
        if folded is not None:
            values, batch = validate_source_values(circuit, source_values)
            cvals = folded.condensed_values(values, batch)
            text = to_spice(folded.condensed, options=self.options, source_values=cvals,
                            check=False)
            self.times["emit"] += time.perf_counter() - t0
            sol = self.solve_netlist(text, folded.condensed, set(cvals), batch)
            t1 = time.perf_counter()
            out = folded.expand(sol, values, batch)
            self.times["expand"] += time.perf_counter() - t1
            return out
        text = to_spice(circuit, options=self.options, source_values=source_values)
        self.times["emit"] += time.perf_counter() - t0
        batch = len(next(iter(source_values.values()))) if source_values else 1
        swept = set(source_values or ())
        return self.solve_netlist(text, circuit, swept, batch)

    def solve_netlist(self, text, circuit, swept, batch) -> Solution:
        eng = engine()
        tm = self.times
        with eng._lock:
            try:
                t0 = time.perf_counter()
                eng.load(text, circuit.title)
                t1 = time.perf_counter()
                plot = eng.run(circuit.title)
                t2 = time.perf_counter()
                nodes = tuple(circuit.nodes)
                volts = np.empty((batch, len(nodes)))
                for k, n in enumerate(nodes):
                    volts[:, k] = self._read(eng, plot, n.lower(), batch, circuit.title)
                vsrc = [e.name for e in circuit.elements if isinstance(e, VoltageSource)]
                amps = np.empty((batch, len(vsrc)))
                for k, s in enumerate(vsrc):
                    spice_name = swept_source_name(s) if s in swept else s
                    amps[:, k] = self._read(
                        eng, plot, f"{spice_name.lower()}#branch", batch, circuit.title
                    )
                t3 = time.perf_counter()
                tm["load"] += t1 - t0
                tm["analysis"] += t2 - t1
                tm["read"] += t3 - t2
            finally:
                t4 = time.perf_counter()
                eng.reset()
                tm["reset"] += time.perf_counter() - t4
        if not (np.isfinite(volts).all() and np.isfinite(amps).all()):
            raise SimulationError("ngspice returned non-finite values", [], circuit.title)
        return Solution(nodes, volts, tuple(vsrc), amps)
