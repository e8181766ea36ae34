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

from .config import build_model, resolve_config
from .datasets import load_dataset
from .model import FFEBM

__all__ = [
    "TrainResult", "train", "evaluate", "evaluate_run", "write_checkpoint", "read_checkpoint",
]

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


def _loss(name: str, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    if name == "cross_entropy":
        return softmax_cross_entropy(logits, labels)
    target = np.eye(logits.shape[1])[labels]
    return mse_loss(logits, target)


def _dataset(cfg: dict[str, Any]):
    d = cfg["data"]
    return load_dataset(
        d["dataset"],
        d["data_dir"] or None,
        limit_train=int(d["limit_train"]) or None,
        limit_test=int(d["limit_test"]) or None,
    )


def evaluate(model: FFEBM, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 256
             ) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` in eval mode over (x, y), in batches."""
    total_loss, correct = 0.0, 0
    for s in range(0, len(x), batch_size):
        logits = model.forward(x[s : s + batch_size], train=False)
        lb = y[s : s + batch_size]
        total_loss += _loss(loss, logits, lb)[0] * len(lb)
        correct += int(round(accuracy(logits, lb) * len(lb)))
    return total_loss / len(x), correct / len(x)


def evaluate_run(run_dir: str | Path, *, backend: str = "ngspice", progress: bool = True,
                 workers: int | None = None, scheduler: str | None = None
                 ) -> tuple[float, float, float]:
    """Load a run's checkpoint and measure (test accuracy, test loss, seconds) with
    ``backend`` solving every analog block (``workers`` / ``scheduler`` as the config's
    ``train.workers`` / ``train.scheduler``; the combination is checked like a config)."""
    arrays, meta = read_checkpoint(Path(run_dir) / "checkpoint.npz")
    saved = meta["config"]
    cfg = resolve_config({**saved, "train": {**saved["train"], "backend": backend,
                                             "workers": workers, "scheduler": scheduler}})
    data = _dataset(cfg)
    model = build_model(cfg, data.x_test.shape[1:])
    load_model_state(model, arrays)
    t0 = time.perf_counter()
    bs = int(cfg["train"]["eval_batch_size"])
    total_loss, correct = 0.0, 0
    try:
        for s in tqdm(range(0, len(data.x_test), bs), desc=f"evaluate ({backend})",
                      unit="batch", disable=not progress, file=sys.stderr, leave=False):
            loss, acc = evaluate(model, data.x_test[s : s + bs], data.y_test[s : s + bs],
                                 cfg["train"]["loss"], bs)
            n = len(data.y_test[s : s + bs])
            total_loss += loss * n
            correct += int(round(acc * n))
    finally:
        model.close()
    n = len(data.x_test)
    return correct / n, total_loss / n, time.perf_counter() - t0


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


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write arrays and JSON metadata to ``path`` atomically (temp file + rename), so a
    process killed mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays by name, metadata: epoch, RNG states, resolved config) of a checkpoint."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    return arrays, meta


def load_model_state(model: FFEBM, arrays: dict[str, np.ndarray]) -> None:
    """Load the ``model/...`` arrays of a checkpoint into ``model``.

    Checkpoints written before batch norm tracked its batch count lack
    ``<layer>.batches_tracked``; their running statistics come from training, so the
    count is restored as 1 (the first-batch rule then no longer applies)."""
    state = _unprefixed("model", arrays)
    for key in model.state_dict():
        if key.endswith(".batches_tracked") and key not in state:
            state[key] = np.array(1, dtype=np.int64)
    model.load_state_dict(state)


def _prefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": np.asarray(v) for k, v in d.items()}


def _unprefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in d.items() if k.startswith(prefix + "/")}


def _plot_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [int(r["epoch"]) for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(ep, [float(r["train_loss"]) for r in rows], "o-", label="train")
    a1.plot(ep, [float(r["test_loss"]) for r in rows], "s-", label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, [100 * float(r["train_accuracy"]) for r in rows], "o-", label="train")
    a2.plot(ep, [100 * float(r["test_accuracy"]) for r in rows], "s-", label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    data = _dataset(cfg)
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
            opt_d.load_state_dict(_unprefixed("opt_d", arrays))
            for i, opt in enumerate(opts_a):
                opt.load_state_dict(_unprefixed(f"opt_a{i}", arrays))
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
                loss, dlogits = _loss(t["loss"], logits, yb)
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
            arrays = {**_prefixed("model", model.state_dict()),
                      **_prefixed("opt_d", opt_d.state_dict()),
                      **{k: v for i, opt in enumerate(opts_a)
                         for k, v in _prefixed(f"opt_a{i}", opt.state_dict()).items()}}
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
            _plot_curve(rows, run_dir / "learning_curve.png", f"{cfg['name']} ({t['backend']})")
        _write_run_netlists(model, run_dir / "netlists")
        last = rows[-1] if rows else {"test_accuracy": float("nan"), "test_loss": float("nan")}
        return TrainResult(run_dir, float(last["test_accuracy"]), float(last["test_loss"]),
                           len(rows), time.perf_counter() - t_start)
    finally:
        model.close()


def _write_run_netlists(model: FFEBM, net_dir: Path) -> None:
    """Final netlist of every analog block (inputs at 0 V) and, for blocks on tiles, one
    netlist per tile with its ports held at the block's 0 V-input solution (NumPy solver;
    see :mod:`analogeq.export`)."""
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
