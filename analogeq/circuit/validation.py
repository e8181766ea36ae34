"""Validation of circuits and per-sample source values, before any emitter or solver sees
them: every error names the offending element or node."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import networkx as nx
import numpy as np

from ..errors import FloatingNodeError, InvalidValueError, VoltageSourceLoopError
from ..params.device import PWLDiodeModel
from .elements import (
    _NAME_RE,
    _NODE_RE,
    GROUND,
    GROUND_ALIASES,
    SWEEP_NODE,
    SWEEP_SOURCE,
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
)
from .graph import UnionFind

__all__ = [
    "validate",
    "validate_values",
    "value_positions",
    "validate_source_values",
    "check_pinned_diodes",
    "pinned_diode_paths",
    "source_kinds",
    "DIODE_MAX_EXPONENT",
    "MAX_ABS_CURRENT_A",
    "MAX_ABS_VOLTAGE_V",
    "MAX_CONDUCTANCE_RATIO",
    "MAX_CONDUCTANCE_S",
    "MIN_CONDUCTANCE_S",
]

# -- the range of values the IR accepts (docs/physics.md, "ngspice") -------------------
#
# Both solvers work in double precision (eps = 2.2e-16). At a node joining a conductance
# g_big and a conductance g_small, the KCL sum carries the g_small current only to
# eps * g_big / g_small of its size, and the matrix of the whole circuit is as ill
# conditioned as its largest over its smallest conductance. Measured on a wired tile
# (devices 1e-7..1e-5 S): wire conductances up to 1e3 S (ratio 1e10) solve on both
# backends to 1e-8 V; 1e4 S (ratio 1e11) already stalls Newton, and 1e30 S returned
# all-zero outputs without any message. Hence the bounds below.

#: Largest ratio between the largest and the smallest linear conductance of one circuit.
MAX_CONDUCTANCE_RATIO = 1e10
#: Smallest conductance in siemens an element may have (1e18 ohm).
MIN_CONDUCTANCE_S = 1e-18
#: Largest conductance in siemens an element may have (1e-12 ohm).
MAX_CONDUCTANCE_S = 1e12
#: Largest |voltage| in volts of a source (DC value or per-sample value).
MAX_ABS_VOLTAGE_V = 1e6
#: Largest |current| in amperes of a current source.
MAX_ABS_CURRENT_A = 1e3
#: Largest forward diode exponent V / (N V_T) a solution may reach: past it the NumPy
#: backend's exponential is clamped (so it no longer is ngspice's diode) and near 709
#: exp() overflows double precision (ngspice stops converging).
DIODE_MAX_EXPONENT = 600.0
#: Range of the diode model parameters accepted (saturation current in A, emission n).
_DIODE_IS_RANGE_A = (1e-30, 1e-3)
_DIODE_N_RANGE = (0.1, 100.0)


def _check_name(name: str, letter: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidValueError(
            f"{what} name {name!r} is not a legal SPICE name (letters, digits, '_'; "
            "starting with a letter)"
        )
    if name[0].upper() != letter:
        raise InvalidValueError(
            f"{what} {name!r} must start with the SPICE letter {letter!r}"
        )
    if name.lower() == SWEEP_SOURCE.lower():
        raise InvalidValueError(
            f"{what} name {name!r} is reserved for the sweep source of batched solves"
        )


def _check_node(node: str, element: str) -> None:
    if not isinstance(node, str) or not _NODE_RE.fullmatch(node):
        raise InvalidValueError(
            f"element {element!r}: node name {node!r} is not legal (letters, digits, '_')"
        )
    low = node.lower()
    if low == SWEEP_NODE:
        raise InvalidValueError(f"element {element!r}: node name {node!r} is reserved")
    if low in GROUND_ALIASES:
        raise InvalidValueError(
            f"element {element!r}: node name {node!r} is ngspice's alias of ground: "
            f"call ground {GROUND!r}"
        )


def _finite(value: float, what: str) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidValueError(f"{what} is {value!r}: values must be finite real numbers")


def _check_amplifier(e: BidirectionalAmplifier, names: set[str], vsrc_sets: UnionFind) -> None:
    """Values, terminals and the names of the sense and backward sources of an amplifier."""
    for value, what in ((e.gain, "gain"), (e.back_gain, "back_gain")):
        if isinstance(value, bool | np.bool_):
            raise InvalidValueError(f"element {e.name!r} {what} is {value!r}, not a number")
        _finite(value, f"element {e.name!r} {what}")
        if float(value) <= 0:
            raise InvalidValueError(
                f"element {e.name!r}: {what} {value!r} must be > 0 (a reversed backward "
                "source has no energy and no operating point)"
            )
    if GROUND in e.nodes:
        raise InvalidValueError(f"element {e.name!r}: neither terminal may be ground")
    for extra in (e.sense_name, e.back_name):
        if extra.lower() in names:
            raise InvalidValueError(
                f"element {e.name!r}: its internal source name {extra!r} is already used"
            )
        names.add(extra.lower())
    if not vsrc_sets.union(e.output, GROUND):
        raise VoltageSourceLoopError(
            f"element {e.name!r} drives node {e.output!r}, which voltage sources (or another "
            "amplifier) already fix"
        )


def _bounded(value: float, limit: float, what: str, unit: str) -> None:
    _finite(value, what)
    if abs(float(value)) > limit:
        raise InvalidValueError(
            f"{what} is {value!r} {unit}: |value| must be <= {limit:g} {unit} (the range "
            "the circuit IR accepts)"
        )


class _Range:
    """Smallest and largest linear conductance seen, with the elements holding them."""

    def __init__(self) -> None:
        self.lo, self.lo_name = math.inf, ""
        self.hi, self.hi_name = 0.0, ""

    def add(self, lo: float, lo_name: str, hi: float, hi_name: str) -> None:
        if lo < self.lo:
            self.lo, self.lo_name = lo, lo_name
        if hi > self.hi:
            self.hi, self.hi_name = hi, hi_name

    def check(self) -> None:
        if self.hi and self.hi > MAX_CONDUCTANCE_RATIO * self.lo:
            raise InvalidValueError(
                f"conductances span {self.hi / self.lo:.3g} (element {self.hi_name!r}: "
                f"{self.hi:g} S, element {self.lo_name!r}: {self.lo:g} S), more than "
                f"{MAX_CONDUCTANCE_RATIO:g}: ngspice's double-precision matrix (and the NumPy "
                "solver's) cannot resolve the small currents next to the large ones, so the "
                "answer would be wrong or not converge; e.g. raise a wire resistance"
            )


def _conductance_bounds(g: float, name: str) -> None:
    if not MIN_CONDUCTANCE_S <= g <= MAX_CONDUCTANCE_S:
        raise InvalidValueError(
            f"element {name!r}: conductance {g!r} S is outside [{MIN_CONDUCTANCE_S:g}, "
            f"{MAX_CONDUCTANCE_S:g}] S ({1 / MAX_CONDUCTANCE_S:g} to "
            f"{1 / MIN_CONDUCTANCE_S:g} ohm), the range the circuit IR accepts"
        )


def _check_matrix_shape(e: ConductanceMatrix, g: np.ndarray) -> None:
    if g.shape != (len(e.rows), len(e.cols)):
        raise InvalidValueError(
            f"conductance matrix {e.name!r}: g_S has shape {g.shape}, expected "
            f"({len(e.rows)}, {len(e.cols)}) from its rows and cols"
        )


def _check_matrix_values(e: ConductanceMatrix, g: np.ndarray, g_range: _Range) -> None:
    """Every cell finite, > 0 and within the IR's bounds; the extremes go to ``g_range``."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        bad = ~np.isfinite(g) | (g <= 0) | ~np.isfinite(1.0 / g)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise InvalidValueError(
            f"element {e.cell_name(i, j)!r}: conductance {g[i, j]!r} S is not finite "
            f"and > 0 ({int(bad.sum())} bad cell(s) in {e.name!r})"
        )
    lo = np.unravel_index(np.argmin(g), g.shape)
    hi = np.unravel_index(np.argmax(g), g.shape)
    _conductance_bounds(float(g[lo]), e.cell_name(*map(int, lo)))
    _conductance_bounds(float(g[hi]), e.cell_name(*map(int, hi)))
    g_range.add(float(g[lo]), e.cell_name(*map(int, lo)),
                float(g[hi]), e.cell_name(*map(int, hi)))


