"""Energy and time of a training step on hybrid hardware (PRIMER section 6).

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
  (:class:`~analogeq.tiles.TileConfig` ``dac`` / ``adc``), the inputs are counted from the
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
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import Backend, Solution, get_backend
from .backends.numpy_backend import diode_current
from .circuit import (
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    validate,
    validate_source_values,
)
from .errors import InvalidValueError, SimulationError

__all__ = [
    "CostParams",
    "BlockCost",
    "StepCost",
    "static_power_W",
    "dissipated_power_W",
    "free_nodes",
    "slowest_time_constant_s",
    "settling_time_s",
    "phase_energy_J",
    "block_cost",
    "step_cost",
    "format_cost_table",
    "report",
]


@dataclass(frozen=True)
class CostParams:
    """Hardware cost figures (SI units). Every default is an order of magnitude.

    Attributes:
        node_capacitance_F: capacitance in farads from every free node of a block to ground
            (wire plus device capacitance of a crossbar line). Default 100 fF: assumption
            (order of a ~100-cell crossbar line at ~1 fF per cell).
        settle_tolerance: a phase has settled when every output node stays within this
            fraction of the largest output excursion of the step (dimensionless). Default
            1e-3: assumption (about one LSB of a 10-bit ADC).
        adc_fom_J_per_step: Walden figure of merit of the ADCs in joules per conversion
            step, ``E_conversion = FoM * 2**bits``. Default 50 fJ: order of magnitude of
            the bulk of designs in B. Murmann, "ADC Performance Survey 1997-2023"
            (state-of-the-art designs reach ~1 fJ/step).
        dac_fom_J_per_step: the same figure of merit for the DACs, ``E = FoM * 2**bits``.
            Default 10 fJ: assumption (DACs cost less per conversion than ADCs; no survey
            is cited).
        digital_mac_energy_J: energy in joules of one digital multiply-accumulate. Default
            4.6 pJ: a 32-bit float multiply (3.7 pJ) plus add (0.9 pJ) in 45 nm at 0.9 V,
            M. Horowitz, "Computing's energy problem (and what we can do about it)",
            ISSCC 2014 (an 8-bit integer MAC is ~0.23 pJ: 0.2 pJ multiply + 0.03 pJ add;
            memory access, not counted here, costs more: ~10 pJ per 64-bit 8 kB SRAM read).
        digital_mac_time_s: seconds per MAC of the digital side. Default 1 ns (1 GMAC/s:
            assumption, one scalar unit at ~1 GHz).
        adc_time_s: seconds per ADC conversion. Default 10 ns (100 MS/s SAR: assumption).
        dac_time_s: seconds per DAC conversion. Default 10 ns (assumption).
        adc_channels: ADC conversions that run in parallel (time divides by it). Default 1.
        dac_channels: DAC conversions that run in parallel. Default 1.
        default_bits: resolution assumed for an ideal (``bits=None``) or missing converter.
            Default 8 (assumption).
        t_stop_taus: a transient lasts this many multiples of the slowest RC time constant
            bound (:func:`slowest_time_constant_s`); it is extended automatically if the
            response has not settled. Default 20.
        points_per_transient: output steps per transient (``t_step = t_stop / points``).
    """

    node_capacitance_F: float = 100e-15
    settle_tolerance: float = 1e-3
    adc_fom_J_per_step: float = 50e-15
    dac_fom_J_per_step: float = 10e-15
    digital_mac_energy_J: float = 4.6e-12
    digital_mac_time_s: float = 1e-9
    adc_time_s: float = 10e-9
    dac_time_s: float = 10e-9
    adc_channels: int = 1
    dac_channels: int = 1
    default_bits: int = 8
    t_stop_taus: float = 20.0
    points_per_transient: int = 1000

    def __post_init__(self) -> None:
        for name in (
            "node_capacitance_F", "adc_fom_J_per_step", "dac_fom_J_per_step",
            "digital_mac_energy_J", "digital_mac_time_s", "adc_time_s", "dac_time_s",
            "t_stop_taus",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"CostParams.{name} must be finite and > 0, got {v!r}")
        if not 0 < self.settle_tolerance < 1:
            raise ValueError(
                f"CostParams.settle_tolerance must be in (0, 1), got {self.settle_tolerance!r}"
            )
        for name in ("adc_channels", "dac_channels", "default_bits", "points_per_transient"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CostParams.{name} must be an int >= 1, got {v!r}")

    @staticmethod
    def _bits(bits: int) -> int:
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
            raise ValueError(f"bits must be an int >= 1, got {bits!r}")
        return int(bits)

    def adc_energy_per_conversion_J(self, bits: int) -> float:
        """Joules per ADC conversion at ``bits`` resolution: ``adc_fom_J_per_step * 2**bits``."""
        return self.adc_fom_J_per_step * 2.0 ** self._bits(bits)

    def dac_energy_per_conversion_J(self, bits: int) -> float:
        """Joules per DAC conversion at ``bits`` resolution: ``dac_fom_J_per_step * 2**bits``."""
        return self.dac_fom_J_per_step * 2.0 ** self._bits(bits)


# --------------------------------------------------------------------------------------
# static power


def _source_values(
    circuit: Circuit, source_values: Mapping[str, Sequence[float]] | None, batch: int
) -> dict[str, np.ndarray]:
    values, b = validate_source_values(circuit, source_values)
    if values and b != batch:
        raise InvalidValueError(
            f"source_values have {b} samples but the solution has {batch}"
        )
    return values


def static_power_W(
    solution: Solution,
    circuit: Circuit,
    source_values: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """Total power delivered by the sources at each operating point of a batch.

    * Voltage source: ``P = -(V(plus) - V(minus)) * i_branch`` (SPICE branch current,
      positive from ``plus`` through the source to ``minus``, so negative when delivering).
      The source voltage is read from the solution's node voltages, so per-sample
      (swept) values are accounted for.
    * Current source: ``dc_A`` flows from ``plus`` through the source to ``minus``: it
      leaves the source at ``minus`` and returns at ``plus``, so it delivers
      ``P = dc_A * (V(minus) - V(plus))``. Its value is ``source_values[name]`` if given
      (as in the solve), else ``dc_A``.

    By Tellegen's theorem this equals the power dissipated in the conductances and
    diodes (:func:`dissipated_power_W`).

    Args:
        solution: the DC solution of ``circuit`` (B samples).
        circuit: the solved circuit.
        source_values: the per-sample source values the solve used (needed for current
            sources whose value was swept).

    Returns:
        (B,) power in watts.
    """
    batch = solution.batch_size
    values = _source_values(circuit, source_values, batch)
    power = np.zeros(batch)
    for e in circuit.elements:
        if isinstance(e, VoltageSource):
            v = solution.v(e.plus) - solution.v(e.minus)
            power -= v * solution.i(e.name)
        elif isinstance(e, CurrentSource):
            i = values.get(e.name, np.full(batch, float(e.dc_A)))
            power += i * (solution.v(e.minus) - solution.v(e.plus))
    return power


def dissipated_power_W(solution: Solution, circuit: Circuit, options=None) -> np.ndarray:
    """(B,) power in watts dissipated in every conductance (``g dV^2``) and diode
    (``I_D(V_D) V_D``, ngspice's level-1 DC equation with its ``gmin`` shunt) -- the
    element side of Tellegen's theorem, computed from node voltages only."""
    from .options import SolverOptions

    options = options or SolverOptions()
    power = np.zeros(solution.batch_size)
    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            g = np.asarray(e.g_S, dtype=np.float64)
            dv = solution.voltages(e.rows)[:, :, None] - solution.voltages(e.cols)[:, None, :]
            power += np.einsum("bij,ij->b", dv**2, g)
        elif isinstance(e, Conductance):
            power += e.g_S * (solution.v(e.a) - solution.v(e.b)) ** 2
        elif isinstance(e, Diode):
            model = circuit.models[e.model]
            vd = solution.v(e.anode) - solution.v(e.cathode)
            i, _ = diode_current(
                vd, model.is_A, model.n * options.thermal_voltage_V, options.gmin
            )
            power += i * vd
    return power


# --------------------------------------------------------------------------------------
# settling


def free_nodes(circuit: Circuit) -> list[str]:
    """Nodes not tied to ground through voltage sources alone (their voltage is not
    imposed by a source): the nodes that get a capacitance in :func:`settling_time_s`."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for e in circuit.of_type(VoltageSource):
        ra, rb = find(e.plus), find(e.minus)
        if ra != rb:
            parent[ra] = rb
    ground = find(GROUND)
    return [n for n in circuit.nodes if find(n) != ground]


def slowest_time_constant_s(
    circuit: Circuit, capacitance_F: float, gmin_S: float = 1e-12
) -> float:
    """Upper bound of the slowest time constant of ``circuit`` with ``capacitance_F`` on
    every free node: ``C / lambda_min(G_ff)``, with ``G_ff`` the conductance Laplacian over
    the free nodes (driven nodes eliminated; a ``gmin_S`` shunt per node). Diodes only add
    positive incremental conductance, so they make the circuit faster than this bound."""
    free = free_nodes(circuit)
    if not free:
        return 0.0
    index = {n: k for k, n in enumerate(free)}
    g = np.zeros((len(free), len(free)))

    def stamp(a: np.ndarray, b: np.ndarray, gab: np.ndarray) -> None:
        ok_a, ok_b = a >= 0, b >= 0
        np.add.at(g, (a[ok_a], a[ok_a]), gab[ok_a])
        np.add.at(g, (b[ok_b], b[ok_b]), gab[ok_b])
        both = ok_a & ok_b
        np.add.at(g, (a[both], b[both]), -gab[both])
        np.add.at(g, (b[both], a[both]), -gab[both])

    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            rows = np.array([index.get(n, -1) for n in e.rows])
            cols = np.array([index.get(n, -1) for n in e.cols])
            a, b = np.meshgrid(rows, cols, indexing="ij")
            stamp(a.ravel(), b.ravel(), np.asarray(e.g_S, dtype=np.float64).ravel())
        elif isinstance(e, Conductance):
            stamp(np.array([index.get(e.a, -1)]), np.array([index.get(e.b, -1)]),
                  np.array([float(e.g_S)]))
    g[np.diag_indices_from(g)] += gmin_S
    lam = float(np.linalg.eigvalsh(g)[0])
    return capacitance_F / max(lam, gmin_S)


def _step_values(
    circuit: Circuit,
    before: Mapping[str, float],
    after: Mapping[str, float],
) -> dict[str, tuple[float, float]]:
    sources = {
        e.name: (e.dc_V if isinstance(e, VoltageSource) else e.dc_A)
        for e in circuit.elements
        if isinstance(e, VoltageSource | CurrentSource)
    }
    step = {}
    for name in (*before, *(n for n in after if n not in before)):
        if name not in sources:
            raise InvalidValueError(
                f"{name!r} is not a voltage or current source of circuit {circuit.title!r}"
            )
        step[name] = (float(before.get(name, sources[name])), float(after.get(name, sources[name])))
    return step


def settling_time_s(
    circuit: Circuit,
    source_values_before: Mapping[str, float],
    source_values_after: Mapping[str, float],
    params: CostParams | None = None,
    backend=None,
    *,
    output_nodes: Sequence[str] | None = None,
    t_stop_s: float | None = None,
) -> float:
    """Time for ``circuit`` to settle after its sources step from one set of values to
    another, with a capacitance ``params.node_capacitance_F`` from every free node to
    ground (an ngspice transient, :meth:`NgspiceBackend.transient`).

    The circuit starts at the DC operating point of the "before" values; the sources step
    to the "after" values at t = 0+. The final values are an independent DC solve of the
    "after" values. The result is the time after which every output node stays within
    ``settle_tolerance * max_k |V_k(final) - V_k(0)|`` (the largest output excursion) of
    its final value, linearly interpolated between time points. For one RC section it is
    ``-tau ln(settle_tolerance)``; for any circuit it is exactly linear in the capacitance.

    Args:
        source_values_before / source_values_after: source name -> value (volts or
            amperes) for one sample; unlisted sources keep their DC value.
        params: :class:`CostParams` (capacitance, tolerance, transient length).
        backend: an :class:`~analogeq.backends.ngspice.NgspiceBackend` (default: a new one
            with default options).
        output_nodes: nodes whose settling counts (default: every free node).
        t_stop_s: transient length (default ``params.t_stop_taus`` times
            :func:`slowest_time_constant_s`); doubled up to 6 times until settled.

    Returns:
        settling time in seconds (0.0 if no output moves).
    """
    from .backends.ngspice import NgspiceBackend

    params = params or CostParams()
    backend = backend if backend is not None else NgspiceBackend()
    if not hasattr(backend, "transient"):
        raise TypeError(f"settling_time_s needs the ngspice backend, got {backend!r}")
    validate(circuit)
    step = _step_values(circuit, source_values_before, source_values_after)
    free = free_nodes(circuit)
    outputs = list(free if output_nodes is None else output_nodes)
    unknown = [n for n in outputs if n not in set(circuit.nodes)]
    if unknown or not outputs:
        raise InvalidValueError(f"output_nodes {unknown or outputs} are not nodes of the circuit")
    final = backend.solve(
        circuit, {k: np.array([v[1]]) for k, v in step.items()}
    ).voltages(outputs)[0]
    caps = {n: params.node_capacitance_F for n in free}
    if t_stop_s is None:
        tau = slowest_time_constant_s(circuit, params.node_capacitance_F, backend.options.gmin)
        t_stop_s = params.t_stop_taus * tau
    out_idx = [circuit.nodes.index(n) for n in outputs]
    for _ in range(7):
        times, volts = backend.transient(
            circuit, caps, step, t_stop_s, t_stop_s / params.points_per_transient
        )
        v = volts[:, out_idx]
        excursion = float(np.max(np.abs(final - v[0])))
        if excursion == 0.0:
            return 0.0
        band = params.settle_tolerance * excursion
        dev = np.abs(v - final)
        outside = (dev > band).any(axis=1)
        if not outside[-1]:
            break
        t_stop_s *= 2.0
    else:
        raise SimulationError(
            f"circuit {circuit.title!r} did not settle within {t_stop_s / 2:.3g} s "
            f"(last deviation {float(dev[-1].max()):.3g} V, band {band:.3g} V)"
        )
    k = int(np.nonzero(outside)[0][-1])  # last time point outside the band
    t_cross = float(times[k])
    for j in np.nonzero(dev[k] > band)[0]:
        d0, d1 = dev[k, j], dev[k + 1, j]
        frac = (d0 - band) / (d0 - d1) if d0 != d1 else 1.0
        t_cross = max(t_cross, float(times[k] + frac * (times[k + 1] - times[k])))
    return t_cross


def phase_energy_J(power_W: float, settle_s: float) -> float:
    """Static energy of one analog phase: power times settling time (joules)."""
    return float(power_W) * float(settle_s)


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
        power_W: mean static power of the free phase over the representative batch.
        settle_free_s: settling time of a free phase (step between two inputs).
        settle_nudge_s: settling time of a nudged phase (step of the nudge currents).
        analog_energy_J: ``B * power_W * (settle_free_s + 2 settle_nudge_s)``.
        dac_energy_J / adc_energy_J: conversions times energy per conversion.
        analog_time_s: ``B * (settle_free_s + 2 settle_nudge_s)``.
        converter_time_s: conversions times conversion time over the channels.
        buffer_bits: bits the EP measurements of the batch occupy
            (:func:`~analogeq.buffer.ep_buffer_requirement_bits`).
        dac_channels / adc_channels: per-sample input DAC and output ADC conversions of
            the tile mapping when the block's tile has converters, else 0.
        tiles: tiles the block's crossbars occupy (0 without a tile).
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
        return sum(b.phases for b in self.blocks)

    @property
    def dac_conversions(self) -> int:
        return sum(b.dac_conversions for b in self.blocks)

    @property
    def adc_conversions(self) -> int:
        return sum(b.adc_conversions for b in self.blocks)

    @property
    def analog_energy_J(self) -> float:
        return sum(b.analog_energy_J for b in self.blocks)

    @property
    def converter_energy_J(self) -> float:
        return sum(b.dac_energy_J + b.adc_energy_J for b in self.blocks)

    @property
    def total_energy_J(self) -> float:
        return self.analog_energy_J + self.converter_energy_J + self.digital_energy_J

    @property
    def analog_time_s(self) -> float:
        return sum(b.analog_time_s for b in self.blocks)

    @property
    def converter_time_s(self) -> float:
        return sum(b.converter_time_s for b in self.blocks)

    @property
    def time_s(self) -> float:
        return self.analog_time_s + self.converter_time_s + self.digital_time_s

    @property
    def buffer_bits(self) -> int:
        return sum(b.buffer_bits for b in self.blocks)


def _converter_bits(model, index: int, params: CostParams) -> tuple[int, int]:
    """(DAC bits, ADC bits) of the converters around the analog layer at ``index``: the
    block's tile converters, else the nearest DAC layer before / ADC layer after it."""
    from digital.converters import ADC, DAC

    from .model import AnalogLayer

    def bits_of(layer) -> int:
        b = layer.config.bits
        return params.default_bits if b is None else int(b)

    tile = model.layers[index].block.tile
    if tile is not None and tile.has_converters:
        def spec_bits(spec) -> int:
            return params.default_bits if spec is None or spec.bits is None else int(spec.bits)

        return spec_bits(tile.dac), spec_bits(tile.adc)
    dac_bits = adc_bits = params.default_bits
    for layer in reversed(model.layers[:index]):
        if isinstance(layer, AnalogLayer):
            break
        if isinstance(layer, DAC):
            dac_bits = bits_of(layer)
            break
    for layer in model.layers[index + 1 :]:
        if isinstance(layer, AnalogLayer):
            break
        if isinstance(layer, ADC):
            adc_bits = bits_of(layer)
            break
    return dac_bits, adc_bits


def _macs_per_sample(layer, x_in: np.ndarray, y_out: np.ndarray) -> int:
    from digital.layers import Conv2d, Linear

    if isinstance(layer, Linear):
        return layer.in_features * layer.out_features
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        return int(np.prod(y_out.shape[1:])) * layer.in_ch * kh * kw
    return 0


def block_cost(
    block,
    u: np.ndarray,
    batch_size: int,
    params: CostParams | None = None,
    *,
    dac_bits: int | None = None,
    adc_bits: int | None = None,
    backend: Backend | str | None = None,
    transient_backend=None,
) -> BlockCost:
    """Cost of one :class:`~analogeq.blocks.ResistiveBlock` over a training step.

    Args:
        u: (n, n_in) representative inputs in volts: the free phase of these gives the
            static power (mean over samples); the step from ``u[0]`` to ``u[1]`` (from
            0 V if n = 1) gives the free-phase settling time, and a step of every nudge
            current from 0 to +- the block's largest nudge current (alternating signs) from the
            free state of ``u[0]`` gives the nudged-phase settling time.
        batch_size: B of the training step the counts are for.
        dac_bits / adc_bits: converter resolutions (default ``params.default_bits``).
        backend: solver of the free phase (default ngspice with the block's options).
        transient_backend: ngspice backend of the transients (default: with the block's
            options).
    """
    from .backends.ngspice import NgspiceBackend
    from .buffer import ep_buffer_requirement_bits

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
    values = block._input_values(u)
    sol = be.solve(circuit, values)
    power = float(np.mean(static_power_W(sol, circuit, values)))

    u0 = u[0]
    u_prev = np.zeros_like(u0) if u.shape[0] == 1 else u[1]
    before = {k: float(v[0]) for k, v in block._input_values(u_prev[None]).items()}
    after = {k: float(v[0]) for k, v in block._input_values(u0[None]).items()}
    t_free = settling_time_s(circuit, before, after, params, tbe,
                             output_nodes=block.output_nodes)
    nudged = block.circuit(nudge=True)
    amp = getattr(block.params, "nudge_A", None)  # largest nudge current of default beta
    if amp is None:
        amp = block.params.nudge_current_A
    signs = np.where(np.arange(block.n_out) % 2 == 0, 1.0, -1.0)
    nudge_after = {}
    for k in range(block.n_out):
        nudge_after[block.nudge_sources[2 * k]] = -amp * signs[k]
        nudge_after[block.nudge_sources[2 * k + 1]] = amp * signs[k]
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
    )


