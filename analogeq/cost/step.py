"""Energy and time of a training step on hybrid hardware (docs/physics.md, "The hardware around
the blocks").

What is counted, per training step of an :class:`~analogeq.model.FFEBM` on a batch of B
samples (forward pass, backward pass, one update):

* **phases** -- every analog block runs, per sample, its free phase (forward pass) and the
  two nudged phases of centered EP (+beta, -beta; the backward pass reuses the free state,
  as :meth:`~analogeq.blocks.ResistiveBlock.ep_gradients` does): 3 phases per block per
  sample.
* **DAC conversions** -- one per driven source per phase: every input source (each of the
  ``(+u, -u)`` pair is a separate source, ``2 n_in``) in each of the 3 phases, and every
  nudge current source (``2 n_out``) in each nudged phase:
  ``6 n_in + 4 n_out`` per block per sample. When the block's tile has converters
  (:class:`~analogeq.hardware.tiles.TileConfig` ``dac`` / ``adc``), the inputs are counted from the
  tile mapping instead (:meth:`~analogeq.blocks.ResistiveBlock.tile_converter_map`): one
  conversion per DAC channel (one differential DAC per signed input on every tile holding
  its rows) per sample, held through the three phases:
  ``dac_channels + 4 n_out``.
* **ADC conversions** -- the free phase reads the ``n_out`` differential outputs (with tile
  converters: one per ADC channel of the mapping, ``n_out`` unless an output's column pair
  is cut by a tile boundary); each nudged phase reads what the EP gradient uses: the
  voltage across every trainable device (``block.num_devices()``) and the current of
  every input source (``2 n_in``): ``n_out + 2 (num_devices + 2 n_in)`` per block per
  sample.
* **analog energy** -- static power of the operating point (:func:`static_power_W`, the
  mean over a representative batch solved by the backend) times the settling time of the
  phase (:func:`settling_time_s`, an ngspice transient with a capacitance on every free
  node), per phase. The power drawn while the converters read the settled state is not
  counted (a lower bound).
* **amplifiers** -- a block with bidirectional amplifiers (one per hidden unit) adds,
  per phase, their power to the static power: what their sources deliver or absorb at
  the operating point, ``|P_E| + |P_F|`` per amplifier
  (:func:`~analogeq.cost.power.amplifier_power_W`: the forward source's
  ``V(output) I_out``, the backward source's ``back_gain I_out V(input)``; an output
  stage does not recover absorbed power, so both count, and this is a lower bound of
  what its supply provides), plus a bias power per amplifier
  (:attr:`CostParams.amplifier_static_power_W`) times their number. The power of the
  independent sources is then the rest of :func:`static_power_W` (by Tellegen's theorem
  the independent sources and the amplifiers together deliver what the conductances and
  diodes dissipate).
* **converter energy** -- conversions times the energy per conversion for the converter's
  bits: Walden figure of merit, ``E = FoM * 2**bits``. Bits come from the block's tile
  converters, else the :class:`~digital.converters.DAC` preceding and the
  :class:`~digital.converters.ADC` following each analog layer (nudge DACs use the input
  DAC's bits, measurement ADCs the output ADC's bits), or :attr:`CostParams.default_bits`
  for an ideal or missing converter.
* **digital energy** -- multiply-accumulates of the digital ``Linear`` and ``Conv2d``
  layers, forward plus backward (~2x forward: input and weight gradients), so 3x the
  forward MACs, times an energy per MAC. Element-wise layers and memory traffic are not
  counted.
* **time** -- serial: the sum of the settling times of every phase, conversions times the
  conversion time divided by the number of converter channels, and MACs times the time
  per MAC.

Numbers are orders of magnitude from the sources cited in :class:`CostParams`; every one is
a field that can be overridden.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from digital.converters import Converter
from digital.layers import Conv2d, Layer, Linear

from ..backends import Backend, get_backend
from ..backends.ngspice import NgspiceBackend
from ..blocks import ResistiveBlock
from ..hardware.buffer import ep_buffer_requirement_bits
from ..model import FFEBM, AnalogLayer
from ..params import CostParams
from .power import amplifier_power_W, static_power_W
from .settling import phase_energy_J, settling_time_s

__all__ = ["BlockCost", "StepCost", "block_cost", "step_cost"]


# --------------------------------------------------------------------------------------
# static power


# --------------------------------------------------------------------------------------
# settling


# --------------------------------------------------------------------------------------
# a training step


@dataclass(frozen=True)
class BlockCost:
    """Cost of one analog block over a training step (counts are per step, i.e. for the
    whole batch).

    Attributes:
        name / layer_sizes: the block.
        phases: analog phases (3 per sample: free, +beta, -beta).
        dac_conversions / adc_conversions: conversions per step (see module docstring).
        dac_bits / adc_bits: converter resolutions used.
        power_W: mean static power of the free phase over the representative batch: the
            power the independent (voltage and current) sources deliver, plus, for a block
            with amplifiers, ``amplifier_delivered_W + amplifier_static_W``.
        settle_free_s: settling time of a free phase (step between two inputs).
        settle_nudge_s: settling time of a nudged phase (step of the nudge currents).
        analog_energy_J: ``B * power_W * (settle_free_s + 2 settle_nudge_s)``.
        dac_energy_J / adc_energy_J: conversions times energy per conversion.
        analog_time_s: ``B * (settle_free_s + 2 settle_nudge_s)``.
        converter_time_s: conversions times conversion time over the channels.
        buffer_bits: bits the EP measurements of the batch occupy
            (:func:`~analogeq.hardware.buffer.ep_buffer_requirement_bits`).
        dac_channels / adc_channels: per-sample input DAC and output ADC conversions of
            the tile mapping when the block's tile has converters, else 0.
        tiles: tiles the block's crossbars occupy (0 without a tile).
        amplifiers: bidirectional amplifiers of the block (0 without).
        amplifier_static_W: their bias power, ``amplifiers *
            CostParams.amplifier_static_power_W``.
        amplifier_delivered_W: mean over the representative batch of the power their
            sources handle at the free operating point, ``sum |P_E| + |P_F|``
            (:func:`~analogeq.cost.power.amplifier_power_W`).
    """

    name: str
    layer_sizes: tuple[int, ...]
    phases: int
    dac_conversions: int
    adc_conversions: int
    dac_bits: int
    adc_bits: int
    power_W: float
    settle_free_s: float
    settle_nudge_s: float
    analog_energy_J: float
    dac_energy_J: float
    adc_energy_J: float
    analog_time_s: float
    converter_time_s: float
    buffer_bits: int
    dac_channels: int = 0
    adc_channels: int = 0
    tiles: int = 0
    amplifiers: int = 0
    amplifier_static_W: float = 0.0
    amplifier_delivered_W: float = 0.0


@dataclass(frozen=True)
class StepCost:
    """Cost of one training step of an FFEBM on a batch (see the module docstring).

    Attributes:
        batch_size: B.
        blocks: one :class:`BlockCost` per analog block, in model order.
        digital_macs: digital multiply-accumulates (forward + backward = 3x forward).
        digital_energy_J / digital_time_s: MACs times energy / time per MAC.
        params: the :class:`CostParams` used.
    """

    batch_size: int
    blocks: tuple[BlockCost, ...]
    digital_macs: int
    digital_energy_J: float
    digital_time_s: float
    params: CostParams = field(default_factory=CostParams)

    @property
    def phases(self) -> int:
        """Analog phases of the step, all blocks."""
        return sum(b.phases for b in self.blocks)

    @property
    def dac_conversions(self) -> int:
        """DAC conversions of the step, all blocks."""
        return sum(b.dac_conversions for b in self.blocks)

    @property
    def adc_conversions(self) -> int:
        """ADC conversions of the step, all blocks."""
        return sum(b.adc_conversions for b in self.blocks)

    @property
    def analog_energy_J(self) -> float:
        """Static energy of every analog phase, in joules."""
        return sum(b.analog_energy_J for b in self.blocks)

    @property
    def converter_energy_J(self) -> float:
        """DAC plus ADC energy, in joules."""
        return sum(b.dac_energy_J + b.adc_energy_J for b in self.blocks)

    @property
    def total_energy_J(self) -> float:
        """Analog, converter and digital energy, in joules."""
        return self.analog_energy_J + self.converter_energy_J + self.digital_energy_J

    @property
    def analog_time_s(self) -> float:
        """Settling time of every analog phase, in seconds."""
        return sum(b.analog_time_s for b in self.blocks)

    @property
    def converter_time_s(self) -> float:
        """Conversion time over the converter channels, in seconds."""
        return sum(b.converter_time_s for b in self.blocks)

    @property
    def time_s(self) -> float:
        """Serial total: analog settling, conversions and digital MACs, in seconds."""
        return self.analog_time_s + self.converter_time_s + self.digital_time_s

    @property
    def amplifiers(self) -> int:
        """Bidirectional amplifiers, all blocks."""
        return sum(b.amplifiers for b in self.blocks)

    @property
    def buffer_bits(self) -> int:
        """Bits the EP measurements of the batch occupy, all blocks."""
        return sum(b.buffer_bits for b in self.blocks)


def _macs_per_sample(layer: Layer, x_in: np.ndarray, y_out: np.ndarray) -> int:
    if isinstance(layer, Linear):
        return layer.in_features * layer.out_features
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        return int(np.prod(y_out.shape[1:])) * layer.in_ch * kh * kw
    return 0


def block_cost(
    block: ResistiveBlock,
    u: np.ndarray,
    batch_size: int,
    params: CostParams | None = None,
    *,
    dac_bits: int | None = None,
    adc_bits: int | None = None,
    backend: Backend | str | None = None,
    transient_backend: NgspiceBackend | None = None,
) -> BlockCost:
    """Cost of one :class:`~analogeq.blocks.ResistiveBlock` over a training step.

    Args:
        u: (n, n_in) representative inputs in volts: the free phase of these gives the
            static power (mean over samples); the step from ``u[0]`` to ``u[1]`` (from
            0 V if n = 1) gives the free-phase settling time, and a step of every nudge
            current from 0 to +- beta at the block's default beta
            (:meth:`~analogeq.blocks.ResistiveBlock.default_beta`: its largest nudge
            current; alternating signs) from the free state of ``u[0]`` gives the
            nudged-phase settling time.
        batch_size: B of the training step the counts are for.
        dac_bits / adc_bits: converter resolutions (default ``params.default_bits``).
        backend: solver of the free phase (default ngspice with the block's options).
        transient_backend: ngspice backend of the transients (default: with the block's
            options).
    """

    params = params or CostParams()
    dac_bits = params.default_bits if dac_bits is None else int(dac_bits)
    adc_bits = params.default_bits if adc_bits is None else int(adc_bits)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    batch = int(batch_size)
    u = np.asarray(u, dtype=np.float64).reshape(-1, block.n_in)
    be = get_backend(backend, block.options)
    tbe = transient_backend or NgspiceBackend(block.options)
    circuit = block.circuit()
    values = block.input_source_values(u)
    sol = be.solve(circuit, values)
    total = static_power_W(sol, circuit, values)  # independent sources + amplifiers, signed
    forward, backward = amplifier_power_W(sol, circuit)
    n_amps = forward.shape[1]
    independent = total - forward.sum(axis=1) - backward.sum(axis=1)
    amp_delivered = float(np.mean(np.abs(forward).sum(axis=1) + np.abs(backward).sum(axis=1)))
    amp_static = n_amps * params.amplifier_static_power_W
    power = float(np.mean(independent)) + amp_delivered + amp_static

    u0 = u[0]
    u_prev = np.zeros_like(u0) if u.shape[0] == 1 else u[1]
    before = {k: float(v[0]) for k, v in block.input_source_values(u_prev[None]).items()}
    after = {k: float(v[0]) for k, v in block.input_source_values(u0[None]).items()}
    t_free = settling_time_s(circuit, before, after, params, tbe,
                             output_nodes=block.output_nodes)
    nudged = block.circuit(nudge=True)
    # the +beta phase of a cotangent of alternating signs at the block's default beta
    # (EP's nudge: -beta * delta_k into out k p, +beta * delta_k into out k n)
    delta = np.where(np.arange(block.n_out) % 2 == 0, 1.0, -1.0)
    beta = block.default_beta(delta[None, :])
    nudge_after = {k: float(v) for k, v in block.nudge_source_values(-beta * delta).items()}
    t_nudge = settling_time_s(nudged, after, {**after, **nudge_after}, params, tbe,
                              output_nodes=block.output_nodes)

    n_src = len(block.input_sources)  # 2 n_in
    phases = 3 * batch
    tile = block.tile
    dac_ch = adc_ch = 0
    if tile is not None and tile.has_converters:  # counted from the tile mapping
        dac_idx, adc_idx = block.converter_channels()
        dac_ch, adc_ch = int(dac_idx.size), int(adc_idx.size)
        dac = batch * (dac_ch + 2 * len(block.nudge_sources))
        adc = batch * (adc_ch + 2 * (block.num_devices() + n_src))
    else:
        dac = batch * (3 * n_src + 2 * len(block.nudge_sources))
        adc = batch * (block.n_out + 2 * (block.num_devices() + n_src))
    return BlockCost(
        name=block.name,
        layer_sizes=tuple(block.layer_sizes),
        phases=phases,
        dac_conversions=dac,
        adc_conversions=adc,
        dac_bits=dac_bits,
        adc_bits=adc_bits,
        power_W=power,
        settle_free_s=t_free,
        settle_nudge_s=t_nudge,
        analog_energy_J=batch
        * (phase_energy_J(power, t_free) + 2 * phase_energy_J(power, t_nudge)),
        dac_energy_J=dac * params.dac_energy_per_conversion_J(dac_bits),
        adc_energy_J=adc * params.adc_energy_per_conversion_J(adc_bits),
        analog_time_s=batch * (t_free + 2 * t_nudge),
        converter_time_s=(dac * params.dac_time_s / params.dac_channels
                          + adc * params.adc_time_s / params.adc_channels),
        buffer_bits=ep_buffer_requirement_bits(block, batch, adc_bits),
        dac_channels=dac_ch,
        adc_channels=adc_ch,
        tiles=len(block.tile_converter_map()) if tile is not None else 0,
        amplifiers=n_amps,
        amplifier_static_W=amp_static,
        amplifier_delivered_W=amp_delivered,
    )


def _default_inputs(model: FFEBM, n: int, seed: int) -> np.ndarray:


    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, Converter):
            continue
        if isinstance(layer, Linear):
            return rng.uniform(-1.0, 1.0, size=(n, layer.in_features))
        if isinstance(layer, AnalogLayer):
            return rng.uniform(-1.0, 1.0, size=(n, layer.block.n_in))
        break
    raise ValueError(
        "step_cost cannot guess the input shape of this model (it does not start with a "
        "Linear or analog layer): pass x=, a representative input batch"
    )


def step_cost(
    model: FFEBM,
    batch_size: int,
    params: CostParams | None = None,
    *,
    x: np.ndarray | None = None,
    backend: Backend | str | None = None,
    seed: int = 0,
    n_representative: int = 8,
) -> StepCost:
    """Energy and time of one training step of ``model`` on a batch of ``batch_size``.

    Runs the model forward (eval mode, on copies of the digital layers, so the model's
    caches, calibration and statistics are untouched) on a representative batch ``x``
    (default: ``n_representative`` samples uniform in [-1, 1] for a model starting with a
    Linear or analog layer) to get every analog block's inputs and every conv layer's
    output shape; each block is then costed by :func:`block_cost`.

    Args:
        model: an :class:`~analogeq.model.FFEBM`.
        batch_size: B of the training step (counts scale with it; ``x`` may be smaller).
        params: :class:`CostParams`.
        x: representative inputs (any batch size >= 1).
        backend: solver of the free phases (default: each analog layer's backend).
        seed: seeds the default inputs and converter noise.
    """


    params = params or CostParams()
    batch = int(batch_size)
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if x is None:
        x = _default_inputs(model, n_representative, seed)
    rng = np.random.default_rng(seed)
    blocks: list[BlockCost] = []
    macs = 0
    h = np.asarray(x)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, AnalogLayer):
            dac_bits, adc_bits = (params.default_bits if b is None else b
                                  for b in model.converter_bits(i))
            be = backend if backend is not None else layer.backend
            if layer.dac is not None:  # the block sees what its tile DAC makes of h
                h = copy.deepcopy(layer.dac).forward(np.asarray(h, dtype=np.float64))
            blocks.append(block_cost(layer.block, h, batch, params, dac_bits=dac_bits,
                                     adc_bits=adc_bits, backend=be))
            h = layer.block.free(h, backend=be).outputs
            if layer.adc is not None:
                h = copy.deepcopy(layer.adc).forward(h, rng)
            continue
        lay = copy.deepcopy(layer)
        if isinstance(lay, Converter):
            if lay.config.noise_lsb > 0 and lay.rng is None:
                lay.rng = rng
            y = lay.forward(h, train=False)
        else:
            y = lay.forward(h, train=False)
        macs += _macs_per_sample(lay, h, y)
        h = y
    total_macs = 3 * batch * macs
    return StepCost(
        batch_size=batch,
        blocks=tuple(blocks),
        digital_macs=total_macs,
        digital_energy_J=total_macs * params.digital_mac_energy_J,
        digital_time_s=total_macs * params.digital_mac_time_s,
        params=params,
    )


# --------------------------------------------------------------------------------------
# reporting


