"""The ngspice backend: the only module of analogeq that imports PySpice.

It loads libngspice in-process (PySpice's ``NgSpiceShared``, one instance per process),
takes netlist text in and gives NumPy arrays out. A batch of B samples is one netlist and
one analysis: every swept source becomes a table over a dummy sweep node and a
``.dc`` sweep visits one point per sample, so the sparse matrix is set up and ordered once
per batch and each point warm-starts from the previous one.

By default (``SolverOptions.fold_pinned_nodes``) ngspice is handed the condensed circuit of
:func:`~analogeq.circuit.fold_pinned`: nodes pinned by grounded voltage sources (inputs,
bias rails) are folded into one Norton conductance and one current source per free node,
the per-sample currents ``I_n = sum g u`` being tables over the sweep index like swept
inputs. The returned :class:`~.base.Solution` is the full circuit's (every node, every
source current, recovered exactly); a (784, 100, 10) block's sweep point costs about 1 ms
instead of 0.1-0.3 s (BENCHMARKS.md, "Norton folding").

Failure is loud. ngspice reports most problems on stderr and still returns numbers (a
"singular matrix" answer, a "Transient op" fallback of ~5e8 V, a parse error after which
the previous circuit is still loaded). Every message is captured, classified, and turned
into a :class:`~analogeq.errors.SimulationError` subclass carrying ngspice's lines.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping, MutableMapping
from contextlib import contextmanager

import numpy as np

from ..circuit import (
    Circuit,
    FoldedCircuit,
    VoltageSource,
    check_pinned_diodes,
    validate,
)
from ..errors import ConvergenceError, NetlistParseError, SimulationError, SingularMatrixError
from ..params import SolverOptions
from ..spice import swept_source_name, to_spice
from .base import Solution, concat_solutions
from .kcl import check_solution
from .topology import Prepared, TopologyCache

__all__ = ["NgspiceBackend", "NgspiceEngine", "engine", "MAX_COMMAND_LENGTH", "STAGES"]

#: Stages of :meth:`NgspiceBackend.solve` timed into ``NgspiceBackend.timings``.
STAGES = ("emit", "load", "analysis", "read", "reset", "expand", "check")

#: ngSpice_Command copies its argument into a 1024-byte buffer: longer commands corrupt.
MAX_COMMAND_LENGTH = 1023
#: Commands known to crash the shared library (``show <vsource>`` segfaults in 39.x).
_FORBIDDEN_COMMANDS = ("show", "quit", "exit")

_FATAL_MARKERS = (
    ("singular matrix", SingularMatrixError),
    ("gmin stepping failed", ConvergenceError),
    ("source stepping failed", ConvergenceError),
    ("transient op", ConvergenceError),
    ("timestep too small", ConvergenceError),
    ("dc solution failed", ConvergenceError),
    ("iteration limit", ConvergenceError),
    ("simulation(s) aborted", ConvergenceError),
    ("circuit not parsed", NetlistParseError),
    ("error", SimulationError),
    ("can't find", NetlistParseError),
    ("unknown parameter", NetlistParseError),
    ("no such", SimulationError),
)


def _library_setup() -> None:
    """Point PySpice at a loadable libngspice and silence its logger (we read messages
    ourselves; PySpice would log every gmin note as an error)."""
    if "NGSPICE_LIBRARY_PATH" not in os.environ:
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
            if os.path.exists(os.path.join(d, "libngspice.so")):
                break
            if os.path.exists(os.path.join(d, "libngspice.so.0")):
                os.environ["NGSPICE_LIBRARY_PATH"] = os.path.join(d, "libngspice.so.0")
                break
    logging.getLogger("PySpice").setLevel(logging.CRITICAL)


class NgspiceEngine:
    """Thin, guarded driver of the process's shared ngspice instance.

    Use :func:`engine` to get it. Every call collects ngspice's stdout/stderr lines; the
    caller decides what is fatal via :meth:`raise_on_errors`.
    """

    def __init__(self) -> None:
        _library_setup()
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi

        lines: list[str] = []

        class _Shared(NgSpiceShared):
            def send_char(self, message: str, ngspice_id: int) -> int:  # noqa: ARG002
                lines.append(message)
                return 0

        self._ffi = ffi
        self._lines = lines
        try:
            self._shared = _Shared(ngspice_id=0, send_data=False)
        except OSError as exc:  # pragma: no cover - depends on the machine
            raise SimulationError(
                "could not load libngspice: install it with "
                "'apt-get install -y ngspice libngspice0 libngspice0-dev' (or run 'make test', "
                "which does) or set NGSPICE_LIBRARY_PATH"
            ) from exc
        self._lib = self._shared._ngspice_shared
        self._lock = threading.Lock()
        self._commands_since_free = 0
        self._circuit_loaded = False
        self.version = self._shared.ngspice_version
        self._clear()

    # -- low level ------------------------------------------------------------------

    def take_messages(self) -> list[str]:
        """Return and clear the lines ngspice printed since the last call."""
        out = [m for m in self._lines if m.strip()]
        self._clear()
        return out

    def _clear(self) -> None:
        """Forget the captured lines, ours and PySpice's own copies (``NgSpiceShared``
        appends every line to its ``_stdout``/``_stderr`` lists and never drops them:
        about 0.4 MB per 1000 solves otherwise)."""
        self._lines.clear()
        self._shared.clear_output()

    def command(self, command: str) -> list[str]:
        """Send one command; return the lines it printed.

        Raises ValueError for commands longer than 1023 characters (ngspice would silently
        truncate or corrupt them; split them and send several) and for commands known to
        crash the shared library (``show``).
        """
        if len(command) > MAX_COMMAND_LENGTH:
            raise ValueError(
                f"ngspice command of {len(command)} characters exceeds {MAX_COMMAND_LENGTH}: "
                "ngSpice_Command would corrupt it; split it into several commands"
            )
        head = command.strip().split(maxsplit=1)[0].lower() if command.strip() else ""
        if head in _FORBIDDEN_COMMANDS:
            raise ValueError(f"ngspice command {head!r} is refused: it crashes shared ngspice")
        self._commands_since_free += 1
        if self._commands_since_free > 500:  # free ngspice's command history
            self._lib.ngSpice_Command(self._ffi.NULL)
            self._commands_since_free = 0
        rc = self._lib.ngSpice_Command(command.encode("ascii"))
        if rc:
            raise SimulationError(
                f"ngSpice_Command({command!r}) returned {rc}", self.take_messages()
            )
        return list(self._lines)

    def alter(self, device: str, parameter: str, value: float) -> None:
        """``alter device parameter = value``, refusing non-finite values (ngspice would
        print an error and silently keep the old value)."""
        if not np.isfinite(value):
            raise ValueError(f"alter {device} {parameter}: value {value!r} is not finite")
        self.take_messages()
        self.command(f"alter {device} {parameter} = {float(value)!r}")
        self.raise_on_errors(self.take_messages(), f"alter {device}")

    def reset(self) -> None:
        """Unload every circuit and destroy every plot (keeps memory flat)."""
        if self._circuit_loaded:
            self._lib.ngSpice_Command(b"remcirc")
            self._circuit_loaded = False
        self._lib.ngSpice_Command(b"destroy all")
        self._clear()

    def load(self, netlist: str, title: str = "") -> None:
        """Load netlist text (replacing any loaded circuit); raise on parse errors."""
        if ".control" in netlist.lower():
            raise ValueError(
                "netlists with a .control block run commands (even 'quit') inside this "
                "process: emit them without print_nodes for the in-process backend"
            )
        self.reset()
        ffi = self._ffi
        keep = [ffi.new("char[]", line.encode("ascii")) for line in netlist.splitlines()]
        keep.append(ffi.new("char[]", b""))
        keep.append(ffi.NULL)
        rc = self._lib.ngSpice_Circ(ffi.new("char *[]", keep))
        self._circuit_loaded = True
        messages = self.take_messages()
        if rc:
            raise NetlistParseError(f"ngSpice_Circ returned {rc}", messages, title)
        problems = [m for m in messages if m.startswith("stderr")]
        if problems:
            raise NetlistParseError("ngspice rejected the netlist", problems, title)

    @staticmethod
    def raise_on_errors(messages: list[str], title: str = "") -> None:
        """Raise the :class:`~analogeq.errors.SimulationError` subclass that ngspice
        ``messages`` call for (parse error, singular matrix, no convergence); return if none
        does."""
        for m in messages:
            if not m.startswith("stderr"):
                if "dc solution failed" in m.lower() or m.lower().startswith("stdout error"):
                    raise ConvergenceError("ngspice did not converge", messages, title)
                continue
            low = m.lower()
            for marker, kind in _FATAL_MARKERS:
                if marker in low:
                    raise kind(f"ngspice reported: {m[7:].strip()}", messages, title)

    def current_plot(self) -> str:
        """Name of ngspice's current plot (the last analysis)."""
        return self._ffi.string(self._lib.ngSpice_CurPlot()).decode()

    def vector(self, plot: str, name: str) -> np.ndarray:
        """The vector ``name`` of ``plot`` as a float64 array."""
        info = self._lib.ngGet_Vec_Info(f"{plot}.{name}".encode("ascii"))
        if info == self._ffi.NULL or info.v_realdata == self._ffi.NULL:
            raise SimulationError(f"ngspice has no real vector {name!r} in plot {plot!r}")
        n = info.v_length
        return np.frombuffer(self._ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()

    def run(self, title: str = "") -> str:
        """Run the loaded analysis; raise on any fatal message; return the plot name."""
        self.take_messages()
        self.command("run")
        messages = self.take_messages()
        self.raise_on_errors(messages, title)
        return self.current_plot()


_ENGINE: NgspiceEngine | None = None

#: ``reltol`` multiplier of condensed solves (:meth:`NgspiceBackend.condensed_options`).
CONDENSED_RELTOL_FACTOR = 0.01


def engine() -> NgspiceEngine:
    """The process's ngspice engine (created on first use; one per process)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = NgspiceEngine()
    return _ENGINE


class NgspiceBackend:
    """Solve circuits of the IR with in-process ngspice, batched over samples.

    Every answer is checked before it is returned (:func:`~.kcl.check_solution`:
    finite, diode exponents in range, Kirchhoff's current law at every node within the
    solver tolerances).

    Args:
        options: tolerances (defaults fit for gradients: reltol 1e-8, vntol 1e-9 V,
            abstol 1e-15 A).
        timings: optional mapping that :meth:`solve` adds the seconds of each stage to
            (keys :data:`STAGES`: ``emit`` netlist text, ``load`` into ngspice,
            ``analysis``, ``read`` vectors, ``reset``, ``expand`` of a folded circuit's
            solution, ``check`` of the answer); the timing hook of the benchmarks.
            None (default): nothing is timed.
    """

    name = "ngspice"
    #: fold with 0 V sense sources (see :func:`~analogeq.circuit.fold_pinned`); off: the
    #: condensed solve tightens ``vntol`` instead (:meth:`condensed_options`)
    sense = False

    def __init__(
        self,
        options: SolverOptions | None = None,
        *,
        timings: MutableMapping[str, float] | None = None,
    ) -> None:
        self.options = options or SolverOptions()
        self.timings = timings
        self._prepared = TopologyCache()

    @contextmanager
    def _timed(self, stage: str):
        if self.timings is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0

    def solve(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None = None,
    ) -> Solution:
        """DC operating point of ``circuit`` for each of B samples.

        Args:
            circuit: validated before anything reaches ngspice.
            source_values: maps V/I source names to (B,) arrays (volts / amperes).

        Returns:
            :class:`Solution` with (B, N) node voltages and (B, S) V-source currents.

        Raises:
            CircuitError: the circuit is invalid (nothing was sent to ngspice).
            SimulationError: ngspice failed; the message carries its output.
        """
        with self._timed("emit"):
            values, batch, prep = self._checked(circuit, source_values)
            check_pinned_diodes(circuit, values, batch, self.options.thermal_voltage_V,
                                paths=prep.pinned_paths)
            folded = prep.plan.apply(circuit) if prep.plan is not None else None
        cvals = folded.condensed_values(values, batch) if folded is not None else {}
        if folded is None or (values and not cvals):
            # nothing folds, or the swept sources only drive dropped devices
            sol = self._solve_direct(circuit, values, batch)
            with self._timed("check"):
                check_solution(circuit, sol, values, self.options, backend="ngspice")
            return sol
        # ngspice's answer is the condensed circuit's: check that one (its KCL at the free
        # nodes is the full circuit's; the pinned sources' currents are then recovered
        # from KCL by the expansion, exactly)
        sol = self._solve_direct(folded.condensed, cvals, batch if cvals else 1,
                                 options=self.condensed_options(folded))
        with self._timed("check"):
            check_solution(folded.condensed, sol, cvals, self.options, backend="ngspice")
        with self._timed("expand"):
            return folded.expand(sol, values, batch)

    def _checked(
        self, circuit: Circuit, source_values: Mapping[str, np.ndarray] | None
    ) -> tuple[dict[str, np.ndarray], int, Prepared]:
        """Validated source values, B and the per-topology preparation of ``circuit``
        (:class:`~.topology.TopologyCache`, as the NumPy backend does: full validation and
        folding plan once per topology, only the values checked afterwards)."""
        fold = bool(self.options.fold_pinned_nodes)
        prep, values, batch = self._prepared.prepare(
            circuit, source_values, fold, lambda c: Prepared(c, fold, sense=self.sense))
        return values, batch, prep

    def condensed_options(self, folded: FoldedCircuit) -> SolverOptions:
        """The options of a condensed solve: ``options`` with ``reltol`` times
        :data:`CONDENSED_RELTOL_FACTOR` and ``vntol`` lowered to at most ``abstol / G``
        (G the largest Norton conductance, floored at 1e-15 V).

        Why: in the full form ngspice's convergence test also checks the branch current of
        every pinned source, to ``reltol |I| + abstol``; through a Norton conductance G
        that is a voltage test of ``reltol |u - v| + abstol / G``, often far tighter than
        the node test ``reltol |v| + vntol``. Folding removes those unknowns, so without
        this a sweep point may stop short of the full form's answer (seen: 5.8e-9 V off the
        exact root of a one-diode circuit, where the full form is 1e-15 V off). Measured
        (BENCHMARKS.md, "Norton folding"): 1-5% more Newton iterations, node voltages and
        EP gradients 10-100x closer to a tight Newton solve than the full form, and half
        the cost per iteration of the alternative, a 0 V sense source in series with each
        Norton conductance (:attr:`sense`)."""
        g = np.asarray(folded.norton_g_S, dtype=np.float64)
        if g.size == 0 or self.sense:
            return self.options
        vntol = max(min(self.options.vntol, self.options.abstol / float(g.max())), 1e-15)
        return dataclasses.replace(
            self.options, vntol=vntol, reltol=self.options.reltol * CONDENSED_RELTOL_FACTOR
        )

    def _solve_direct(
        self, circuit: Circuit, values: Mapping[str, np.ndarray], batch: int,
        options: SolverOptions | None = None,
    ) -> Solution:
        """Solve a validated ``circuit`` with validated per-sample ``values`` (B = ``batch``)
        as one sweep, or as consecutive sweeps of ``options.sweep_points`` points
        (``options``: default :attr:`options`)."""
        options = options or self.options
        swept = set(values)
        p = options.sweep_points
        if not values or p is None or batch <= p:
            with self._timed("emit"):
                text = to_spice(
                    circuit, options=options, source_values=values or None, check=False
                )
            return self.solve_netlist(text, circuit, swept, batch)
        parts = []
        for a in range(0, batch, p):  # consecutive sweeps of p points (options.sweep_points)
            chunk = {k: v[a : a + p] for k, v in values.items()}
            with self._timed("emit"):
                text = to_spice(circuit, options=options, source_values=chunk, check=False)
            parts.append(self.solve_netlist(text, circuit, swept, min(p, batch - a)))
        return concat_solutions(parts)

    def solve_netlist(
        self, text: str, circuit: Circuit, swept: set[str], batch: int
    ) -> Solution:
        """Run netlist ``text`` (emitted from ``circuit``; ``swept``: names of the sources
        given per-sample values) and read ``batch`` points of every node voltage and
        V-source current, as :meth:`solve` does."""
        eng = engine()
        with eng._lock:
            try:
                with self._timed("load"):
                    eng.load(text, circuit.title)
                with self._timed("analysis"):
                    plot = eng.run(circuit.title)
                with self._timed("read"):
                    nodes = tuple(circuit.nodes)
                    volts = np.empty((batch, len(nodes)))
                    for k, n in enumerate(nodes):
                        volts[:, k] = self._read(eng, plot, n.lower(), batch, circuit.title)
                    vsrc = [e.name for e in circuit.elements if isinstance(e, VoltageSource)]
                    # an amplifier's sense source: the current it delivers into its output
                    vsrc += [a.sense_name for a in circuit.amplifiers]
                    amps = np.empty((batch, len(vsrc)))
                    for k, s in enumerate(vsrc):
                        spice_name = swept_source_name(s) if s in swept else s
                        amps[:, k] = self._read(
                            eng, plot, f"{spice_name.lower()}#branch", batch, circuit.title
                        )
            finally:
                with self._timed("reset"):
                    eng.reset()
        if not (np.isfinite(volts).all() and np.isfinite(amps).all()):
            raise SimulationError("ngspice returned non-finite values", [], circuit.title)
        return Solution(nodes, volts, tuple(vsrc), amps)

    @staticmethod
    def _read(eng: NgspiceEngine, plot: str, name: str, batch: int, title: str) -> np.ndarray:
        vec = eng.vector(plot, name)
        if vec.size != batch:
            raise SimulationError(
                f"ngspice returned {vec.size} points for {name!r}, expected {batch}", [], title
            )
        return vec

    def transient(
        self,
        circuit: Circuit,
        capacitances: Mapping[str, float],
        step: Mapping[str, tuple[float, float]],
        t_stop_s: float,
        t_step_s: float,
        *,
        t_rise_s: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step response of ``circuit`` with grounded capacitors, by an ngspice ``.tran``.

        The netlist is ``to_spice(circuit)`` without its ``.op`` line, plus one capacitor
        ``C_<node> <node> 0 <farad>`` per entry of ``capacitances``, the stepped sources
        rewritten as ``PWL(0 v_before t_rise v_after)`` and ``.tran t_step t_stop 0 t_step``
        (no ``uic``: the analysis starts from the DC operating point with every stepped
        source at its ``v_before``). The ``.options`` line (tolerances) is the DC one.

        Args:
            circuit: the IR circuit (validated); it has no capacitor element, so the
                capacitances are given here.
            capacitances: node name -> capacitance to ground in farads (> 0).
            step: V or I source name -> (value before, value after) in volts / amperes;
                sources not listed keep their DC value.
            t_stop_s: end of the simulation in seconds.
            t_step_s: output step and largest internal time step in seconds.
            t_rise_s: duration of the linear edge of the step (default ``1e-6 t_stop_s``:
                an ideal step on the scale of the response).

        Returns:
            (times (T,) in seconds, voltages (T, N) in volts of ``circuit.nodes`` in order),
            at ngspice's accepted time points (non-uniform; first point t = 0).

        Raises:
            CircuitError: invalid circuit or values (nothing was sent to ngspice).
            SimulationError: ngspice failed (its messages are attached).
        """
        from ..circuit import CurrentSource
        from ..errors import InvalidValueError

        t_stop_s, t_step_s = float(t_stop_s), float(t_step_s)
        t_rise_s = 1e-6 * t_stop_s if t_rise_s is None else float(t_rise_s)
        for what, value in (("t_stop_s", t_stop_s), ("t_step_s", t_step_s), ("t_rise_s", t_rise_s)):
            if not (np.isfinite(value) and value > 0):
                raise InvalidValueError(f"transient {what} must be finite and > 0, got {value!r}")
        if not t_rise_s < t_stop_s or not t_step_s <= t_stop_s:
            raise InvalidValueError(
                f"transient needs t_rise_s ({t_rise_s}) < t_stop_s ({t_stop_s}) and "
                f"t_step_s ({t_step_s}) <= t_stop_s"
            )
        validate(circuit)
        nodes = tuple(circuit.nodes)
        node_set = set(nodes)
        caps = {}
        for node, farad in capacitances.items():
            if node not in node_set:
                raise InvalidValueError(
                    f"capacitance on {node!r}, which is not a (non-ground) node of circuit "
                    f"{circuit.title!r}"
                )
            if not (np.isfinite(farad) and farad > 0):
                raise InvalidValueError(f"capacitance on {node!r} is {farad!r} F: must be > 0")
            caps[node] = float(farad)
        sources = {
            e.name: e for e in circuit.elements if isinstance(e, VoltageSource | CurrentSource)
        }
        pwl: dict[str, str] = {}
        for name, pair in step.items():
            if name not in sources:
                raise InvalidValueError(
                    f"step names {name!r}, which is not a voltage or current source of "
                    f"circuit {circuit.title!r}"
                )
            before, after = (float(v) for v in pair)
            if not (np.isfinite(before) and np.isfinite(after)):
                raise InvalidValueError(f"step of {name!r}: values {pair!r} must be finite")
            e = sources[name]
            pwl[name.lower()] = (
                f"{e.name} {e.plus} {e.minus} PWL(0 {before!r} {t_rise_s!r} {after!r})"
            )
        lines = []
        replaced = set()
        for line in to_spice(circuit, options=self.options, check=False).splitlines():
            low = line.strip().lower()
            if low in (".op", ".end"):
                continue
            head = low.split(maxsplit=1)[0] if low else ""
            if head in pwl and not line.startswith("+"):
                lines.append(pwl[head])
                replaced.add(head)
            else:
                lines.append(line)
        if replaced != set(pwl):  # pragma: no cover - guards a change of to_spice's format
            raise SimulationError(f"could not place the step sources {sorted(set(pwl) - replaced)}")
        lines.extend(f"C_{node} {node} 0 {farad!r}" for node, farad in caps.items())
        lines.append(f".tran {t_step_s!r} {t_stop_s!r} 0 {t_step_s!r}")
        lines.append(".end")
        text = "\n".join(lines) + "\n"
        eng = engine()
        with eng._lock:
            try:
                eng.load(text, circuit.title)
                plot = eng.run(circuit.title)
                if not plot.lower().startswith("tran"):
                    raise SimulationError(
                        f"ngspice produced plot {plot!r}, not a transient", [], circuit.title
                    )
                times = eng.vector(plot, "time")
                volts = np.empty((times.size, len(nodes)))
                for k, n in enumerate(nodes):
                    vec = eng.vector(plot, n.lower())
                    if vec.size != times.size:
                        raise SimulationError(
                            f"ngspice returned {vec.size} points for {n!r}, expected "
                            f"{times.size}", [], circuit.title
                        )
                    volts[:, k] = vec
            finally:
                eng.reset()
        if not (np.isfinite(times).all() and np.isfinite(volts).all()):
            raise SimulationError("ngspice returned non-finite values", [], circuit.title)
        if times.size < 2 or times[-1] < t_stop_s * (1 - 1e-9):
            raise SimulationError(
                f"transient stopped at {times[-1] if times.size else 0.0!r} s of {t_stop_s!r} s",
                [], circuit.title,
            )
        return times, volts
