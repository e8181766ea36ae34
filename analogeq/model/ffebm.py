"""Feedforward-tied energy-based models (ff-EBMs): digital layers chained with analog
energy blocks.

An :class:`FFEBM` is an ordered chain of layers with the :class:`digital.layers.Layer`
interface. Digital layers (linear, conv, pooling, batch norm, DAC/ADC converters...) run in
NumPy; :class:`AnalogLayer` wraps a :class:`~analogeq.blocks.ResistiveBlock` whose forward pass
is the block's free phase (a DC solve) and whose backward pass is Equilibrium Propagation with
the backpropagated error as the nudge (docs/physics.md, "Equilibrium Propagation"): BP through
the digital blocks, EP through the analog ones, the input gradient of each block handed back to
the digital side.

Boundary converters and the buffer (docs/physics.md, "The hardware around the blocks"). When a
block's tile (:class:`~analogeq.hardware.tiles.TileConfig`) has a DAC, :class:`AnalogLayer`
converts its digital inputs with it (clip and quantise: the DAC code; plus the DAC's output
noise, one draw per sample held through the free and both nudged phases) and the block sees
those voltages in every phase; with an ADC, the outputs handed to the digital side are ADC
readings (input-referred noise, clip, quantise). Backward is the converters' straight-through
estimator: the gradient passes inside the range and is 0 where a value was clipped
(:mod:`digital.converters`).

An :class:`FFEBM` owns a :class:`~analogeq.hardware.buffer.Buffer`, the digital memory between the
halves. In a training forward pass (``train=True``) every analog layer stores in it the DAC
codes of its inputs, one per DAC channel of the tile mapping
(:meth:`~analogeq.blocks.ResistiveBlock.converter_channels`, ``crossing="dac"``), and its
ADC readings, one per ADC channel (``crossing="adc"``): the free-phase values EP needs (the
inputs the nudged phases re-apply, the outputs the error is computed from). The backward
pass loads the codes back from the buffer and re-applies exactly those (plus the held DAC
noise) in the nudged phases, stores the error it nudges with (digital data), forms the
gradient and frees the layer's entries. Values are kept as stored (no re-quantisation):
converter outputs already lie on their converter's grid, so they are exact at the stated
bits; values without a converter resolution are accounted at ``value_bits`` per value but
kept at full precision (so models without converters compute exactly what they computed
without the buffer). Evaluation (``train=False``) stores nothing: nothing waits for a
backward pass.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from digital.converters import ADC, DAC, ConverterParams
from digital.layers import Layer, Sequential

from ..backends import Backend, get_backend
from ..blocks import BlockState, ResistiveBlock
from ..errors import BufferOverflowError
from ..hardware.buffer import Buffer, ep_buffer_requirement_bits
from ..params import SolverOptions

__all__ = ["AnalogLayer", "FFEBM", "GRADIENT_MODES"]

#: "ep": centered EP on the chosen backend (what a chip does);
#: "exact": implicit differentiation at the free state (NumPy reference).
GRADIENT_MODES = ("ep", "exact")


class AnalogLayer(Layer):
    """A resistive energy block as a layer: x (B, n_in) -> outputs (B, n_out) volts.

    Attributes:
        block: the :class:`~analogeq.blocks.ResistiveBlock`.
        backend: solver used for every phase (name or instance).
        gradient: ``"ep"`` or ``"exact"``.
        beta: EP nudge strength (None: the block's default, scaled by max|delta|).
        params: ``{"g0": ..., "g1": ...}``, the block's conductance arrays themselves
            (siemens; editing them edits the circuit), and with trainable clamp biases
            ``{"v1": ...}``, each hidden layer's bias voltages (volts,
            :attr:`~analogeq.blocks.ResistiveBlock.diode_biases`).
        dac / adc: the tile's converters (:class:`~digital.converters.DAC` /
            :class:`~digital.converters.ADC`) or None; the DAC object converts without
            noise (the code), its output noise is drawn separately (``dac_noise_V``).
        buffer: the :class:`~analogeq.hardware.buffer.Buffer` the layer stores its boundary values
            in during training (set by :class:`FFEBM`; None: values stay in the layer).
        dac_bits / adc_bits / value_bits: resolutions the stored DAC codes, ADC readings
            and other values are accounted at (set by :class:`FFEBM`).
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
        # trainable clamp biases (volts), hidden layer l as "v<l>" (1-based)
        self.params.update({f"v{l + 1}": b for l, b in enumerate(block.diode_biases)})
        self.grads = {k: np.zeros_like(g) for k, g in self.params.items()}
        self._u: np.ndarray | None = None
        self._state: BlockState | None = None
        self.last_beta: float | None = None
        tile = block.tile
        dac_spec = tile.dac if tile is not None else None
        adc_spec = tile.adc if tile is not None else None
        self._dac_spec = dac_spec
        self.dac = (DAC(dataclasses.replace(dac_spec, noise_lsb=0.0, noise_V=0.0))
                    if dac_spec is not None else None)
        self.adc = ADC(adc_spec, rng=block.converter_rng) if adc_spec is not None else None
        self._dac_noise: np.ndarray | None = None
        self._dac_ch, self._adc_ch = block.converter_channels()
        # the first DAC channel of every signed input (where backward reads its code)
        first = {}
        for pos, i in enumerate(self._dac_ch.tolist()):
            first.setdefault(i, pos)
        self._dac_first = np.array([first[i] for i in range(block.n_in)], dtype=np.intp)
        self.buffer: Buffer | None = None
        self.value_bits = 32
        self.dac_bits = self._bits_of(dac_spec)
        self.adc_bits = self._bits_of(adc_spec)
        self._stored = False

    @property
    def last_inputs_V(self) -> np.ndarray | None:
        """(B, n_in) voltages the block saw in the last training forward pass (after the
        tile DAC and its noise), held for backward; None outside a step."""
        return self._u

    @property
    def last_dac_noise_V(self) -> np.ndarray | None:
        """(B, n_in) DAC output noise in volts drawn in the last forward pass (None if the
        tile DAC is noiseless or absent)."""
        return self._dac_noise

    @property
    def last_free_state(self) -> BlockState | None:
        """The free phase of the last training forward pass, reused by backward; None
        outside a step."""
        return self._state

    def _bits_of(self, spec: ConverterParams | None) -> int:
        return self.value_bits if spec is None or spec.bits is None else int(spec.bits)

    def set_backend(self, backend: Backend | str | None) -> None:
        """Solve every phase of the block with ``backend`` (a name or an instance)."""
        self.backend = get_backend(backend, self.block.options)

    @property
    def bounds_S(self) -> tuple[float, float]:
        """(g_min_S, g_max_S): the device range every update is clipped to."""
        return (self.block.params.g_min_S, self.block.params.g_max_S)

    @property
    def dac_noise_V(self) -> float:
        """rms output noise of the tile DAC in volts (0 without DAC or noise)."""
        spec = self._dac_spec
        if spec is None:
            return 0.0
        if spec.noise_lsb > 0:  # in LSB of the (possibly calibrated) range
            return spec.noise_lsb * self.dac.lsb
        return float(spec.noise_V)

    @property
    def dac_channels(self) -> int:
        """DAC conversions per sample (tile mapping)."""
        return int(self._dac_ch.size)

    @property
    def adc_channels(self) -> int:
        """ADC conversions per sample (tile mapping)."""
        return int(self._adc_ch.size)

    def step_buffer_bits(self, batch_size: int) -> int:
        """Bits this layer holds in the buffer at its peak in a training step of
        ``batch_size`` samples: DAC codes, ADC readings and the error of the backward."""
        b = int(batch_size)
        return b * (self.dac_channels * self.dac_bits + self.adc_channels * self.adc_bits
                    + self.block.n_out * self.value_bits)

    # -- buffer ------------------------------------------------------------------------

    def _key(self, what: str) -> str:
        return f"{self.block.name}.{what}"

    def _store(self, what: str, array: np.ndarray, bits: int, crossing: str | None) -> None:
        try:
            self.buffer.store(self._key(what), array, bits, crossing=crossing)
        except BufferOverflowError as exc:
            raise BufferOverflowError(
                f"analog layer {self.block.name!r} {self.block.layer_sizes}: {exc}"
            ) from None

    def _free_entries(self) -> None:
        if self.buffer is None:
            return
        for what in ("dac_codes", "adc_readings", "delta"):
            if self._key(what) in self.buffer:
                self.buffer.free(self._key(what))

    # -- computation -------------------------------------------------------------------

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Free phase: (B, n_in) input voltages (through the tile DAC if any) -> (B, n_out)
        output voltages o = V+ - V- in volts (ADC readings if the tile has an ADC). With
        ``train`` the DAC codes and ADC readings are stored in the model's buffer."""
        u = np.asarray(x, dtype=np.float64)
        code = u
        self._dac_noise = None
        if self.dac is not None:
            code = self.dac.forward(u)
            sigma = self.dac_noise_V
            if sigma > 0:  # one draw per sample, held by the DAC through all phases
                self._dac_noise = self.block.converter_rng.normal(0.0, sigma, size=code.shape)
                u = code + self._dac_noise
            else:
                u = code
        state = self.block.free(u, backend=self.backend)
        y = state.outputs
        if self.adc is not None:
            y = self.adc.forward(y, self.block.converter_rng)
        self._u, self._state = u, state
        self._free_entries()
        self._stored = bool(train) and self.buffer is not None
        if self._stored:
            self._store("dac_codes", code[:, self._dac_ch], self.dac_bits, "dac")
            self._store("adc_readings", y[:, self._adc_ch], self.adc_bits, "adc")
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """EP (or exact) gradients for the cotangent ``dy`` (B, n_out) of the last forward:
        fills ``grads`` (loss units per siemens, summed over the batch) and returns the
        (B, n_in) gradient with respect to the block's inputs (per volt)."""
        if self._u is None:
            raise RuntimeError("backward() called before forward()")
        delta = self.adc.backward(np.asarray(dy, dtype=np.float64)) if self.adc else dy
        u = self._u
        try:
            if self._stored:
                u = self.buffer.load(self._key("dac_codes"))[:, self._dac_first]
                if self._dac_noise is not None:
                    u = u + self._dac_noise
                self._store("delta", delta, self.value_bits, None)
            if self.gradient == "ep":
                g = self.block.ep_gradients(
                    u, delta, beta=self.beta, backend=self.backend, free_state=self._state
                )
            else:
                g = self.block.exact_gradients(u, delta)
        finally:
            if self._stored:
                self._free_entries()
                self._stored = False
        self.last_beta = g.beta
        for k, arr in enumerate(g.conductances):
            self.grads[f"g{k}"][...] = arr
        for l, arr in enumerate(g.diode_biases):
            self.grads[f"v{l + 1}"][...] = arr
        return self.dac.backward(g.inputs) if self.dac is not None else g.inputs

    # -- checkpoints ---------------------------------------------------------------------

    def _converters(self) -> dict[str, DAC | ADC]:
        return {k: c for k, c in (("dac", self.dac), ("adc", self.adc)) if c is not None}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Conductances, plus the range of each tile converter (``dac.v_min`` ...)."""
        out = super().state_dict()
        for name, conv in self._converters().items():
            out.update({f"{name}.{k}": v for k, v in conv.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore conductances, device state, RNG states and converter calibration."""
        state = dict(state)
        for name, conv in self._converters().items():
            keys = [k for k in state if k.startswith(name + ".")]
            conv.load_state_dict({k[len(name) + 1 :]: state.pop(k) for k in keys})
        super().load_state_dict(state)

    def __repr__(self) -> str:
        conv = "".join(f", {k}={c.config.bits}b" for k, c in self._converters().items())
        return (
            f"AnalogLayer({self.block.layer_sizes}, backend={self.backend.name!r}, "
            f"gradient={self.gradient!r}{conv})"
        )