def _check_conductance_value(e: Conductance, g_range: _Range) -> None:
    _finite(e.g_S, f"element {e.name!r} conductance (S)")
    if e.g_S <= 0 or not np.isfinite(1.0 / max(e.g_S, 1e-320)):
        raise InvalidValueError(
            f"element {e.name!r}: conductance {e.g_S!r} S must be > 0 "
            "(zero is an open circuit: leave the element out; negative is unphysical)"
        )
    _conductance_bounds(float(e.g_S), e.name)
    g_range.add(float(e.g_S), e.name, float(e.g_S), e.name)


def _check_source_value(e: VoltageSource | CurrentSource) -> None:
    if isinstance(e, VoltageSource):
        _bounded(e.dc_V, MAX_ABS_VOLTAGE_V, f"element {e.name!r} voltage", "V")
    else:
        _bounded(e.dc_A, MAX_ABS_CURRENT_A, f"element {e.name!r} current", "A")


def value_positions(circuit: Circuit) -> tuple[list[int], list[int], list[int], list[int]]:
    """Positions in ``circuit.elements`` of its crossbars, conductances, voltage sources
    and current sources: the elements holding values (:func:`validate_values`)."""
    out: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
    for k, e in enumerate(circuit.elements):
        if isinstance(e, ConductanceMatrix):
            out[0].append(k)
        elif isinstance(e, Conductance):
            out[1].append(k)
        elif isinstance(e, VoltageSource):
            out[2].append(k)
        elif isinstance(e, CurrentSource):
            out[3].append(k)
    return out


