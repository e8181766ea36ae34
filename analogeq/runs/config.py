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
bias_V, diode_rail_V, nudge_current_A), and ``device``: a memristor preset name (``ideal``,
``agasi``, ``taox_hfox``, ``pcm``) or a table ``{ preset = "...", read_noise_rel = ... }``
of :class:`~analogeq.devices.MemristorParams` fields, and ``tile_rows``, ``tile_cols``,
``wire_resistance_ohm`` (crossbar tiles with resistive wires, :mod:`analogeq.tiles`), and
the tile's converters: ``dac_bits``, ``dac_v_min``, ``dac_v_max``, ``dac_calibrate``,
``dac_noise_V`` for the DACs on its inputs and ``adc_bits``, ``adc_v_min``, ``adc_v_max``,
``adc_calibrate``, ``adc_noise_V`` for the ADCs on its outputs (bits >= 1, range in volts
or calibrated on the first batch, Gaussian noise in volts rms; a converter exists when any
of its keys is given, without ``*_bits`` it does not quantise; the default range is
-1..1 V). A resistive layer takes flat inputs of n_in values (volts) and gives n_out
outputs (volts).
"""

from __future__ import annotations

import copy
import dataclasses
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

from ..params import device as devices
from ..backends import BACKENDS, get_backend
from ..blocks import ResistiveBlock
from ..params import ResistiveBlockParams
from ..model import FFEBM, AnalogLayer
from ..errors import ConfigError
from ..params import SolverOptions, TileConfig

__all__ = ["DEFAULTS", "EXAMPLE_CONFIGS", "load_config", "resolve_config", "build_model", "ConfigError"]

#: The bundled example configs (package data: they ship with the wheel).
EXAMPLE_CONFIGS = Path(__file__).resolve().parent / "configs"


DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "data": {"dataset": "digits", "data_dir": "", "limit_train": 0, "limit_test": 0},
    "model": {"layers": []},
    "hardware": {"buffer_bits": 0, "buffer_value_bits": 32},
    "train": {
        "epochs": 10,
        "batch_size": 32,
        "loss": "cross_entropy",
        "lr": 1e-3,
        "lr_analog": 0.02,
        "schedule": "cosine",
        "weight_decay": 0.0,
        "backend": "ngspice",
        "workers": None,
        "scheduler": None,
        "sweep_points": None,
        "gradient": "ep",
        "eval_batch_size": 256,
    },
}

_LAYER_KEYS = {
    "linear": {"out", "init"},
    "conv2d": {"out", "kernel", "stride", "padding", "init"},
    "maxpool": {"kernel", "stride"},
    "avgpool": {"kernel", "stride"},
    "batchnorm": {"momentum", "eps"},
    "activation": {"name"},
    "flatten": set(),
    "gain_offset": {"gain", "offset", "trainable"},
    "dac": {"bits", "v_min", "v_max", "calibrate", "noise_lsb", "clip"},
    "adc": {"bits", "v_min", "v_max", "calibrate", "noise_lsb", "clip"},
    "resistive": {"hidden", "out", "name", "beta", "device", "tile_rows", "tile_cols",
                  "wire_resistance_ohm"}
    | {f"{side}_{k}" for side in ("dac", "adc")
       for k in ("bits", "v_min", "v_max", "calibrate", "noise_V")}
    | {f.name for f in dataclasses.fields(ResistiveBlockParams)},
}


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a TOML config, apply ``overrides`` (dotted keys, e.g. ``{"train.epochs": 3}``)
    and fill in defaults."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    with path.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return resolve_config(raw, overrides)


def resolve_config(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``raw`` over :data:`DEFAULTS`, apply dotted ``overrides``, check keys."""
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key not in cfg:
            raise ConfigError(f"unknown config key {key!r} (known: {sorted(cfg)})")
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {key!r} must be a table")
            unknown = set(value) - set(cfg[key])
            if unknown and key != "model":
                raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{key}]")
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
            raise ConfigError(f"override {dotted!r} does not name a known setting")
        node[parts[-1]] = value
    layers = cfg["model"].get("layers", [])
    if not layers:
        raise ConfigError("[model] needs a non-empty 'layers' list")
    for i, spec in enumerate(layers):
        kind = spec.get("type")
        if kind not in _LAYER_KEYS:
            raise ConfigError(
                f"model.layers[{i}]: unknown type {kind!r} (known: {sorted(_LAYER_KEYS)})"
            )
        unknown = set(spec) - _LAYER_KEYS[kind] - {"type"}
        if unknown:
            raise ConfigError(f"model.layers[{i}] ({kind}): unknown key(s) {sorted(unknown)}")
    t = cfg["train"]
    if t["loss"] not in ("cross_entropy", "mse"):
        raise ConfigError(f"train.loss must be 'cross_entropy' or 'mse', got {t['loss']!r}")
    if t["backend"] not in BACKENDS:
        raise ConfigError(f"train.backend must be one of {', '.join(BACKENDS)}, "
                          f"got {t['backend']!r}")
    w = t.get("workers")
    if w is not None:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError(f"train.workers must be an integer >= 1, got {w!r}")
        if t["backend"] != "ngspice-parallel":
            raise ConfigError(f"train.workers applies to backend 'ngspice-parallel', not "
                              f"{t['backend']!r}")
    sp = t.get("sweep_points")
    if sp is not None:
        try:
            SolverOptions(sweep_points=sp)
        except ValueError as exc:
            raise ConfigError(f"train.sweep_points: {exc}") from None
    sched = t.get("scheduler")
    if sched is not None:
        if not isinstance(sched, str) or not sched.strip():
            raise ConfigError(f"train.scheduler must be a Dask scheduler address such as "
                              f"'tcp://host:8786', got {sched!r}")
        if t["backend"] != "ngspice-dask":
            raise ConfigError(f"train.scheduler (Dask scheduler {sched!r}) needs backend "
                              f"'ngspice-dask', not {t['backend']!r}")
    if t["gradient"] not in ("ep", "exact"):
        raise ConfigError(f"train.gradient must be 'ep' or 'exact', got {t['gradient']!r}")
    for key in ("epochs", "batch_size"):
        if int(t[key]) < 1:
            raise ConfigError(f"train.{key} must be >= 1")
    hw = cfg["hardware"]
    for key, low in (("buffer_bits", 0), ("buffer_value_bits", 1)):
        v = hw[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"hardware.{key} must be an integer >= {low}, got {v!r}")
    for i, spec in enumerate(layers):
        if spec.get("type") == "resistive":
            for side in ("dac", "adc"):
                converter_params(spec, side, f"model.layers[{i}] (resistive)")
    return cfg


