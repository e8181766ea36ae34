"""Evaluation: a model's loss and accuracy on a dataset, and a finished run's test score
re-measured on any backend."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from digital.losses import accuracy, mse_loss, softmax_cross_entropy

from ..model import FFEBM
from .checkpoints import load_model_state, read_checkpoint
from .config import build_model, resolve_config
from .datasets import Dataset, load_dataset

__all__ = ["evaluate", "evaluate_run", "loss_and_grad", "run_dataset"]


def loss_and_grad(name: str, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean loss, dL/dlogits (B, C)) of a run's loss ``"cross_entropy"`` or ``"mse"``
    (one-hot targets) on integer ``labels`` (B,)."""
    if name == "cross_entropy":
        return softmax_cross_entropy(logits, labels)
    target = np.eye(logits.shape[1])[labels]
    return mse_loss(logits, target)


def run_dataset(cfg: dict[str, Any]) -> Dataset:
    """The dataset of a resolved run config (its ``data`` table)."""
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
        total_loss += loss_and_grad(loss, logits, lb)[0] * len(lb)
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
    data = run_dataset(cfg)
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
