"""Diagnostic of a model's analog layers: do the hidden units clamp, and where do the
devices sit in their range?

``analogeq diagnose RUN_DIR|CONFIG`` runs the free phase of every analog layer on a batch of
test images (a run's trained checkpoint, or a config's freshly initialised model) and
reports, per hidden layer of every block:

* the clamp state of every (unit, sample): the diode current ``I_D`` (forward direction:
  rail into an even unit, odd unit into its rail) in units of the node's knee current
  ``I_knee = G N V_T``, with ``G`` the node's total conductance (its column of the
  incoming crossbar, bias rows included, plus its row of the outgoing one) and ``N V_T``
  the diode's voltage scale (``smooth_V`` for the PWL clamp). For the exponential diode
  ``r = I_D / I_knee`` is the ratio of the diode's small-signal conductance to the node's
  (``g_d = I_D / (N V_T)``), so the unit passes a fraction ``1 / (1 + r)`` of a change
  of its input (for the PWL clamp that holds below its corner, and above it ``r`` only
  grows faster):

  - *off*: ``r < 0.1`` (the unit follows the network, slope > 0.91: linear);
  - *soft*: ``0.1 <= r < 10`` (around the knee, ``r = 1`` at the knee of
    docs/physics.md, "Diode clamp rails");
  - *on*: ``r >= 10`` (the diode holds the node, slope < 0.09);

* the hidden voltages (min, 5th percentile, median, 95th percentile, max) of the even
  (positive-clamped, ``V >~ 0``) and odd (negative-clamped, ``V <~ 0``) units, and the
  fraction on the wrong side of 0 by more than :data:`WRONG_SIDE_V`;
* per crossbar, the fraction of devices at each conductance bound (within
  :data:`BOUND_TOLERANCE` of the range; the device model's per-device bounds if the block
  has one, else ``g_min_S`` / ``g_max_S``);
* per converter of the model (the DAC and ADC layers between digital and analog blocks,
  and a tile's own converters), its range and the fraction of the values it received that
  fell outside it and were clipped, overall and on its worst channel. A calibrated
  converter fixes its range on the first training batch; outputs that grow during training
  then clip, and the straight-through gradient of a clipped value is 0.

It writes ``diagnose.md`` (the tables) and ``diagnose.png`` (histograms of the hidden
voltages, of ``log10 r`` and of the conductances' position in their range).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..blocks import ResistiveBlock
from ..errors import CheckpointError
from ..model import FFEBM
from .checkpoints import checkpoint_config, load_model_state, read_checkpoint
from .config import build_model, load_config, resolve_config
from .datasets import load_dataset

__all__ = [
    "ClampLayerStats",
    "ConverterClipping",
    "CrossbarBounds",
    "Diagnosis",
    "diagnose",
    "diagnose_model",
    "plot_diagnosis",
    "OFF_BELOW",
    "ON_FROM",
    "WRONG_SIDE_V",
    "BOUND_TOLERANCE",
]

#: a clamp is off below this diode current in knee currents ``G N V_T``
OFF_BELOW = 0.1
#: a clamp is fully on from this diode current in knee currents
ON_FROM = 10.0
#: an even unit below -WRONG_SIDE_V (an odd unit above +WRONG_SIDE_V) is on the wrong side
WRONG_SIDE_V = 0.02
#: a device is at a bound when within this fraction of its range from it
BOUND_TOLERANCE = 1e-3


@dataclass
class ClampLayerStats:
    """One hidden layer of one block over the diagnosed samples.

    Attributes:
        block: block name.
        layer: hidden layer index (1-based).
        rail_V: the layer's clamp rail voltage.
        voltages_V: (B, h) hidden node voltages.
        ratio: (B, h) diode current over the knee current ``G N V_T``.
        node_conductance_S: (h,) total conductance of each node.
    """

    block: str
    layer: int
    rail_V: float
    voltages_V: np.ndarray
    ratio: np.ndarray
    node_conductance_S: np.ndarray

    @property
    def states(self) -> np.ndarray:
        """(B, h) clamp state: 0 off, 1 soft, 2 on."""
        return np.digitize(self.ratio, [OFF_BELOW, ON_FROM])

    def unit_fractions(self) -> np.ndarray:
        """(h, 3) fraction of samples in which each unit's clamp is off, soft, on."""
        s = self.states
        return np.stack([(s == k).mean(axis=0) for k in range(3)], axis=1)

    def parity(self, odd: bool) -> slice:
        """Columns of the odd (negative-clamped) or even (positive-clamped) units."""
        return slice(1, None, 2) if odd else slice(0, None, 2)

    def wrong_side(self, odd: bool) -> float:
        """Fraction of (unit, sample) pairs of that parity on the wrong side of 0 V by
        more than :data:`WRONG_SIDE_V`."""
        v = self.voltages_V[:, self.parity(odd)]
        if not v.size:
            return float("nan")
        return float((v > WRONG_SIDE_V).mean() if odd else (v < -WRONG_SIDE_V).mean())


