"""The cost report of a training run: the per-step cost table rebuilt from its checkpoint,
its tile mapping, its amplifiers and what its boundary buffer held during training (or
the same table for a config's model at its initial conductances)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..cost import format_cost_table, step_cost
from ..params import CostParams
from .checkpoints import checkpoint_config, load_model_state, read_checkpoint
from .config import build_model, load_config
from .datasets import load_dataset

__all__ = ["report"]


def report(
    run_dir: str | Path,
    *,
    params: CostParams | None = None,
    backend: str = "ngspice",
    n_representative: int = 8,
) -> str:
    """The per-step cost table of a training run, from its ``checkpoint.npz``, or of a
    config's model at its initial conductances when ``run_dir`` is a config file.

    Rebuilds the model from the checkpoint's config (or the config file), loads its
    weights, takes ``n_representative`` test samples of the run's dataset as the
    representative batch and costs one step at the run's ``train.batch_size``. Then the
    tile mapping of every block on tiles, with its converters per tile, the amplifier
    stages of every block with amplifiers, and, for a run, what it measured in its
    boundary buffer per epoch (``metrics.csv``: DAC and ADC conversions of the training
    steps, peak occupancy and capacity in bits).
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():  # a config: its model as built, before any training
        cfg = load_config(run_dir)
        arrays, what = None, f"config {run_dir} ({cfg['name']}, initial conductances, seed " \
                             f"{cfg['seed']}"
    else:
        ckpt = run_dir / "checkpoint.npz"
        if not ckpt.exists():
            raise FileNotFoundError(f"no checkpoint in {run_dir}: {ckpt} does not exist")
        arrays, meta = read_checkpoint(ckpt)
        cfg = checkpoint_config(meta, ckpt)
        what = f"run {run_dir} ({cfg['name']}, epoch {meta.get('epoch', '?')}"
    d = cfg["data"]
    data = load_dataset(d["dataset"], d["data_dir"] or None, limit_train=10,
                        limit_test=max(int(n_representative), 10))
    model = build_model(cfg, data.x_test.shape[1:], backend=backend)
    if arrays is not None:
        load_model_state(model, arrays)
    cost = step_cost(model, int(cfg["train"]["batch_size"]), params,
                     x=data.x_test[:n_representative], seed=int(cfg["seed"]))
    blocks = ", ".join(f"{b.name}{b.layer_sizes}" for b in cost.blocks)
    head = f"{what}, dataset {d['dataset']}); analog blocks {blocks}\n"
    parts = [head + format_cost_table(cost)]
    for layer in model.analog_layers:
        block = layer.block
        if block.tile is not None:
            parts.append(f"\ntile mapping of block {block.name}\n"
                         f"{block.describe_mapping()}\n")
        elif block.amplified:
            parts.append(f"\namplifiers of block {block.name}\n"
                         f"{block.describe_amplifiers()}\n")
    if arrays is not None:
        parts.append(_buffer_summary(run_dir / "metrics.csv", model))
    return "".join(parts)


def _buffer_summary(metrics: Path, model) -> str:
    """Per-epoch conversions and buffer occupancy of a run's training steps."""
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