def validate_values(
    circuit: Circuit,
    *,
    positions: tuple[list[int], list[int], list[int], list[int]] | None = None,
) -> None:
    """The value checks of :func:`validate` alone, for a circuit whose topology (names,
    nodes, models, amplifiers, connectivity) already passed :func:`validate`: every
    conductance finite, > 0, within the IR's bounds and spanning at most
    :data:`MAX_CONDUCTANCE_RATIO`; every source's DC value finite and bounded. The errors
    are those :func:`validate` raises for the same values.

    Args:
        positions: :func:`value_positions` of ``circuit`` if already known.
    """
    elements = circuit.elements
    crossbars, conductances, vsources, isources = (
        value_positions(circuit) if positions is None else positions)
    g_range = _Range()
    for k in crossbars:
        e = elements[k]
        g = np.asarray(e.g_S)
        _check_matrix_shape(e, g)
        _check_matrix_values(e, g, g_range)
    scalars = [elements[k] for k in conductances]
    volts = [elements[k].dc_V for k in vsources]
    amps = [elements[k].dc_A for k in isources]
    # all sources and plain conductances at once; the per-element checks (and their
    # messages) only when something is off
    ok = True
    try:
        v, a = np.asarray(volts, dtype=np.float64), np.asarray(amps, dtype=np.float64)
        g = np.asarray([e.g_S for e in scalars], dtype=np.float64)
    except (TypeError, ValueError):
        ok = False
    else:
        ok = (v.ndim == 1 and a.ndim == 1 and g.ndim == 1
              and bool((np.abs(v) <= MAX_ABS_VOLTAGE_V).all())
              and bool((np.abs(a) <= MAX_ABS_CURRENT_A).all())
              and bool(((g >= MIN_CONDUCTANCE_S) & (g <= MAX_CONDUCTANCE_S)).all()))
    if ok:
        if scalars:
            lo, hi = int(np.argmin(g)), int(np.argmax(g))
            g_range.add(float(g[lo]), scalars[lo].name, float(g[hi]), scalars[hi].name)
        if not g_range.hi or g_range.hi <= MAX_CONDUCTANCE_RATIO * g_range.lo:
            return
    g_range = _Range()  # element by element, in order: the error validate() gives
    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            _check_matrix_values(e, np.asarray(e.g_S), g_range)
        elif isinstance(e, Conductance):
            _check_conductance_value(e, g_range)
        elif isinstance(e, VoltageSource | CurrentSource):
            _check_source_value(e)
    g_range.check()


def _crossbar_cells(e: ConductanceMatrix) -> set[str]:
    return {f"{e.name}_{r}_{c}".lower() for r in e.rows for c in e.cols}