def _default_inputs(model, n: int, seed: int) -> np.ndarray:
    from digital.converters import Converter
    from digital.layers import Linear

    from .model import AnalogLayer

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
    model,
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
    from digital.converters import Converter

    from .model import AnalogLayer

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
            dac_bits, adc_bits = _converter_bits(model, i, params)
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

_PREFIXES = ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""),
             (1e3, "k"), (1e6, "M"), (1e9, "G"))


def _si(value: float, unit: str) -> str:
    """``12.3 pJ`` style engineering notation."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return f"{value:.3g} {unit}"
    scale, prefix = _PREFIXES[0]
    for s, p in _PREFIXES:
        if abs(value) >= s:
            scale, prefix = s, p
    return f"{value / scale:.3g} {prefix}{unit}"


def _count(n: int) -> str:
    return f"{int(n):,}"


def format_cost_table(cost: StepCost) -> str:
    """A per-training-step table: one column per analog block, one for the digital side
    and a total; rows are phases, conversions, MACs, energies (J) and times (s)."""
    heads = [f"{b.name} {'-'.join(map(str, b.layer_sizes))}" for b in cost.blocks]
    cols = [*heads, "digital", "total"]
    nb = len(cost.blocks)
    blank = [""]

    def row(label: str, per_block: list[str], digital: str, total: str) -> list[str]:
        return [label, *per_block, digital, total]

    rows = [
        row("phases (free, +beta, -beta)", [_count(b.phases) for b in cost.blocks], "",
            _count(cost.phases)),
        row("DAC conversions", [f"{_count(b.dac_conversions)} @{b.dac_bits}b"
                                for b in cost.blocks], "", _count(cost.dac_conversions)),
        row("ADC conversions", [f"{_count(b.adc_conversions)} @{b.adc_bits}b"
                                for b in cost.blocks], "", _count(cost.adc_conversions)),
        row("digital MACs (fwd + bwd)", blank * nb, _count(cost.digital_macs),
            _count(cost.digital_macs)),
        row("static power per phase", [_si(b.power_W, "W") for b in cost.blocks], "", ""),
        row("settling free / nudged",
            [f"{_si(b.settle_free_s, 's')} / {_si(b.settle_nudge_s, 's')}"
             for b in cost.blocks], "", ""),
        row("analog energy", [_si(b.analog_energy_J, "J") for b in cost.blocks], "",
            _si(cost.analog_energy_J, "J")),
        row("converter energy (DAC + ADC)",
            [_si(b.dac_energy_J + b.adc_energy_J, "J") for b in cost.blocks], "",
            _si(cost.converter_energy_J, "J")),
        row("digital energy", blank * nb, _si(cost.digital_energy_J, "J"),
            _si(cost.digital_energy_J, "J")),
        row("total energy", [_si(b.analog_energy_J + b.dac_energy_J + b.adc_energy_J, "J")
                             for b in cost.blocks], _si(cost.digital_energy_J, "J"),
            _si(cost.total_energy_J, "J")),
        row("time: analog settling", [_si(b.analog_time_s, "s") for b in cost.blocks], "",
            _si(cost.analog_time_s, "s")),
        row("time: conversions", [_si(b.converter_time_s, "s") for b in cost.blocks], "",
            _si(cost.converter_time_s, "s")),
        row("time: digital", blank * nb, _si(cost.digital_time_s, "s"),
            _si(cost.digital_time_s, "s")),
        row("time (serial total)", blank * nb, "", _si(cost.time_s, "s")),
        row("EP buffer", [_si(b.buffer_bits, "bit") for b in cost.blocks], "",
            _si(cost.buffer_bits, "bit")),
    ]
    if any(b.dac_channels or b.adc_channels for b in cost.blocks):
        rows.insert(3, row(
            "  tile DACs / ADCs per sample",
            [f"{b.dac_channels} / {b.adc_channels} on {b.tiles} tiles"
             if b.dac_channels or b.adc_channels else "" for b in cost.blocks], "", ""))
    header = ["per training step", *cols]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(
            (r[c].ljust(widths[c]) if c == 0 else r[c].rjust(widths[c])) for c in range(len(r))
        ).rstrip()

    p = cost.params
    note = (
        f"assumptions: node capacitance {_si(p.node_capacitance_F, 'F')}, settle tolerance "
        f"{p.settle_tolerance:g}, ADC FoM {_si(p.adc_fom_J_per_step, 'J')}/step, DAC FoM "
        f"{_si(p.dac_fom_J_per_step, 'J')}/step (E = FoM * 2**bits), "
        f"{_si(p.digital_mac_energy_J, 'J')} and {_si(p.digital_mac_time_s, 's')} per MAC, "
        f"{_si(p.adc_time_s, 's')} per ADC and {_si(p.dac_time_s, 's')} per DAC conversion "
        f"({p.adc_channels} ADC / {p.dac_channels} DAC channel(s))."
    )
    lines = [
        f"training step cost, batch size {cost.batch_size}",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows),
        "",
        *textwrap.wrap(note, 100),
    ]
    return "\n".join(lines) + "\n"


def report(
    run_dir: str | Path,
    *,
    params: CostParams | None = None,
    backend: str = "ngspice",
    n_representative: int = 8,
) -> str:
    """The per-step cost table of a training run, from its ``checkpoint.npz``.

    Rebuilds the model from the checkpoint's config, loads its weights, takes
    ``n_representative`` test samples of the run's dataset as the representative batch
    and costs one step at the run's ``train.batch_size``. Then the tile mapping of every
    block on tiles, with its converters per tile, and what the run measured in its
    boundary buffer per epoch (``metrics.csv``: DAC and ADC conversions of the training
    steps, peak occupancy and capacity in bits).
    """
    from .config import build_model
    from .datasets import load_dataset
    from .training import load_model_state, read_checkpoint

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.npz"
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: {ckpt} does not exist")
    arrays, meta = read_checkpoint(ckpt)
    cfg = meta["config"]
    d = cfg["data"]
    data = load_dataset(d["dataset"], d["data_dir"] or None, limit_train=10,
                        limit_test=max(int(n_representative), 10))
    model = build_model(cfg, data.x_test.shape[1:], backend=backend)
    load_model_state(model, arrays)
    cost = step_cost(model, int(cfg["train"]["batch_size"]), params,
                     x=data.x_test[:n_representative], seed=int(cfg["seed"]))
    blocks = ", ".join(f"{b.name}{b.layer_sizes}" for b in cost.blocks)
    head = (f"run {run_dir} ({cfg['name']}, epoch {meta.get('epoch', '?')}, dataset "
            f"{d['dataset']}); analog blocks {blocks}\n")
    parts = [head + format_cost_table(cost)]
    for layer in model.analog_layers:
        if layer.block.tile is not None:
            parts.append(f"\ntile mapping of block {layer.block.name}\n"
                         f"{layer.block.describe_mapping()}\n")
    parts.append(_buffer_summary(run_dir / "metrics.csv", model))
    return "".join(parts)


def _buffer_summary(metrics: Path, model) -> str:
    """Per-epoch conversions and buffer occupancy of a run's training steps."""
    import csv

    rows = []
    if metrics.exists():
        with metrics.open() as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("dac_conversions")]
    lines = ["", "boundary buffer during training (metrics.csv)"]
    if not rows:
        lines.append("  not recorded (run trained before the buffer was in the training loop); "
                     f"capacity for this config: {model.buffer.capacity_bits:,} bits")
        return "\n".join(lines) + "\n"
    lines.append(f"  {'epoch':>5}  {'DAC conversions':>15}  {'ADC conversions':>15}  "
                 f"{'peak (bits)':>12}  {'capacity (bits)':>15}")
    for r in rows:
        lines.append(f"  {int(r['epoch']):>5}  {int(r['dac_conversions']):>15,}  "
                     f"{int(r['adc_conversions']):>15,}  {int(r['buffer_peak_bits']):>12,}  "
                     f"{int(r['buffer_capacity_bits']):>15,}")
    return "\n".join(lines) + "\n"
