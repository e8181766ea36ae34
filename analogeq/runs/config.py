"""Run configuration: a TOML file, resolved into plain dictionaries with defaults, and the
model it describes.

A config has four tables::

    name = "digits_ffebm"          # run name
    seed = 0

    [data]                         # analogeq.datasets.load_dataset arguments
    dataset = "digits"             # digits | fashion-mnist | mnist
    data_dir = ""                  # "" = the dataset's default location
    limit_train = 0                # 0 = all samples
    limit_test = 0

    [model]                        # the ordered chain; input shape comes from the data
    layers = [
      { type = "linear", out = 64 },
      { type = "activation", name = "hardtanh" },
      { type = "dac", bits = 8, v_min = -1.0, v_max = 1.0 },
      { type = "resistive", hidden = [32], out = 10 },
      { type = "adc", bits = 8, calibrate = true },
      { type = "gain_offset", gain = 20.0 },
    ]

    [hardware]                     # the boundary buffer (analogeq.buffer)
    buffer_bits = 0                # capacity in bits; 0 = sized for train.batch_size
    buffer_value_bits = 32         # bits per stored value without a converter resolution

    [train]
    epochs = 10
    batch_size = 32
    loss = "cross_entropy"         # or "mse" (one-hot targets)
    lr = 1e-3                      # Adam step of digital weights
    lr_analog = 0.02               # Adam step of conductances, fraction of their range
    schedule = "cosine"            # or "constant"
    weight_decay = 0.0
    backend = "ngspice"            # or "numpy", "ngspice-parallel", "ngspice-dask"
    workers = 2                    # worker processes of "ngspice-parallel" (optional)
    timeout_s = 600.0              # "ngspice-parallel": seconds a chunk may take (optional)
    startup_timeout_s = 120.0      # "ngspice-parallel": seconds a worker may take to start
    scheduler = "tcp://host:8786"  # Dask scheduler of "ngspice-dask" (optional; default:
                                   # a local cluster, one process per core)
    sweep_points = 96              # optional: ngspice sweeps of this many points (multiple
                                   # of 6); then any worker count gives bitwise the result
                                   # of one process (SolverOptions.sweep_points)
    gradient = "ep"                # or "exact" (implicit differentiation, NumPy)

Layer types and their keys: ``linear`` (out, init), ``conv2d`` (out, kernel, stride,
padding), ``maxpool`` / ``avgpool`` (kernel, stride), ``batchnorm``, ``activation``
(name), ``flatten``, ``gain_offset`` (gain, offset, trainable), ``dac`` / ``adc`` (bits,
v_min, v_max, calibrate, noise_lsb), ``resistive`` (hidden, out, name, beta and any
:class:`~analogeq.blocks.ResistiveBlockParams` field such as g_min_S, g_max_S, g_init_S,
bias_V, diode_rail_V (``"auto"``, the default, or volts), diode_model (``"shockley"``,
``"1n4148"`` or ``"pwl"``), diode (a table over that model's default: ``name``, ``is_A``,
``n`` for ``shockley``; ``name`` for ``1n4148``; ``name``, ``g_on_S``, ``g_off_S``,
``v_on_V``, ``smooth_V`` for ``pwl``), nudge_current_A), and
``device``: a memristor preset name (``ideal``,
``agasi``, ``taox_hfox``, ``pcm``) or a table ``{ preset = "...", read_noise_rel = ... }``
of :class:`~analogeq.devices.MemristorParams` fields, and ``tile_rows``, ``tile_cols``,
``wire_resistance_ohm`` (crossbar tiles with resistive wires, :mod:`analogeq.tiles`), and
the tile's converters: ``dac_bits``, ``dac_v_min``, ``dac_v_max``, ``dac_calibrate``,
``dac_noise_V`` for the DACs on its inputs and ``adc_bits``, ``adc_v_min``, ``adc_v_max``,
``adc_calibrate``, ``adc_noise_V`` for the ADCs on its outputs (bits 1..24, range in volts
or calibrated on the first batch, Gaussian noise in volts rms; a converter exists when any
of its keys is given, without ``*_bits`` it does not quantise; the default range is
-1..1 V), and ``amplifier_gain`` (a number > 0, or a list of one per hidden layer: a
bidirectional amplifier stage after every hidden layer, docs/physics.md "Bidirectional
amplifiers") with ``amplifier_back_gain`` (the same form; default 1 / amplifier_gain).
A resistive layer takes flat inputs of n_in values (volts) and gives n_out
outputs (volts).

Every value is checked, once, by :mod:`analogeq.runs.schema` (types are never coerced,
unknown keys are rejected with the nearest valid name, errors name the dotted key such as
``model.layers[3].hidden``); :func:`run_config` gives the typed view of a resolved config.
A layer with more than :data:`MAX_LAYER_PARAMETERS` parameters (weights, or device
conductances of a resistive block) or :data:`MAX_LAYER_OUTPUTS` outputs per sample is a
ConfigError naming it, raised by :func:`layer_shapes` before anything is allocated.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from digital import layers as dl
from digital.converters import ADC, DAC, ConverterParams

from ..backends import Backend, get_backend
from ..blocks import ResistiveBlock
from ..errors import ConfigError
from ..model import FFEBM, AnalogLayer
from ..params import SolverOptions, TileConfig
from ..params import device as devices
from .schema import (
    DEFAULTS,
    DEVICE_PRESETS,
    ActivationSpec,
    BatchNormSpec,
    Conv2dSpec,
    ConverterSpec,
    FlattenSpec,
    GainOffsetSpec,
    LinearSpec,
    PoolSpec,
    ResistiveSpec,
    RunConfig,
    TileConverterSpec,
    _device,
    _nearest,
    check_keys,
    parse_config,
    table,
)

__all__ = ["DEFAULTS", "DEVICE_PRESETS", "EXAMPLE_CONFIGS", "load_config", "resolve_config",
           "run_config",
           "build_model", "layer_shapes", "ConfigError", "RunConfig"]

#: The bundled example configs (package data: they ship with the wheel).
EXAMPLE_CONFIGS = Path(__file__).resolve().parent / "configs"



def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a TOML config, apply ``overrides`` (dotted keys, e.g. ``{"train.epochs": 3}``)
    and fill in defaults (see :func:`resolve_config`)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} is not a file")
    with path.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    return resolve_config(raw, overrides)


def resolve_config(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``raw`` over :data:`DEFAULTS`, apply dotted ``overrides`` (None values are
    skipped) and check the result with :func:`~analogeq.runs.schema.parse_config`.

    Returns:
        The resolved dictionary (what ``config.json`` records). Its typed, validated view
        is :func:`run_config` of it.

    Raises:
        ConfigError: an unknown key (with the nearest valid name), a wrong type or an
            out-of-range value, named by its dotted path.
    """
    table(raw, "config")
    check_keys(raw, "", DEFAULTS)
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if isinstance(cfg[key], dict):
            check_keys(table(value, key), key, cfg[key])
            cfg[key].update(copy.deepcopy(value))
        else:
            cfg[key] = value
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        parts = dotted.split(".")
        node = cfg
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"override {dotted!r} does not name a config table")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {dotted!r} does not name a known setting"
                              f"{_nearest(parts[-1], node)}")
        node[parts[-1]] = value
    parse_config(cfg)
    return cfg