def _check_crossbar_names(
    crossbars: list[ConductanceMatrix], names: set[str]
) -> None:
    """Cell names ``{name}_{row}_{col}`` (compared without case, as ngspice does) must not
    repeat within a crossbar, nor equal another element's or another crossbar's cell."""
    for e in crossbars:
        rows = [r.lower() for r in e.rows]
        cols = {c.lower() for c in e.cols}
        row_set = set(rows)
        # r1_c1 == r2_c2 with r1 != r2 needs r2 to start with r1 + "_"
        if any(
            r[:k] in row_set for r in rows for k in range(1, len(r)) if r[k] == "_"
        ):
            if len(_crossbar_cells(e)) != len(rows) * len(cols):
                raise InvalidValueError(
                    f"conductance matrix {e.name!r}: two cells get the same element name "
                    f"(rows {list(e.rows)}, cols {list(e.cols)}); rename its nodes"
                )
        prefix = e.name.lower() + "_"
        for n in names:
            if not n.startswith(prefix):
                continue
            rest = n[len(prefix):]
            if any(rest.startswith(r + "_") and rest[len(r) + 1:] in cols for r in rows):
                raise InvalidValueError(
                    f"duplicate element name {n!r}: a cell of conductance matrix {e.name!r} "
                    "has the same name (ngspice names are case-insensitive)"
                )
    for k, e in enumerate(crossbars):
        for f in crossbars[k + 1:]:
            a, b = e.name.lower() + "_", f.name.lower() + "_"
            if a.startswith(b) or b.startswith(a):
                common = _crossbar_cells(e) & _crossbar_cells(f)
                if common:
                    raise InvalidValueError(
                        f"duplicate element name {sorted(common)[0]!r}: cells of conductance "
                        f"matrices {e.name!r} and {f.name!r} collide"
                    )


def _check_node_case(circuit: Circuit) -> None:
    """Refuse node names equal but for case: ngspice would merge them into one node."""
    spelling: dict[str, str] = {}
    for e in circuit.elements:
        for n in e.nodes:
            first = spelling.setdefault(n.lower(), n)
            if first != n:
                raise InvalidValueError(
                    f"element {e.name!r}: node {n!r} differs from node {first!r} only in case; "
                    "ngspice's names are case-insensitive (it would merge them): rename one"
                )


