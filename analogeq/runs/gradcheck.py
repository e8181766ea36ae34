"""Static gradient analysis of an ff-EBM: the gradient a chip computes against the exact one.

For one batch of training samples the full model gradient is computed twice:

* **EP**: centered Equilibrium Propagation in every analog block on the chosen backend
  (``numpy`` or ``ngspice``), backpropagation through the digital layers, the blocks' EP
  input gradients handed back to the digital side: what training computes with
  ``train.gradient = "ep"``;
* **exact**: implicit differentiation in every analog block
  (:class:`~analogeq.blocks.gradients.ImplicitDifferentiation`) with the NumPy solver,
  backpropagation through the digital layers: the exact gradient of the model's loss.

Then, per parameter array (every crossbar ``R0 ... R{L}`` of every block and every digital
weight, which EP's errors reach through the input gradients), the cosine similarity, the
relative error ``||g_ep - g_exact|| / ||g_exact||`` and both norms. This is the static
analysis of the ff-EBM paper (per layer, EP-in-the-blocks + BP against the exact
gradient).

Both passes start from the same model state (converter calibration, batch-norm statistics)
and the same random-generator states (DAC/ADC noise, device read noise), so they see the
same forward pass up to the solver: with the ``ngspice`` backend the EP pass's free phases
are ngspice's, the exact pass's NumPy's. With device read noise every solve reads the
devices anew (the free and nudged phases of EP see different reads, as on a chip), so the
comparison includes that noise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks import ResistiveBlock
from ..errors import CheckpointError, GradcheckError, RunFolderError
from ..model import FFEBM, AnalogLayer
from .checkpoints import checkpoint_config, load_model_state, read_checkpoint
from .config import build_model, load_config, resolve_config, run_config
from .evaluation import loss_and_grad, run_dataset

__all__ = ["ArrayCheck", "GradcheckResult", "GRADCHECK_BACKENDS", "gradcheck",
           "compare_gradients", "model_gradients", "format_table", "plot_gradcheck"]

#: backends the EP pass may run on (the parallel ngspice backends solve the same circuits
#: as ``ngspice``; one batch needs no worker pool)
GRADCHECK_BACKENDS = ("numpy", "ngspice")
#: an exact gradient below this fraction of the largest norm of another array of its layer
#: is rounding noise (:attr:`ArrayCheck.negligible`)
NEGLIGIBLE = 1e-10


@dataclass
class ArrayCheck:
    """The comparison of one parameter array's two gradients.

    Attributes:
        layer: index of the layer in the model chain (``FFEBM.layers``; a ``Flatten`` the
            config did not list may sit before a linear or resistive layer).
        layer_type: class name of the layer (``AnalogLayer``, ``Linear``, ``BatchNorm``...).
        block: the analog block's name, or None for a digital layer.
        name: ``R{k}`` for crossbar ``k`` of a block, ``V{l}`` for the trainable clamp bias
            voltages of its hidden layer ``l``, else the digital parameter's name.
        connects: for a crossbar, the layers it joins (``in->h1`` ...), else ``""``.
        shape: the array's shape.
        norm_exact / norm_ep: L2 norms of the exact and the EP gradient.
        cosine: cosine similarity of the two (nan if either is zero).
        rel_error: ``||g_ep - g_exact|| / ||g_exact||`` (0 if both are zero, inf if only
            the exact one is).
        negligible: the exact gradient is zero or at rounding level, below
            :data:`NEGLIGIBLE` times the largest gradient norm of another array of the same
            layer (e.g. the bias of a linear layer followed by batch norm, whose gradient is
            zero in exact arithmetic): its cosine and relative error compare rounding
            noise and are left out of the worst-case summary.
    """

    layer: int
    layer_type: str
    block: str | None
    name: str
    connects: str
    shape: tuple[int, ...]
    norm_exact: float
    norm_ep: float
    cosine: float
    rel_error: float
    negligible: bool = False

    @property
    def analog(self) -> bool:
        """True for a crossbar of an analog block."""
        return self.block is not None

    @property
    def group(self) -> str:
        """The block or layer the array belongs to (how tables and plots group arrays)."""
        if self.block is not None:
            return f"{self.block} (layer {self.layer})"
        return f"layer {self.layer} {self.layer_type}"

    @property
    def label(self) -> str:
        """Short label: ``b0 R1`` or ``0 Linear.w``."""
        if self.block is not None:
            return f"{self.block} {self.name}"
        return f"{self.layer} {self.layer_type}.{self.name}"


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` measured (see :func:`format_table` for the markdown).

    Attributes:
        source: the run folder or config file analysed.
        kind: ``"run"`` (a trained checkpoint) or ``"config"`` (a fresh model).
        name: the run's name (config ``name``).
        epoch: the checkpoint's epoch (None for a fresh model).
        dataset / loss: the config's dataset and loss.
        backend: the EP pass's solver.
        batch_size / seed: the batch (training split) and the seed that drew it.
        betas: block name -> beta the EP pass used (amperes per unit of delta).
        beta_rule: how beta was set (default rule, --beta or --nudge-current).
        loss_ep / loss_exact: the batch loss of each pass's forward.
        seconds_ep / seconds_exact: wall time of each pass.
        arrays: one :class:`ArrayCheck` per parameter array, in model order.
        out_dir: where ``gradcheck.md``, ``.json`` and ``.png`` were written (or None).
    """

    source: str
    kind: str
    name: str
    epoch: int | None
    dataset: str
    loss: str
    backend: str
    batch_size: int
    seed: int
    betas: dict[str, float]
    beta_rule: str
    loss_ep: float
    loss_exact: float
    seconds_ep: float
    seconds_exact: float
    arrays: list[ArrayCheck] = field(default_factory=list)
    out_dir: Path | None = None

    def worst(self, analog: bool) -> tuple[float, float]:
        """(lowest cosine, largest relative error) over the analog (or digital) arrays,
        negligible ones left out (nan, nan if there are none)."""
        rows = [a for a in self.arrays if a.analog == analog and not a.negligible]
        if not rows:
            return (math.nan, math.nan)
        return (min(a.cosine for a in rows), max(a.rel_error for a in rows))

    @property
    def table(self) -> str:
        """The markdown report (:func:`format_table`)."""
        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers as None)."""
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict[str, Any] = {
            k: getattr(self, k) for k in ("source", "kind", "name", "epoch", "dataset", "loss",
                                          "backend", "batch_size", "seed", "beta_rule")
        }
        out["betas"] = {k: num(v) for k, v in self.betas.items()}
        for k in ("loss_ep", "loss_exact", "seconds_ep", "seconds_exact"):
            out[k] = num(getattr(self, k))
        out["arrays"] = [
            {"layer": a.layer, "layer_type": a.layer_type, "block": a.block, "name": a.name,
             "connects": a.connects, "shape": list(a.shape), "norm_exact": num(a.norm_exact),
             "norm_ep": num(a.norm_ep), "cosine": num(a.cosine), "rel_error": num(a.rel_error),
             "negligible": a.negligible}
            for a in self.arrays
        ]
        for key, analog in (("analog", True), ("digital", False)):
            cos, rel = self.worst(analog)
            out[f"worst_{key}"] = {"cosine": num(cos), "rel_error": num(rel)}
        return out


# -- the two gradients ---------------------------------------------------------------


def model_gradients(
    model: FFEBM, x: np.ndarray, y: np.ndarray, loss: str, *, mode: str,
    backend: str = "numpy",
) -> tuple[float, list[np.ndarray]]:
    """(batch loss, copies of every parameter gradient in
    :meth:`~analogeq.model.FFEBM.parameter_groups` order) of one training step's forward
    and backward, with every analog block solved by ``backend`` and its backward in
    ``mode`` (``"ep"`` or ``"exact"``, :data:`~analogeq.model.ffebm.GRADIENT_MODES`).
    Nothing is updated; the model keeps what the forward pass changes (converter
    calibration, batch-norm statistics)."""
    model.set_backend(backend)
    model.set_gradient(mode)
    logits = model.forward(x, train=True)
    value, dlogits = loss_and_grad(loss, logits, y)
    model.backward(dlogits)
    _, grads, _ = model.parameter_groups()
    return float(value), [np.array(g, dtype=np.float64, copy=True) for g in grads]


def _generators(model: FFEBM) -> list[np.random.Generator]:
    """Every random generator the forward and backward passes may draw from (converter
    noise of digital and tile converters, device read noise, DAC noise)."""
    from digital.converters import Converter

    from ..hardware.memristors import MemristorArray

    found: dict[int, np.random.Generator] = {}
    seen: set[int] = set()
    kinds = (Converter, ResistiveBlock, MemristorArray, AnalogLayer)

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for v in vars(obj).values():
            items = v if isinstance(v, list | tuple) else [v]
            for item in items:
                if isinstance(item, np.random.Generator):
                    found.setdefault(id(item), item)
                elif isinstance(item, kinds):
                    visit(item)

    for lay in model.layers:
        visit(lay)
    return list(found.values())


def _crossbar_connects(block: ResistiveBlock, k: int) -> str:
    n_hidden = len(block.layer_sizes) - 2
    names = ["in", *(f"h{i + 1}" for i in range(n_hidden)), "out"]
    return f"{names[k]}->{names[k + 1]}"


def _labels(model: FFEBM) -> list[tuple[int, str, str | None, str, str]]:
    """(layer index, layer type, block name, array name, connects) per parameter array,
    in :meth:`~analogeq.model.FFEBM.parameter_groups` order."""
    out = []
    for i, lay in enumerate(model.layers):
        for name, _, _ in lay.named_params():
            if isinstance(lay, AnalogLayer) and name.startswith("v"):
                # params v1, v2, ...: trainable clamp bias voltages of hidden layer 1, 2, ...
                out.append((i, type(lay).__name__, lay.block.name, f"V{name[1:]}",
                            f"h{name[1:]} clamp bias"))
            elif isinstance(lay, AnalogLayer):
                k = int(name[1:])  # params g0, g1, ...: crossbar R0, R1, ...
                out.append((i, type(lay).__name__, lay.block.name, f"R{k}",
                            _crossbar_connects(lay.block, k)))
            else:
                out.append((i, type(lay).__name__, None, name, ""))
    return out


def _compare(g_ep: np.ndarray, g_ex: np.ndarray) -> tuple[float, float, float, float]:
    """(norm exact, norm EP, cosine, relative error)."""
    a, b = g_ep.ravel(), g_ex.ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else math.nan
    diff = float(np.linalg.norm(a - b))
    rel = diff / nb if nb > 0 else (0.0 if diff == 0 else math.inf)
    return nb, na, cos, rel


def compare_gradients(
    model: FFEBM, x: np.ndarray, y: np.ndarray, loss: str, *, backend: str = "numpy",
    beta: float | None = None, nudge_current_A: float | None = None,
) -> tuple[list[ArrayCheck], dict[str, Any]]:
    """The EP and the exact gradient of ``model`` on the batch (x, y), compared per array.

    Both passes start from the model's current state and random-generator states (both
    are restored after each pass, so the model is left as it was). ``beta`` sets the EP
    nudge strength of every block (amperes per unit of delta); ``nudge_current_A`` sets the
    largest nudge current of the default rule instead (beta = nudge_current_A / max|delta|);
    neither: each block's own setting.

    Returns:
        (one :class:`ArrayCheck` per parameter array, pass info: ``betas`` (block ->
        beta used), ``loss_ep``, ``loss_exact``, ``seconds_ep``, ``seconds_exact``).
    """
    if beta is not None and nudge_current_A is not None:
        raise GradcheckError("give beta or nudge_current_A, not both")
    for what, v in (("beta", beta), ("nudge_current_A", nudge_current_A)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise GradcheckError(f"{what} must be finite and > 0, got {v!r}")
    analog = model.analog_layers
    if not analog:
        raise GradcheckError("the model has no analog block: nothing for EP to estimate")
    if backend not in GRADCHECK_BACKENDS:
        raise GradcheckError(f"backend must be one of {GRADCHECK_BACKENDS}, got {backend!r}")
    need = model.auto_buffer_bits(len(x))  # a batch larger than the config's may not fit
    if need > model.buffer.capacity_bits:
        model.buffer.capacity_bits = need
    state = model.state_dict()
    gens = _generators(model)
    rng_states = [g.bit_generator.state for g in gens]
    saved = [(lay.beta, lay.block.params, lay.gradient, lay.backend) for lay in analog]

    def restore() -> None:
        model.load_state_dict(state)
        for g, s in zip(gens, rng_states, strict=True):
            g.bit_generator.state = s

    try:
        t0 = time.perf_counter()
        loss_ex, g_ex = model_gradients(model, x, y, loss, mode="exact", backend="numpy")
        t_ex = time.perf_counter() - t0
        restore()
        for lay in analog:
            if beta is not None:
                lay.beta = float(beta)
            if nudge_current_A is not None:
                lay.beta = None
                lay.block.params = dataclasses.replace(lay.block.params,
                                                       nudge_current_A=float(nudge_current_A))
        t0 = time.perf_counter()
        loss_ep, g_ep = model_gradients(model, x, y, loss, mode="ep", backend=backend)
        t_ep = time.perf_counter() - t0
        betas = {lay.block.name: float(lay.last_beta) for lay in analog}
    finally:
        restore()
        for lay, (b, params, grad, be) in zip(analog, saved, strict=True):
            lay.beta, lay.block.params, lay.gradient, lay.backend = b, params, grad, be
    rows = []
    for (i, kind, block, name, connects), a, b in zip(_labels(model), g_ep, g_ex, strict=True):
        rows.append(ArrayCheck(i, kind, block, name, connects, tuple(a.shape),
                               *_compare(a, b)))
    for r in rows:
        others = [o.norm_exact for o in rows if o.layer == r.layer and o is not r]
        r.negligible = r.norm_exact == 0 or (
            bool(others) and r.norm_exact <= NEGLIGIBLE * max(others))
    info = {"betas": betas, "loss_ep": loss_ep, "loss_exact": loss_ex,
            "seconds_ep": t_ep, "seconds_exact": t_ex}
    return rows, info


# -- the command ---------------------------------------------------------------------


def _load(source: Path | dict[str, Any]) -> tuple[dict[str, Any], str,
                                                  dict[str, np.ndarray] | None,
                                                  dict[str, Any] | None]:
    """(resolved config, kind, checkpoint arrays, checkpoint metadata) of a run folder, a
    config file or a config dictionary."""
    if isinstance(source, dict):
        return resolve_config(source), "config", None, None
    if not source.exists():
        raise GradcheckError(f"{source} does not exist: give a run folder (holding "
                             f"checkpoint.npz) or a config .toml file")
    if source.is_dir():
        ckpt = source / "checkpoint.npz"
        if not ckpt.exists():
            raise RunFolderError(f"{source} is not a run folder: {ckpt} does not exist "
                                 f"(give a trained run folder or a config .toml file)")
        arrays, meta = read_checkpoint(ckpt)
        cfg = resolve_config(checkpoint_config(meta, ckpt))
        return cfg, "run", arrays, meta
    if source.suffix.lower() != ".toml":
        raise GradcheckError(f"{source} is neither a run folder nor a config .toml file")
    return load_config(source), "config", None, None


def default_out(source: str | Path | dict, cfg: dict[str, Any], kind: str) -> Path:
    """The run folder itself for a run, ``runs/gradcheck-<name>`` for a config."""
    return Path(source) if kind == "run" else Path("runs") / f"gradcheck-{cfg['name']}"


def gradcheck(
    source: str | Path | dict[str, Any],
    *,
    split: int | None = None,
    backend: str | None = None,
    batch_size: int = 64,
    seed: int | None = None,
    beta: float | None = None,
    nudge_current_A: float | None = None,
    out: str | Path | None = None,
    write: bool = True,
) -> GradcheckResult:
    """Compare the EP gradient of a model with its exact gradient, per parameter array.

    Args:
        source: a run folder (its ``checkpoint.npz``: the trained model), a config
            ``.toml`` or a config dictionary (a fresh model, initialised from the config's
            seed).
        split: with a config: split its one deep resistive layer into this many blocks
            first (:func:`~analogeq.runs.experiments.split_layers`; the name gets
            ``_<split>blocks``).
        backend: solver of the EP pass, ``"numpy"`` or ``"ngspice"`` (default: the
            config's ``train.backend``; ``ngspice-parallel`` / ``ngspice-dask`` configs use
            ``ngspice``). The exact pass always uses NumPy.
        batch_size: samples drawn (without replacement) from the training split (at most
            all of them).
        seed: seed of the batch draw (default: the config's seed).
        beta: EP nudge strength of every block in amperes per unit of delta (default: each
            block's config ``beta``, else its default rule).
        nudge_current_A: instead of ``beta``: the largest nudge current of the default rule.
        out: output folder of ``gradcheck.md``, ``gradcheck.json`` and ``gradcheck.png``
            (default: the run folder, or ``runs/gradcheck-<name>`` for a config).
        write: write those files (False: only return the result).

    Raises:
        GradcheckError: a path that is neither a run folder nor a config file, a model
            without analog blocks, a bad option.
        RunFolderError / CheckpointError: a folder without checkpoint, or an unreadable
            checkpoint or one that does not fit its config.
        ConfigError: an invalid config.
    """
    if not isinstance(source, dict):
        source = Path(source)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GradcheckError(f"batch size must be an integer >= 1, got {batch_size!r}")
    cfg, kind, arrays, meta = _load(source)
    label = "config dictionary" if isinstance(source, dict) else str(source)
    if split is not None:
        cfg = _split(cfg, split, kind, label)
    rc = run_config(cfg)
    if not rc.model.resistive:
        raise GradcheckError(f"{label}: the model has no 'resistive' layer: no analog block "
                             f"whose EP gradient could be checked")
    if backend is None:
        backend = "ngspice" if rc.train.backend.startswith("ngspice") else rc.train.backend
    if backend not in GRADCHECK_BACKENDS:
        raise GradcheckError(f"backend must be one of {', '.join(GRADCHECK_BACKENDS)}, "
                             f"got {backend!r}")
    seed = rc.seed if seed is None else int(seed)
    data = run_dataset(cfg)
    n = len(data.x_train)
    if n == 0:
        raise GradcheckError(f"dataset {data.name!r} has no training samples")
    model = build_model(cfg, data.x_train.shape[1:], backend="numpy")
    try:
        if arrays is not None:
            ckpt = source / "checkpoint.npz"
            try:
                load_model_state(model, arrays)
                for lay in model.analog_layers:
                    states = (meta or {}).get("device_rng", {}).get(lay.block.name) or []
                    gens = (lay.block.device_rng, lay.block.read_rng, lay.block.converter_rng)
                    for g, s in zip(gens, states, strict=False):
                        g.bit_generator.state = s
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                raise CheckpointError(f"{ckpt} does not fit the model of its config "
                                      f"({type(exc).__name__}: {exc})") from None
        idx = np.sort(np.random.default_rng(seed).choice(n, size=min(batch_size, n),
                                                         replace=False))
        rows, info = compare_gradients(model, data.x_train[idx], data.y_train[idx],
                                       rc.train.loss, backend=backend, beta=beta,
                                       nudge_current_A=nudge_current_A)
        if beta is not None:
            rule = f"beta = {beta:g} A per unit delta (--beta)"
        elif nudge_current_A is not None:
            rule = f"beta = {nudge_current_A:g} A / max|delta| (--nudge-current)"
        else:
            rule = "each block's own: config beta, else nudge_current_A / max|delta|"
    finally:
        model.close()
    result = GradcheckResult(
        source=label, kind=kind, name=str(cfg["name"]),
        epoch=None if meta is None else meta.get("epoch"),
        dataset=str(data.name), loss=rc.train.loss, backend=backend, batch_size=len(idx),
        seed=seed, beta_rule=rule, arrays=rows, **info,
    )
    if write:
        out_dir = Path(out) if out is not None else default_out(source, cfg, kind)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "gradcheck.md").write_text(format_table(result))
        (out_dir / "gradcheck.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        plot_gradcheck(result, out_dir / "gradcheck.png")
        result.out_dir = out_dir
    return result


def _split(cfg: dict[str, Any], n: int, kind: str, label: str) -> dict[str, Any]:
    """``cfg`` with its deep resistive layer split into ``n`` blocks (a fresh model only)."""
    from .experiments import split_layers

    if kind == "run":
        raise GradcheckError(f"{label} is a trained run: its blocks cannot be split (split "
                             f"a config instead)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GradcheckError(f"split must be an integer >= 1, got {n!r}")
    try:
        layers = split_layers(cfg["model"]["layers"], n)
    except ValueError as exc:
        raise GradcheckError(f"{label}: cannot split into {n} blocks: {exc}") from None
    raw = {**cfg, "model": {**cfg["model"], "layers": layers}, "name": f"{cfg['name']}_{n}blocks"}
    return resolve_config(raw)


# -- output --------------------------------------------------------------------------


def _fmt_cos(c: float) -> str:
    return "n/a" if not math.isfinite(c) else f"{c:.6f}"


def _fmt_e(x: float) -> str:
    return "inf" if x == math.inf else ("n/a" if not math.isfinite(x) else f"{x:.2e}")


def format_table(result: GradcheckResult) -> str:
    """The markdown report: what was compared, one row per parameter array, the worst
    analog and digital arrays."""
    r = result
    if r.kind == "run":
        what = f"run folder {r.source} (trained, epoch {r.epoch})"
    else:
        what = f"config {r.source} (fresh model)"
    betas = ", ".join(f"{k} = {v:.3e}" for k, v in r.betas.items())
    lines = [
        f"# Gradient check: {r.name}",
        "",
        f"- model: {what}",
        f"- batch: {r.batch_size} samples of the {r.dataset} training split (seed {r.seed}); "
        f"loss {r.loss}",
        f"- EP: centered EP on {r.backend} in every analog block, BP in the digital layers "
        f"({r.seconds_ep:.2f} s); batch loss {r.loss_ep:.6f}",
        f"- exact: implicit differentiation (NumPy) in every analog block, BP in the digital "
        f"layers ({r.seconds_exact:.2f} s); batch loss {r.loss_exact:.6f}",
        f"- beta (A per unit delta): {betas}; rule: {r.beta_rule}",
        "- rel. error = ||g_ep - g_exact|| / ||g_exact||; layer = index in the model chain",
        f"- [exact ~ 0]: the exact gradient is zero or below {NEGLIGIBLE:g} x the largest of "
        f"its layer (rounding noise, left out of the worst case)",
        "",
        "| layer | type | block | array | shape | norm exact | norm EP | cosine | 1 - cosine "
        "| rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r.arrays:
        name = f"{a.name} ({a.connects})" if a.connects else a.name
        if a.negligible:
            name += " [exact ~ 0]"
        shape = "x".join(str(s) for s in a.shape)
        lines.append(f"| {a.layer} | {a.layer_type} | {a.block or '-'} | {name} | {shape} | "
                     f"{a.norm_exact:.3e} | {a.norm_ep:.3e} | {_fmt_cos(a.cosine)} | "
                     f"{_fmt_e(max(1.0 - a.cosine, 0.0))} | {_fmt_e(a.rel_error)} |")
    lines.append("")
    for key, analog in (("analog", True), ("digital", False)):
        cos, rel = r.worst(analog)
        if math.isnan(cos) and math.isnan(rel):
            continue
        lines.append(f"worst {key} array: cosine {_fmt_cos(cos)} (1 - cosine "
                     f"{_fmt_e(max(1.0 - cos, 0.0))}), rel. error {_fmt_e(rel)}  ")
    return "\n".join(lines).rstrip() + "\n"


def plot_gradcheck(result: GradcheckResult, path: str | Path) -> None:
    """Write ``path`` (PNG): per array, bars of the cosine similarity (top) and of the
    relative error on a log scale (bottom), coloured and labelled by block or layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = result.arrays
    groups = list(dict.fromkeys(a.group for a in arrays))
    colors = plt.get_cmap("tab10")
    col = ["0.8" if a.negligible else colors(groups.index(a.group) % 10) for a in arrays]
    xs = np.arange(len(arrays))
    cos = np.array([a.cosine if math.isfinite(a.cosine) else 0.0 for a in arrays])
    rel = np.array([a.rel_error for a in arrays], dtype=np.float64)
    positive = rel[np.isfinite(rel) & (rel > 0)]
    floor = float(positive.min()) / 10.0 if positive.size else 1e-16
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6.0, 0.55 * len(arrays) + 2.5), 6.5),
                                 sharex=True)
    shown = cos[[not a.negligible for a in arrays]]  # rounding noise sets no axis limit
    lo = min(0.9, float(shown.min()) - 0.02) if shown.size else 0.9
    cos = np.where([a.negligible for a in arrays], lo, np.maximum(cos, lo))
    a1.bar(xs, cos - lo, bottom=lo, color=col)
    a1.set_ylim(lo, 1.0 + 0.05 * (1.0 - lo))
    a1.axhline(1.0, color="k", lw=0.6, ls=":")
    a1.set_ylabel("cosine(EP, exact)")
    for x, a in zip(xs, arrays, strict=True):
        c = a.cosine
        if a.negligible:
            text = "exact ~ 0"
        elif not math.isfinite(c):
            text = "n/a"
        elif c < 0.9999995:
            text = f"{c:.6f}"
        else:
            text = f"1-{1.0 - c:.0e}" if c < 1.0 else "1"
        top = float(cos[x])
        a1.text(x, (lo + 1.0) / 2, text, ha="center", va="center", fontsize=7, rotation=90,
                color="white" if top > (lo + 1.0) / 2 else "black")
    a2.bar(xs, np.where(np.isfinite(rel) & (rel > 0), rel, np.nan), color=col)
    a2.set_yscale("log")
    a2.set_ylim(bottom=floor)
    for x, r in zip(xs, rel, strict=True):
        if r == 0 or not math.isfinite(r):
            a2.text(x, floor, "0" if r == 0 else "inf", ha="center", va="bottom", fontsize=7)
    a2.set_ylabel("||EP - exact|| / ||exact||")
    a2.set_xticks(xs)
    a2.set_xticklabels([a.label + (" (exact ~ 0)" if a.negligible else "") for a in arrays],
                       rotation=60, ha="right", fontsize=7)
    # a line between groups and a legend naming them
    bounds = [k for k in range(1, len(arrays)) if arrays[k].group != arrays[k - 1].group]
    for ax in (a1, a2):
        for b in bounds:
            ax.axvline(b - 0.5, color="0.6", lw=0.6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(k % 10)) for k in range(len(groups))]
    a1.legend(handles, groups, fontsize=7, ncol=min(4, len(groups)), loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False)
    beta = "; ".join(f"{k}: beta {v:.2e}" for k, v in result.betas.items())
    fig.suptitle(f"{result.name}: EP ({result.backend}) vs implicit differentiation, "
                 f"batch {result.batch_size}\n{beta}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