def run_config(cfg: dict[str, Any] | RunConfig) -> RunConfig:
    """The typed, validated :class:`~analogeq.runs.schema.RunConfig` of a resolved config
    (a RunConfig is returned as is; a dictionary missing tables, e.g. of an older run, is
    completed with :data:`DEFAULTS` first)."""
    if isinstance(cfg, RunConfig):
        return cfg
    table(cfg, "config")
    full = {**copy.deepcopy(DEFAULTS), **cfg}
    for key, value in DEFAULTS.items():
        if isinstance(value, dict) and isinstance(full[key], dict):
            full[key] = {**value, **full[key]}
    return parse_config(full)


def device_params(spec: str | dict | None, where: str = "device") -> devices.MemristorParams | None:
    """Device model of a resistive layer from its ``device`` key: None (ideal, no device
    model), a preset name (``ideal``, ``agasi``, ``taox_hfox``, ``pcm``), or a table
    ``{ preset = "taox_hfox", read_noise_rel = 0.02, ... }`` overriding preset fields.
    Errors name ``where`` and the key."""
    return _device(spec, where)


def converter_params(c: TileConverterSpec | None) -> ConverterParams | None:
    """The :class:`~digital.converters.ConverterParams` of a resistive layer's tile DAC
    or ADC (None without one); a converter without ``*_bits`` does not quantise."""
    if c is None:
        return None
    fields: dict[str, Any] = {"bits": c.bits}
    for k in ("v_min", "v_max", "calibrate", "noise_V"):
        if getattr(c, k) is not None:
            fields[k] = getattr(c, k)
    return ConverterParams(**fields)