def validate(circuit: Circuit) -> None:
    """Check a circuit before any solver sees it; raise a :class:`CircuitError` naming the
    offending element or node.

    Checks: legal and unique names, compared without case as ngspice does (element names,
    crossbar cell names, node names: ``a`` and ``A`` are one node to ngspice, so a circuit
    using both is refused), none reserved (``Vsweep_idx``, ``sweep_idx``, ``gnd``); every
    value finite and in the range the IR accepts (conductances in
    [:data:`MIN_CONDUCTANCE_S`, :data:`MAX_CONDUCTANCE_S`] spanning at most
    :data:`MAX_CONDUCTANCE_RATIO`, |source values| up to :data:`MAX_ABS_VOLTAGE_V` /
    :data:`MAX_ABS_CURRENT_A`, diode ``is_A`` and ``n`` physical; referenced models
    defined); no element shorted to itself; no loop made only of voltage sources; every
    node has a DC path to ground (current sources do not count as a path).
    """
    if not circuit.elements:
        raise InvalidValueError(f"circuit {circuit.title!r} has no elements")
    names: set[str] = set()
    crossbars: list[ConductanceMatrix] = []
    g_range = _Range()
    graph = nx.Graph()
    graph.add_node(GROUND)
    vsrc_sets = UnionFind()

    for model in circuit.models.values():
        if not isinstance(model.name, str) or not _NAME_RE.fullmatch(model.name):
            raise InvalidValueError(f"diode model name {model.name!r} is not legal")
        if isinstance(model, PWLDiodeModel):
            for k in ("g_on_S", "g_off_S", "v_on_V", "smooth_V"):
                _finite(getattr(model, k), f"PWL diode model {model.name!r} {k}")
            if not (0 < model.g_on_S <= MAX_CONDUCTANCE_S and 0 <= model.g_off_S < model.g_on_S
                    and model.smooth_V > 0 and abs(model.v_on_V) <= MAX_ABS_VOLTAGE_V):
                raise InvalidValueError(
                    f"PWL diode model {model.name!r}: need 0 <= g_off_S < g_on_S <= "
                    f"{MAX_CONDUCTANCE_S:g} S, smooth_V > 0 and |v_on_V| <= "
                    f"{MAX_ABS_VOLTAGE_V:g} V, got {model!r}")
            continue
        _finite(model.is_A, f"diode model {model.name!r} IS")
        _finite(model.n, f"diode model {model.name!r} N")
        (is_lo, is_hi), (n_lo, n_hi) = _DIODE_IS_RANGE_A, _DIODE_N_RANGE
        if not (is_lo <= model.is_A <= is_hi and n_lo <= model.n <= n_hi):
            raise InvalidValueError(
                f"diode model {model.name!r}: IS={model.is_A!r} A and N={model.n!r} must lie "
                f"in [{is_lo:g}, {is_hi:g}] A and [{n_lo:g}, {n_hi:g}]"
            )

    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            _check_name(e.name, "R", "conductance matrix")
            g = np.asarray(e.g_S)
            _check_matrix_shape(e, g)
            if not e.rows or not e.cols:
                raise InvalidValueError(
                    f"conductance matrix {e.name!r} has no cells ({len(e.rows)} rows, "
                    f"{len(e.cols)} cols)"
                )
            for n in (*e.rows, *e.cols):
                _check_node(n, e.name)
            for what, nodes in (("row", e.rows), ("column", e.cols)):
                if len({n.lower() for n in nodes}) != len(nodes):
                    seen: set[str] = set()
                    dup = next(n for n in nodes if n.lower() in seen or seen.add(n.lower()))
                    raise InvalidValueError(
                        f"conductance matrix {e.name!r}: {what} node {dup!r} appears twice "
                        "(node names are compared without case)"
                    )
            if len(set(e.rows) & set(e.cols)):
                raise InvalidValueError(
                    f"conductance matrix {e.name!r}: node(s) {sorted(set(e.rows) & set(e.cols))} "
                    "appear as both row and column (a shorted cell)"
                )
            _check_matrix_values(e, g, g_range)
            if e.name.lower() in names:
                raise InvalidValueError(f"duplicate element name {e.name!r}")
            names.add(e.name.lower())
            crossbars.append(e)
            # a spanning tree of the complete bipartite graph
            graph.add_edges_from((e.rows[0], c) for c in e.cols)
            graph.add_edges_from((r, e.cols[0]) for r in e.rows)
            continue

        letter = type(e).letter
        _check_name(e.name, letter, type(e).__name__)
        if e.name.lower() in names:
            raise InvalidValueError(f"duplicate element name {e.name!r}")
        names.add(e.name.lower())
        for n in e.nodes:
            _check_node(n, e.name)
        a, b = e.nodes
        if a == b:
            kind = VoltageSourceLoopError if isinstance(e, VoltageSource) else InvalidValueError
            raise kind(f"element {e.name!r} connects node {a!r} to itself")
        if isinstance(e, Conductance):
            _check_conductance_value(e, g_range)
            graph.add_edge(a, b)
        elif isinstance(e, Diode):
            if e.model not in circuit.models:
                raise InvalidValueError(
                    f"element {e.name!r} uses undefined diode model {e.model!r}"
                )
            graph.add_edge(a, b)
        elif isinstance(e, VoltageSource):
            _check_source_value(e)
            if not vsrc_sets.union(a, b):
                raise VoltageSourceLoopError(
                    f"element {e.name!r} closes a loop made only of voltage sources "
                    f"(between nodes {a!r} and {b!r})"
                )
            graph.add_edge(a, b)
        elif isinstance(e, CurrentSource):
            _check_source_value(e)
            graph.add_nodes_from((a, b))
        elif isinstance(e, BidirectionalAmplifier):
            _check_amplifier(e, names, vsrc_sets)
            graph.add_edge(b, GROUND)  # the output is driven by a source to ground
            graph.add_node(a)
        else:  # pragma: no cover - defensive
            raise InvalidValueError(f"unknown element type {type(e).__name__}")

    for e in circuit.of_type(BidirectionalAmplifier):
        if e.internal_node in graph:
            raise InvalidValueError(
                f"element {e.name!r}: node name {e.internal_node!r} is reserved for the "
                "amplifier's internal node"
            )
    _check_crossbar_names(crossbars, names)
    _check_node_case(circuit)
    g_range.check()

    grounded = nx.node_connected_component(graph, GROUND)
    floating = [n for n in circuit.nodes if n not in grounded]
    if floating:
        touching = [
            e.name
            for e in circuit.elements
            if not isinstance(e, ConductanceMatrix) and set(e.nodes) & set(floating)
        ][:5]
        raise FloatingNodeError(
            f"node(s) {floating[:10]} have no DC path to ground "
            f"({len(floating)} floating; elements touching them: {touching})"
        )


