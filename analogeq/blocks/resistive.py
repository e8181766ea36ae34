"""Resistive energy blocks: layered nonlinear resistive networks trained by Equilibrium
Propagation (EP), with an exact implicit-differentiation reference.

Topology of ``ResistiveBlock((n_in, h_1, ..., h_L, n_out))`` (node names use the block
``name`` as prefix, shown here as ``b0``):

* inputs: each signed input ``u_i`` drives a pair of nodes ``b0_in{i}p`` at ``+u_i`` and
  ``b0_in{i}n`` at ``-u_i`` volts (voltage sources ``Vb0_in{i}p`` / ``Vb0_in{i}n``);
* hidden layer ``l``: nodes ``b0_h{l}_{j}``; even ``j`` are positive-clamped units (a diode
  from the rail ``b0_dpos`` at ``+V_rail`` into the node: V >~ 0) and odd ``j`` are
  negative-clamped units (a diode from the node into ``b0_dneg`` at ``-V_rail``:
  V <~ 0). ``V_rail`` is ``params.diode_rail_V``, or with ``"auto"`` (the default) one
  value per hidden layer that puts the clamp knee at 0 V for the layer's conductance
  scale (:meth:`ResistiveBlock.diode_rail_of`); a later layer whose rail differs from
  layer 1's has its own rails ``b0_dpos{l}`` / ``b0_dneg{l}``;
* outputs: node pairs ``b0_out{k}p`` / ``b0_out{k}n`` (no diodes), read as
  ``o_k = V(out{k}p) - V(out{k}n)``;
* conductances: all-to-all between consecutive layers, plus bias conductances from every
  non-input node to the bias rails ``b0_bias_p`` (``+bias_V``) and ``b0_bias_n``
  (``-bias_V``).

``block.conductances[k]`` has shape ``(n_nodes[k] + 2, n_nodes[k+1])`` in siemens, where
``n_nodes = (2 n_in, h_1, ..., h_L, 2 n_out)``: rows are the nodes of layer ``k`` followed by
the two bias rails (row ``-2`` is ``+bias_V``, row ``-1`` is ``-bias_V``); so biases are
*included* in the arrays, as their last two rows.

Amplifiers (``amplifier_gain`` not None; docs/physics.md, section "Bidirectional
amplifiers"): after every hidden layer ``l`` a bidirectional amplifier per unit,
``E{b0}_amp{l}_{j}``, drives node ``b0_a{l}_{j}`` at ``A_l * V(b0_h{l}_{j})`` and draws
``c_l`` times the current it delivers from ``b0_h{l}_{j}``; the next crossbar's rows are
the ``a`` nodes, the diodes stay on the ``h`` nodes. The equilibrium minimises
``sum_s w_s E_s`` with ``w_s = prod_{l <= s} c_l / A_l``, so EP's estimate of crossbar ``k``
is multiplied by ``prod_{l > k} A_l / c_l`` and the input gradient by the product over
all stages (:meth:`ResistiveBlock.gain_factors`).

EP (docs/physics.md, "Equilibrium Propagation"): with cotangent ``delta`` (B, n_out) on the
outputs, the nudged phases add current sources injecting ``-beta * delta_k`` into ``out{k}p``
and ``+beta * delta_k`` into ``out{k}n`` (the cost ``beta <delta, o>`` added to the co-content).
All three phases of all samples run in one batched solve (one ngspice DC sweep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..backends import Backend, Solution, get_backend
from ..backends.diode import diode_currents
from ..backends.numpy_backend import NumpyBackend
from ..circuit import (
    BidirectionalAmplifier,
    Circuit,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
)
from ..errors import InvalidValueError
from ..hardware.memristors import MemristorArray
from ..hardware.tiles import cell_nodes, describe_mapping, map_to_tiles, wire_circuit
from ..params import MemristorParams, ResistiveBlockParams, SolverOptions, TileConfig
from .gradients import BlockGradients, EquilibriumPropagation, ImplicitDifferentiation
from .netlists import block_netlist, netlist_header, output_vectors

__all__ = ["ResistiveBlock", "ResistiveBlockParams", "BlockState", "BlockGradients"]

#: Default-beta multiplier of blocks with amplifiers (:meth:`ResistiveBlock.default_beta`).
AMPLIFIED_BETA_FACTOR = 10.0


@dataclass
class BlockState:
    """Free-phase result of a block for a batch.

    Attributes:
        outputs: (B, n_out) output voltages o = V+ - V- in volts.
        solution: the backend's full :class:`~analogeq.backends.Solution`.
    """

    outputs: np.ndarray
    solution: Solution


class ResistiveBlock:
    """A layered nonlinear resistive network (see the module docstring for its topology).

    Args:
        layer_sizes: ``(n_in, *hidden, n_out)``, at least one hidden layer.
        seed: seeds the initial conductances.
        params: physical parameters (:class:`ResistiveBlockParams`).
        name: prefix of every node and element name (netlist readability).
        options: solver tolerances used when a backend is created by name.
        device: memristor model of every conductance (:mod:`analogeq.hardware.memristors`).
            None means ideal devices: updates are added exactly and clipped to
            [g_min_S, g_max_S]. With a device, its conductance range replaces ``params``'
            range (initial values keep their position within the range), updates go through
            :meth:`~analogeq.hardware.memristors.MemristorArray.program` and every solve reads
            the conductances through :meth:`~analogeq.hardware.memristors.MemristorArray.read`
            (one read-noise draw per batched solve).
        tile: crossbar tile size, wire resistance and converters (:mod:`analogeq.hardware.tiles`).
            With wire resistance > 0 every crossbar becomes explicit row and column wires,
            so the solver computes the IR drop; EP then measures the voltage across each
            device at its own cell. The tile's DAC and ADC are applied by
            :class:`~analogeq.model.AnalogLayer`; the block's phases take and give analog
            voltages (:meth:`tile_converter_map` says where the converters sit).
        amplifier_gain: None (a passive block), or the forward gain A > 0 (volts per volt)
            of a bidirectional amplifier stage after every hidden layer: one float for all
            hidden layers or one value per hidden layer.
        amplifier_back_gain: the backward gain c > 0 of each stage (amperes drawn from the
            hidden node per ampere delivered); None means 1/A (Kendall et al. 2020). A
            float or one value per hidden layer. Requires ``amplifier_gain``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        seed: int = 0,
        params: ResistiveBlockParams | None = None,
        name: str = "b0",
        options: SolverOptions | None = None,
        device: MemristorParams | None = None,
        tile: TileConfig | None = None,
        amplifier_gain: float | Sequence[float] | None = None,
        amplifier_back_gain: float | Sequence[float] | None = None,
    ) -> None:
        sizes = tuple(int(s) for s in layer_sizes)
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(
                f"layer_sizes must be (n_in, *hidden, n_out) with at least one hidden layer "
                f"and positive sizes, got {tuple(layer_sizes)}"
            )
        n_hidden = len(sizes) - 2
        #: per hidden layer forward gains A_l (empty: no amplifiers)
        self.amplifier_gains: tuple[float, ...] = ()
        #: per hidden layer backward gains c_l
        self.amplifier_back_gains: tuple[float, ...] = ()
        if amplifier_gain is None:
            if amplifier_back_gain is not None:
                raise InvalidValueError(
                    "amplifier_back_gain is given but amplifier_gain is None (no amplifiers)"
                )
        else:
            gains = _per_layer(amplifier_gain, "amplifier_gain", n_hidden)
            backs = (tuple(1.0 / a for a in gains) if amplifier_back_gain is None
                     else _per_layer(amplifier_back_gain, "amplifier_back_gain", n_hidden))
            self.amplifier_gains, self.amplifier_back_gains = gains, backs
        self.layer_sizes = sizes
        params = params or ResistiveBlockParams()
        if device is not None and (device.g_min_S, device.g_max_S) != (
            params.g_min_S, params.g_max_S
        ):
            old = params.g_max_S - params.g_min_S
            new = device.g_max_S - device.g_min_S

            def rescale(g: float) -> float:
                return device.g_min_S + (g - params.g_min_S) / old * new

            params = dataclasses.replace(
                params, g_min_S=device.g_min_S, g_max_S=device.g_max_S,
                g_init_S=(rescale(params.g_init_S[0]), rescale(params.g_init_S[1])),
            )
        self.params = params
        self.device = device
        self.tile = tile
        self._cell_node_cache: dict[int, tuple[list[str], list[str], tuple[int, int]]] = {}
        self.name = name
        self.options = options or SolverOptions()
        p = name
        self.input_nodes = [f"{p}_in{i:03d}{s}" for i in range(sizes[0]) for s in "pn"]
        self.hidden_nodes = [
            [f"{p}_h{l + 1}_{j:03d}" for j in range(h)] for l, h in enumerate(sizes[1:-1])
        ]
        self.output_nodes = [f"{p}_out{k:03d}{s}" for k in range(sizes[-1]) for s in "pn"]
        #: amplifier output nodes per hidden layer (empty without amplifiers)
        self.amplifier_nodes = [
            [f"{p}_a{l + 1}_{j:03d}" for j in range(h)] for l, h in enumerate(sizes[1:-1])
        ] if self.amplifier_gains else []
        self.rail_nodes = (f"{p}_bias_p", f"{p}_bias_n")
        self.layers = [self.input_nodes, *self.hidden_nodes, self.output_nodes]
        self.input_sources = [f"V{n}" for n in self.input_nodes]
        self.nudge_sources = [f"I{p}_nudge{k:03d}{s}" for k in range(sizes[-1]) for s in "pn"]
        #: clamp rail voltage of every hidden layer in volts (:meth:`diode_rail_of`)
        self.diode_rails_V: tuple[float, ...] = tuple(
            self.diode_rail_of(l + 1) for l in range(n_hidden))
        #: (positive rail node, negative rail node) of every hidden layer: one pair per
        #: distinct rail value, named after the first hidden layer using it (``{p}_dpos`` /
        #: ``{p}_dneg`` for layer 1, ``{p}_dpos<l>`` / ``{p}_dneg<l>`` for a later layer)
        self.diode_rail_nodes: list[tuple[str, str]] = []
        first: dict[float, tuple[str, str]] = {}
        for l, v in enumerate(self.diode_rails_V):
            tag = "" if l == 0 else str(l + 1)
            self.diode_rail_nodes.append(first.setdefault(v, (f"{p}_dpos{tag}", f"{p}_dneg{tag}")))
        #: with ``params.trainable_diode_bias``: per hidden layer, the (h,) voltage of each
        #: unit's own bias source ``V<unit>_rail`` (even units start at +V_rail, odd at
        #: -V_rail); trained like the conductances. Empty otherwise.
        self.diode_biases: list[np.ndarray] = [
            np.where(np.arange(h) % 2 == 0, v, -v).astype(np.float64)
            for h, v in zip(sizes[1:-1], self.diode_rails_V, strict=True)
        ] if self.params.trainable_diode_bias else []
        rng = np.random.default_rng(seed)
        lo, hi = self.params.g_init_S
        self.conductances: list[np.ndarray] = [
            rng.uniform(lo, hi, size=(len(a) + 2, len(b)))
            for a, b in zip(self.layers[:-1], self.layers[1:], strict=True)
        ]
        #: generator of device randomness (variability at construction, write noise and
        #: stochastic rounding in updates) and of read noise; both restored on resume
        self.device_rng = np.random.default_rng([seed, 1])
        self.read_rng = np.random.default_rng([seed, 2])
        #: generator of the tile converters' noise (DAC output, ADC input), restored on resume
        self.converter_rng = np.random.default_rng([seed, 3])
        self.devices: list[MemristorArray] | None = None
        if device is not None:
            self.devices = [MemristorArray(g, device, self.device_rng)
                            for g in self.conductances]

    # -- sizes ------------------------------------------------------------------------

    @property
    def n_in(self) -> int:
        """Number of signed inputs."""
        return self.layer_sizes[0]

    @property
    def n_out(self) -> int:
        """Number of signed outputs."""
        return self.layer_sizes[-1]

    def num_devices(self) -> int:
        """Number of trainable conductances (biases included)."""
        return int(sum(g.size for g in self.conductances))

    # -- diode clamps -------------------------------------------------------------------

    def expected_node_conductance_S(self, layer: int) -> float:
        """Expected total conductance in siemens at a node of hidden layer ``layer``
        (1-based) at initialisation: the mean initial conductance ``(g_init_S[0] +
        g_init_S[1]) / 2`` times the node's fan: its crossbar rows in (the previous
        layer's nodes and the two bias rails) plus its columns out (the next layer's
        nodes). With an amplifier stage after the layer, the stage draws ``c`` times the
        current its output ``A V`` delivers, so the columns out count ``A c`` times.
        Deterministic (sizes and parameters only): the conductances a seed draws differ
        from it by a few percent, which moves a knee by ``N V_T`` times that fraction."""
        n_hidden = len(self.layer_sizes) - 2
        if not 1 <= layer <= n_hidden:
            raise ValueError(f"layer must be in 1..{n_hidden}, got {layer!r}")
        lo, hi = self.params.g_init_S
        fan_in = len(self.layers[layer - 1]) + 2
        fan_out = float(len(self.layers[layer + 1]))
        if self.amplifier_gains:
            fan_out *= self.amplifier_gains[layer - 1] * self.amplifier_back_gains[layer - 1]
        return 0.5 * (lo + hi) * (fan_in + fan_out)

    def diode_rail_of(self, layer: int) -> float:
        """Clamp rail voltage in volts of hidden layer ``layer`` (1-based):
        ``params.diode_rail_V`` if it is a number, else (``"auto"``) the junction voltage
        at which the diode's small-signal conductance equals
        :meth:`expected_node_conductance_S` at the temperature of ``options``, so that
        the knee of every clamp of the layer sits at 0 V (docs/physics.md, "Diode clamp
        rails")."""
        if not self.params.auto_rail:
            return float(self.params.diode_rail_V)
        return self.params.diode.knee_voltage_V(self.expected_node_conductance_S(layer),
                                                self.options.thermal_voltage_V)

    def node_conductances_S(self, layer: int) -> np.ndarray:
        """(h,) total conductance in siemens at each node of hidden layer ``layer``
        (1-based) with the stored conductances: its column of crossbar ``layer - 1`` (bias
        rows included) plus its row of crossbar ``layer`` (times ``A c`` with an amplifier
        stage after the layer, as in :meth:`expected_node_conductance_S`)."""
        n_hidden = len(self.layer_sizes) - 2
        if not 1 <= layer <= n_hidden:
            raise ValueError(f"layer must be in 1..{n_hidden}, got {layer!r}")
        g_in = self.conductances[layer - 1].sum(axis=0)
        g_out = self.conductances[layer][:-2].sum(axis=1)
        if self.amplifier_gains:
            g_out = g_out * self.amplifier_gains[layer - 1] * self.amplifier_back_gains[layer - 1]
        return g_in + g_out

    @property
    def trainable_bias(self) -> bool:
        """True when every clamp has its own trainable bias source."""
        return bool(self.diode_biases)

    def clamp_rails(self, layer: int) -> list[str]:
        """The rail node of every unit's clamp in hidden layer ``layer`` (1-based): the
        layer's shared ``dpos`` / ``dneg`` pair, or each unit's own ``<unit>_rail``."""
        nodes = self.hidden_nodes[layer - 1]
        if self.trainable_bias:
            return [f"{n}_rail" for n in nodes]
        pos, neg = self.diode_rail_nodes[layer - 1]
        return [pos if j % 2 == 0 else neg for j in range(len(nodes))]

    def bias_sources(self, layer: int) -> list[str]:
        """Names of the per-unit bias sources of hidden layer ``layer`` (1-based); empty
        without trainable biases."""
        return [f"V{r}" for r in self.clamp_rails(layer)] if self.trainable_bias else []

    def clamp_currents(self, solution: Solution) -> list[np.ndarray]:
        """Per hidden layer, the (B, h) current in amperes each unit's clamp diode
        conducts in its forward direction (from the rail into an even unit, from an odd
        unit into the rail), from the solved node voltages and the diode equations the
        solvers use (``gmin`` shunt included)."""
        out = []
        gmin = self.options.gmin
        model, vt = self.params.diode, self.options.thermal_voltage_V
        for l, nodes in enumerate(self.hidden_nodes):
            v = solution.voltages(nodes)
            rails = solution.voltages(self.clamp_rails(l + 1))
            vd = np.empty_like(v)
            vd[:, 0::2] = rails[:, 0::2] - v[:, 0::2]
            vd[:, 1::2] = v[:, 1::2] - rails[:, 1::2]
            out.append(diode_currents(vd, [model] * len(nodes), vt, gmin)[0])
        return out

    def describe_diode_rails(self) -> str:
        """One line on the clamp rails: the rule and each hidden layer's rail nodes and
        voltage (recorded in netlist headers and :meth:`describe_mapping`)."""
        rule = ("auto: knee at 0 V for the layer's expected node conductance G"
                if self.params.auto_rail else f"fixed {self.params.diode_rail_V:g} V")
        parts = []
        for l, ((pos, neg), v) in enumerate(zip(self.diode_rail_nodes, self.diode_rails_V,
                                                strict=True)):
            g = (f", G = {self.expected_node_conductance_S(l + 1):.4g} S"
                 if self.params.auto_rail else "")
            parts.append(f"layer {l + 1}: {pos} {v:+.6g} V / {neg} {-v:+.6g} V{g}")
        text = (f"Diode clamp rails ({rule}; {self.params.diode_model} diode "
                f"{self.params.diode.name}): " + "; ".join(parts))
        if self.trainable_bias:
            text += ("; trainable: each unit <unit> has its own bias source V<unit>_rail "
                     "(starting at these values; see the V sources)")
        return text

    # -- tiles and converters -----------------------------------------------------------

    def crossbars(self) -> list[ConductanceMatrix]:
        """The block's crossbars ``R0 ... R{L}`` (rows: a layer's nodes then the two bias
        rails; columns: the next layer's nodes), as mapped onto tiles."""
        return [self.crossbar(k) for k in range(len(self.conductances))]

    def crossbar_rows(self, k: int) -> tuple[str, ...]:
        """Row nodes of crossbar ``R{k}``: layer ``k``'s nodes (its amplifier outputs when
        the block has amplifiers), then the two bias rails."""
        if self.amplifier_nodes and k >= 1:
            return (*self.amplifier_nodes[k - 1], *self.rail_nodes)
        return (*self.layers[k], *self.rail_nodes)

    # -- amplifiers -------------------------------------------------------------------

    @property
    def amplified(self) -> bool:
        """True when the block has bidirectional amplifier stages."""
        return bool(self.amplifier_gains)

    def amplifiers(self) -> list[BidirectionalAmplifier]:
        """The amplifier elements ``E<block>_amp<l>_<j>``, hidden layer by layer."""
        if not self.amplified:
            return []
        return [
            BidirectionalAmplifier(f"E{self.name}_amp{l + 1}_{j:03d}", h, a, gain, back)
            for l, (hs, as_, gain, back) in enumerate(zip(
                self.hidden_nodes, self.amplifier_nodes, self.amplifier_gains,
                self.amplifier_back_gains, strict=True))
            for j, (h, a) in enumerate(zip(hs, as_, strict=True))
        ]

    def gain_factors(self) -> tuple[list[float], float]:
        """EP's gain factors: (per crossbar ``k``, prod over stages l > k of A_l / c_l;
        for the inputs, the product over all stages). All 1 without amplifiers."""
        ratios = [a / c for a, c in zip(self.amplifier_gains, self.amplifier_back_gains,
                                        strict=True)]
        per = [float(np.prod(ratios[k:])) for k in range(len(self.conductances))]
        return per, float(np.prod(ratios))

    def crossbar(self, k: int, g_S: np.ndarray | None = None) -> ConductanceMatrix:
        """Crossbar ``R{k}`` between layer ``k`` (plus the bias rails) and layer ``k+1``,
        with conductances ``g_S`` in siemens (default: the stored ``conductances[k]``)."""
        g = self.conductances[k] if g_S is None else g_S
        return ConductanceMatrix(f"R{k}", self.crossbar_rows(k), tuple(self.layers[k + 1]), g)

    def _mapping_tile(self) -> TileConfig:
        """The block's tile, or one tile as large as its largest crossbar."""
        widest = max(len(r) for r in self.layers)
        return self.tile or TileConfig(rows=widest + 2, cols=widest)

    def tile_converter_map(self) -> dict[str, tuple[list[int], list[int]]]:
        """Where the boundary converters sit: tile name -> (signed inputs whose DAC is on
        the tile, outputs whose ADC is on the tile), for every tile of every crossbar.

        A differential DAC per signed input ``i`` drives the row pair ``in{i}p`` /
        ``in{i}n`` of the input crossbar ``R0``; every tile holding one of those rows has
        its own DAC for it (the tile's row wires start at its own edge), so an input whose
        rows span several tiles (several column blocks, or a row pair cut by the tile
        boundary) has several DACs converting the same code. A differential ADC per output
        ``k`` reads the column pair ``out{k}p`` / ``out{k}n`` of the output crossbar where
        the column wires leave the block: on the tiles of its last row block (one ADC per
        read column pair, or one per tile if a pair is cut by a tile boundary). Without a
        tile the block counts as one tile as large as each crossbar.
        """
        tile = self._mapping_tile()
        mats = self.crossbars()
        out: dict[str, tuple[list[int], list[int]]] = {}
        for k, m in enumerate(mats):
            assignments = map_to_tiles(m, tile)
            last_rb = max(t.grid[0] for t in assignments)
            for t in assignments:
                dacs = sorted({r // 2 for r in t.rows if r < 2 * self.n_in}) if k == 0 else []
                adcs = (sorted({c // 2 for c in t.cols})
                        if k == len(mats) - 1 and t.grid[0] == last_rb else [])
                out[t.name] = (dacs, adcs)
        return out

    def tile_converters(self) -> dict[str, tuple[int, int]]:
        """Tile name -> (DAC channels, ADC channels) on it (:meth:`tile_converter_map`)."""
        return {k: (len(d), len(a)) for k, (d, a) in self.tile_converter_map().items()}

    def converter_channels(self) -> tuple[np.ndarray, np.ndarray]:
        """(signed input of every DAC channel, output of every ADC channel), tile by tile
        in mapping order: the conversions of one sample (:meth:`tile_converter_map`)."""
        dac: list[int] = []
        adc: list[int] = []
        for d, a in self.tile_converter_map().values():
            dac.extend(d)
            adc.extend(a)
        return np.asarray(dac, dtype=np.intp), np.asarray(adc, dtype=np.intp)

    def describe_mapping(self) -> str:
        """:func:`~analogeq.hardware.tiles.describe_mapping` of the block's crossbars on its tile,
        with the DACs and ADCs of every tile, then its amplifier stages
        (:meth:`describe_amplifiers`) if it has any."""
        tile = self._mapping_tile()
        text = (describe_mapping(self.crossbars(), tile, converters=self.tile_converters())
                + "\n" + self.describe_diode_rails())
        amps = self.describe_amplifiers()
        return f"{text}\n{amps}" if amps else text

    def describe_amplifiers(self) -> str:
        """The block's bidirectional amplifier stages, one line each: the hidden layer it
        follows, the crossbar rows it drives, its gains and amplifier count ("" without
        amplifiers). The amplifiers sit between the tiles of consecutive crossbars: they
        are not crossbar cells."""
        if not self.amplified:
            return ""
        n = sum(len(h) for h in self.hidden_nodes)
        lines = [f"amplifier stages: {len(self.amplifier_gains)} ({n} bidirectional "
                 f"amplifiers, one per hidden unit, between the crossbars, not on the tiles)"]
        for l, (hs, a, c) in enumerate(zip(self.hidden_nodes, self.amplifier_gains,
                                           self.amplifier_back_gains, strict=True)):
            k = l + 1
            what = "the output crossbar" if k == len(self.conductances) - 1 else "crossbar"
            lines.append(f"  stage {k}: after hidden layer {k} ({len(hs)} units), drives rows "
                         f"0:{len(hs)} of {what} R{k}; gain A = {a:g}, back gain c = {c:g} "
                         f"({len(hs)} amplifiers)")
        return "\n".join(lines)

    # -- circuit ----------------------------------------------------------------------

    def read_conductances(self) -> list[np.ndarray]:
        """What a solve sees: the stored conductances, or a fresh noisy read of each array
        when the device model has read noise."""
        if self.devices is None or self.device is None or self.device.read_noise_rel == 0:
            return self.conductances
        return [d.read(self.read_rng) for d in self.devices]

    def circuit(self, *, nudge: bool = False) -> Circuit:
        """The block as a circuit of the IR (inputs at 0 V; set them via source values).

        Args:
            nudge: add the output current sources used by the nudged phases (0 A DC).
        """
        p, prm = self.name, self.params
        sources, diodes, nudges = self._fixed_elements()
        c = Circuit(f"{p} resistive block {'-'.join(map(str, self.layer_sizes))}")
        c.add_model(prm.diode)
        c.add(*sources)
        for k, g in enumerate(self.read_conductances()):
            c.add(self.crossbar(k, g))
        c.add(*diodes)
        c.add(*self.amplifiers())
        if nudge:
            c.add(*nudges)
        if self.tile is not None:
            c = wire_circuit(c, self.tile)
        return c

    def _fixed_elements(self) -> tuple[tuple, tuple, tuple]:
        """The elements every circuit of the block holds unchanged (immutable, so shared
        by every circuit built): the input, bias-rail and clamp-rail sources (each unit's
        bias source with trainable clamp biases), the diodes (each to its layer's rail or
        its own bias source), the nudge sources (0 A). Rebuilt if the name, the
        parameters or the clamp rails change; the bias sources also whenever a bias value
        changes (they are trained in place: the key holds their current values)."""
        p, prm = self.name, self.params
        key = (p, prm, self.diode_rails_V, tuple(self.diode_rail_nodes), self.trainable_bias)
        cached = getattr(self, "_fixed_cache", None)
        if cached is None or cached[0] != key:
            sources = [
                *(VoltageSource(f"V{n}", n, "0", 0.0) for n in self.input_nodes),
                VoltageSource(f"V{self.rail_nodes[0]}", self.rail_nodes[0], "0", prm.bias_V),
                VoltageSource(f"V{self.rail_nodes[1]}", self.rail_nodes[1], "0", -prm.bias_V),
            ]
            if not self.trainable_bias:
                seen: set[str] = set()
                for (pos, neg), v in zip(self.diode_rail_nodes, self.diode_rails_V,
                                         strict=True):
                    if pos not in seen:
                        seen.add(pos)
                        sources += [VoltageSource(f"V{pos}", pos, "0", v),
                                    VoltageSource(f"V{neg}", neg, "0", -v)]
            diodes = []
            for l, layer in enumerate(self.hidden_nodes):
                for j, (n, r) in enumerate(zip(layer, self.clamp_rails(l + 1), strict=True)):
                    if j % 2 == 0:  # positive-clamped unit
                        diodes.append(Diode(f"D{n}", r, n, prm.diode.name))
                    else:  # negative-clamped unit
                        diodes.append(Diode(f"D{n}", n, r, prm.diode.name))
            nudges = tuple(CurrentSource(s, "0", n, 0.0) for s, n in
                           zip(self.nudge_sources, self.output_nodes, strict=True))
            cached = self._fixed_cache = (key, (tuple(sources), tuple(diodes), nudges))
        sources, diodes, nudges = cached[1]
        if self.trainable_bias:
            sources = sources + self._bias_source_elements()
        return sources, diodes, nudges

    def _bias_source_elements(self) -> tuple:
        """The per-unit bias sources ``V<unit>_rail`` at the current bias values, shared
        by every circuit built until a value changes."""
        values = tuple(b.tobytes() for b in self.diode_biases)
        cached = getattr(self, "_bias_cache", None)
        if cached is not None and cached[0] == values:
            return cached[1]
        out = tuple(VoltageSource(f"V{r}", r, "0", float(b))
                    for l, bias in enumerate(self.diode_biases)
                    for r, b in zip(self.clamp_rails(l + 1), bias, strict=True))
        self._bias_cache = (values, out)
        return out

    @property
    def wired(self) -> bool:
        """True when crossbars are built with explicit resistive wires."""
        return self.tile is not None and self.tile.wire_resistance_ohm > 0

    def _cell_nodes(self, k: int) -> tuple[list[str], list[str], tuple[int, int]]:
        """Node names on both sides of every device of layer pair ``k`` (flattened, with
        the shape of ``conductances[k]``). The topology never changes after construction,
        so the names are computed once per layer pair, not at every EP step."""
        cached = self._cell_node_cache.get(k)
        if cached is None:
            rs, cs = cell_nodes(self.crossbar(k), self.tile or TileConfig(wire_resistance_ohm=0.0))
            cached = (list(rs.ravel()), list(cs.ravel()), rs.shape)
            self._cell_node_cache[k] = cached
        return cached

    def cell_indices(self, sol: Solution, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices into ``sol``'s nodes of both ends of every device of crossbar ``k``
        (each with the shape of ``conductances[k]``): the cell's own row- and column-wire
        nodes when wired, else the crossbar's row and column nodes."""
        rs, cs, shape = self._cell_nodes(k)
        return sol.node_indices(rs).reshape(shape), sol.node_indices(cs).reshape(shape)

    def input_source_values(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sample values of the input sources for inputs ``u`` (B, n_in) in volts:
        ``V<block>_in<i>p`` at ``+u_i`` and ``V<block>_in<i>n`` at ``-u_i``, each (B,)."""
        values = {}
        for i in range(self.n_in):
            values[self.input_sources[2 * i]] = u[:, i]
            values[self.input_sources[2 * i + 1]] = -u[:, i]
        return values

    def nudge_source_values(self, into_p_A: np.ndarray) -> dict[str, np.ndarray]:
        """Values of the nudge current sources for currents ``into_p_A`` (..., n_out)
        amperes injected into each output's ``p`` node (the same current is drawn from its
        ``n`` node). EP's nudge at ``+beta`` is ``into_p_A = -beta * delta``."""
        into = np.asarray(into_p_A, dtype=np.float64)
        values = {}
        for k in range(self.n_out):
            # a CurrentSource from ground into the node injects its dc_A into the node
            values[self.nudge_sources[2 * k]] = into[..., k]
            values[self.nudge_sources[2 * k + 1]] = -into[..., k]
        return values

    def check_inputs(self, u: ArrayLike) -> np.ndarray:
        """``u`` as a (B, n_in) float64 array of finite volts (a (n_in,) vector is one
        sample); raises ValueError otherwise."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :]
        if u.ndim != 2 or u.shape[1] != self.n_in:
            raise ValueError(f"inputs must have shape (B, {self.n_in}), got {u.shape}")
        if not np.isfinite(u).all():
            raise ValueError("inputs contain non-finite values")
        return u

    def _backend(self, backend: Backend | str | None) -> Backend:
        if backend == "numpy":  # one per block: repeated solves reuse its per-topology cache
            return self._numpy()
        return get_backend(backend, self.options)

    def _numpy(self) -> NumpyBackend:
        """The block's own NumPy solver (for ``backend="numpy"`` and exact gradients)."""
        be = getattr(self, "_numpy_backend", None)
        if be is None or be.options != self.options:
            be = self._numpy_backend = NumpyBackend(self.options)
        return be

    def outputs_of(self, solution: Solution) -> np.ndarray:
        """(B, n_out) output voltages o = V(out p) - V(out n) of a solution."""
        v = solution.voltages(self.output_nodes)
        return v[:, 0::2] - v[:, 1::2]

    # -- phases -----------------------------------------------------------------------

    def free(self, u: ArrayLike, backend: Backend | str | None = None) -> BlockState:
        """Free phase for a batch of inputs ``u`` (B, n_in) in volts."""
        u = self.check_inputs(u)
        sol = self._backend(backend).solve(self.circuit(), self.input_source_values(u))
        return BlockState(self.outputs_of(sol), sol)

    def default_beta(self, delta: np.ndarray) -> float:
        """beta such that the largest nudge current is ``params.nudge_A`` amperes, times
        :data:`AMPLIFIED_BETA_FACTOR` for a block with amplifiers (their backward gain
        shrinks the nudge reaching upstream layers; measured on a (64, 32, 32, 32, 32, 10)
        block with A = 4, c = 1/A on ngspice, the first crossbar's EP-vs-exact error is
        1.9e-2 at the passive default and 1.9e-3 at ten times it)."""
        scale = float(np.abs(delta).max())
        if scale == 0.0:
            return 1.0
        factor = AMPLIFIED_BETA_FACTOR if self.amplified else 1.0
        return factor * self.params.nudge_A / scale

    def ep_gradients(
        self,
        u: ArrayLike,
        delta: ArrayLike,
        beta: float | None = None,
        backend: Backend | str | None = None,
        *,
        free_state: BlockState | None = None,
    ) -> BlockGradients:
        """Centered-EP estimate of the gradient of sum_b <delta_b, o_b>
        (:class:`~analogeq.blocks.gradients.EquilibriumPropagation`).

        Args:
            u: (B, n_in) inputs in volts.
            delta: (B, n_out) cotangent dL/do in loss units per volt.
            beta: nudge strength in amperes per unit of delta (None: :meth:`default_beta`).
            backend: ``"ngspice"`` (default), ``"numpy"`` or a backend instance.
            free_state: the free phase of these inputs if already solved (e.g. by the
                forward pass of a model): then only the two nudged phases are solved.
        """
        estimator = EquilibriumPropagation(self._backend(backend), beta=beta)
        return estimator.gradients(self, u, delta, free_state=free_state)

    def exact_gradients(
        self, u: ArrayLike, delta: ArrayLike, backend: NumpyBackend | None = None
    ) -> BlockGradients:
        """The same vector-Jacobian product by implicit differentiation at the free state
        (:class:`~analogeq.blocks.gradients.ImplicitDifferentiation`, docs/physics.md
        section "Implicit differentiation")."""
        return ImplicitDifferentiation(backend or self._numpy()).gradients(self, u, delta)

    # -- updates and inspection -------------------------------------------------------

    def clip_(self) -> None:
        """Clip every conductance into [g_min_S, g_max_S] in place."""
        for g in self.conductances:
            np.clip(g, self.params.g_min_S, self.params.g_max_S, out=g)

    def apply_update(self, deltas: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Request changes ``deltas`` (siemens) of the conductances, in place.

        Ideal devices add them and clip to [g_min_S, g_max_S]; with a device model the
        devices take them as they would (pulses, non-linearity, noise, bounds, stuck
        cells). Returns the changes actually applied.
        """
        if len(deltas) != len(self.conductances):
            raise ValueError("one update array per conductance array is required")
        for g, d in zip(self.conductances, deltas, strict=True):
            if d.shape != g.shape:
                raise ValueError(f"update of shape {d.shape} for conductances {g.shape}")
        if self.devices is not None:
            return [dev.program(d) for dev, d in zip(self.devices, deltas, strict=True)]
        before = [g.copy() for g in self.conductances]
        for g, d in zip(self.conductances, deltas, strict=True):
            g += d
        self.clip_()
        return [g - b for g, b in zip(self.conductances, before, strict=True)]

    def netlist(self, u: ArrayLike | None = None, *, print_outputs: bool = True) -> str:
        """A standalone netlist (``ngspice -b FILE`` prints the output node voltages) with
        the inputs ``u`` (n_in,) in volts applied as DC values (0 V if None)."""
        return block_netlist(self, u, print_outputs=print_outputs)

    def output_vectors(self) -> list[str]:
        """ngspice expressions of the outputs: ``v(out<k>p,out<k>n)``, in volts."""
        return output_vectors(self)

    def netlist_header(self, u: ArrayLike | None = None) -> str:
        """Comment block of a standalone netlist: what it is, naming, units, phases."""
        return netlist_header(self, u)


def _per_layer(value, what: str, n_hidden: int) -> tuple[float, ...]:
    """A gain given as one number or one per hidden layer, as ``n_hidden`` finite floats
    > 0; :class:`~analogeq.errors.InvalidValueError` naming ``what`` otherwise."""
    if isinstance(value, str | bytes):
        raise InvalidValueError(
            f"{what} must be a number or a sequence of numbers, got {value!r}"
        )
    is_seq = isinstance(value, Sequence | np.ndarray)
    items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else (
        list(value) if is_seq else [value])
    if is_seq and len(items) != n_hidden:
        raise InvalidValueError(
            f"{what} has {len(items)} values; the block has {n_hidden} hidden layer(s) "
            "(give one value, or one per hidden layer)"
        )
    out = []
    for k, v in enumerate(items):
        where = f"{what}[{k}]" if is_seq else what
        if isinstance(v, bool | np.bool_):
            raise InvalidValueError(f"{where} is {v!r}: a gain must be a number, not a bool")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise InvalidValueError(f"{where} is {v!r}, not a number") from None
        if not np.isfinite(x) or x <= 0:
            raise InvalidValueError(f"{where} is {v!r}: it must be finite and > 0")
        out.append(x)
    return tuple(out) if is_seq else tuple(out * n_hidden)