def tile_config(spec: ResistiveSpec) -> TileConfig | None:
    """Tile of a resistive layer from ``tile_rows``, ``tile_cols`` (cells, default 64),
    ``wire_resistance_ohm`` (per wire segment, default 0) and the converter keys; None if
    none is given."""
    if not spec.has_tile:
        return None
    return TileConfig(64 if spec.tile_rows is None else spec.tile_rows,
                      64 if spec.tile_cols is None else spec.tile_cols,
                      0.0 if spec.wire_resistance_ohm is None else spec.wire_resistance_ohm,
                      dac=converter_params(spec.dac), adc=converter_params(spec.adc))


def _out_size(n: int, k: int, s: int, p: int, where: str, what: str) -> int:
    size = (n + 2 * p - k) // s + 1
    if size < 1:
        raise ConfigError(f"{where}: kernel {k} (padding {p}) is larger than the input's "
                          f"{what} {n}: no output")
    return size


#: Largest layer accepted (parameters of one layer: weights of a linear or conv2d layer, device
#: conductances of a resistive block), and the largest output of one layer for one sample.
#: A config beyond them would need gigabytes per copy of the model or per batch; it is a
#: ConfigError naming the layer before anything is allocated.
MAX_LAYER_PARAMETERS = 100_000_000
MAX_LAYER_OUTPUTS = 10_000_000


def _layer_parameters(spec: Any, before: tuple[int, ...]) -> int:
    """Weights (linear, conv2d) or device conductances (resistive) of one layer."""
    if isinstance(spec, LinearSpec):
        return math.prod(before) * spec.out
    if isinstance(spec, Conv2dSpec):
        return before[0] * spec.out * spec.kernel ** 2
    if isinstance(spec, ResistiveSpec):
        sizes = (math.prod(before), *spec.hidden, spec.out)
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return 0


def _check_size(spec: Any, before: tuple[int, ...], after: tuple[int, ...]) -> None:
    n_par = _layer_parameters(spec, before)
    if n_par > MAX_LAYER_PARAMETERS:
        raise ConfigError(f"{spec.where}: {n_par:,} parameters for inputs of shape {before}; "
                          f"a layer may have at most {MAX_LAYER_PARAMETERS:,}")
    n_out = math.prod(after)
    if n_out > MAX_LAYER_OUTPUTS:
        raise ConfigError(f"{spec.where}: {n_out:,} outputs per sample (shape {after}); a "
                          f"layer may produce at most {MAX_LAYER_OUTPUTS:,}")


