"""Gradient estimators of a resistive block: one interface over an injected backend.

Both compute the vector-Jacobian product of the block's outputs: for a cotangent
``delta`` (B, n_out) = dL/do, the gradients of ``sum_b <delta_b, o_b>`` with respect to
every conductance and every signed input (docs/physics.md, sections "Equilibrium
Propagation" and "Implicit differentiation").

* :class:`EquilibriumPropagation` -- centered EP, from what a chip can measure (the
  voltage across every device, the current of every input and trainable bias source) in
  the free phase and two nudged phases, on any backend.
* :class:`ImplicitDifferentiation` -- the exact reference: the adjoint of the free state
  (:meth:`~analogeq.backends.numpy_backend.NumpyBackend.adjoint`).

Both reduce device terms with :func:`device_products`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..backends import Backend, Solution
from ..backends.numpy_backend import NumpyBackend

if TYPE_CHECKING:
    from .resistive import BlockState, ResistiveBlock

__all__ = [
    "BlockGradients",
    "GradientEstimator",
    "EquilibriumPropagation",
    "ImplicitDifferentiation",
    "device_products",
]


@dataclass
class BlockGradients:
    """Gradients of sum_b <delta_b, o_b> (a vector-Jacobian product).

    Attributes:
        conductances: one array per entry of ``block.conductances`` (loss units per siemens),
            summed over the batch.
        inputs: (B, n_in) per-sample gradient with respect to the signed inputs (per volt).
        outputs: (B, n_out) free-phase outputs used (volts).
        beta: nudge strength used (amperes per unit of delta), or None for exact gradients.
        diode_biases: with trainable clamp biases, one (h,) array per hidden layer: the
            gradient with respect to each unit's bias source voltage (per volt), summed
            over the batch; empty otherwise.
    """

    conductances: list[np.ndarray]
    inputs: np.ndarray
    outputs: np.ndarray
    beta: float | None = None
    diode_biases: list[np.ndarray] = field(default_factory=list)


class GradientEstimator(Protocol):
    """What :meth:`ResistiveBlock.ep_gradients` and :meth:`~ResistiveBlock.exact_gradients`
    delegate to."""

    def gradients(
        self, block: ResistiveBlock, u: np.ndarray, delta: np.ndarray, *,
        free_state: BlockState | None = None,
    ) -> BlockGradients:
        """Gradients of ``sum_b <delta_b, o_b>`` for inputs ``u`` (B, n_in) volts."""
        ...


def device_products(
    block: ResistiveBlock, sol: Solution, k: int, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``sum_b (x_a - x_b)(y_a - y_b)`` over the batch, for every device of crossbar ``k``
    (``a``, ``b`` its two terminals; ``x``, ``y`` (B, N) per-node quantities of ``sol``).

    Returns an array shaped like ``block.conductances[k]``. Unwired crossbars share row
    and column nodes, so the sum is formed from per-node sums and two matrix products
    instead of B x rows x cols differences.
    """
    if block.wired:  # each device sits between its own row- and column-wire nodes
        ri, ci = block.cell_indices(sol, k)
        return ((x[:, ri] - x[:, ci]) * (y[:, ri] - y[:, ci])).sum(0)
    rows = sol.node_indices(block.crossbar_rows(k))
    cols = sol.node_indices(block.layers[k + 1])
    xr, xc, yr, yc = x[:, rows], x[:, cols], y[:, rows], y[:, cols]
    return (xr * yr).sum(0)[:, None] + (xc * yc).sum(0)[None, :] - xr.T @ yc - yr.T @ xc


