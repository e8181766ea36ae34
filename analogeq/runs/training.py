"""Training runs: the loop, the run folder, atomic checkpoints and exact resume.

A run folder holds::

    config.json         the resolved config (defaults and command-line overrides applied)
    config.toml         a copy of the config file the run started from
    metrics.csv         one row per epoch: losses, accuracies, time, solver settings,
                        Newton iterations per sample solve of the epoch's training steps
                        (NumPy backend: mean, max, mean of the free and of the nudged
                        phases; empty on ngspice), the DAC and ADC conversions of the
                        epoch's training steps, the fraction of the ADC readings of
                        those steps that fell outside the ADCs' ranges (``adc_clipped``;
                        above :data:`ADC_CLIP_WARNING` a warning is printed, even with
                        ``progress=False``) and the peak occupancy of the boundary
                        buffer (bits) and its capacity
    learning_curve.png  loss and accuracy per epoch
    checkpoint.npz      model, optimizers, data-order RNG and epoch (written atomically)
    run.json            the run's identity: a random run id (also in the checkpoint and in
                        every metrics row) and the SHA-256 of config.json; ``--resume``
                        refuses a folder whose files do not belong together
    run.lock            held (flock) by the process training in the folder; a second
                        process refuses to start
    netlists/*.cir      final standalone netlist of every analog block (inputs at 0 V);
    netlists/<block>_tiles/*.cir   one netlist per tile, for blocks on tiles
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from digital.converters import ADC, DAC
from digital.losses import accuracy
from digital.optim import Adam, ConstantLR, CosineLR

from ..errors import CheckpointError, ConfigError, RunExistsError, RunFolderError
from ..model import FFEBM
from .checkpoints import (
    atomic_write,
    load_model_state,
    prefixed,
    read_checkpoint,
    unprefixed,
    write_checkpoint,
)
from .config import build_model, layer_shapes, run_config
from .evaluation import evaluate, loss_and_grad, run_dataset
from .plots import plot_learning_curve

__all__ = ["TrainResult", "train", "METRIC_FIELDS", "lock_run_folder", "RUN_FILES"]

#: volts per unit of ``lr_analog`` in the step of trainable clamp biases (the voltage
#: counterpart of a block's conductance range: 0.02 x 0.1 V = 2 mV per Adam step)
BIAS_LR_SCALE_V = 0.1

METRIC_FIELDS = [
    "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "epoch_seconds", "backend", "gradient",
    "newton_iterations_mean", "newton_iterations_max",
    "newton_iterations_free_mean", "newton_iterations_nudged_mean",
    "dac_conversions", "adc_conversions", "adc_clipped",
    "buffer_peak_bits", "buffer_capacity_bits", "run_id",
]
#: an epoch in which the ADCs clip more than this fraction of their training readings
#: prints a warning (a clipped reading passes no gradient back)
ADC_CLIP_WARNING = 0.1
LOCK_FILE = "run.lock"
RUN_FILE = "run.json"
#: the files and folders a run writes into its folder
RUN_FILES = ("config.json", "config.toml", "metrics.csv", "learning_curve.png",
             "checkpoint.npz", "netlists", RUN_FILE, LOCK_FILE)


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
    ranges train with the same setting); device-aware updates; one more Adam per block
    with trainable clamp biases (step ``lr_analog`` x :data:`BIAS_LR_SCALE_V`)."""
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
    # trainable clamp biases: their own Adam, step lr_analog * BIAS_LR_SCALE_V volts
    opts_b = {i: Adam(sched(float(t["lr_analog"]) * BIAS_LR_SCALE_V))
              for i, layer in enumerate(analog_layers) if layer.block.trainable_bias}

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
        for i, opt in opts_b.items():
            layer = analog_layers[i]
            opt.step(layer.block.diode_biases,
                     [layer.grads[f"v{l + 1}"] for l in range(len(layer.block.diode_biases))])

    return opt_d, opts_a, opts_b, step


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

    Raises:
        ConfigError: an invalid config, or a model that does not fit the data.
        RunExistsError: a new run into a folder that holds a run.
        RunFolderError: a new run into a folder that holds other files, or a folder another
            process is training in (the folder is locked for the whole training).
        CheckpointError: on resume, an unreadable checkpoint or metrics.csv, or files of
            different runs in the folder.
    """
    run_dir = Path(run_dir)
    run_config(cfg)  # a hand-made dictionary is checked like a config file
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} exists and is not a folder")
    if resume and not (run_dir / "checkpoint.npz").exists():
        raise FileNotFoundError(f"no checkpoint to resume from: {run_dir / 'checkpoint.npz'}")
    data = run_dataset(cfg)
    _check_data_fits(cfg, data)
    x_train = data.x_train
    with lock_run_folder(run_dir):
        if not resume:
            _check_fresh_folder(run_dir)  # before anything heavy is built
        model = build_model(cfg, x_train.shape[1:])
        try:
            return _train_locked(cfg, run_dir, model, data, config_path, resume, progress,
                                 stop_after_epochs)
        finally:
            model.close()


@contextmanager
def lock_run_folder(run_dir: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if missing) for the ``with`` block:
    an advisory ``flock`` on ``run_dir/run.lock``, released when the block ends or the
    process dies.

    Raises:
        RunFolderError: another process holds the lock (is training in the folder).
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"run folder {run_dir} exists and is not a folder") from None
    fh = (run_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise RunFolderError(f"{run_dir} is in use: another process is training in it (it "
                             f"holds {run_dir / LOCK_FILE}); wait for it to finish or choose "
                             f"another --out") from None
    try:
        yield run_dir
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _check_fresh_folder(run_dir: Path) -> None:
    """A new run goes into a new or empty folder: refuse a run (resume it instead) and a
    folder holding anything else (nothing is overwritten)."""
    if (run_dir / "checkpoint.npz").exists():
        raise RunExistsError(
            f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise RunFolderError(
            f"{run_dir} is not empty ({shown}) and holds no run checkpoint: a new run needs a "
            f"new or empty folder (nothing was written; a run stopped before its first "
            f"checkpoint can be removed and started again)")


def _check_data_fits(cfg: dict[str, Any], data) -> None:
    """The data has samples and the model's output has one value per class."""
    for split, x in (("training", data.x_train), ("test", data.x_test)):
        if len(x) == 0:
            raise ConfigError(f"data: dataset {data.name!r} has no {split} samples")
    shapes = layer_shapes(cfg, data.x_train.shape[1:])
    out = shapes[-1][1]
    k = int(data.num_classes)
    if out != (k,):
        last = [i for i, spec in enumerate(cfg["model"]["layers"]) if "out" in spec]
        key = f"model.layers[{last[-1]}].out" if last else "model.layers"
        raise ConfigError(f"{key}: the model gives outputs of shape {out} but dataset "
                          f"{data.name!r} has {k} classes (the last layer needs out = {k})")


