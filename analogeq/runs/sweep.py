"""Sensitivity sweeps: train and evaluate a config across values of one parameter.

A parameter PATH is either a dotted path into the config (``train.lr``, ``seed``...) or
``<layer type>.<key>`` applied to every layer of that type (``adc.bits``, ``dac.bits``,
``resistive.diode_rail_V``, ``resistive.device.read_noise_rel``). Each (value, seed) pair is
an independent training run; runs go to worker processes in parallel.
"""

from __future__ import annotations

import copy
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .config import ConfigError, resolve_config

__all__ = ["SweepPoint", "apply_param", "parse_values", "run_sweep", "format_table"]


@dataclass(frozen=True)
class SweepPoint:
    """One finished run of a sweep (accuracy as a fraction)."""

    value: Any
    seed: int
    test_accuracy: float
    test_loss: float
    seconds: float
    run_dir: str


def parse_values(text: str) -> list[Any]:
    """``"4,6,8"`` -> [4, 6, 8]; floats and ``none`` (-> None) allowed."""
    out: list[Any] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() in ("none", "ideal"):
            out.append(None)
            continue
        try:
            out.append(int(item))
        except ValueError:
            try:
                out.append(float(item))
            except ValueError:
                out.append(item)
    if not out:
        raise ConfigError("--values needs at least one value")
    return out


def apply_param(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``cfg`` with ``path`` set to ``value`` (see the module docstring)."""
    cfg = copy.deepcopy(cfg)
    head, _, rest = path.partition(".")
    layer_types = {spec["type"] for spec in cfg["model"]["layers"]}
    if head in layer_types and rest:
        for spec in cfg["model"]["layers"]:
            if spec["type"] != head:
                continue
            keys = rest.split(".")
            node = spec
            for k in keys[:-1]:
                sub = node.get(k)
                if sub is None:
                    sub = {}
                elif isinstance(sub, str):  # a preset name becomes a table
                    sub = {"preset": sub}
                node[k] = sub
                node = sub
            node[keys[-1]] = value
        return resolve_config(cfg)  # re-validate keys
    if head in ("adc", "dac", "resistive", "linear", "conv2d"):
        raise ConfigError(f"--param {path!r}: the model has no {head!r} layer")
    if value is None:
        raise ConfigError(f"--param {path!r}: 'none' only applies to layer settings")
    return resolve_config(cfg, {path: value})  # dotted paths into the config tables


def _run_one(job: tuple[dict[str, Any], str, Any, int]) -> SweepPoint:
    from .training import train

    cfg, run_dir, value, seed = job
    res = train(cfg, run_dir, progress=False)
    return SweepPoint(value, seed, res.test_accuracy, res.test_loss, res.seconds, run_dir)


def run_sweep(
    cfg: dict[str, Any],
    param: str,
    values: list[Any],
    *,
    seeds: int = 1,
    out_dir: str | Path,
    workers: int | None = None,
    progress: bool = True,
) -> list[SweepPoint]:
    """Train ``cfg`` for every value x seed; write ``sweep.csv`` and ``sweep.png``.

    Args:
        workers: parallel worker processes (default: CPU count, at most the number of runs;
            each has its own ngspice when the backend is ngspice).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for value in values:
        for s in range(seeds):
            c = apply_param(cfg, param, value)
            c["seed"] = int(cfg["seed"]) + s
            tag = "none" if value is None else str(value)
            jobs.append((c, str(out / f"{param}={tag}-seed{c['seed']}"), value, c["seed"]))
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    points: list[SweepPoint] = []
    bar = tqdm(total=len(jobs), desc=f"sweep {param}", unit="run", disable=not progress,
               file=sys.stderr)
    if n_workers == 1:
        for job in jobs:
            points.append(_run_one(job))
            bar.update()
    else:
        with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_one, job) for job in jobs]
            for fut in as_completed(futures):
                points.append(fut.result())
                bar.update()
                bar.set_postfix(last=f"{100 * points[-1].test_accuracy:.2f}%")
    bar.close()
    order = {(repr(v), s): i for i, (_, _, v, s) in enumerate(jobs)}
    points.sort(key=lambda p: order[(repr(p.value), p.seed)])
    _write(out, param, values, points)
    return points


def _write(out: Path, param: str, values: list[Any], points: list[SweepPoint]) -> None:
    with (out / "sweep.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([param, "seed", "test_accuracy", "test_loss", "seconds", "run_dir"])
        for p in points:
            w.writerow([p.value, p.seed, p.test_accuracy, p.test_loss, round(p.seconds, 2),
                        p.run_dir])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["ideal" if v is None else str(v) for v in values]
    means, stds = [], []
    for v in values:
        acc = [100 * p.test_accuracy for p in points if p.value == v]
        means.append(float(np.mean(acc)))
        stds.append(float(np.std(acc)))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    numeric = all(isinstance(v, int | float) for v in values)
    xs = values if numeric else list(range(len(values)))
    ax.errorbar(xs, means, yerr=stds, fmt="o-", capsize=4)
    if not numeric:
        ax.set_xticks(xs, labels)
    ax.set_xlabel(param)
    ax.set_ylabel("test accuracy (%)")
    seeds = len(points) // max(len(values), 1)
    ax.set_title(f"sensitivity to {param} (mean +- std over {seeds} seed(s))")
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)
    plt.close(fig)


def format_table(param: str, values: list[Any], points: list[SweepPoint]) -> str:
    """A text table of a sweep: mean and spread of the test accuracy per value of ``param``."""
    lines = [f"| {param} | test accuracy (mean +- std) | runs |", "|---|---|---|"]
    for v in values:
        acc = [100 * p.test_accuracy for p in points if p.value == v]
        lines.append(f"| {'ideal' if v is None else v} | {np.mean(acc):.2f} +- "
                     f"{np.std(acc):.2f}% | {len(acc)} |")
    return "\n".join(lines)


def default_out(cfg: dict[str, Any], param: str) -> Path:
    return Path("runs") / f"sweep-{cfg['name']}-{param}-{time.strftime('%Y%m%d-%H%M%S')}"
