"""SPICE netlist emitter: circuit IR -> netlist text that plain ``ngspice -b`` accepts.

Values are written in SI units with full double precision (shortest round-trip repr).

Element order is chosen for ngspice's setup cost. ngspice creates a crossbar cell's
matrix entries in netlist order, and Sparse 1.3 finds each off-diagonal entry by walking
its column's linked list, sorted by row, from the top. Listing a
:class:`~analogeq.circuit.ConductanceMatrix` row by row in its natural order makes every
new entry walk past all earlier rows: O(rows^2 x cols) pointer steps, about 5 s for a
1568 x 100 crossbar. Listing the last row first puts every new entry at the head of its
column: a three-point sweep of that block (784, 100, 10) took 1.7-2.0 s of ngspice analysis
instead of 6.1-6.8 s (BENCHMARKS.md). The circuit is the same either way; only the order of
its lines changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from ..circuit import (
    GROUND,
    SWEEP_NODE,
    SWEEP_SOURCE,
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    validate,
    validate_source_values,
)
from ..params import DiodeModel, PWLDiodeModel, SolverOptions

__all__ = [
    "to_spice",
    "swept_source_name",
    "model_card",
    "pwl_diode_line",
    "pwl_diode_name",
    "options_card",
    "title_line",
    "SWEEP_SOURCE",
    "amplifier_lines",
]

_SAMPLES_PER_LINE = 8


def swept_source_name(name: str) -> str:
    """SPICE name of the behavioural source that replaces a swept V or I source."""
    return "B" + name


#: Title line used when a circuit's title is empty (ngspice would take the next line).
DEFAULT_TITLE = "analogeq circuit"


def _printable(text: str) -> str:
    """``text`` with every character that is not printable ASCII (control characters such
    as ``\r``, ``\n``, tabs; non-ASCII) replaced by a space."""
    return "".join(ch if " " <= ch <= "~" else " " for ch in str(text))


def title_line(title: str) -> str:
    """The netlist's first line for ``title``: one line of printable ASCII, never empty
    (ngspice would take the first element line as the title) and never starting with
    ``.`` (a title ``.end`` ends the netlist)."""
    line = _printable(title).strip()
    if not line:
        return DEFAULT_TITLE
    return "* " + line if line.startswith(".") else line


def _num(x: float) -> str:
    return repr(float(x))


def _element_lines(circuit: Circuit, swept: Mapping[str, np.ndarray]) -> list[str]:
    lines: list[str] = []
    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            # Last row first (see the module docstring): ngspice's sparse-matrix setup then
            # inserts every cell at the head of its column list instead of walking it.
            r_ohm = (1.0 / np.asarray(e.g_S, dtype=np.float64)).tolist()
            lines.append(
                f"* {e.name}: {len(e.rows)} x {len(e.cols)} crossbar cells "
                f"{e.name}_<row>_<col> <row> <col> <ohm>, listed last row first"
            )
            for i in reversed(range(len(e.rows))):
                row = e.rows[i]
                prefix = f"{e.name}_{row}_"
                cells = zip(e.cols, r_ohm[i], strict=True)
                lines.extend(f"{prefix}{col} {row} {col} {r!r}" for col, r in cells)
        elif isinstance(e, Conductance):
            lines.append(f"{e.name} {e.a} {e.b} {_num(1.0 / e.g_S)}")
        elif isinstance(e, Diode):
            model = circuit.models.get(e.model)
            if isinstance(model, PWLDiodeModel):
                lines.append(pwl_diode_line(e, model))
            else:
                lines.append(f"{e.name} {e.anode} {e.cathode} {e.model}")
        elif isinstance(e, VoltageSource | CurrentSource):
            value = e.dc_V if isinstance(e, VoltageSource) else e.dc_A
            if e.name in swept:
                kind = "V" if isinstance(e, VoltageSource) else "I"
                lines.append(
                    f"{swept_source_name(e.name)} {e.plus} {e.minus} {kind}=pwl(v({SWEEP_NODE}),"
                )
                lines.extend(_pwl_lines(swept[e.name]))
            else:
                lines.append(f"{e.name} {e.plus} {e.minus} DC {_num(value)}")
        elif isinstance(e, BidirectionalAmplifier):
            lines.extend(amplifier_lines(e))
    return lines


def amplifier_lines(e: BidirectionalAmplifier) -> list[str]:
    """SPICE lines of a bidirectional amplifier: ``E`` (V(x) = gain V(input)), a 0 V sense
    source from x to ``output`` whose branch current is the current I delivered into
    ``output``, and ``F`` drawing ``back_gain * I`` from ``input`` (SPICE's F current flows
    from its first node through the source to its second: out of ``input``, into ground)."""
    x = e.internal_node
    return [
        f"* {e.name}: bidirectional amplifier {e.input} -> {e.output}, gain "
        f"{_num(e.gain)}, back gain {_num(e.back_gain)}",
        f"{e.name} {x} {GROUND} {e.input} {GROUND} {_num(e.gain)}",
        f"{e.sense_name} {x} {e.output} DC 0",
        f"{e.back_name} {e.input} {GROUND} {e.sense_name} {_num(e.back_gain)}",
    ]


@functools.lru_cache(maxsize=8)
def _pwl_grid(size: int) -> list[str]:
    """repr of the sweep indices 0..size-1 (shared by every table of a sweep)."""
    return list(map(repr, np.arange(size, dtype=np.float64).tolist()))


def _pwl_lines(values: np.ndarray) -> list[str]:
    """Table over the sample index with one breakpoint per sample (``k, values[k]``), so
    the value at sweep point k is exactly ``values[k]`` (the sweep source pins the index
    node to the integer k; between integers the table interpolates linearly, never
    evaluated at a solved point). A run of equal consecutive values (e.g. the inputs of a
    sample's free and nudged points) is one segment: its first and last index. A single
    point gets a second breakpoint one index later (ngspice's ``pwl`` needs two).

    This is the hot path of a batched solve (one table per swept source; with Norton
    folding one per free node): the indices are formatted once per sweep length and each
    value once (shortest round-trip ``repr``). One breakpoint per sample instead of a flat
    step around each integer halves the table and, measured on ngspice 39, also cuts
    the Newton iterations of a sweep by about 13% (BENCHMARKS.md, "Norton folding")."""
    vals = np.asarray(values, dtype=np.float64)
    size = vals.size
    starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
    ends = np.r_[starts[1:], size] - 1
    # breakpoints: each run's first index, and its last when the run is longer than one
    idx = np.stack([starts, np.where(ends > starts, ends, -1)], axis=1).reshape(-1)
    idx = idx[idx >= 0]
    if idx.size == 1:
        idx = np.array([0, 1])
        vals = np.r_[vals, vals]
    grid = _pwl_grid(max(size, 2))
    pts = [f"{grid[i]},{v}" for i, v in zip(idx.tolist(), map(repr, vals[idx].tolist()),
                                           strict=True)]
    n = 2 * _SAMPLES_PER_LINE
    out = ["+ " + ", ".join(pts[s : s + n]) + "," for s in range(0, len(pts), n)]
    out[-1] = out[-1][:-1] + ")"
    return out


def pwl_diode_name(name: str) -> str:
    """SPICE name of the behavioural current source of a PWL diode named ``name``."""
    return "B" + name


def pwl_diode_line(e: Diode, model: PWLDiodeModel) -> str:
    """A PWL diode (:class:`~analogeq.params.PWLDiodeModel`) as an ngspice behavioural
    current source ``B<name> anode cathode I=...`` (current from anode through the source
    to cathode, like the diode's), ``I = g_off v + g_on w softplus((v - v_on) / w)`` with
    softplus written as ``uramp(x) + ln(1 + exp(-abs(x)))``, the form the NumPy solver
    evaluates (:func:`analogeq.backends.diode.pwl_diode_current`)."""
    v = f"v({e.anode},{e.cathode})"
    x = f"(({v}-({_num(model.v_on_V)}))/{_num(model.smooth_V)})"
    return (f"{pwl_diode_name(e.name)} {e.anode} {e.cathode} I={_num(model.g_off_S)}*{v}"
            f"+{_num(model.g_on_S * model.smooth_V)}*(uramp({x})+ln(1+exp(-abs({x}))))")


def model_card(model: DiodeModel | PWLDiodeModel) -> str:
    """The ``.model`` line of a diode model: ``.model NAME D(IS=... N=...)``; a PWL model
    (emitted inline as ``B`` sources) gets a comment line with its parameters."""
    if isinstance(model, PWLDiodeModel):
        return (f"* PWL diode model {model.name}: g_on={_num(model.g_on_S)} S "
                f"g_off={_num(model.g_off_S)} S v_on={_num(model.v_on_V)} V "
                f"smooth={_num(model.smooth_V)} V (behavioural B sources above)")
    return f".model {model.name} D(IS={_num(model.is_A)} N={_num(model.n)})"


def options_card(options: SolverOptions) -> str:
    """The ``.options`` line of solver options (tolerances, iteration limits, temperature)."""
    return (
        f".options reltol={options.reltol!r} vntol={options.vntol!r} "
        f"abstol={options.abstol!r} gmin={options.gmin!r} itl1={options.max_iterations} "
        f"itl2={options.max_iterations} temp={options.temp_C!r} tnom={options.temp_C!r}"
    )


def to_spice(
    circuit: Circuit,
    *,
    options: SolverOptions | None = None,
    source_values: Mapping[str, Sequence[float]] | None = None,
    print_nodes: Sequence[str] | None = None,
    print_vectors: Sequence[str] | None = None,
    header: str | None = None,
    check: bool = True,
) -> str:
    """Emit the SPICE netlist of ``circuit``.

    Args:
        options: tolerances and temperature written as ``.options``.
        source_values: per-sample values (arrays of shape (B,)) for named V/I sources. Each
            swept source becomes a behavioural source ``B<name>`` whose value is a table over
            a dummy sweep node, and the analysis is ``.dc Vsweep_idx 0 B-1 1``: one sweep
            point per sample, with the matrix set up once for the whole batch.
            Without it the analysis is a single ``.op``.
        print_nodes: if given, add a ``.control`` block that runs the analysis and prints
            these node voltages with 15 digits, then quits (for standalone ``ngspice -b FILE``
            use only; the in-process backend refuses ``.control`` blocks).
        print_vectors: like ``print_nodes`` but raw ngspice vector expressions, e.g.
            ``"v(outp,outn)"`` for a differential voltage.
        header: comment text placed after the title line (each line gets ``* ``;
            characters other than printable ASCII become spaces).
        check: validate the circuit first (raises :class:`~analogeq.errors.CircuitError`).

    The title line is :func:`title_line` of ``circuit.title`` (control characters and
    non-ASCII become spaces, an empty title becomes ``analogeq circuit``).

    Returns:
        Netlist text ending in ``.end``.
    """
    if check:
        validate(circuit)
    options = options or SolverOptions()
    swept, batch = validate_source_values(circuit, source_values, check_range=check)
    lines = [title_line(circuit.title)]
    if header:
        lines.extend(
            "* " + h if h.strip() else "*" for h in map(_printable, header.splitlines())
        )
    lines.extend(_element_lines(circuit, swept))
    lines.extend(model_card(m) for m in circuit.models.values())
    lines.append(options_card(options))
    if swept:
        lines.append(f"{SWEEP_SOURCE} {SWEEP_NODE} {GROUND} DC 0")
        analysis = f"dc {SWEEP_SOURCE} 0 {batch - 1} 1"
    else:
        analysis = "op"
    vectors = [f"v({n})" for n in print_nodes or ()] + list(print_vectors or ())
    if vectors:
        lines.append(".control")
        lines.append("set numdgt=15")
        lines.append(analysis)
        lines.extend(f"print {v}" for v in vectors)
        lines.append("quit 0")
        lines.append(".endc")
    else:
        lines.append("." + analysis)
    lines.append(".end")
    return "\n".join(lines) + "\n"