def _config_sha(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "config.json").read_bytes()).hexdigest()


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            r["epoch"] = int(r["epoch"])
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the run folder is incomplete") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise CheckpointError(f"{path} is unreadable, truncated or corrupted "
                              f"({type(exc).__name__}: {exc})") from None
    return rows


def _check_run_identity(run_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]],
                        epoch: int) -> None:
    """Checkpoint, metrics.csv, run.json and config.json of ``run_dir`` belong together:
    one run id everywhere, config.json unchanged, metrics rows for epochs 1..epoch.
    (Folders written before run ids existed carry none and are only checked for the
    epochs.)"""
    ckpt, metrics, run_file = (run_dir / "checkpoint.npz", run_dir / "metrics.csv",
                               run_dir / RUN_FILE)
    run_id = meta.get("run_id")
    if run_file.exists():
        try:
            ident = json.loads(run_file.read_text())
            stored_id, stored_sha = ident["run_id"], ident["config_sha256"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{run_file} is unreadable or corrupted ({exc})") from None
        if stored_id != run_id:
            raise CheckpointError(f"{ckpt} belongs to run {run_id!r} but {run_file} to run "
                                  f"{stored_id!r}: the checkpoint is from another run folder")
        if not (run_dir / "config.json").exists() or _config_sha(run_dir) != stored_sha:
            raise CheckpointError(f"{run_dir / 'config.json'} was changed or replaced since "
                                  f"the run started (its SHA-256 differs from {run_file})")
    elif run_id is not None:
        raise CheckpointError(f"{run_file} is missing: {ckpt} is from run {run_id!r}, "
                              f"the folder does not record which run it holds")
    foreign = sorted({str(r.get("run_id") or "") for r in rows} - {str(run_id or "")})
    if foreign:
        raise CheckpointError(f"{metrics} holds rows of run(s) {foreign} but {ckpt} is from "
                              f"run {run_id!r}: metrics and checkpoint do not belong together")
    epochs = [r["epoch"] for r in rows]
    if epochs != list(range(1, epoch + 1)):
        raise CheckpointError(f"{metrics} has rows for epochs {epochs} but {ckpt} is at epoch "
                              f"{epoch}: metrics and checkpoint do not belong together")


#: train settings a resume may change (more epochs, another solver); the rest is the run
RESUME_OVERRIDABLE = ("epochs", "backend", "workers", "scheduler", "sweep_points",
                      "timeout_s", "startup_timeout_s",
                      "eval_batch_size")


def _check_same_run_config(cfg: dict[str, Any], meta: dict[str, Any], ckpt: Path) -> None:
    """The config a run resumes with is the checkpoint's, but for
    :data:`RESUME_OVERRIDABLE` train settings."""
    from .checkpoints import checkpoint_config

    saved = run_config(checkpoint_config(meta, ckpt)).to_dict()
    now = run_config(cfg).to_dict()
    for key in saved:
        a, b = saved[key], now.get(key)
        if key == "train":
            a = {k: v for k, v in a.items() if k not in RESUME_OVERRIDABLE}
            b = {k: v for k, v in (b or {}).items() if k not in RESUME_OVERRIDABLE}
        if a != b:
            diff = (sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                    if isinstance(a, dict) and isinstance(b, dict) else [])
            what = ", ".join(f"{key}.{k}" for k in diff) if diff else key
            raise CheckpointError(f"the config to resume with differs from the one stored in "
                                  f"{ckpt} ({what}): a resumed run continues with its own "
                                  f"config (only train.{', train.'.join(RESUME_OVERRIDABLE)} "
                                  f"may change)")


def _train_locked(cfg: dict[str, Any], run_dir: Path, model: FFEBM, data, config_path,
                  resume: bool, progress: bool, stop_after_epochs: int | None) -> TrainResult:
    """The training loop of :func:`train`, run while the folder is locked."""
    t = cfg["train"]
    x_train = data.x_train
    n = len(x_train)
    bs = int(t["batch_size"])
    steps_per_epoch = (n + bs - 1) // bs
    epochs = int(t["epochs"])
    opt_d, opts_a, opts_b, step = _optimizers(model, cfg, epochs * steps_per_epoch)
    rng = np.random.default_rng(cfg["seed"])
    start_epoch = 0
    ckpt = run_dir / "checkpoint.npz"
    rows: list[dict[str, Any]] = []
    if resume:
        arrays, meta = read_checkpoint(ckpt)
        try:
            start_epoch = int(meta["epoch"])
            load_model_state(model, arrays)
            opt_d.load_state_dict(unprefixed("opt_d", arrays))
            for i, opt in enumerate(opts_a):
                opt.load_state_dict(unprefixed(f"opt_a{i}", arrays))
            for i, opt in opts_b.items():
                opt.load_state_dict(unprefixed(f"opt_b{i}", arrays))
            rng.bit_generator.state = meta["rng_state"]
            for i, state in meta.get("converter_rng", {}).items():
                model.layers[int(i)].rng.bit_generator.state = state
            for layer in model.analog_layers:
                states = meta.get("device_rng", {}).get(layer.block.name)
                if states:
                    layer.block.device_rng.bit_generator.state = states[0]
                    layer.block.read_rng.bit_generator.state = states[1]
                    if len(states) > 2:  # runs from before tile converters have two
                        layer.block.converter_rng.bit_generator.state = states[2]
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"{ckpt} does not fit the model of its config "
                                  f"({type(exc).__name__}: {exc})") from None
        _check_same_run_config(cfg, meta, ckpt)
        # a kill between the metrics write and the checkpoint write leaves one row more
        rows = [r for r in _read_metrics(run_dir / "metrics.csv")
                if r["epoch"] <= start_epoch]
        _check_run_identity(run_dir, meta, rows, start_epoch)
        run_id = meta.get("run_id")
    else:
        run_id = uuid.uuid4().hex
        atomic_write(run_dir / "config.json", (json.dumps(cfg, indent=2) + "\n").encode())
        if config_path is not None:
            shutil.copyfile(config_path, run_dir / "config.toml")
        atomic_write(run_dir / RUN_FILE, (json.dumps(
            {"run_id": run_id, "config_sha256": _config_sha(run_dir)}, indent=2) + "\n"
        ).encode())

    t_start = time.perf_counter()
    analog = model.analog_layers
    blocks = ", ".join(f"{a.block.name}{a.block.layer_sizes}" for a in analog)
    if progress:
        print(f"run {run_dir}: {cfg['name']} on {data.name} ({n} train, "
              f"{len(data.x_test)} test); analog blocks {blocks}; backend {t['backend']}, "
              f"gradient {t['gradient']}", file=sys.stderr)
    epochs_done = 0
    solvers = _newton_solvers(model)
    adcs = [c for _, c in model.converters() if isinstance(c, ADC)]
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        buf = model.buffer
        dac0, adc0 = buf.dac_conversions, buf.adc_conversions
        buf.reset_peak()
        newton = _NewtonCounter(solvers)
        adc_inside = adc_total = 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=not progress, file=sys.stderr, leave=False)
        for b in bar:
            idx = order[b * bs : (b + 1) * bs]
            xb, yb = x_train[idx], data.y_train[idx]
            newton.mark()
            logits = model.forward(xb, train=True)
            newton.mark("free")
            for adc in adcs:
                inside = adc.last_inside_range
                if inside is not None:  # None: an ADC that does not clip
                    adc_inside += int(inside.sum())
                    adc_total += inside.size
            loss, dlogits = loss_and_grad(t["loss"], logits, yb)
            model.backward(dlogits)
            newton.mark("nudged")
            step()
            loss_sum += loss * len(idx)
            correct += int(round(accuracy(logits, yb) * len(idx)))
            seen = min((b + 1) * bs, n)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
        newton_cols = newton.row()  # training steps only, before the test solves
        clipped = 1.0 - adc_inside / adc_total if adc_total else None
        test_loss, test_acc = evaluate(model, data.x_test, data.y_test, t["loss"],
                                       int(t["eval_batch_size"]))
        rows.append({
            "epoch": epoch + 1, "train_loss": loss_sum / n, "train_accuracy": correct / n,
            "test_loss": test_loss, "test_accuracy": test_acc,
            "epoch_seconds": round(time.perf_counter() - t0, 3),
            "backend": t["backend"], "gradient": t["gradient"],
            **newton_cols,
            "dac_conversions": buf.dac_conversions - dac0,
            "adc_conversions": buf.adc_conversions - adc0,
            "adc_clipped": "" if clipped is None else round(clipped, 6),
            "buffer_peak_bits": buf.peak_bits, "buffer_capacity_bits": buf.capacity_bits,
            "run_id": run_id or "",
        })
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: train loss {loss_sum / n:.4f} acc "
                  f"{100 * correct / n:.2f}% | test loss {test_loss:.4f} acc "
                  f"{100 * test_acc:.2f}% | {rows[-1]['epoch_seconds']:.1f} s", file=sys.stderr)
        if clipped is not None and clipped > ADC_CLIP_WARNING:
            print(f"warning: epoch {epoch + 1}: the ADCs clipped "
                  f"{clipped:.1%} of their training readings, which "
                  "pass no gradient back; widen v_min/v_max (a calibrated ADC keeps the "
                  f"range of its first batch); analogeq diagnose {run_dir} shows each "
                  "converter", file=sys.stderr)
        _write_metrics(run_dir / "metrics.csv", rows)
        arrays = {**prefixed("model", model.state_dict()),
                  **prefixed("opt_d", opt_d.state_dict()),
                  **{k: v for i, opt in enumerate(opts_a)
                     for k, v in prefixed(f"opt_a{i}", opt.state_dict()).items()},
                  **{k: v for i, opt in opts_b.items()
                     for k, v in prefixed(f"opt_b{i}", opt.state_dict()).items()}}
        device_rng = {a.block.name: [a.block.device_rng.bit_generator.state,
                                     a.block.read_rng.bit_generator.state,
                                     a.block.converter_rng.bit_generator.state]
                      for a in model.analog_layers}
        converter_rng = {str(i): lay.rng.bit_generator.state
                         for i, lay in enumerate(model.layers)
                         if isinstance(lay, DAC | ADC) and lay.rng is not None}
        write_checkpoint(ckpt, arrays, {"epoch": epoch + 1,
                                        "rng_state": rng.bit_generator.state,
                                        "converter_rng": converter_rng,
                                        "device_rng": device_rng, "config": cfg,
                                        "run_id": run_id})
        epochs_done += 1
        if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
            break
    if rows:
        plot_learning_curve(rows, run_dir / "learning_curve.png",
                            f"{cfg['name']} ({t['backend']})")
    _write_run_netlists(model, run_dir / "netlists")
    last = rows[-1] if rows else {"test_accuracy": float("nan"), "test_loss": float("nan")}
    return TrainResult(run_dir, float(last["test_accuracy"]), float(last["test_loss"]),
                       len(rows), time.perf_counter() - t_start)