def source_kinds(circuit: Circuit) -> dict[str, bool]:
    """Source name -> True for a voltage source, False for a current source."""
    return {e.name: isinstance(e, VoltageSource) for e in circuit.elements
            if isinstance(e, VoltageSource | CurrentSource)}


def _source_values_fast(
    sources: Mapping[str, bool], source_values: Mapping[str, Iterable[float]],
    check_range: bool,
) -> tuple[dict[str, np.ndarray], int] | None:
    """The result of :func:`validate_source_values` when every value is fine (checked
    on all sources at once), else None (the caller then finds the first problem)."""
    out: dict[str, np.ndarray] = {}
    batch = None
    volts = []
    for name, values in source_values.items():
        kind = sources.get(name)
        if kind is None:
            return None
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if arr.ndim != 1 or arr.size == 0 or (batch is not None and arr.size != batch):
            return None
        batch = arr.size
        out[name] = arr
        volts.append(kind)
    stacked = np.array(list(out.values()))  # (sources, B): all 1-D of one size
    if not np.isfinite(stacked).all():
        return None
    if check_range:
        limit = np.where(np.array(volts), MAX_ABS_VOLTAGE_V, MAX_ABS_CURRENT_A)
        if (np.abs(stacked) > limit[:, None]).any():
            return None
    return out, int(batch)


