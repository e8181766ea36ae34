"""What every solver backend returns, and the interface it implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from ..circuit import GROUND, Circuit
from ..errors import SimulationError
from ..params import SolverOptions

__all__ = ["Solution", "Backend", "concat_solutions"]


@dataclass(frozen=True)
class Solution:
    """DC operating points of a batch of B samples of one circuit.

    Attributes:
        node_names: N node names (ground excluded), as named in the circuit.
        voltages_V: (B, N) node voltages in volts.
        source_names: S voltage-source names.
        currents_A: (B, S) voltage-source branch currents in amperes, SPICE convention:
            positive from ``plus`` through the source to ``minus`` (negative when the
            source delivers power to the network).
        messages: solver diagnostics worth keeping (e.g. gmin stepping notes).
    """

    node_names: tuple[str, ...]
    voltages_V: np.ndarray
    source_names: tuple[str, ...]
    currents_A: np.ndarray
    messages: tuple[str, ...] = field(default=())

    @property
    def batch_size(self) -> int:
        """B, the number of samples (sweep points) solved."""
        return int(self.voltages_V.shape[0])

    @cached_property
    def _node_index(self) -> dict[str, int]:
        return {n: k for k, n in enumerate(self.node_names)}

    @cached_property
    def _source_index(self) -> dict[str, int]:
        return {n: k for k, n in enumerate(self.source_names)}

    def node_indices(self, nodes: Sequence[str]) -> np.ndarray:
        """Column of each node in ``voltages_V`` ((len(nodes),) integer array); KeyError
        names a node that is not in the solution."""
        try:
            return np.fromiter(
                (self._node_index[n] for n in nodes), dtype=np.intp, count=len(nodes)
            )
        except KeyError as exc:
            raise KeyError(f"node {exc.args[0]!r} is not in this solution") from None

    def v(self, node: str) -> np.ndarray:
        """(B,) voltage of ``node`` in volts (zeros for ground ``"0"``)."""
        if node == GROUND:
            return np.zeros(self.batch_size)
        return self.voltages_V[:, self.node_indices([node])[0]]

    def voltages(self, nodes: Sequence[str]) -> np.ndarray:
        """(B, len(nodes)) voltages of ``nodes`` in volts."""
        return self.voltages_V[:, self.node_indices(nodes)]

    def i(self, source: str) -> np.ndarray:
        """(B,) SPICE branch current of voltage source ``source`` in amperes."""
        try:
            return self.currents_A[:, self._source_index[source]]
        except KeyError:
            raise KeyError(f"voltage source {source!r} is not in this solution") from None

    def currents(self, sources: Sequence[str]) -> np.ndarray:
        """(B, len(sources)) SPICE branch currents in amperes."""
        idx = [self._source_index[s] for s in sources]
        return self.currents_A[:, idx]


class Backend(Protocol):
    """A DC solver for circuits of the IR, batched over source values."""

    name: str
    options: SolverOptions

    def solve(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None = None,
    ) -> Solution:
        """Solve ``circuit`` once per sample; ``source_values`` maps source names to (B,)."""
        ...


def concat_solutions(parts: Sequence[Solution]) -> Solution:
    """One :class:`Solution` from consecutive parts of a batch (samples in order); their
    node and source names must agree (:class:`~analogeq.errors.SimulationError` otherwise).
    """
    first = parts[0]
    for p in parts[1:]:
        if p.node_names != first.node_names or p.source_names != first.source_names:
            raise SimulationError("partial solutions have different node/source names")
    messages: list[str] = []
    for p in parts:
        messages.extend(m for m in p.messages if m not in messages)
    return Solution(
        first.node_names,
        np.concatenate([p.voltages_V for p in parts], axis=0),
        first.source_names,
        np.concatenate([p.currents_A for p in parts], axis=0),
        tuple(messages),
    )