class FFEBM(Sequential):
    """An ordered chain of digital layers and analog blocks, trained by BP + EP.

    ``forward`` runs free phases block by block; ``backward`` backpropagates through
    digital layers and runs EP at every analog block (see module docstring).

    Args:
        layers: the chain.
        buffer_bits: capacity of the boundary buffer in bits; None sizes it
            automatically (:meth:`auto_buffer_bits`) for ``batch_size``, or, without a
            batch size, for the largest training batch seen so far.
        batch_size: the training batch size the automatic capacity is sized for.
        value_bits: bits per value of what is stored without a converter resolution
            (inputs without a DAC, readings without an ADC, errors); default 32.

    Attributes:
        buffer: the :class:`~analogeq.hardware.buffer.Buffer` shared by the analog layers.
    """

    def __init__(
        self,
        *layers: Layer,
        buffer_bits: int | None = None,
        batch_size: int | None = None,
        value_bits: int = 32,
    ) -> None:
        super().__init__(*layers)
        if isinstance(value_bits, bool) or not isinstance(value_bits, int | np.integer) or (
            value_bits < 1
        ):
            raise ValueError(f"value_bits must be an int >= 1, got {value_bits!r}")
        self.value_bits = int(value_bits)
        for i, lay in enumerate(self.layers):
            if isinstance(lay, AnalogLayer):
                lay.value_bits = self.value_bits
                lay.dac_bits, lay.adc_bits = self._boundary_bits(i, lay)
        self._auto_buffer = buffer_bits is None and batch_size is None
        if buffer_bits is None:
            capacity = self.auto_buffer_bits(int(batch_size or 1))
        else:
            capacity = int(buffer_bits)
        self.buffer = Buffer(capacity)
        for lay in self.analog_layers:
            lay.buffer = self.buffer

    def _boundary_bits(self, index: int, layer: AnalogLayer) -> tuple[int, int]:
        """:meth:`converter_bits`, with ``value_bits`` where no converter sets them."""
        dac, adc = self.converter_bits(index)
        return (dac or self.value_bits, adc or self.value_bits)

    def converter_bits(self, index: int) -> tuple[int | None, int | None]:
        """(DAC bits, ADC bits) of the values crossing into and out of the analog layer
        at ``index``: the tile's converters, else the nearest DAC layer before it / ADC
        layer after it (not past another analog layer); None where none sets them (an
        ideal or missing converter)."""
        layer = self.layers[index]
        if not isinstance(layer, AnalogLayer):
            raise ValueError(f"layer {index} is {type(layer).__name__}, not an AnalogLayer")

        def bits_of(spec: ConverterParams | None) -> int | None:
            return None if spec is None or spec.bits is None else int(spec.bits)

        dac = bits_of(layer._dac_spec)
        adc = bits_of(layer.adc.config if layer.adc is not None else None)
        if dac is None:
            for lay in reversed(self.layers[:index]):
                if isinstance(lay, AnalogLayer):
                    break
                if isinstance(lay, DAC):
                    dac = bits_of(lay.config)
                    break
        if adc is None:
            for lay in self.layers[index + 1 :]:
                if isinstance(lay, AnalogLayer):
                    break
                if isinstance(lay, ADC):
                    adc = bits_of(lay.config)
                    break
        return dac, adc

    def step_buffer_bits(self, batch_size: int) -> int:
        """Peak bits a training step of ``batch_size`` samples stores: every analog
        layer's DAC codes and ADC readings (held from forward to backward) plus the
        largest error array of one layer's backward."""
        layers = self.analog_layers
        held = sum(lay.step_buffer_bits(batch_size)
                   - int(batch_size) * lay.block.n_out * lay.value_bits for lay in layers)
        delta = max((int(batch_size) * lay.block.n_out * lay.value_bits for lay in layers),
                    default=0)
        return held + delta

    def auto_buffer_bits(self, batch_size: int) -> int:
        """The automatic capacity: for every block, the EP measurements of a batch
        (:func:`~analogeq.hardware.buffer.ep_buffer_requirement_bits`, at the largest resolution
        stored), and never less than :meth:`step_buffer_bits`."""
        ep = sum(
            ep_buffer_requirement_bits(lay.block, batch_size,
                                       max(lay.value_bits, lay.dac_bits, lay.adc_bits))
            for lay in self.analog_layers
        )
        return max(ep, self.step_buffer_bits(batch_size), 1)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Every layer in order (free phases of the analog blocks); ``train`` selects
        training mode (batch statistics, buffer storage)."""
        if train and self._auto_buffer:
            need = self.auto_buffer_bits(len(x))
            if need > self.buffer.capacity_bits:
                self.buffer.capacity_bits = need
        return super().forward(x, train=train)

    @property
    def analog_layers(self) -> list[AnalogLayer]:
        """The analog blocks of the chain, in order."""
        return [lay for lay in self.layers if isinstance(lay, AnalogLayer)]

    def converters(self) -> list[tuple[str, DAC | ADC]]:
        """Every converter of the chain with where it sits: a DAC layer feeding block b0
        is ``-> b0``, an ADC layer reading it ``b0 ->``, a tile's own converters
        ``b0 tile``."""
        layers = list(self.layers)
        out: list[tuple[str, DAC | ADC]] = []
        for i, layer in enumerate(layers):
            if isinstance(layer, DAC):
                nxt = next((x for x in layers[i + 1:] if isinstance(x, AnalogLayer)), None)
                out.append((f"-> {nxt.block.name}" if nxt else "model output", layer))
            elif isinstance(layer, ADC):
                prev = next((x for x in reversed(layers[:i]) if isinstance(x, AnalogLayer)),
                            None)
                out.append((f"{prev.block.name} ->" if prev else "model input", layer))
        for lay in self.analog_layers:
            out += [(f"{lay.block.name} tile", c) for c in (lay.dac, lay.adc) if c is not None]
        return out

    def set_backend(
        self, backend: Backend | str | None, options: SolverOptions | None = None
    ) -> None:
        """Use ``backend`` for every analog block."""
        for lay in self.analog_layers:
            lay.backend = get_backend(backend, options or lay.block.options)

    def close(self) -> None:
        """Release the analog blocks' solvers that hold resources (worker processes of
        ``ngspice-parallel``, the client and local cluster of ``ngspice-dask``)."""
        seen: set[int] = set()
        for lay in self.analog_layers:
            be = lay.backend
            if id(be) not in seen and hasattr(be, "close"):
                seen.add(id(be))
                be.close()

    def set_gradient(self, mode: str) -> None:
        """Use ``mode`` (one of :data:`GRADIENT_MODES`) in every analog layer's backward."""
        if mode not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {GRADIENT_MODES}, got {mode!r}")
        for lay in self.analog_layers:
            lay.gradient = mode

    def parameter_groups(self) -> tuple[list[np.ndarray], list[np.ndarray], list]:
        """(params, grads, clamps) over every layer, in a fixed order; clamps are the
        device bounds (g_min_S, g_max_S) for conductances, (-inf, inf) for trainable clamp
        biases (volts) and None for digital weights."""
        params, grads, clamps = [], [], []
        for lay in self.layers:
            bound = lay.bounds_S if isinstance(lay, AnalogLayer) else None
            for name, p, g in lay.named_params():
                params.append(p)
                grads.append(g)
                # trainable clamp biases are voltages without device bounds
                clamps.append((-np.inf, np.inf) if isinstance(lay, AnalogLayer)
                              and name.startswith("v") else bound)
        return params, grads, clamps

    def netlists(self) -> dict[str, str]:
        """Standalone netlist of every analog block, keyed by block name."""
        return {lay.block.name: lay.block.netlist() for lay in self.analog_layers}