def validate_source_values(
    circuit: Circuit,
    source_values: Mapping[str, Iterable[float]] | None,
    *,
    check_range: bool = True,
    sources: Mapping[str, bool] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Check per-sample source values against ``circuit``.

    Args:
        source_values: maps a voltage- or current-source name to an array of shape (B,)
            (volts or amperes) overriding its DC value sample by sample.
        check_range: also refuse |values| above :data:`MAX_ABS_VOLTAGE_V` /
            :data:`MAX_ABS_CURRENT_A` (off for values the package derives itself, such
            as the Norton currents of a folded circuit).
        sources: :func:`source_kinds` of ``circuit`` if already known (saves a pass over
            its elements).

    Returns:
        (values as float64 arrays, batch size B). With no overrides B is 1.
    """
    if not source_values:
        return {}, 1
    if sources is None:
        sources = source_kinds(circuit)
    fast = _source_values_fast(sources, source_values, check_range)
    if fast is not None:
        return fast
    # something is wrong: find and report the first problem, in the order of the values
    by_name = {
        e.name: e for e in circuit.elements if isinstance(e, VoltageSource | CurrentSource)
    }
    out: dict[str, np.ndarray] = {}
    batch = None
    for name, values in source_values.items():
        if name not in by_name:
            raise InvalidValueError(
                f"source_values names {name!r}, which is not a voltage or current source of "
                f"circuit {circuit.title!r}"
            )
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                f"source_values[{name!r}] is not an array of numbers: {exc}"
            ) from None
        if arr.ndim != 1:
            raise InvalidValueError(
                f"source_values[{name!r}] has shape {arr.shape}: it must be one value per "
                "sample, shape (B,)"
            )
        if arr.size == 0:
            raise InvalidValueError(f"source_values[{name!r}] is empty")
        if batch is None:
            batch = arr.size
        elif arr.size != batch:
            raise InvalidValueError(
                f"source_values[{name!r}] has {arr.size} samples, others have {batch}"
            )
        out[name] = arr
    # values checked all at once (one (S, B) array instead of S small ones)
    names = list(out)
    table = np.stack([out[n] for n in names])
    bad = ~np.isfinite(table)
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        name, arr = names[r], table[r]
        raise InvalidValueError(
            f"source_values[{name!r}] sample {int(np.argmax(bad[r]))} is {arr[bad[r]][0]!r}: "
            "values must be finite"
        )
    if check_range:
        volts = np.array([isinstance(by_name[n], VoltageSource) for n in names])
        limit = np.where(volts, MAX_ABS_VOLTAGE_V, MAX_ABS_CURRENT_A)
        big = np.abs(table) > limit[:, None]
        if big.any():
            r = int(np.flatnonzero(big.any(axis=1))[0])
            k = int(np.argmax(big[r]))
            unit = "V" if volts[r] else "A"
            raise InvalidValueError(
                f"source_values[{names[r]!r}] sample {k} is {table[r, k]!r} {unit}: |value| "
                f"must be <= {limit[r]:g} {unit} (the range the circuit IR accepts)"
            )
    return out, int(batch)


def pinned_diode_paths(circuit: Circuit) -> list[tuple[int, tuple, tuple]]:
    """The diodes whose both ends are held by voltage sources, as (element index, anode
    path, cathode path); a path lists (source element index, sign) from ground to the node
    along the voltage-source tree: the node's potential is the signed sum of those source
    values (:func:`check_pinned_diodes`)."""
    diodes = [(k, e) for k, e in enumerate(circuit.elements) if isinstance(e, Diode)]
    if not diodes:
        return []
    vsources = [(k, e) for k, e in enumerate(circuit.elements) if isinstance(e, VoltageSource)]
    if not vsources:
        return []
    paths: dict[str, tuple] = {GROUND: ()}
    adjacent: dict[str, list[tuple[str, int, float]]] = {}
    for k, v in vsources:
        adjacent.setdefault(v.minus, []).append((v.plus, k, 1.0))
        adjacent.setdefault(v.plus, []).append((v.minus, k, -1.0))
    stack = [GROUND]
    while stack:  # V-source tree from ground (no loops: validate refused them)
        node = stack.pop()
        for other, k, sign in adjacent.get(node, ()):
            if other not in paths:
                paths[other] = (*paths[node], (k, sign))
                stack.append(other)
    return [(k, paths[d.anode], paths[d.cathode]) for k, d in diodes
            if d.anode in paths and d.cathode in paths]


def check_pinned_diodes(
    circuit: Circuit, values: Mapping[str, np.ndarray], batch: int, thermal_voltage_V: float,
    *, paths: list[tuple[int, tuple, tuple]] | None = None,
) -> None:
    """Refuse diodes whose both ends are held by voltage sources at a forward voltage past
    :data:`DIODE_MAX_EXPONENT` ``N V_T`` in some sample (before any solver runs).

    Such a junction carries ``IS exp(V / (N V_T))``: 3.8e248 A at 100 V, past what double
    precision holds (ngspice does not converge; a clamped exponential would be wrong).

    Args:
        values: validated per-sample source values (see :func:`validate_source_values`).
        batch: B, the number of samples.
        thermal_voltage_V: kT/q in volts at the solver's temperature.
        paths: :func:`pinned_diode_paths` of ``circuit`` if already known.

    Raises:
        InvalidValueError: naming the diode, the sample and its voltage.
    """
    if paths is None:
        paths = pinned_diode_paths(circuit)
    elements = circuit.elements

    def potential(path: tuple) -> np.ndarray:
        v = np.zeros(batch)
        for k, sign in path:
            src = elements[k]
            v = v + sign * np.broadcast_to(
                np.asarray(values.get(src.name, src.dc_V), float), (batch,))
        return v

    for k, anode, cathode in paths:
        d = elements[k]
        model = circuit.models[d.model]
        if isinstance(model, PWLDiodeModel):  # linear at large V: nothing overflows
            continue
        nvt = model.n * thermal_voltage_V
        vd = potential(anode) - potential(cathode)
        j = int(np.argmax(vd))
        if vd[j] > DIODE_MAX_EXPONENT * nvt:
            raise InvalidValueError(
                f"diode {d.name!r} is held at {vd[j]:.6g} V forward (sample {j}) by voltage "
                f"sources alone: its current IS exp(V / (N V_T)) = "
                f"{model.is_A:g} A x exp({vd[j] / nvt:.0f}) is beyond double precision; "
                f"the limit is {DIODE_MAX_EXPONENT:g} N V_T = {DIODE_MAX_EXPONENT * nvt:.4g} V "
                "(add a series resistance or lower the source)"
            )
