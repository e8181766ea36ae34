"""Plots of runs (matplotlib, Agg backend: files, never windows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_learning_curve"]


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write loss and accuracy per epoch (train and test) of ``rows`` (metrics.csv rows) to
    ``path`` (PNG)."""
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
