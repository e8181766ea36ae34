"""Per-topology preparation shared by the backends.

A training loop solves circuits of one topology with new values at every step (a block's
circuit is rebuilt with new conductances). What depends on the topology alone is prepared
once per topology: its full validation, the source kinds and value positions (for the
value-only checks of later circuits, :func:`~analogeq.circuit.validate_values`), the
pinned-diode paths and the Norton folding plan (:class:`~analogeq.circuit.FoldPlan`).
Circuits are keyed by :func:`topology_key`; each backend may add its own per-topology
state by subclassing :class:`Prepared` (the NumPy backend keeps its compilation there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from operator import attrgetter

import numpy as np

from ..circuit import (
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    FoldPlan,
    VoltageSource,
    pinned_diode_paths,
    source_kinds,
    validate,
    validate_source_values,
    validate_values,
    value_positions,
)

__all__ = ["CACHE_SIZE", "Prepared", "TopologyCache", "topology_key"]

#: Topologies whose preparation a :class:`TopologyCache` keeps (least recently used out).
CACHE_SIZE = 8


_KEY_FIELDS = {
    Conductance: attrgetter("name", "a", "b"),
    ConductanceMatrix: attrgetter("name", "rows", "cols"),
    Diode: attrgetter("name", "anode", "cathode", "model"),
    VoltageSource: attrgetter("name", "plus", "minus"),
    CurrentSource: attrgetter("name", "plus", "minus"),
    BidirectionalAmplifier: attrgetter("name", "input", "output", "gain", "back_gain"),
}


def _element_key(e: object) -> tuple:
    """Key of an element of a type not in :data:`_KEY_FIELDS` (e.g. a subclass)."""
    if isinstance(e, ConductanceMatrix):
        return (type(e), e.name, tuple(e.rows), tuple(e.cols))
    if isinstance(e, Diode):
        return (type(e), e.name, e.anode, e.cathode, e.model)
    if isinstance(e, BidirectionalAmplifier):
        return (type(e), e.name, e.input, e.output, e.gain, e.back_gain)
    return (type(e), getattr(e, "name", None), *getattr(e, "nodes", ()))


def topology_key(circuit: Circuit, fold: bool = True) -> _Key | None:
    """A hashable key of everything but the values of ``circuit``: per element its type,
    name and nodes (a diode's model, an amplifier's gains), the diode models, and whether
    it is folded. Two circuits with one key differ only in conductances and source DC
    values. None when the circuit holds something unhashable (it is then not cached)."""
    fields = _KEY_FIELDS
    parts = []
    for e in circuit.elements:
        get = fields.get(type(e))
        parts.append((type(e), get(e)) if get is not None else _element_key(e))
    try:
        return _Key((bool(fold), tuple(parts), tuple(circuit.models.items())))
    except TypeError:
        return None


class _Key:
    """A topology key with its hash computed once (the tuple of a wide block holds
    thousands of names: hashing it again at every dictionary access would cost more than
    comparing it)."""

    __slots__ = ("parts", "hash")

    def __init__(self, parts: tuple) -> None:
        self.parts = parts
        self.hash = hash(parts)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.parts == other.parts



class Prepared:
    """What depends on a circuit's topology alone: the source kinds (for checking values),
    where its values sit, the pinned-diode paths and the folding plan (None: solved
    unfolded, or nothing folds)."""

    def __init__(self, circuit: Circuit, fold: bool, *, sense: bool = False) -> None:
        self.sources = source_kinds(circuit)
        self.positions = value_positions(circuit)
        self.pinned_paths = pinned_diode_paths(circuit)
        self.nodes = tuple(circuit.nodes)
        self.last_use = 0
        plan = FoldPlan(circuit, sense=sense) if fold else None
        self.plan = plan if plan is not None and plan.folds else None


class TopologyCache:
    """The last :data:`CACHE_SIZE` topologies' :class:`Prepared` (least recently used
    out)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = int(size)
        self._items: dict[_Key, Prepared] = {}
        self._uses = 0

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> Iterator[Prepared]:
        """The kept preparations."""
        return iter(self._items.values())

    def prepare(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None,
        fold: bool,
        build: Callable[[Circuit], Prepared],
    ) -> tuple[Prepared, dict[str, np.ndarray], int]:
        """Validate ``circuit`` and its source values (errors in that order: values first,
        as :func:`validate_source_values` then :func:`validate`); return the preparation
        of its topology (``build(circuit)`` the first time, then from the cache, with only
        the values checked), the validated values and B."""
        key = topology_key(circuit, fold)
        prep = self._items.get(key) if key is not None else None
        self._uses += 1
        if prep is not None:
            values, batch = validate_source_values(circuit, source_values, sources=prep.sources)
            validate_values(circuit, positions=prep.positions)
            prep.last_use = self._uses
            return prep, values, batch
        values, batch = validate_source_values(circuit, source_values)
        validate(circuit)
        prep = build(circuit)
        prep.last_use = self._uses
        if key is not None:
            if len(self._items) >= self.size:
                del self._items[min(self._items, key=lambda k: self._items[k].last_use)]
            self._items[key] = prep
        return prep, values, batch
