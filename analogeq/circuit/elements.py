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
* :class:`Diode` -- a diode from ``anode`` to ``cathode`` using a :class:`DiodeModel` (a
  junction) or a :class:`~analogeq.params.PWLDiodeModel` (a behavioural near-ideal clamp).
* :class:`VoltageSource` -- an ideal DC voltage source; ``V(plus) - V(minus) = dc_V``.
* :class:`CurrentSource` -- an ideal DC current source; SPICE convention: ``dc_A`` flows
  from ``plus`` through the source to ``minus`` (it is *injected into* ``minus``).
* :class:`BidirectionalAmplifier` -- a gain stage between two sections of a network:
  forward ``V(output) = gain * V(input)``, backward a current ``back_gain * I_out`` drawn
  from ``input`` (``I_out`` the current it delivers into ``output``).

The IR holds no global state; builders create circuits, emitters (:mod:`analogeq.spice`)
and solvers (:mod:`analogeq.backends`) consume them; :mod:`.validation` checks them and
:mod:`.graph` holds the graph helpers every consumer shares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidValueError
from ..params.device import DiodeModel, PWLDiodeModel

__all__ = [
    "GROUND",
    "SWEEP_NODE",
    "SWEEP_SOURCE",
    "GROUND_ALIASES",
    "Conductance",
    "ConductanceMatrix",
    "Diode",
    "DiodeModel",
    "VoltageSource",
    "CurrentSource",
    "BidirectionalAmplifier",
    "Element",
    "Circuit",
]

GROUND = "0"
#: Node name reserved by the batched DC sweep of the ngspice backend.
SWEEP_NODE = "sweep_idx"
#: Element name reserved for the dummy source whose DC sweep indexes a batch's samples.
SWEEP_SOURCE = "Vsweep_idx"
#: Node names ngspice treats as ground (case-insensitively) besides ``"0"``: refused, so
#: that both backends see the same nodes.
GROUND_ALIASES = ("gnd",)

# Whole-string patterns (used with ``fullmatch``: ``$`` would accept a trailing newline).
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NODE_RE = re.compile(r"[A-Za-z0-9_]+")


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
        """The element's terminals."""
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
        """The element's terminals."""
        return tuple(self.rows) + tuple(self.cols)

    def cell_name(self, i: int, j: int) -> str:
        """SPICE name of cell ``(i, j)``: ``{name}_{rows[i]}_{cols[j]}``."""
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
        """The element's terminals."""
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
        """The element's terminals."""
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
        """The element's terminals."""
        return (self.plus, self.minus)


@dataclass(frozen=True)
class BidirectionalAmplifier:
    """A bidirectional amplifier from ``input`` (a node of section s-1) to ``output`` (the
    node that drives section s); docs/physics.md, section "Bidirectional amplifiers".

    Forward, a voltage-controlled voltage source to ground: ``V(output) = gain * V(input)``.
    Backward, a current-controlled current source drawing ``back_gain * I_out`` amperes
    from ``input`` into ground, where ``I_out`` is the current the forward source delivers
    into ``output``. The circuit's equilibrium then minimises ``sum_s w_s E_s`` with
    ``w_s = w_{s-1} * back_gain / gain``.

    Emitted to SPICE with standard elements (:mod:`analogeq.spice`): the E source
    ``name`` from the internal node :attr:`internal_node` to ground, a 0 V sense source
    :attr:`sense_name` from the internal node to ``output`` (its branch current is
    ``I_out``), and the F source :attr:`back_name`. Solvers report ``I_out`` as the
    current of the source :attr:`sense_name`.

    Attributes:
        name: SPICE name of the forward source (starts with ``E``).
        input: controlling node (section s-1).
        output: driven node (section s).
        gain: A > 0, volts per volt.
        back_gain: c > 0, amperes drawn from ``input`` per ampere delivered at ``output``.
    """

    name: str
    input: str
    output: str
    gain: float
    back_gain: float

    letter = "E"

    @property
    def nodes(self) -> tuple[str, str]:
        """The element's terminals."""
        return (self.input, self.output)

    @property
    def sense_name(self) -> str:
        """The 0 V sense source in series with the output: ``V<name without E>_sense``."""
        return f"V{self.name[1:]}_sense"

    @property
    def back_name(self) -> str:
        """The backward current source: ``F<name without E>``."""
        return f"F{self.name[1:]}"

    @property
    def internal_node(self) -> str:
        """Node between the forward source and the sense source (netlist only)."""
        return f"{self.name.lower()}_x"


Element = (
    Conductance | ConductanceMatrix | Diode | VoltageSource | CurrentSource
    | BidirectionalAmplifier
)


@dataclass
class Circuit:
    """A flat circuit: elements and the diode models they reference.

    Build it with :meth:`add`; derive phase variants (e.g. the nudged phase of EP) with
    :meth:`with_elements`, which never mutates the original.
    """

    title: str = "analogeq circuit"
    elements: list[Element] = field(default_factory=list)
    models: dict[str, DiodeModel | PWLDiodeModel] = field(default_factory=dict)

    def add(self, *elements: Element) -> Circuit:
        """Append elements (in netlist order); returns the circuit."""
        self.elements.extend(elements)
        return self

    def add_model(self, model: DiodeModel | PWLDiodeModel) -> Circuit:
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
    def amplifiers(self) -> list[BidirectionalAmplifier]:
        """The bidirectional amplifiers, in order."""
        return list(self.of_type(BidirectionalAmplifier))

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