DEVICE_PRESETS = {
    "ideal": devices.MemristorParams,
    "agasi": devices.AgASiNeuroSimPreset,
    "taox_hfox": devices.TaOxHfOxNeuroSimPreset,
    "pcm": devices.PCMInferencePreset,
}


def device_params(spec: str | dict | None, where: str = "device") -> devices.MemristorParams | None:
    """Device model of a resistive layer from its ``device`` key: None (ideal, no device
    model), a preset name (``ideal``, ``agasi``, ``taox_hfox``, ``pcm``), or a table
    ``{ preset = "taox_hfox", read_noise_rel = 0.02, ... }`` overriding preset fields."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"preset": spec}
    spec = dict(spec)
    name = spec.pop("preset", "ideal")
    if name not in DEVICE_PRESETS:
        raise ConfigError(f"{where}: unknown device preset {name!r} "
                          f"(known: {sorted(DEVICE_PRESETS)})")
    base = DEVICE_PRESETS[name]()
    known = {f.name for f in dataclasses.fields(devices.MemristorParams)}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{where}: unknown device field(s) {sorted(unknown)} "
                          f"(known: {sorted(known)})")
    try:
        return dataclasses.replace(base, **spec) if spec else base
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def converter_params(spec: dict, side: str, where: str = "resistive layer"
                     ) -> ConverterParams | None:
    """The tile DAC (``side="dac"``) or ADC (``"adc"``) of a resistive layer from its
    ``{side}_bits``, ``{side}_v_min``, ``{side}_v_max``, ``{side}_calibrate`` and
    ``{side}_noise_V`` keys; None if none is given. Errors name the key."""
    keys = {k: f"{side}_{k}" for k in ("bits", "v_min", "v_max", "calibrate", "noise_V")}
    if not any(v in spec for v in keys.values()):
        return None
    fields: dict[str, Any] = {"bits": None}
    bits = spec.get(keys["bits"])
    if bits is not None:
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ConfigError(f"{where}: {keys['bits']} must be an integer >= 1 (omit it for "
                              f"a converter that does not quantise), got {bits!r}")
        fields["bits"] = bits
    for k in ("v_min", "v_max", "noise_V"):
        if keys[k] in spec:
            v = spec[keys[k]]
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise ConfigError(f"{where}: {keys[k]} must be a finite number of volts, "
                                  f"got {v!r}")
            fields[k] = float(v)
    if fields.get("noise_V", 0.0) < 0:
        raise ConfigError(f"{where}: {keys['noise_V']} must be >= 0 V, got {fields['noise_V']}")
    if keys["calibrate"] in spec:
        cal = spec[keys["calibrate"]]
        if not isinstance(cal, bool):
            raise ConfigError(f"{where}: {keys['calibrate']} must be true or false, got {cal!r}")
        if cal and ("v_min" in fields or "v_max" in fields):
            raise ConfigError(f"{where}: give either {keys['v_min']}/{keys['v_max']} or "
                              f"{keys['calibrate']} = true, not both")
        fields["calibrate"] = cal
    lo, hi = fields.get("v_min", -1.0), fields.get("v_max", 1.0)
    if not hi > lo:
        raise ConfigError(f"{where}: {keys['v_max']} ({hi:g} V) must be > {keys['v_min']} "
                          f"({lo:g} V)")
    try:
        return ConverterParams(**fields)
    except ValueError as exc:  # pragma: no cover - the checks above come first
        raise ConfigError(f"{where}: {side} converter: {exc}") from None


def tile_config(spec: dict, where: str = "resistive layer") -> TileConfig | None:
    """Tile of a resistive layer from ``tile_rows``, ``tile_cols`` (cells, default 64),
    ``wire_resistance_ohm`` (per wire segment, default 0) and the converter keys
    (:func:`converter_params`); None if none is given."""
    keys = ("tile_rows", "tile_cols", "wire_resistance_ohm")
    dac = converter_params(spec, "dac", where)
    adc = converter_params(spec, "adc", where)
    if not any(k in spec for k in keys) and dac is None and adc is None:
        return None
    return TileConfig(int(spec.get("tile_rows", 64)), int(spec.get("tile_cols", 64)),
                      float(spec.get("wire_resistance_ohm", 0.0)), dac=dac, adc=adc)


def _converter(spec: dict, kind: type) -> dl.Layer:
    fields = {k: spec[k] for k in ("bits", "v_min", "v_max", "calibrate", "noise_lsb", "clip")
              if k in spec}
    return kind(ConverterParams(**fields))


def build_model(
    cfg: dict[str, Any], input_shape: tuple[int, ...], *, backend=None
) -> FFEBM:
    """Build the :class:`~analogeq.model.FFEBM` described by ``cfg["model"]``.

    Args:
        input_shape: shape of one sample, e.g. (1, 8, 8) or (64,).
        backend: solver for analog blocks (default ``cfg["train"]["backend"]``, with
            ``workers`` / ``scheduler`` for the parallel and Dask backends; close those with
            :meth:`~analogeq.model.FFEBM.close`).
    """
    rng = np.random.default_rng(cfg["seed"])
    t = cfg["train"]
    options = SolverOptions(sweep_points=t.get("sweep_points"))
    if backend is None:
        backend = t["backend"]
        if backend in ("ngspice-parallel", "ngspice-dask"):
            # one pool of workers (or one cluster client) shared by every block
            backend = get_backend(backend, options, workers=t.get("workers"),
                                  scheduler=t.get("scheduler"))
    shape = tuple(input_shape)
    built: list[dl.Layer] = []
    n_blocks = 0
    for i, spec in enumerate(cfg["model"]["layers"]):
        kind = spec["type"]
        where = f"model.layers[{i}] ({kind})"
        try:
            if kind == "linear":
                if len(shape) != 1:
                    built.append(dl.Flatten())
                    shape = (int(np.prod(shape)),)
                layer = dl.Linear(shape[0], int(spec["out"]), rng=rng,
                                  **({"init": spec["init"]} if "init" in spec else {}))
                shape = (int(spec["out"]),)
            elif kind == "conv2d":
                if len(shape) != 3:
                    raise ConfigError(f"{where}: needs (C, H, W) inputs, got shape {shape}")
                k, s, p = int(spec["kernel"]), int(spec.get("stride", 1)), int(
                    spec.get("padding", 0))
                layer = dl.Conv2d(shape[0], int(spec["out"]), k, stride=s, padding=p, rng=rng)
                shape = (int(spec["out"]), (shape[1] + 2 * p - k) // s + 1,
                         (shape[2] + 2 * p - k) // s + 1)
            elif kind in ("maxpool", "avgpool"):
                k = int(spec["kernel"])
                s = int(spec.get("stride", k))
                layer = (dl.MaxPool2d if kind == "maxpool" else dl.AvgPool2d)(k, s)
                shape = (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
            elif kind == "batchnorm":
                layer = dl.BatchNorm(shape[0], momentum=spec.get("momentum", 0.1),
                                     eps=spec.get("eps", 1e-5))
            elif kind == "activation":
                layer = dl.Activation(spec["name"])
            elif kind == "flatten":
                layer = dl.Flatten()
                shape = (int(np.prod(shape)),)
            elif kind == "gain_offset":
                if len(shape) != 1:
                    raise ConfigError(f"{where}: needs flat inputs, got shape {shape}")
                layer = dl.GainOffset(shape[0], gain=spec.get("gain", 1.0),
                                      offset=spec.get("offset", 0.0),
                                      trainable=spec.get("trainable", True))
            elif kind == "dac":
                layer = _converter(spec, DAC)
            elif kind == "adc":
                layer = _converter(spec, ADC)
            elif kind == "resistive":
                if len(shape) != 1:
                    built.append(dl.Flatten())
                    shape = (int(np.prod(shape)),)
                fields = {f.name for f in dataclasses.fields(ResistiveBlockParams)}
                prm = {k: (tuple(v) if isinstance(v, list) else v)
                       for k, v in spec.items() if k in fields}
                block = ResistiveBlock(
                    (shape[0], *[int(h) for h in spec["hidden"]], int(spec["out"])),
                    seed=int(cfg["seed"]) * 1000 + n_blocks,
                    params=ResistiveBlockParams(**prm),
                    name=spec.get("name", f"b{n_blocks}"),
                    device=device_params(spec.get("device"), where),
                    tile=tile_config(spec, where),
                    options=options,
                )
                layer = AnalogLayer(block, backend=backend, gradient=cfg["train"]["gradient"],
                                    beta=spec.get("beta"))
                n_blocks += 1
                shape = (int(spec["out"]),)
            else:  # pragma: no cover - resolve_config rejects unknown types
                raise ConfigError(f"{where}: unknown layer type")
        except KeyError as exc:
            raise ConfigError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{where}: {exc}") from None
        built.append(layer)
    if n_blocks == 0:
        raise ConfigError("the model has no 'resistive' layer: nothing analog to simulate")
    hw = {**DEFAULTS["hardware"], **cfg.get("hardware", {})}  # configs of older runs lack it
    return FFEBM(*built, buffer_bits=int(hw["buffer_bits"]) or None,
                 batch_size=int(cfg["train"]["batch_size"]),
                 value_bits=int(hw["buffer_value_bits"]))
