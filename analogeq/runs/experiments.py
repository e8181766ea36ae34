"""Measurements behind RESULTS.md that are not training runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..blocks import ResistiveBlock

__all__ = ["baselines", "beta_sweep"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def beta_sweep(
    out: str | Path | None = None,
    sizes: Sequence[int] = (64, 32, 10),
    nudge_currents_A: Sequence[float] = (1e-10, 1e-9, 1e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5),
    batch: int = 16,
    seed: int = 0,
) -> str:
    """Relative L2 error of centered EP versus implicit differentiation as a function of
    the nudge strength, on ngspice and on the NumPy backend.

    beta is set so that the largest nudge current equals each value of
    ``nudge_currents_A``; the error is the worst over the block's conductance arrays and
    its input gradient. Returns (and optionally writes) a markdown table.
    """
    rng = np.random.default_rng(seed)
    block = ResistiveBlock(sizes, seed=seed + 1)
    u = rng.uniform(-1.0, 1.0, (batch, sizes[0]))
    delta = rng.normal(size=(batch, sizes[-1]))
    exact = block.exact_gradients(u, delta)
    default = block.params.nudge_A
    lines = [
        f"EP error vs nudge, block {tuple(sizes)}, batch {batch}, seed {seed} "
        f"(default nudge_current_A = {default:g} A)",
        "",
        "| max nudge current (A) | beta (A per unit delta) | worst rel. L2 error, ngspice "
        "| worst rel. L2 error, NumPy |",
        "|---|---|---|---|",
    ]
    for i_nudge in nudge_currents_A:
        beta = i_nudge / np.abs(delta).max()
        row = []
        for backend in ("ngspice", "numpy"):
            ep = block.ep_gradients(u, delta, beta=beta, backend=backend)
            errs = [_rel(a, b) for a, b in zip(ep.conductances, exact.conductances, strict=True)]
            errs.append(_rel(ep.inputs, exact.inputs))
            row.append(max(errs))
        mark = " (default)" if np.isclose(i_nudge, default) else ""
        lines.append(f"| {i_nudge:.0e}{mark} | {beta:.3e} | {row[0]:.2e} | {row[1]:.2e} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if out:
        Path(out).write_text(table)
    return table


def split_layers(layers: list[dict], n_blocks: int) -> list[dict]:
    """Split the single deep ``resistive`` layer of ``layers`` into ``n_blocks`` blocks with
    the same total number of hidden layers. Each crossing between blocks is an ADC, a
    digital batch norm (it removes the bias-rail offsets and restores the gain that the
    resistive block took away), a hardtanh and a DAC; intermediate block outputs have the
    hidden width.

    Per-layer amplifier gains (``amplifier_gain`` / ``amplifier_back_gain`` given as one
    value per hidden layer) are split with the hidden layers; a single gain stays a single
    gain for every block. A block with amplifiers has a stage after every hidden layer, so
    the blocks together have as many stages as the deep block."""
    import copy

    idx = [i for i, spec in enumerate(layers) if spec["type"] == "resistive"]
    if len(idx) != 1:
        raise ValueError("split_layers needs exactly one resistive layer to split")
    i = idx[0]
    deep = layers[i]
    hidden = list(deep["hidden"])
    if len(hidden) % n_blocks:
        raise ValueError(f"{len(hidden)} hidden layers cannot be split into {n_blocks} blocks")
    per = len(hidden) // n_blocks
    gains = {}
    for key in ("amplifier_gain", "amplifier_back_gain"):
        value = deep.get(key)
        if isinstance(value, list | tuple):
            if len(value) != len(hidden):
                raise ValueError(f"{key} has {len(value)} values for {len(hidden)} hidden "
                                 "layers: one per hidden layer is needed to split them")
            gains[key] = list(value)
    adc = next((s for s in layers[i + 1 :] if s["type"] == "adc"),
               {"type": "adc", "bits": 8, "v_min": -0.25, "v_max": 0.25})
    dac = next((s for s in layers[:i] if s["type"] == "dac"), {"type": "dac", "bits": 8})
    out: list[dict] = []
    for k in range(n_blocks):
        spec = copy.deepcopy(deep)
        spec["hidden"] = hidden[k * per : (k + 1) * per]
        for key, values in gains.items():
            spec[key] = values[k * per : (k + 1) * per]
        spec["name"] = f"b{k}"
        if k < n_blocks - 1:
            spec["out"] = hidden[(k + 1) * per - 1]
            out += [spec, copy.deepcopy(adc), {"type": "batchnorm"},
                    {"type": "activation", "name": "hardtanh"}, copy.deepcopy(dac)]
        else:
            out.append(spec)
    return layers[:i] + out + layers[i + 1 :]


def splitting(
    config: str | Path,
    splits: Sequence[int] = (1, 2, 4),
    *,
    backend: str | None = None,
    epochs: int | None = None,
    out_dir: str | Path = "runs/splitting",
    seed: int | None = None,
) -> str:
    """Train the same total depth as 1, 2 and 4 blocks; return a markdown table."""
    import time

    from .config import load_config
    from .training import train

    overrides = {"train.backend": backend, "train.epochs": epochs, "seed": seed}
    base = load_config(config, overrides)
    lines = [
        "| blocks | block sizes | test accuracy | train time (s) | backend |",
        "|---|---|---|---|---|",
    ]
    for n in splits:
        cfg = load_config(config, overrides)
        cfg["model"]["layers"] = split_layers(base["model"]["layers"], n)
        cfg["name"] = f"{base['name']}_{n}blocks"
        run = Path(out_dir) / f"{cfg['name']}-{cfg['train']['backend']}-{time.strftime('%H%M%S')}"
        res = train(cfg, run)
        sizes = [s for s in cfg["model"]["layers"] if s["type"] == "resistive"]
        desc = " + ".join(f"{len(s['hidden'])}h" for s in sizes)
        lines.append(f"| {n} | {desc} | {100 * res.test_accuracy:.2f}% | {res.seconds:.0f} | "
                     f"{cfg['train']['backend']} |")
        print(lines[-1])
    table = "\n".join(lines) + "\n"
    print(table)
    return table


def baselines(
    dataset: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    *,
    hidden: int = 100,
    seed: int = 0,
    limit_train: int | None = None,
) -> str:
    """Digital reference points for an analog result on the same pixels: a multinomial
    logistic regression and a ``784-hidden-10`` MLP trained with backpropagation
    (scikit-learn's ``LogisticRegression`` and ``MLPClassifier``, their defaults apart
    from the iteration budget: lbfgs for 200 iterations; Adam for at most 30 epochs with
    early stopping on 10% of the training set). Pixels in [0, 1], the dataset's own
    train/test split. Returns a markdown table with test accuracy and wall time."""
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from .datasets import load_dataset

    ds = load_dataset(dataset, data_dir, flatten=True, limit_train=limit_train)
    models = {
        "logistic regression (sklearn LogisticRegression, lbfgs, 200 iterations)":
            LogisticRegression(max_iter=200),
        f"MLP {ds.x_train.shape[1]}-{hidden}-{ds.num_classes} (sklearn MLPClassifier, "
        "Adam, early stopping)":
            MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=30, early_stopping=True,
                          random_state=seed),
    }
    lines = [f"Digital baselines on {dataset} ({len(ds.x_train)} training, "
             f"{len(ds.x_test)} test images), seed {seed}", "",
             "| model | test accuracy | train time (s) |", "|---|---:|---:|"]
    for name, model in models.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(ds.x_train, ds.y_train)
        seconds = time.perf_counter() - t0
        acc = float((model.predict(ds.x_test) == ds.y_test).mean())
        lines.append(f"| {name} | {100 * acc:.2f}% | {seconds:.0f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"