def _cotangent(block: ResistiveBlock, u: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.asarray(delta, dtype=np.float64).reshape(u.shape[0], block.n_out)


@dataclass
class EquilibriumPropagation:
    """Centered EP (docs/physics.md, section "Equilibrium Propagation").

    Runs, for every sample, the free phase and the nudged phases at +beta and -beta
    (output current sources -beta*delta into out p, +beta*delta into out n) in one batched
    solve, samples interleaved as (+beta, free, -beta) so that each ngspice sweep point
    but one per sample warm-starts from a state of its own sample ((+beta, -beta) when the
    free state is given). A backend that takes a starting point (``accepts_initial_V``, the NumPy
    solver) solves the free phase first (unless given) and starts both nudged phases of
    every sample from its free state. Then

    * dL/dg = [1/2 dV(+beta)^2 - 1/2 dV(-beta)^2] / (2 beta), formed as
      ``(d_a - d_b)(s_a - s_b) / (4 beta)`` with d = V+ - V-, s = V+ + V- (the difference
      is taken before squaring: no cancellation);
    * dL/du_i = [J_i(+beta) - J_i(-beta)] / (2 beta) with J the current each input source
      pushes into the network, and dL/du = dL/du+ - dL/du- for the (+u, -u) pair;
    * with bidirectional amplifiers, each crossbar's estimate times prod A_l / c_l over
      the stages between it and the outputs, the inputs' times the product over all
      stages (:meth:`ResistiveBlock.gain_factors`, docs/physics.md).

    Attributes:
        backend: the solver of the three phases.
        beta: nudge strength in amperes per unit of delta; None:
            :meth:`ResistiveBlock.default_beta`.
    """

    backend: Backend
    beta: float | None = None

    def gradients(
        self, block: ResistiveBlock, u: np.ndarray, delta: np.ndarray, *,
        free_state: BlockState | None = None,
    ) -> BlockGradients:
        """Centered-EP gradients of ``sum_b <delta_b, o_b>`` (see the class docstring)."""
        u = block.check_inputs(u)
        delta = _cotangent(block, u, delta)
        beta = block.default_beta(delta) if self.beta is None else self.beta
        if not (np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be finite and > 0, got {beta!r}")
        batch = u.shape[0]
        circuit = block.circuit(nudge=True)
        initial = None
        outputs = None if free_state is None else free_state.outputs
        if getattr(self.backend, "accepts_initial_V", False):
            # a solver that takes a starting point: the nudged phases start from the free
            # state (a nudge moves the nodes by microvolts: Newton then needs about 2
            # iterations instead of 4 or more from 0 V; BENCHMARKS.md, "Newton iterations
            # during training"). Without a given free state, the free phase is solved first
            # on the same circuit (nudges at 0 A, the same conductance read).
            if free_state is None:
                free = self.backend.solve(circuit, block.input_source_values(u))
                outputs = block.outputs_of(free)
                start = free.voltages_V
            else:
                start = free_state.solution.voltages(circuit.nodes)
            initial = np.repeat(start, 2, axis=0)
        # per sample (+beta, free, -beta): in an ngspice DC sweep each point starts from
        # the previous one, junction voltages extrapolated from the two before it; this
        # order crosses from one sample to the next once per sample instead of twice
        # (measured on K and M at B = 64: 8% fewer Newton iterations than free first)
        signs = [1.0, -1.0] if outputs is not None else [1.0, 0.0, -1.0]
        n_ph = len(signs)
        at_plus, at_minus = signs.index(1.0), signs.index(-1.0)
        values = block.input_source_values(np.repeat(u, n_ph, axis=0))
        sign = np.tile(signs, batch)
        values.update(block.nudge_source_values(
            -beta * np.repeat(delta, n_ph, axis=0) * sign[:, None]))
        if initial is None:
            sol = self.backend.solve(circuit, values)
        else:
            sol = self.backend.solve(circuit, values, initial_V=initial)
        v = sol.voltages_V
        v_plus, v_minus = v[at_plus::n_ph], v[at_minus::n_ph]
        d, s = v_plus - v_minus, v_plus + v_minus
        grads = [device_products(block, sol, k, d, s) / (4.0 * beta)
                 for k in range(len(block.conductances))]
        # J = current pushed into the network = -(SPICE branch current)
        i_src = sol.currents(block.input_sources)
        dj = (-i_src[at_plus::n_ph] + i_src[at_minus::n_ph]) / (2.0 * beta)
        d_inputs = dj[:, 0::2] - dj[:, 1::2]
        # each unit's bias source, like an input: [J(+beta) - J(-beta)] / (2 beta)
        biases = []
        for l in range(len(block.diode_biases)):
            i_b = sol.currents(block.bias_sources(l + 1))
            biases.append(((-i_b[at_plus::n_ph] + i_b[at_minus::n_ph])
                           / (2.0 * beta)).sum(0))
        if getattr(block, "amplified", False):  # weighted energy: docs/physics.md
            per_crossbar, at_inputs = block.gain_factors()
            grads = [gk * f for gk, f in zip(grads, per_crossbar, strict=True)]
            d_inputs = d_inputs * at_inputs
            # hidden layer l's clamps sit in the section of crossbar l - 1
            biases = [b * per_crossbar[l] for l, b in enumerate(biases)]
        if outputs is None:
            outputs = block.outputs_of(sol)[signs.index(0.0)::n_ph]
        return BlockGradients(grads, d_inputs, outputs, beta, biases)


@dataclass
class ImplicitDifferentiation:
    """The exact vector-Jacobian product at the free state (docs/physics.md, section
    "Implicit differentiation"): H lambda = dL/dV over the free nodes, then
    dL/dg = -sum_b (lambda_a - lambda_b)(V_a - V_b) per device and dL/du from the input
    sources' sensitivities.

    Attributes:
        backend: the NumPy solver (it exposes the co-content Hessian).
    """

    backend: NumpyBackend

    def gradients(
        self, block: ResistiveBlock, u: np.ndarray, delta: np.ndarray, *,
        free_state: BlockState | None = None,
    ) -> BlockGradients:
        """Exact gradients of ``sum_b <delta_b, o_b>``; ``free_state`` is not used (the
        adjoint needs the NumPy backend's own operating point)."""
        del free_state
        u = block.check_inputs(u)
        delta = _cotangent(block, u, delta)
        cot = np.empty((u.shape[0], 2 * block.n_out))
        cot[:, 0::2], cot[:, 1::2] = delta, -delta  # o_k = V(out k p) - V(out k n)
        adj = self.backend.adjoint(block.circuit(), block.input_source_values(u),
                                   block.output_nodes, cot)
        sol, lam = adj.solution, adj.node_adjoints
        grads = [-device_products(block, sol, k, lam, sol.voltages_V)
                 for k in range(len(block.conductances))]
        d_pm = np.stack([adj.source_gradients[s] for s in block.input_sources], axis=1)
        biases = [np.array([adj.source_gradients[s].sum() for s in block.bias_sources(l + 1)])
                  for l in range(len(block.diode_biases))]
        return BlockGradients(grads, d_pm[:, 0::2] - d_pm[:, 1::2], block.outputs_of(sol), None,
                              biases)