def layer_shapes(cfg: dict[str, Any] | RunConfig, input_shape: tuple[int, ...]
                 ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every layer of ``model.layers`` for samples of
    ``input_shape``; linear and resistive layers flatten their inputs first. The last
    output shape is the model's (e.g. ``(10,)`` for 10 classes).

    Raises:
        ConfigError: a layer that cannot take its input (a conv2d on flat inputs, a kernel
            larger than the image, ...) or is too large (more than
            :data:`MAX_LAYER_PARAMETERS` parameters or :data:`MAX_LAYER_OUTPUTS` outputs
            per sample), naming the layer.
    """
    rc = run_config(cfg)
    shape = tuple(int(s) for s in input_shape)
    shapes = []
    for spec in rc.model.layers:
        where = spec.where
        before = shape
        if isinstance(spec, LinearSpec | ResistiveSpec):
            shape = (spec.out,)
        elif isinstance(spec, Conv2dSpec):
            if len(shape) != 3:
                raise ConfigError(f"{where}: needs (C, H, W) inputs, got shape {shape}")
            shape = (spec.out,
                     _out_size(shape[1], spec.kernel, spec.stride, spec.padding, where, "height"),
                     _out_size(shape[2], spec.kernel, spec.stride, spec.padding, where, "width"))
        elif isinstance(spec, PoolSpec):
            if len(shape) != 3:
                raise ConfigError(f"{where}: needs (C, H, W) inputs, got shape {shape}")
            shape = (shape[0], _out_size(shape[1], spec.kernel, spec.stride, 0, where, "height"),
                     _out_size(shape[2], spec.kernel, spec.stride, 0, where, "width"))
        elif isinstance(spec, FlattenSpec):
            shape = (math.prod(shape),)
        elif isinstance(spec, GainOffsetSpec) and len(shape) != 1:
            raise ConfigError(f"{where}: needs flat inputs, got shape {shape}")
        _check_size(spec, before, shape)
        shapes.append((before, shape))
    return shapes


def _converter(spec: ConverterSpec, kind: type, seed: int, index: int) -> dl.Layer:
    """A digital-side DAC or ADC layer; a noisy one draws from its own generator, seeded
    from the run seed and its layer index (its state is checkpointed with the run)."""
    params = ConverterParams(**spec.fields)
    rng = np.random.default_rng([seed, CONVERTER_SEED_TAG, index]) if params.noise_sigma_V else None
    return kind(params, rng=rng)


#: Mixed into the seed of a noisy converter's generator (distinct from every other stream).
CONVERTER_SEED_TAG = 7919


def build_model(
    cfg: dict[str, Any] | RunConfig, input_shape: tuple[int, ...], *,
    backend: Backend | str | None = None
) -> FFEBM:
    """Build the :class:`~analogeq.model.FFEBM` described by ``cfg["model"]``.

    Args:
        cfg: a resolved config dictionary or its :class:`~analogeq.runs.schema.RunConfig`.
        input_shape: shape of one sample, e.g. (1, 8, 8) or (64,).
        backend: solver for analog blocks (default ``cfg["train"]["backend"]``, with
            ``workers`` / ``scheduler`` for the parallel and Dask backends; close those with
            :meth:`~analogeq.model.FFEBM.close`).

    Raises:
        ConfigError: an invalid config, a layer that cannot take its input, or no
            resistive layer.
    """
    rc = run_config(cfg)
    shapes = layer_shapes(rc, input_shape)
    if not rc.model.resistive:
        raise ConfigError("the model has no 'resistive' layer: nothing analog to simulate")
    t = rc.train
    rng = np.random.default_rng(rc.seed)
    options = SolverOptions(sweep_points=t.sweep_points)
    built: list[dl.Layer] = []
    n_blocks = 0
    owned = False
    if backend is None:
        backend = t.backend
        if backend in ("ngspice-parallel", "ngspice-dask"):
            owned = True
            # one pool of workers (or one cluster client) shared by every block
            timeouts = {k: v for k, v in (("timeout_s", t.timeout_s),
                                            ("startup_timeout_s", t.startup_timeout_s))
                            if v is not None}
            backend = get_backend(backend, options, workers=t.workers, scheduler=t.scheduler,
                                  **timeouts)
    try:
        for spec, (shape, _) in zip(rc.model.layers, shapes, strict=True):
            where = spec.where
            try:
                if isinstance(spec, LinearSpec | ResistiveSpec) and len(shape) != 1:
                    built.append(dl.Flatten())
                    shape = (math.prod(shape),)
                if isinstance(spec, LinearSpec):
                    layer = dl.Linear(shape[0], spec.out, rng=rng,
                                      **({"init": spec.init} if spec.init else {}))
                elif isinstance(spec, Conv2dSpec):
                    layer = dl.Conv2d(shape[0], spec.out, spec.kernel, stride=spec.stride,
                                      padding=spec.padding, rng=rng,
                                      **({"init": spec.init} if spec.init else {}))
                elif isinstance(spec, PoolSpec):
                    pool = dl.MaxPool2d if spec.kind == "maxpool" else dl.AvgPool2d
                    layer = pool(spec.kernel, spec.stride)
                elif isinstance(spec, BatchNormSpec):
                    layer = dl.BatchNorm(shape[0], momentum=spec.momentum, eps=spec.eps)
                elif isinstance(spec, ActivationSpec):
                    layer = dl.Activation(spec.name)
                elif isinstance(spec, FlattenSpec):
                    layer = dl.Flatten()
                elif isinstance(spec, GainOffsetSpec):
                    layer = dl.GainOffset(shape[0], gain=spec.gain, offset=spec.offset,
                                          trainable=spec.trainable)
                elif isinstance(spec, ConverterSpec):
                    layer = _converter(spec, DAC if spec.kind == "dac" else ADC, rc.seed,
                                       len(built))
                elif isinstance(spec, ResistiveSpec):
                    block = ResistiveBlock(
                        (shape[0], *spec.hidden, spec.out),
                        seed=rc.seed * 1000 + n_blocks,
                        params=spec.params,
                        name=spec.name or f"b{n_blocks}",
                        device=spec.device,
                        tile=tile_config(spec),
                        options=options,
                        amplifier_gain=spec.amplifier_gain,
                        amplifier_back_gain=spec.amplifier_back_gain,
                    )
                    layer = AnalogLayer(block, backend=backend, gradient=t.gradient,
                                        beta=spec.beta)
                    n_blocks += 1
                else:  # pragma: no cover - parse_config knows every type
                    raise ConfigError(f"{where}: unknown layer type")
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"{where}: {exc}") from None
            built.append(layer)
        hw = rc.hardware
        return FFEBM(*built, buffer_bits=hw.buffer_bits or None, batch_size=t.batch_size,
                     value_bits=hw.buffer_value_bits)
    except BaseException:
        if owned:
            backend.close()  # the shared pool or cluster client of a failed build
        raise
