"""Validation of circuits and per-sample source values, before any emitter or solver sees
them: every error names the offending element or node."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import networkx as nx
import numpy as np

from ..errors import FloatingNodeError, InvalidValueError, VoltageSourceLoopError
from .elements import (
    _NAME_RE,
    _NODE_RE,
    GROUND,
    SWEEP_NODE,
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
)
from .graph import UnionFind

__all__ = ["validate", "validate_source_values"]


def _check_name(name: str, letter: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidValueError(
            f"{what} name {name!r} is not a legal SPICE name (letters, digits, '_'; "
            "starting with a letter)"
        )
    if name[0].upper() != letter:
        raise InvalidValueError(
            f"{what} {name!r} must start with the SPICE letter {letter!r}"
        )


def _check_node(node: str, element: str) -> None:
    if not isinstance(node, str) or not _NODE_RE.match(node):
        raise InvalidValueError(
            f"element {element!r}: node name {node!r} is not legal (letters, digits, '_')"
        )
    if node.lower() == SWEEP_NODE:
        raise InvalidValueError(f"element {element!r}: node name {node!r} is reserved")


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


def validate(circuit: Circuit) -> None:
    """Check a circuit before any solver sees it; raise a :class:`CircuitError` naming the
    offending element or node.

    Checks: legal and unique names; every value finite and physical (conductance > 0,
    diode ``is_A`` > 0 and ``n`` > 0, referenced models defined); no element shorted to
    itself; no loop made only of voltage sources; every node has a DC path to ground
    (current sources do not count as a path).
    """
    if not circuit.elements:
        raise InvalidValueError(f"circuit {circuit.title!r} has no elements")
    names: set[str] = set()
    graph = nx.Graph()
    graph.add_node(GROUND)
    vsrc_sets = UnionFind()

    for model in circuit.models.values():
        if not _NAME_RE.match(model.name):
            raise InvalidValueError(f"diode model name {model.name!r} is not legal")
        _finite(model.is_A, f"diode model {model.name!r} IS")
        _finite(model.n, f"diode model {model.name!r} N")
        if model.is_A <= 0 or model.n <= 0:
            raise InvalidValueError(
                f"diode model {model.name!r}: IS={model.is_A} A and N={model.n} must be > 0"
            )

    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            _check_name(e.name, "R", "conductance matrix")
            g = np.asarray(e.g_S)
            if g.shape != (len(e.rows), len(e.cols)):
                raise InvalidValueError(
                    f"conductance matrix {e.name!r}: g_S has shape {g.shape}, expected "
                    f"({len(e.rows)}, {len(e.cols)}) from its rows and cols"
                )
            for n in (*e.rows, *e.cols):
                _check_node(n, e.name)
            if len(set(e.rows) & set(e.cols)):
                raise InvalidValueError(
                    f"conductance matrix {e.name!r}: node(s) {sorted(set(e.rows) & set(e.cols))} "
                    "appear as both row and column (a shorted cell)"
                )
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                bad = ~np.isfinite(g) | (g <= 0) | ~np.isfinite(1.0 / g)
            if bad.any():
                i, j = map(int, np.argwhere(bad)[0])
                raise InvalidValueError(
                    f"element {e.cell_name(i, j)!r}: conductance {g[i, j]!r} S is not finite "
                    f"and > 0 ({int(bad.sum())} bad cell(s) in {e.name!r})"
                )
            cell_names = {e.cell_name(0, 0)}  # cells are unique by construction
            if names & cell_names or e.name in names:
                raise InvalidValueError(f"duplicate element name {e.name!r}")
            names.add(e.name)
            if e.rows and e.cols:  # a spanning tree of the complete bipartite graph
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
            _finite(e.g_S, f"element {e.name!r} conductance (S)")
            if e.g_S <= 0 or not np.isfinite(1.0 / max(e.g_S, 1e-320)):
                raise InvalidValueError(
                    f"element {e.name!r}: conductance {e.g_S!r} S must be > 0 "
                    "(zero is an open circuit: leave the element out; negative is unphysical)"
                )
            graph.add_edge(a, b)
        elif isinstance(e, Diode):
            if e.model not in circuit.models:
                raise InvalidValueError(
                    f"element {e.name!r} uses undefined diode model {e.model!r}"
                )
            graph.add_edge(a, b)
        elif isinstance(e, VoltageSource):
            _finite(e.dc_V, f"element {e.name!r} voltage (V)")
            if not vsrc_sets.union(a, b):
                raise VoltageSourceLoopError(
                    f"element {e.name!r} closes a loop made only of voltage sources "
                    f"(between nodes {a!r} and {b!r})"
                )
            graph.add_edge(a, b)
        elif isinstance(e, CurrentSource):
            _finite(e.dc_A, f"element {e.name!r} current (A)")
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


def validate_source_values(
    circuit: Circuit, source_values: Mapping[str, Iterable[float]] | None
) -> tuple[dict[str, np.ndarray], int]:
    """Check per-sample source values against ``circuit``.

    Args:
        source_values: maps a voltage- or current-source name to an array of shape (B,)
            (volts or amperes) overriding its DC value sample by sample.

    Returns:
        (values as float64 arrays, batch size B). With no overrides B is 1.
    """
    if not source_values:
        return {}, 1
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
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            raise InvalidValueError(f"source_values[{name!r}] is empty")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InvalidValueError(
                f"source_values[{name!r}] sample {int(np.argmax(bad))} is {arr[bad][0]!r}: "
                "values must be finite"
            )
        if batch is None:
            batch = arr.size
        elif arr.size != batch:
            raise InvalidValueError(
                f"source_values[{name!r}] has {arr.size} samples, others have {batch}"
            )
        out[name] = arr
    return out, int(batch)
