"""Feedforward-tied energy-based models (ff-EBMs): digital layers chained with analog
energy blocks.

An :class:`FFEBM` is an ordered chain of layers with the :class:`digital.layers.Layer`
interface. Digital layers (linear, conv, pooling, batch norm, DAC/ADC converters...) run in
NumPy; :class:`AnalogLayer` wraps a :class:`~analogeq.blocks.ResistiveBlock` whose forward
pass is the block's free phase (a DC solve) and whose backward pass is Equilibrium
Propagation with the backpropagated error as the nudge (PRIMER section 3): BP through the
digital blocks, EP through the analog ones, the input gradient of each block handed back to
the digital side.
"""

from __future__ import annotations

import numpy as np

from digital.layers import Layer, Sequential

from .backends import Backend, get_backend
from .blocks import BlockState, ResistiveBlock
from .options import SolverOptions

__all__ = ["AnalogLayer", "FFEBM", "GRADIENT_MODES"]

#: "ep": centered EP on the chosen backend (what a chip does);
#: "exact": implicit differentiation at the free state (NumPy reference).
GRADIENT_MODES = ("ep", "exact")


class AnalogLayer(Layer):
    """A resistive energy block as a layer: x (B, n_in) volts -> outputs (B, n_out) volts.

    Attributes:
        block: the :class:`~analogeq.blocks.ResistiveBlock`.
        backend: solver used for every phase (name or instance).
        gradient: ``"ep"`` or ``"exact"``.
        beta: EP nudge strength (None: the block's default, scaled by max|delta|).
        params: ``{"g0": ..., "g1": ...}``, the block's conductance arrays themselves
            (siemens; editing them edits the circuit).
    """

    def __init__(
        self,
        block: ResistiveBlock,
        *,
        backend: Backend | str | None = "ngspice",
        gradient: str = "ep",
        beta: float | None = None,
    ) -> None:
        super().__init__()
        if gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {GRADIENT_MODES}, got {gradient!r}")
        self.block = block
        self.gradient = gradient
        self.beta = beta
        self.set_backend(backend)
        self.params = {f"g{k}": g for k, g in enumerate(block.conductances)}
        self.grads = {k: np.zeros_like(g) for k, g in self.params.items()}
        self._u: np.ndarray | None = None
        self._state: BlockState | None = None
        self.last_beta: float | None = None

    def set_backend(self, backend: Backend | str | None) -> None:
        self.backend = get_backend(backend, self.block.options)

    @property
    def bounds_S(self) -> tuple[float, float]:
        """(g_min_S, g_max_S): the device range every update is clipped to."""
        return (self.block.params.g_min_S, self.block.params.g_max_S)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        u = np.asarray(x, dtype=np.float64)
        state = self.block.free(u, backend=self.backend)
        self._u, self._state = u, state
        return state.outputs

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._u is None:
            raise RuntimeError("backward() called before forward()")
        if self.gradient == "ep":
            g = self.block.ep_gradients(
                self._u, dy, beta=self.beta, backend=self.backend, free_state=self._state
            )
        else:
            g = self.block.exact_gradients(self._u, dy)
        self.last_beta = g.beta
        for k, arr in enumerate(g.conductances):
            self.grads[f"g{k}"][...] = arr
        return g.inputs

    def __repr__(self) -> str:
        return (
            f"AnalogLayer({self.block.layer_sizes}, backend={self.backend.name!r}, "
            f"gradient={self.gradient!r})"
        )


class FFEBM(Sequential):
    """An ordered chain of digital layers and analog blocks, trained by BP + EP.

    ``forward`` runs free phases block by block; ``backward`` backpropagates through
    digital layers and runs EP at every analog block (see module docstring).
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__(*layers)

    @property
    def analog_layers(self) -> list[AnalogLayer]:
        return [lay for lay in self.layers if isinstance(lay, AnalogLayer)]

    def set_backend(self, backend: Backend | str | None, options: SolverOptions | None = None):
        """Use ``backend`` for every analog block."""
        for lay in self.analog_layers:
            lay.backend = get_backend(backend, options or lay.block.options)

    def set_gradient(self, mode: str) -> None:
        if mode not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {GRADIENT_MODES}, got {mode!r}")
        for lay in self.analog_layers:
            lay.gradient = mode

    def parameter_groups(self) -> tuple[list[np.ndarray], list[np.ndarray], list]:
        """(params, grads, clamps) over every layer, in a fixed order; clamps are the
        device bounds (g_min_S, g_max_S) for conductances and None for digital weights."""
        params, grads, clamps = [], [], []
        for lay in self.layers:
            bound = lay.bounds_S if isinstance(lay, AnalogLayer) else None
            for _, p, g in lay.named_params():
                params.append(p)
                grads.append(g)
                clamps.append(bound)
        return params, grads, clamps

    def netlists(self) -> dict[str, str]:
        """Standalone netlist of every analog block, keyed by block name."""
        return {lay.block.name: lay.block.netlist() for lay in self.analog_layers}