def _newton_solvers(model: FFEBM) -> list:
    """The distinct backends of the model's analog layers that count Newton iterations
    (``stats`` with ``samples`` and ``sample_iterations``: the NumPy solver)."""
    out, seen = [], set()
    for layer in model.analog_layers:
        be = layer.backend
        stats = getattr(be, "stats", None)
        if isinstance(stats, dict) and "sample_iterations" in stats and id(be) not in seen:
            seen.add(id(be))
            out.append(be)
    return out


class _NewtonCounter:
    """Newton iterations per sample solve over an epoch's training steps, split into the
    free phase (forward) and the nudged phases (backward)."""

    def __init__(self, solvers: list) -> None:
        self.solvers = solvers
        self.totals = {"free": [0, 0], "nudged": [0, 0]}  # samples, sample iterations
        for be in solvers:
            be.stats["max_sample_iterations"] = 0
        self._last = self._now()

    def _now(self) -> tuple[int, int]:
        return (sum(int(be.stats.get("samples", 0)) for be in self.solvers),
                sum(int(be.stats["sample_iterations"]) for be in self.solvers))

    def mark(self, phase: str | None = None) -> None:
        """Attribute the solves since the last mark to ``phase`` (None: to nothing)."""
        now = self._now()
        if phase is not None:
            tot = self.totals[phase]
            tot[0] += now[0] - self._last[0]
            tot[1] += now[1] - self._last[1]
        self._last = now

    def row(self) -> dict[str, Any]:
        """The metrics.csv columns (empty strings without a counting solver)."""
        keys = ("newton_iterations_mean", "newton_iterations_max",
                "newton_iterations_free_mean", "newton_iterations_nudged_mean")
        if not self.solvers:
            return dict.fromkeys(keys, "")

        def mean(samples: int, its: int) -> float | str:
            return round(its / samples, 4) if samples else ""

        (fs, fi), (ns, ni) = self.totals["free"], self.totals["nudged"]
        return dict(zip(keys, (
            mean(fs + ns, fi + ni),
            max(int(be.stats.get("max_sample_iterations", 0)) for be in self.solvers),
            mean(fs, fi), mean(ns, ni)), strict=True))


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
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())
