"""Circuit IR: nodes and elements, with validation before any solver sees them.

A :class:`Circuit` is a plain list of elements plus the diode models they use. Node names
are strings; ground is ``"0"``. Element names are SPICE names (their first letter is the
SPICE element letter) and are emitted verbatim, so a netlist diff between two runs of the
same seed is empty.

Elements (all values in SI units):

* :class:`Conductance` -- one linear conductance in siemens between two nodes (emitted as
  an ``R`` element of ``1/g`` ohm).
* :class:`ConductanceMatrix` -- a crossbar: conductance ``g_S[i, j]`` between ``rows[i]``
  and ``cols[j]``, one ``R`` element per cell named ``{name}_{rows[i]}_{cols[j]}``.
* :class:`Diode` -- a junction diode from ``anode`` to ``cathode`` using a :class:`DiodeModel`.
* :class:`VoltageSource` -- an ideal DC voltage source; ``V(plus) - V(minus) = dc_V``.
* :class:`CurrentSource` -- an ideal DC current source; SPICE convention: ``dc_A`` flows
  from ``plus`` through the source to ``minus`` (it is *injected into* ``minus``).

The IR holds no global state; builders create circuits, emitters (:mod:`analogeq.spice`)
and solvers (:mod:`analogeq.backends`) consume them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .errors import FloatingNodeError, InvalidValueError, VoltageSourceLoopError

__all__ = [
    "GROUND",
    "SWEEP_NODE",
    "Conductance",
    "ConductanceMatrix",
    "Diode",
    "DiodeModel",
    "VoltageSource",
    "CurrentSource",
    "Element",
    "Circuit",
    "validate",
    "validate_source_values",
]

GROUND = "0"
#: Node name reserved by the batched DC sweep of the ngspice backend.
SWEEP_NODE = "sweep_idx"

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NODE_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class DiodeModel:
    """Shockley junction diode model (SPICE level-1 ``D`` model, DC part only).

    I(V) = is_A * (exp(V / (n * V_T)) - 1), with V_T = k T / q at the simulation temperature,
    plus ngspice's reverse-bias form below -3 n V_T and its ``gmin`` shunt (see
    :mod:`analogeq.backends.numpy_backend`).

    Attributes:
        name: model name used in ``.model`` lines.
        is_A: saturation current in amperes (> 0).
        n: emission coefficient (ideality factor, > 0, dimensionless).
    """

    name: str = "dmod"
    is_A: float = 1e-12
    n: float = 1.0

    def spice(self) -> str:
        return f".model {self.name} D(IS={_num(self.is_A)} N={_num(self.n)})"


@dataclass(frozen=True)
class Conductance:
    """A linear conductance ``g_S`` (siemens) between nodes ``a`` and ``b``."""

    name: str
    a: str
    b: str
    g_S: float

    letter = "R"

    @property
    def nodes(self) -> tuple[str, str]:
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class ConductanceMatrix:
    """A crossbar of conductances: ``g_S[i, j]`` siemens between ``rows[i]`` and ``cols[j]``.

    The array is held by reference: editing it in place changes what the next netlist or
    solve sees. Cell element names are ``f"{name}_{rows[i]}_{cols[j]}"``.
    """

    name: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    g_S: np.ndarray

    letter = "R"

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.rows) + tuple(self.cols)

    def cell_name(self, i: int, j: int) -> str:
        return f"{self.name}_{self.rows[i]}_{self.cols[j]}"


@dataclass(frozen=True)
class Diode:
    """A diode from ``anode`` to ``cathode`` using the model named ``model``."""

    name: str
    anode: str
    cathode: str
    model: str

    letter = "D"

    @property
    def nodes(self) -> tuple[str, str]:
        return (self.anode, self.cathode)


@dataclass(frozen=True)
class VoltageSource:
    """An ideal DC voltage source: ``V(plus) - V(minus) = dc_V`` volts.

    Its branch current (as SPICE reports it) flows from ``plus`` through the source to
    ``minus``: negative when the source delivers power.
    """

    name: str
    plus: str
    minus: str
    dc_V: float

    letter = "V"

    @property
    def nodes(self) -> tuple[str, str]:
        return (self.plus, self.minus)


@dataclass(frozen=True)
class CurrentSource:
    """An ideal DC current source of ``dc_A`` amperes flowing from ``plus`` to ``minus``
    through the source (SPICE convention): it injects ``dc_A`` into node ``minus``."""

    name: str
    plus: str
    minus: str
    dc_A: float

    letter = "I"

    @property
    def nodes(self) -> tuple[str, str]:
        return (self.plus, self.minus)


Element = Conductance | ConductanceMatrix | Diode | VoltageSource | CurrentSource


@dataclass
class Circuit:
    """A flat circuit: elements and the diode models they reference.

    Build it with :meth:`add`; derive phase variants (e.g. the nudged phase of EP) with
    :meth:`with_elements`, which never mutates the original.
    """

    title: str = "analogeq circuit"
    elements: list[Element] = field(default_factory=list)
    models: dict[str, DiodeModel] = field(default_factory=dict)

    def add(self, *elements: Element) -> Circuit:
        """Append elements (in netlist order); returns the circuit."""
        self.elements.extend(elements)
        return self

    def add_model(self, model: DiodeModel) -> Circuit:
        """Register a diode model (once per name); returns the circuit."""
        existing = self.models.get(model.name)
        if existing is not None and existing != model:
            raise InvalidValueError(
                f"diode model {model.name!r} defined twice with different values"
            )
        self.models[model.name] = model
        return self

    def with_elements(self, *elements: Element, title: str | None = None) -> Circuit:
        """A new circuit: this one plus ``elements`` (used for nudged phases)."""
        return Circuit(
            title=self.title if title is None else title,
            elements=[*self.elements, *elements],
            models=dict(self.models),
        )

    def of_type(self, kind: type) -> Iterator:
        """The elements that are instances of ``kind``, in order."""
        return (e for e in self.elements if isinstance(e, kind))

    @property
    def voltage_sources(self) -> list[VoltageSource]:
        """The independent voltage sources, in order."""
        return list(self.of_type(VoltageSource))

    @property
    def current_sources(self) -> list[CurrentSource]:
        """The independent current sources, in order."""
        return list(self.of_type(CurrentSource))

    @property
    def nodes(self) -> list[str]:
        """All non-ground node names, in first-appearance order (deterministic)."""
        seen: dict[str, None] = {}
        for e in self.elements:
            for n in e.nodes:
                if n != GROUND:
                    seen.setdefault(n, None)
        return list(seen)

    def element(self, name: str) -> Element:
        """The element called ``name`` (KeyError if there is none)."""
        for e in self.elements:
            if e.name == name:
                return e
        raise KeyError(f"no element named {name!r} in circuit {self.title!r}")

    def num_devices(self) -> int:
        """Number of SPICE element lines (a crossbar counts one per cell)."""
        return sum(e.g_S.size if isinstance(e, ConductanceMatrix) else 1 for e in self.elements)


def _num(x: float) -> str:
    """Full-precision SI number text for SPICE (shortest round-trip repr)."""
    return repr(float(x))


# --------------------------------------------------------------------------------------
# validation


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
    vsrc_parent: dict[str, str] = {}

    def find(x: str) -> str:
        while vsrc_parent.get(x, x) != x:
            vsrc_parent[x] = vsrc_parent.get(vsrc_parent[x], vsrc_parent[x])
            x = vsrc_parent[x]
        return x

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
            ra, rb = find(a), find(b)
            if ra == rb:
                raise VoltageSourceLoopError(
                    f"element {e.name!r} closes a loop made only of voltage sources "
                    f"(between nodes {a!r} and {b!r})"
                )
            vsrc_parent[ra] = rb
            graph.add_edge(a, b)
        elif isinstance(e, CurrentSource):
            _finite(e.dc_A, f"element {e.name!r} current (A)")
            graph.add_nodes_from((a, b))
        else:  # pragma: no cover - defensive
            raise InvalidValueError(f"unknown element type {type(e).__name__}")

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