@dataclass
class CrossbarBounds:
    """Where the devices of one crossbar sit: fractions at each bound, and each device's
    position ``(g - g_min) / (g_max - g_min)`` in its range (flattened)."""

    block: str
    crossbar: int
    devices: int
    at_min: float
    at_max: float
    position: np.ndarray


@dataclass
class ConverterClipping:
    """One converter over the diagnosed samples: where it sits, its range, and the
    fraction of its input values outside the range (overall and on its worst channel)."""

    where: str
    kind: str
    bits: int | None
    v_min: float
    v_max: float
    values: int
    clipped: float
    worst_channel: float


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`: what was diagnosed and the statistics."""

    source: str
    samples: int
    backend: str
    layers: list[ClampLayerStats] = field(default_factory=list)
    crossbars: list[CrossbarBounds] = field(default_factory=list)
    converters: list[ConverterClipping] = field(default_factory=list)

    def table(self) -> str:
        """The markdown report (clamp states and voltages, then device bounds)."""
        lines = [
            f"# Diagnosis of {self.source}",
            "",
            f"{self.samples} test samples, free phase on {self.backend}. Clamp state by "
            f"diode current r in knee currents G N V_T: off r < {OFF_BELOW:g}, soft, on "
            f"r >= {ON_FROM:g} (mean over units of the fraction of samples); 'linear' and "
            "'held' count units off, resp. on, in >= 95% of the samples; 'wrong side': "
            f"even units below -{WRONG_SIDE_V:g} V, odd above +{WRONG_SIDE_V:g} V.",
            "",
            "| block | layer | units | rail (V) | median G (S) | off | soft | on | linear | "
            "held | V min | V p5 | V median | V p95 | V max | wrong side |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for st in self.layers:
            for odd in (False, True):
                cols = st.parity(odd)
                frac = st.unit_fractions()[cols]
                if not frac.size:
                    continue
                v = st.voltages_V[:, cols]
                q = np.percentile(v, [0, 5, 50, 95, 100])
                mean = frac.mean(axis=0)
                label = "odd (V <~ 0)" if odd else "even (V >~ 0)"
                lines.append(
                    f"| {st.block} | {st.layer} | {label}: {frac.shape[0]} | {st.rail_V:.4f} | "
                    f"{np.median(st.node_conductance_S[cols]):.3g} | {mean[0]:.1%} | "
                    f"{mean[1]:.1%} | {mean[2]:.1%} | {int((frac[:, 0] >= 0.95).sum())} | "
                    f"{int((frac[:, 2] >= 0.95).sum())} | "
                    + " | ".join(f"{x:+.3f}" for x in q)
                    + f" | {st.wrong_side(odd):.1%} |")
        lines += ["", "| block | crossbar | devices | at g_min | at g_max |",
                  "|---|---|---|---|---|"]
        for c in self.crossbars:
            lines.append(f"| {c.block} | R{c.crossbar} | {c.devices} | {c.at_min:.1%} | "
                         f"{c.at_max:.1%} |")
        if self.converters:
            lines += ["", "| converter | bits | range (V) | values | clipped | worst channel |",
                      "|---|---|---|---|---|---|"]
            for c in self.converters:
                lines.append(f"| {c.where} {c.kind} | {c.bits or 'ideal'} | "
                             f"{c.v_min:+.4g} .. {c.v_max:+.4g} | {c.values} | "
                             f"{c.clipped:.1%} | {c.worst_channel:.1%} |")
        return "\n".join(lines) + "\n"


def _layer_stats(block: ResistiveBlock, solutions: list) -> list[ClampLayerStats]:
    """Clamp statistics of every hidden layer of ``block`` over its solved batches."""
    nvt = block.params.diode.voltage_scale_V(block.options.thermal_voltage_V)
    out = []
    for l, nodes in enumerate(block.hidden_nodes):
        g = block.node_conductances_S(l + 1)
        v = np.concatenate([s.voltages(nodes) for s in solutions])
        i = np.concatenate([block.clamp_currents(s)[l] for s in solutions])
        out.append(ClampLayerStats(block.name, l + 1, block.diode_rails_V[l], v,
                                   i / (g * nvt), g))
    return out


def _bounds(block: ResistiveBlock) -> list[CrossbarBounds]:
    out = []
    for k, g in enumerate(block.conductances):
        if block.devices is not None:
            lo, hi = block.devices[k].g_min_device_S, block.devices[k].g_max_device_S
        else:
            lo = np.full(g.shape, block.params.g_min_S)
            hi = np.full(g.shape, block.params.g_max_S)
        tol = BOUND_TOLERANCE * (hi - lo)
        out.append(CrossbarBounds(block.name, k, int(g.size),
                                  float((g <= lo + tol).mean()), float((g >= hi - tol).mean()),
                                  ((g - lo) / (hi - lo)).ravel()))
    return out


def diagnose_model(model: FFEBM, x: np.ndarray, *, batch_size: int = 256,
                   source: str = "model", backend: str = "", progress: bool = False
                   ) -> Diagnosis:
    """Free phases of ``model`` (eval mode) on inputs ``x``, and the statistics of every
    analog layer (see the module docstring)."""
    solutions: dict[str, list] = {lay.block.name: [] for lay in model.analog_layers}
    converters = model.converters()
    inside: list[list[np.ndarray]] = [[] for _ in converters]
    for s in tqdm(range(0, len(x), batch_size), desc="diagnose", unit="batch",
                  disable=not progress, file=sys.stderr, leave=False):
        model.forward(x[s:s + batch_size], train=False)
        for lay in model.analog_layers:
            solutions[lay.block.name].append(lay.last_free_state.solution)
        for k, (_, conv) in enumerate(converters):
            mask = conv.last_inside_range
            if mask is not None:  # None: a converter that does not clip
                inside[k].append(mask.reshape(len(mask), -1))
    diag = Diagnosis(source, len(x), backend or "the model's backend")
    for lay in model.analog_layers:
        diag.layers += _layer_stats(lay.block, solutions[lay.block.name])
        diag.crossbars += _bounds(lay.block)
    for (where, conv), masks in zip(converters, inside, strict=True):
        if masks:
            m = np.concatenate(masks)
            p = conv.config
            diag.converters.append(ConverterClipping(
                where, type(conv).__name__, p.bits, p.v_min, p.v_max, int(m.size),
                float(1.0 - m.mean()), float(1.0 - m.mean(axis=0).min())))
    return diag


def plot_diagnosis(diag: Diagnosis, path: str | Path) -> None:
    """Write histograms (one row per hidden layer): hidden voltages of even and odd units,
    ``log10`` of the diode current in knee currents, and the position of the devices of
    the layer's incoming crossbar in their range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(diag.layers), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(12, 3.0 * rows), squeeze=False)
    bounds = {(c.block, c.crossbar): c for c in diag.crossbars}
    for ax, st in zip(axes, diag.layers, strict=False):
        for odd, colour in ((False, "tab:blue"), (True, "tab:red")):
            v = st.voltages_V[:, st.parity(odd)].ravel()
            if v.size:
                ax[0].hist(v, bins=60, alpha=0.6, color=colour,
                           label="odd (V <~ 0)" if odd else "even (V >~ 0)")
        ax[0].axvline(0.0, color="k", lw=0.8)
        ax[0].set_xlabel("hidden voltage (V)")
        ax[0].set_title(f"{st.block} hidden layer {st.layer}")
        ax[0].legend(fontsize=8)
        r = np.log10(np.maximum(st.ratio.ravel(), 1e-12))
        ax[1].hist(r, bins=60, color="tab:gray")
        for t in (OFF_BELOW, ON_FROM):
            ax[1].axvline(np.log10(t), color="k", ls="--", lw=0.8)
        ax[1].set_xlabel("log10 diode current / (G N V_T)")
        ax[1].set_title("off | soft | on")
        c = bounds.get((st.block, st.layer - 1))
        if c is not None:
            ax[2].hist(c.position, bins=50, color="tab:green")
            ax[2].set_title(f"R{c.crossbar}: {c.at_min:.1%} at g_min, {c.at_max:.1%} at g_max")
        ax[2].set_xlabel("(g - g_min) / (g_max - g_min)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def diagnose(
    source: str | Path,
    *,
    samples: int = 256,
    backend: str = "numpy",
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[Diagnosis, Path]:
    """Diagnose a run folder (its ``checkpoint.npz``: the trained model) or a config file
    (its initial model) on the first ``samples`` test images (stratified) of its dataset,
    solving with ``backend``; writes ``diagnose.md`` and ``diagnose.png`` to ``out_dir``
    (default: the run folder, or ``diagnose-<config name>`` in the working directory for
    a config). Returns the diagnosis and the output folder."""
    src = Path(source)
    if src.is_dir():
        ckpt = src / "checkpoint.npz"
        if not ckpt.is_file():
            raise CheckpointError(f"{src} is not a run folder: {ckpt} does not exist")
        arrays, meta = read_checkpoint(ckpt)
        cfg = resolve_config(checkpoint_config(meta, ckpt))
        default_out = src
    else:
        if not src.is_file():
            raise FileNotFoundError(f"{src} is neither a run folder nor a config file")
        arrays, cfg = None, load_config(src)
        default_out = Path(f"diagnose-{cfg['name']}")
    d = cfg["data"]
    data = load_dataset(d["dataset"], d["data_dir"] or None, limit_train=10,
                        limit_test=int(samples))
    model = build_model(cfg, data.x_test.shape[1:], backend=backend)
    try:
        if arrays is not None:
            try:
                load_model_state(model, arrays)
            except (KeyError, ValueError) as exc:
                raise CheckpointError(f"{src} does not fit the model of its config ({exc})"
                                      ) from None
        what = f"run {src}" if arrays is not None else f"config {src} (initial model)"
        diag = diagnose_model(model, data.x_test, source=what, backend=backend,
                              batch_size=int(cfg["train"]["eval_batch_size"]),
                              progress=progress)
    finally:
        model.close()
    out = Path(out_dir) if out_dir is not None else default_out
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose.md").write_text(diag.table())
    plot_diagnosis(diag, out / "diagnose.png")
    return diag, out
