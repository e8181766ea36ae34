"""Training runs: the loop, the run folder, atomic checkpoints and exact resume.

A run folder holds::

    config.json         the resolved config (defaults and command-line overrides applied)
    config.toml         a copy of the config file the run started from
    metrics.csv         one row per epoch: losses, accuracies, time, solver settings, the
                        DAC and ADC conversions of the epoch's training steps and the
                        peak occupancy of the boundary buffer (bits) and its capacity
    learning_curve.png  loss and accuracy per epoch
    checkpoint.npz      model, optimizers, data-order RNG and epoch (written atomically)
    netlists/*.cir      final standalone netlist of every analog block (inputs at 0 V);
    netlists/<block>_tiles/*.cir   one netlist per tile, for blocks on tiles
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from digital.losses import accuracy, mse_loss, softmax_cross_entropy
from digital.optim import Adam, ConstantLR, CosineLR

from ..model import FFEBM
from .checkpoints import load_model_state, prefixed, read_checkpoint, unprefixed, write_checkpoint
from .config import build_model, resolve_config
from .evaluation import evaluate, loss_and_grad, run_dataset
from .plots import plot_learning_curve

__all__ = ["TrainResult", "train", "METRIC_FIELDS"]

METRIC_FIELDS = [
    "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "epoch_seconds", "backend", "gradient",
    "dac_conversions", "adc_conversions", "buffer_peak_bits", "buffer_capacity_bits",
]


@dataclass
class TrainResult:
    """What a finished run reports (accuracies as fractions in [0, 1])."""

    run_dir: Path
    test_accuracy: float
    test_loss: float
    epochs: int
    seconds: float


def _optimizers(model: FFEBM, cfg: dict[str, Any], steps_total: int):
    """Adam for the digital weights; one Adam per analog block whose step is
    ``lr_analog`` times that block's conductance range (so presets of very different
    ranges train with the same setting); device-aware updates."""
    t = cfg["train"]
    params, grads, clamps = model.parameter_groups()
    digital = [k for k, c in enumerate(clamps) if c is None]

    def sched(lr):
        return CosineLR(lr, steps_total) if t["schedule"] == "cosine" else ConstantLR(lr)

    opt_d = Adam(sched(float(t["lr"])), weight_decay=float(t["weight_decay"]))
    analog_layers = model.analog_layers
    opts_a = []
    for layer in analog_layers:
        g_min, g_max = layer.bounds_S
        opts_a.append(Adam(sched(float(t["lr_analog"]) * (g_max - g_min))))

    def step():
        opt_d.step([params[k] for k in digital], [grads[k] for k in digital])
        # the analog optimizer proposes new conductances; the devices then take the
        # requested change the way hardware would (ideal: add and clip to the range)
        for layer, opt in zip(analog_layers, opts_a, strict=True):
            a_params = layer.block.conductances
            before = [p.copy() for p in a_params]
            opt.step(a_params, [layer.grads[f"g{k}"] for k in range(len(a_params))])
            requested = [p - b for p, b in zip(a_params, before, strict=True)]
            for p, b in zip(a_params, before, strict=True):
                p[...] = b
            layer.block.apply_update(requested)

    return opt_d, opts_a, step


def train(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    config_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train the ff-EBM described by ``cfg``, writing the run folder ``run_dir``.

    Args:
        resume: continue from ``run_dir/checkpoint.npz`` (results identical to an
            uninterrupted run: model, optimizer and data-order RNG state are restored).
        stop_after_epochs: stop (with a checkpoint) after this many epochs of this call;
            used to test resume.
    """
    run_dir = Path(run_dir)
    t = cfg["train"]
    data = run_dataset(cfg)
    x_train = data.x_train
    model = build_model(cfg, x_train.shape[1:])
    try:
        n = len(x_train)
        bs = int(t["batch_size"])
        steps_per_epoch = (n + bs - 1) // bs
        epochs = int(t["epochs"])
        opt_d, opts_a, step = _optimizers(model, cfg, epochs * steps_per_epoch)
        rng = np.random.default_rng(cfg["seed"])
        start_epoch = 0
        ckpt = run_dir / "checkpoint.npz"
        rows: list[dict[str, Any]] = []
        if resume:
            if not ckpt.exists():
                raise FileNotFoundError(f"no checkpoint to resume from: {ckpt}")
            arrays, meta = read_checkpoint(ckpt)
            load_model_state(model, arrays)
            opt_d.load_state_dict(unprefixed("opt_d", arrays))
            for i, opt in enumerate(opts_a):
                opt.load_state_dict(unprefixed(f"opt_a{i}", arrays))
            rng.bit_generator.state = meta["rng_state"]
            for layer in model.analog_layers:
                states = meta.get("device_rng", {}).get(layer.block.name)
                if states:
                    layer.block.device_rng.bit_generator.state = states[0]
                    layer.block.read_rng.bit_generator.state = states[1]
                    if len(states) > 2:  # runs from before tile converters have two
                        layer.block.converter_rng.bit_generator.state = states[2]
            start_epoch = int(meta["epoch"])
            with (run_dir / "metrics.csv").open() as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= start_epoch]
        else:
            if ckpt.exists():
                raise FileExistsError(
                    f"{run_dir} already holds a run; use --resume {run_dir} or another --out"
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
            if config_path is not None:
                shutil.copyfile(config_path, run_dir / "config.toml")

        t_start = time.perf_counter()
        analog = model.analog_layers
        blocks = ", ".join(f"{a.block.name}{a.block.layer_sizes}" for a in analog)
        if progress:
            print(f"run {run_dir}: {cfg['name']} on {data.name} ({n} train, "
                  f"{len(data.x_test)} test); analog blocks {blocks}; backend {t['backend']}, "
                  f"gradient {t['gradient']}", file=sys.stderr)
        epochs_done = 0
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            order = rng.permutation(n)
            loss_sum, correct = 0.0, 0
            buf = model.buffer
            dac0, adc0 = buf.dac_conversions, buf.adc_conversions
            buf.reset_peak()
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                       disable=not progress, file=sys.stderr, leave=False)
            for b in bar:
                idx = order[b * bs : (b + 1) * bs]
                xb, yb = x_train[idx], data.y_train[idx]
                logits = model.forward(xb, train=True)
                loss, dlogits = loss_and_grad(t["loss"], logits, yb)
                model.backward(dlogits)
                step()
                loss_sum += loss * len(idx)
                correct += int(round(accuracy(logits, yb) * len(idx)))
                seen = min((b + 1) * bs, n)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
            test_loss, test_acc = evaluate(model, data.x_test, data.y_test, t["loss"],
                                           int(t["eval_batch_size"]))
            rows.append({
                "epoch": epoch + 1, "train_loss": loss_sum / n, "train_accuracy": correct / n,
                "test_loss": test_loss, "test_accuracy": test_acc,
                "epoch_seconds": round(time.perf_counter() - t0, 3),
                "backend": t["backend"], "gradient": t["gradient"],
                "dac_conversions": buf.dac_conversions - dac0,
                "adc_conversions": buf.adc_conversions - adc0,
                "buffer_peak_bits": buf.peak_bits, "buffer_capacity_bits": buf.capacity_bits,
            })
            if progress:
                print(f"epoch {epoch + 1}/{epochs}: train loss {loss_sum / n:.4f} acc "
                      f"{100 * correct / n:.2f}% | test loss {test_loss:.4f} acc "
                      f"{100 * test_acc:.2f}% | {rows[-1]['epoch_seconds']:.1f} s", file=sys.stderr)
            _write_metrics(run_dir / "metrics.csv", rows)
            arrays = {**prefixed("model", model.state_dict()),
                      **prefixed("opt_d", opt_d.state_dict()),
                      **{k: v for i, opt in enumerate(opts_a)
                         for k, v in prefixed(f"opt_a{i}", opt.state_dict()).items()}}
            device_rng = {a.block.name: [a.block.device_rng.bit_generator.state,
                                         a.block.read_rng.bit_generator.state,
                                         a.block.converter_rng.bit_generator.state]
                          for a in model.analog_layers}
            write_checkpoint(ckpt, arrays, {"epoch": epoch + 1,
                                            "rng_state": rng.bit_generator.state,
                                            "device_rng": device_rng, "config": cfg})
            epochs_done += 1
            if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
                break
        if rows:
            plot_learning_curve(rows, run_dir / "learning_curve.png", f"{cfg['name']} ({t['backend']})")
        _write_run_netlists(model, run_dir / "netlists")
        last = rows[-1] if rows else {"test_accuracy": float("nan"), "test_loss": float("nan")}
        return TrainResult(run_dir, float(last["test_accuracy"]), float(last["test_loss"]),
                           len(rows), time.perf_counter() - t_start)
    finally:
        model.close()


def _write_run_netlists(model: FFEBM, net_dir: Path) -> None:
    """Final netlist of every analog block (inputs at 0 V) and, for blocks on tiles, one
    netlist per tile with its ports held at the block's 0 V-input solution (NumPy solver;
    see :mod:`analogeq.runs.export`)."""
    from .export import write_block_netlists

    net_dir.mkdir(exist_ok=True)
    for layer in model.analog_layers:
        block = layer.block
        if block.tile is None:
            (net_dir / f"{block.name}.cir").write_text(block.netlist())
        else:
            write_block_netlists(block, np.zeros(block.n_in), net_dir, backend="numpy",
                                 inputs_note="0 V on every input")


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
