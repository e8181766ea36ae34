"""Signal and nudge size per layer of a block: why a deep block does or does not train.

A passive resistive layer only attenuates; bidirectional amplifiers restore the forward
signal but, with the default back gain c = 1/A, shrink the nudge reaching upstream layers
(docs/physics.md, section "Bidirectional amplifiers"). :func:`layer_signal` measures both
on a batch: per hidden layer (and the outputs) the sample-to-sample spread of the free
node voltages, and the mean change of those voltages under the EP nudge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import Backend, get_backend
from .resistive import ResistiveBlock

__all__ = ["LayerSignal", "layer_signal"]


@dataclass(frozen=True)
class LayerSignal:
    """Per layer of a block (hidden layers 1..L, then the output nodes).

    Attributes:
        layers: names ``h1`` .. ``hL``, ``out`` (the outputs are the differential
            ``o = V(out p) - V(out n)`` that the ADC reads: the two nodes of a pair share a
            large common-mode part).
        spread_V: sample-to-sample standard deviation of each node's free voltage, averaged
            over the layer's nodes (volts): the input-dependent part of the signal.
        offset_V: mean |free voltage| over samples and nodes (volts).
        nudge_V: mean |V(+beta) - V(free)| over samples and nodes (volts), or None when no
            cotangent was given.
        beta: the nudge used (amperes per unit of delta), or None.
    """

    layers: tuple[str, ...]
    spread_V: np.ndarray
    offset_V: np.ndarray
    nudge_V: np.ndarray | None
    beta: float | None

    def table(self) -> str:
        """A markdown table of the three columns."""
        rows = ["| layer | spread (V) | mean abs voltage (V) | nudge (V) |", "|---|---:|---:|---:|"]
        for k, name in enumerate(self.layers):
            nudge = "" if self.nudge_V is None else f"{self.nudge_V[k]:.2e}"
            rows.append(f"| {name} | {self.spread_V[k]:.2e} | {self.offset_V[k]:.2e} | {nudge} |")
        return "\n".join(rows)


def layer_signal(
    block: ResistiveBlock,
    u: np.ndarray,
    delta: np.ndarray | None = None,
    *,
    beta: float | None = None,
    backend: Backend | str | None = None,
) -> LayerSignal:
    """Spread and nudge per layer of ``block`` for inputs ``u`` (B, n_in) volts.

    Args:
        delta: optional (B, n_out) cotangent; then the nudged phase at ``+beta`` (default
            :meth:`ResistiveBlock.default_beta`) is solved too.
        backend: the solver (default ngspice, as everywhere).
    """
    u = block.check_inputs(u)
    names = tuple([f"h{k + 1}" for k in range(len(block.hidden_nodes))] + ["out"])

    def per_layer(sol) -> list[np.ndarray]:
        return [*(sol.voltages(nodes) for nodes in block.hidden_nodes), block.outputs_of(sol)]

    free = block.free(u, backend=backend).solution
    volts = per_layer(free)
    spread = np.array([v.std(axis=0).mean() for v in volts])
    offset = np.array([np.abs(v).mean() for v in volts])
    nudge = None
    if delta is not None:
        delta = np.asarray(delta, dtype=np.float64).reshape(u.shape[0], block.n_out)
        b = block.default_beta(delta) if beta is None else float(beta)
        values = {**block.input_source_values(u), **block.nudge_source_values(-b * delta)}
        nudged = get_backend(backend, block.options).solve(block.circuit(nudge=True), values)
        nudge = np.array([np.abs(x - v).mean()
                          for x, v in zip(per_layer(nudged), volts, strict=True)])
        beta = b
    return LayerSignal(names, spread, offset, nudge, beta if delta is not None else None)
