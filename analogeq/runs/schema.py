"""The typed run config: a resolved config dict checked once into frozen dataclasses.

:func:`parse_config` turns the resolved dictionary of :func:`~analogeq.runs.config.resolve_config`
(defaults and overrides applied) into a :class:`RunConfig`. Every value is checked by one of
the validators below, written once and used for every key; types are checked, never coerced
(``hidden = "16"``, ``epochs = 1.7``, ``tile_rows = 8.5``, ``true`` for an integer or
``"1e-3"`` for a number are errors); every table rejects unknown keys and suggests the
nearest valid name. A :class:`~analogeq.errors.ConfigError` names the key as a dotted path,
e.g. ``model.layers[3].hidden``.

Ranges that are not obvious:

- converter resolution ``bits`` (``dac``/``adc`` layers and a resistive layer's
  ``dac_bits``/``adc_bits``): an integer in 1..24. 24 bits is the resolution of the best
  converters built; beyond that the quantisation step falls below the double-precision
  rounding of a volt-scale signal and the setting only hides a typo.
- ``lr``, ``lr_analog``, ``weight_decay``: finite and >= 0 (0 freezes those weights).
- ``beta`` (EP nudge strength): finite and > 0.
- ``seed``: an integer >= 0 (NumPy's generators reject negative seeds).
- ``name`` (run) and a resistive layer's ``name`` end up in file and netlist names: the run
  name may not contain path separators, a block name is a netlist identifier
  (``[A-Za-z][A-Za-z0-9_]*``) and block names are unique.
- ``amplifier_gain`` / ``amplifier_back_gain`` (a resistive layer's bidirectional
  amplifiers, docs/physics.md "Bidirectional amplifiers"): a number > 0 for every hidden
  layer, or a list of one number > 0 per hidden layer (the list length must equal the
  number of hidden layers: the block has an amplifier stage after *every* hidden layer,
  the last one included). ``amplifier_back_gain`` needs ``amplifier_gain``; absent, it is
  ``1 / amplifier_gain`` per layer.
- converter layers in the chain: a ``dac`` turns digital values into volts for a resistive
  layer, an ``adc`` reads a resistive layer's output volts: the order of ``dac``,
  ``resistive`` and ``adc`` layers must be ``[dac] resistive [adc]`` per block (each
  optional), e.g. ``adc -> resistive -> dac`` is rejected.

Backend compatibility (``workers`` needs ``ngspice-parallel``, ``scheduler`` needs
``ngspice-dask``, ``sweep_points`` a valid :class:`~analogeq.params.SolverOptions`) is checked
in :func:`check_backend_options`, the one place that knows it (the CLI's ``evaluate``
goes through it too).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digital.functional import ACTIVATIONS
from digital.init import INITIALIZERS

from ..backends import BACKENDS
from ..errors import ConfigError
from ..params import ResistiveBlockParams, SolverOptions
from ..params import device as devices
from ..params.block import AUTO

__all__ = [
    "DEFAULTS", "RunConfig", "DataConfig", "ModelConfig", "HardwareConfig", "TrainConfig",
    "LayerSpec", "LinearSpec", "Conv2dSpec", "PoolSpec", "BatchNormSpec", "ActivationSpec",
    "FlattenSpec", "GainOffsetSpec", "ConverterSpec", "TileConverterSpec", "ResistiveSpec",
    "parse_config", "check_backend_options", "check_keys", "positive_int", "integer",
    "finite_float", "boolean", "string", "one_of", "table", "MAX_CONVERTER_BITS",
    "LAYER_KEYS", "DEVICE_PRESETS", "DATASETS", "LOSSES", "SCHEDULES", "GRADIENTS",
]

#: Highest converter resolution accepted anywhere in a config (bits).
MAX_CONVERTER_BITS = 24
LOSSES = ("cross_entropy", "mse")
SCHEDULES = ("cosine", "constant")
GRADIENTS = ("ep", "exact")
#: dataset names accepted by :func:`~analogeq.runs.datasets.load_dataset` (with aliases)
DATASETS = ("digits", "fashion-mnist", "fashion_mnist", "mnist")

DEVICE_PRESETS = {
    "ideal": devices.MemristorParams,
    "agasi": devices.AgASiNeuroSimPreset,
    "taox_hfox": devices.TaOxHfOxNeuroSimPreset,
    "pcm": devices.PCMInferencePreset,
}

#: every key of a run config with its default (see :mod:`analogeq.runs.config`)
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
        "timeout_s": None,
        "startup_timeout_s": None,
        "sweep_points": None,
        "gradient": "ep",
        "eval_batch_size": 256,
    },
}

_BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(ResistiveBlockParams))
_CONVERTER_KEYS = ("bits", "v_min", "v_max", "calibrate", "noise_lsb", "clip")
_TILE_CONVERTER_KEYS = ("bits", "v_min", "v_max", "calibrate", "noise_V")

#: the keys each layer type takes (besides ``type``)
LAYER_KEYS: dict[str, tuple[str, ...]] = {
    "linear": ("out", "init"),
    "conv2d": ("out", "kernel", "stride", "padding", "init"),
    "maxpool": ("kernel", "stride"),
    "avgpool": ("kernel", "stride"),
    "batchnorm": ("momentum", "eps"),
    "activation": ("name",),
    "flatten": (),
    "gain_offset": ("gain", "offset", "trainable"),
    "dac": _CONVERTER_KEYS,
    "adc": _CONVERTER_KEYS,
    "resistive": ("hidden", "out", "name", "beta", "device", "tile_rows", "tile_cols",
                  "wire_resistance_ohm", "amplifier_gain", "amplifier_back_gain")
    + tuple(f"{side}_{k}" for side in ("dac", "adc") for k in _TILE_CONVERTER_KEYS)
    + _BLOCK_FIELDS,
}

_BLOCK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------
# Validators: one of each, used for every key
# ---------------------------------------------------------------------------


def _nearest(name: Any, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``name``, else ``""``."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(value: Mapping[str, Any], key: str, known: Iterable[str], *,
               what: str | None = None) -> None:
    """Raise a ConfigError naming the first key of ``value`` not in ``known``, with the
    nearest valid name, or the table the key belongs in when it is misplaced (e.g.
    ``backend`` under ``[model]``). ``key`` is the table's dotted path ("" for the top
    level); ``what`` describes the table in the message (default ``[key]``)."""
    known = list(known)
    for k in value:
        if k in known:
            continue
        where = f"{key}.{k}" if key else str(k)
        hint = _nearest(k, known)
        if not hint and what is None:  # a key of another table?
            homes = [f"[{t}]" for t, v in DEFAULTS.items()
                     if isinstance(v, dict) and k in v and t != key]
            here = f"[{key}]" if key else "the top level"
            if key and k in DEFAULTS:
                kind = "table" if isinstance(DEFAULTS[k], dict) else "key"
                hint = (f" ({k!r} is a top-level {kind}, not a key of {here}; a key written "
                        f"after a [table] header belongs to that table)")
            elif homes:
                hint = f" ({k!r} is a key of {' and '.join(homes)}, not of {here})"
        table_name = what or (f"[{key}]" if key else "the top level")
        raise ConfigError(f"unknown config key {where!r}{hint}; {table_name} takes: "
                          f"{', '.join(known) or 'no keys'}")


def table(value: Any, key: str) -> Mapping[str, Any]:
    """``value`` if it is a table (dict), else a ConfigError naming ``key``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a table, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value: Any, key: str, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` if it is an integer (not a bool, not a float) within [min, max]."""
    if not _is_int(value):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if (min is not None and value < min) or (max is not None and value > max):
        rng = (f">= {min}" if max is None else f"<= {max}" if min is None
               else f"in {min}..{max}")
        raise ConfigError(f"{key} must be an integer {rng}, got {value!r}")
    return int(value)


def positive_int(value: Any, key: str, *, max: int | None = None) -> int:
    """``value`` if it is an integer >= 1 (not a bool, not a float)."""
    return integer(value, key, min=1, max=max)


def finite_float(value: Any, key: str, *, min: float | None = None, max: float | None = None,
                 exclusive: bool = False, unit: str = "") -> float:
    """``float(value)`` if ``value`` is a finite int or float (not a bool, not a string)
    with ``value >= min`` (``> min`` when ``exclusive``) and ``value <= max``."""
    unit_txt = f" ({unit})" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number{unit_txt}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{key} must be a finite number{unit_txt}, got {value!r}")
    if min is not None and (v <= min if exclusive else v < min):
        raise ConfigError(f"{key} must be {'>' if exclusive else '>='} {min:g}{unit_txt}, "
                          f"got {value!r}")
    if max is not None and v > max:
        raise ConfigError(f"{key} must be <= {max:g}{unit_txt}, got {value!r}")
    return v


def boolean(value: Any, key: str) -> bool:
    """``value`` if it is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def string(value: Any, key: str, *, nonempty: bool = False) -> str:
    """``value`` if it is a string (non-empty after stripping if ``nonempty``)."""
    if not isinstance(value, str) or (nonempty and not value.strip()):
        raise ConfigError(f"{key} must be a {'non-empty ' if nonempty else ''}string, "
                          f"got {value!r}")
    return value


def one_of(value: Any, key: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (exact string match)."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got "
                          f"{value!r}{_nearest(value, choices)}")
    return value


def _optional(spec: Mapping[str, Any], k: str, default: Any, check, key: str, **kw) -> Any:
    """``check(spec[k], f"{key}.{k}", **kw)`` if ``k`` is given (and not None), else
    ``default``."""
    v = spec.get(k)
    return default if v is None else check(v, f"{key}.{k}", **kw)


# ---------------------------------------------------------------------------
# Layer specs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """Base of the layer specs: ``index`` in ``model.layers`` and ``key`` (its dotted path)."""

    index: int
    kind: str

    @property
    def key(self) -> str:
        """Dotted path of the layer table, e.g. ``model.layers[3]``."""
        return f"model.layers[{self.index}]"

    @property
    def where(self) -> str:
        """``model.layers[i] (kind)``: how messages name the layer."""
        return f"{self.key} ({self.kind})"


@dataclass(frozen=True)
class LinearSpec(LayerSpec):
    """Fully connected layer: ``out`` features, weight initialiser ``init``."""

    out: int = 1
    init: str | None = None


@dataclass(frozen=True)
class Conv2dSpec(LayerSpec):
    """2-D convolution: ``out`` channels, square ``kernel``, ``stride``, ``padding``."""

    out: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    init: str | None = None


@dataclass(frozen=True)
class PoolSpec(LayerSpec):
    """Max or average pooling (``kind`` maxpool/avgpool); ``stride`` defaults to ``kernel``."""

    kernel: int = 1
    stride: int = 1


@dataclass(frozen=True)
class BatchNormSpec(LayerSpec):
    """Batch norm over the first axis of a sample."""

    momentum: float = 0.1
    eps: float = 1e-5


@dataclass(frozen=True)
class ActivationSpec(LayerSpec):
    """Element-wise activation by name."""

    name: str = "identity"


@dataclass(frozen=True)
class FlattenSpec(LayerSpec):
    """Flatten a sample to one axis."""


@dataclass(frozen=True)
class GainOffsetSpec(LayerSpec):
    """Per-feature ``gain * x + offset`` (trainable unless ``trainable = false``)."""

    gain: float = 1.0
    offset: float = 0.0
    trainable: bool = True


@dataclass(frozen=True)
class ConverterSpec(LayerSpec):
    """A ``dac`` or ``adc`` layer: the :class:`~digital.converters.ConverterParams` fields
    given in the table (``fields``; absent keys take that class's defaults)."""

    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TileConverterSpec:
    """The DAC or ADC of a resistive layer's tiles (``{side}_*`` keys; volts)."""

    bits: int | None = None
    v_min: float | None = None
    v_max: float | None = None
    calibrate: bool | None = None
    noise_V: float | None = None


@dataclass(frozen=True)
class ResistiveSpec(LayerSpec):
    """A resistive (analog) block: hidden sizes, outputs, block parameters, device model,
    tiles, tile converters and bidirectional amplifiers (``amplifier_gain`` /
    ``amplifier_back_gain``: None, one gain for every hidden layer, or a tuple of one gain
    per hidden layer; the back gain None means 1/A)."""

    hidden: tuple[int, ...] = ()
    out: int = 1
    name: str | None = None
    beta: float | None = None
    params: ResistiveBlockParams = field(default_factory=ResistiveBlockParams)
    device: devices.MemristorParams | None = None
    tile_rows: int | None = None
    tile_cols: int | None = None
    wire_resistance_ohm: float | None = None
    dac: TileConverterSpec | None = None
    adc: TileConverterSpec | None = None
    amplifier_gain: float | tuple[float, ...] | None = None
    amplifier_back_gain: float | tuple[float, ...] | None = None

    @property
    def amplified(self) -> bool:
        """True if the block has bidirectional amplifier stages."""
        return self.amplifier_gain is not None

    @property
    def has_tile(self) -> bool:
        """True if any tile or tile-converter key is given."""
        return (self.tile_rows is not None or self.tile_cols is not None
                or self.wire_resistance_ohm is not None or self.dac is not None
                or self.adc is not None)


def _init(spec, key):
    return _optional(spec, "init", None, one_of, key, choices=tuple(INITIALIZERS))


def _converter_fields(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "bits" in spec:
        b = spec["bits"]  # None (an ideal converter) comes from sweeps, never from TOML
        out["bits"] = None if b is None else positive_int(b, f"{key}.bits",
                                                          max=MAX_CONVERTER_BITS)
    for k in ("v_min", "v_max"):
        if k in spec:
            out[k] = finite_float(spec[k], f"{key}.{k}", unit="V")
    if "noise_lsb" in spec:
        out["noise_lsb"] = finite_float(spec["noise_lsb"], f"{key}.noise_lsb", min=0.0)
    for k in ("calibrate", "clip"):
        if k in spec:
            out[k] = boolean(spec[k], f"{key}.{k}")
    lo, hi = out.get("v_min", -1.0), out.get("v_max", 1.0)
    if not hi > lo:
        raise ConfigError(f"{key}.v_max ({hi:g} V) must be > {key}.v_min ({lo:g} V)")
    if out.get("noise_lsb", 0.0) > 0 and "bits" in out and out["bits"] is None:
        raise ConfigError(f"{key}.noise_lsb needs {key}.bits (the LSB is undefined without)")
    return out


def _tile_converter(spec: Mapping[str, Any], side: str, key: str) -> TileConverterSpec | None:
    keys = {k: f"{side}_{k}" for k in _TILE_CONVERTER_KEYS}
    if not any(v in spec for v in keys.values()):
        return None

    def path(k):
        return f"{key}.{keys[k]}"

    bits = spec.get(keys["bits"])
    if bits is not None:
        bits = positive_int(bits, path("bits"), max=MAX_CONVERTER_BITS)
    vals = {k: (finite_float(spec[keys[k]], path(k), unit="V") if keys[k] in spec else None)
            for k in ("v_min", "v_max")}
    noise = (finite_float(spec[keys["noise_V"]], path("noise_V"), min=0.0, unit="V")
             if keys["noise_V"] in spec else None)
    cal = boolean(spec[keys["calibrate"]], path("calibrate")) if keys["calibrate"] in spec \
        else None
    if cal and (vals["v_min"] is not None or vals["v_max"] is not None):
        raise ConfigError(f"{key}: give either {keys['v_min']}/{keys['v_max']} or "
                          f"{keys['calibrate']} = true, not both")
    lo = -1.0 if vals["v_min"] is None else vals["v_min"]
    hi = 1.0 if vals["v_max"] is None else vals["v_max"]
    if not hi > lo:
        raise ConfigError(f"{path('v_max')} ({hi:g} V) must be > {path('v_min')} ({lo:g} V)")
    return TileConverterSpec(bits, vals["v_min"], vals["v_max"], cal, noise)


#: the keys of a resistive layer's ``diode`` table for each ``diode_model``
DIODE_KEYS = {"shockley": ("name", "is_A", "n"), "1n4148": ("name",),
              "pwl": ("name", "g_on_S", "g_off_S", "v_on_V", "smooth_V")}


def _diode(value: Any, key: str, kind: str) -> devices.DiodeModel | devices.PWLDiodeModel:
    """A resistive layer's ``diode`` table over the default diode of ``diode_model``
    ``kind``: the junction's ``name``, ``is_A``, ``n``; the 1N4148 card's ``name``; the PWL
    clamp's ``name``, ``g_on_S``, ``g_off_S``, ``v_on_V``, ``smooth_V``."""
    if isinstance(value, devices.DiodeModel | devices.PWLDiodeModel):
        return value
    spec = table(value, key)
    check_keys(spec, key, DIODE_KEYS[kind], what=f"a diode table of diode_model {kind!r}")
    base = devices.default_diode(kind)
    name = _optional(spec, "name", base.name, string, key, nonempty=True)
    if not _BLOCK_NAME_RE.match(name):
        raise ConfigError(f"{key}.name must be a SPICE model name ([A-Za-z][A-Za-z0-9_]*), "
                          f"got {name!r}")
    if kind == "pwl":
        return devices.PWLDiodeModel(
            name,
            _optional(spec, "g_on_S", base.g_on_S, finite_float, key, min=0.0, exclusive=True,
                      unit="S"),
            _optional(spec, "g_off_S", base.g_off_S, finite_float, key, min=0.0, unit="S"),
            _optional(spec, "v_on_V", base.v_on_V, finite_float, key, unit="V"),
            _optional(spec, "smooth_V", base.smooth_V, finite_float, key, min=0.0,
                      exclusive=True, unit="V"),
        )
    return devices.DiodeModel(
        name,
        _optional(spec, "is_A", base.is_A, finite_float, key, min=0.0, exclusive=True,
                  unit="A"),
        _optional(spec, "n", base.n, finite_float, key, min=0.0, exclusive=True),
    )


def _block_params(spec: Mapping[str, Any], key: str) -> ResistiveBlockParams:
    prm: dict[str, Any] = {}
    units = {"g_min_S": "S", "g_max_S": "S",
             "nudge_current_A": "A", "nudge_voltage_V": "V"}
    for k in ("g_min_S", "g_max_S", "nudge_current_A", "nudge_voltage_V"):
        if spec.get(k) is not None:
            prm[k] = finite_float(spec[k], f"{key}.{k}", min=0.0, exclusive=True, unit=units[k])
    if spec.get("bias_V") is not None:
        prm["bias_V"] = finite_float(spec["bias_V"], f"{key}.bias_V", unit="V")
    rail = spec.get("diode_rail_V")
    if isinstance(rail, str):
        if rail != AUTO:
            raise ConfigError(f"{key}.diode_rail_V must be {AUTO!r} or a number of volts, "
                              f"got {rail!r}")
        prm["diode_rail_V"] = rail
    elif rail is not None:
        prm["diode_rail_V"] = finite_float(rail, f"{key}.diode_rail_V", unit="V")
    if spec.get("g_init_S") is not None:
        g = spec["g_init_S"]
        if not isinstance(g, list | tuple) or len(g) != 2:
            raise ConfigError(f"{key}.g_init_S must be a list [low, high] of conductances in "
                              f"S, got {g!r}")
        prm["g_init_S"] = tuple(finite_float(v, f"{key}.g_init_S[{j}]", min=0.0,
                                             exclusive=True, unit="S")
                                for j, v in enumerate(g))
    if spec.get("trainable_diode_bias") is not None:
        prm["trainable_diode_bias"] = boolean(spec["trainable_diode_bias"],
                                              f"{key}.trainable_diode_bias")
    kind = "shockley"
    if spec.get("diode_model") is not None:
        kind = prm["diode_model"] = one_of(spec["diode_model"], f"{key}.diode_model",
                                           devices.DIODE_MODELS)
    if spec.get("diode") is not None:
        prm["diode"] = _diode(spec["diode"], f"{key}.diode", kind)
    try:
        return ResistiveBlockParams(**prm)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _device(value: Any, key: str) -> devices.MemristorParams | None:
    """A resistive layer's ``device``: None, a preset name or a table of MemristorParams
    fields over a preset."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"preset": value}
    spec = dict(table(value, key))
    fields = {f.name: f for f in dataclasses.fields(devices.MemristorParams)}
    check_keys(spec, key, ("preset", *fields), what="a device table")
    name = spec.pop("preset", "ideal")
    one_of(name, f"{key}.preset", tuple(DEVICE_PRESETS))
    base = DEVICE_PRESETS[name]()
    for k, v in spec.items():  # the type of each field follows its preset value
        current = getattr(base, k)
        if isinstance(current, bool):
            boolean(v, f"{key}.{k}")
        elif isinstance(current, int):
            integer(v, f"{key}.{k}")
        elif isinstance(current, float):
            finite_float(v, f"{key}.{k}")
        elif current is None and isinstance(v, bool | str | list | dict):
            raise ConfigError(f"{key}.{k} must be a number, got {v!r}")
        elif isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{key}.{k} must be finite, got {v!r}")
    try:
        return dataclasses.replace(base, **spec) if spec else base
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _gain(spec: Mapping[str, Any], k: str, key: str,
          n_hidden: int) -> float | tuple[float, ...] | None:
    """A resistive layer's ``amplifier_gain`` / ``amplifier_back_gain``: None (absent), a
    number > 0, or a list of ``n_hidden`` numbers > 0 (one per hidden layer)."""
    v = spec.get(k)
    if v is None:
        return None
    if isinstance(v, list | tuple):
        if len(v) != n_hidden:
            raise ConfigError(
                f"{key}.{k} has {len(v)} value(s) but the layer has {n_hidden} hidden "
                f"layer(s): give one number for every hidden layer, or one per hidden layer "
                f"(an amplifier stage follows every hidden layer), got {v!r}")
        return tuple(finite_float(x, f"{key}.{k}[{j}]", min=0.0, exclusive=True)
                     for j, x in enumerate(v))
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{key}.{k} must be a number > 0 or a list of one number > 0 per "
                          f"hidden layer, got {v!r}")
    return finite_float(v, f"{key}.{k}", min=0.0, exclusive=True)


def _layer(i: int, raw: Any) -> LayerSpec:
    key = f"model.layers[{i}]"
    spec = table(raw, key)
    kind = spec.get("type")
    if kind is None:
        raise ConfigError(f"{key} needs a 'type' (one of {', '.join(LAYER_KEYS)})")
    one_of(kind, f"{key}.type", tuple(LAYER_KEYS))
    check_keys({k: v for k, v in spec.items() if k != "type"}, key, LAYER_KEYS[kind],
               what=f"a {kind} layer")

    def need(k):
        if k not in spec:
            raise ConfigError(f"{key} ({kind}) needs {key}.{k}")
        return spec[k]

    if kind == "linear":
        return LinearSpec(i, kind, positive_int(need("out"), f"{key}.out"), _init(spec, key))
    if kind == "conv2d":
        return Conv2dSpec(i, kind, positive_int(need("out"), f"{key}.out"),
                          positive_int(need("kernel"), f"{key}.kernel"),
                          _optional(spec, "stride", 1, positive_int, key),
                          _optional(spec, "padding", 0, integer, key, min=0),
                          _init(spec, key))
    if kind in ("maxpool", "avgpool"):
        k = positive_int(need("kernel"), f"{key}.kernel")
        return PoolSpec(i, kind, k, _optional(spec, "stride", k, positive_int, key))
    if kind == "batchnorm":
        return BatchNormSpec(i, kind,
                             _optional(spec, "momentum", 0.1, finite_float, key, min=0.0,
                                       max=1.0, exclusive=True),
                             _optional(spec, "eps", 1e-5, finite_float, key, min=0.0,
                                       exclusive=True))
    if kind == "activation":
        return ActivationSpec(i, kind, one_of(need("name"), f"{key}.name", ACTIVATIONS))
    if kind == "flatten":
        return FlattenSpec(i, kind)
    if kind == "gain_offset":
        return GainOffsetSpec(i, kind, _optional(spec, "gain", 1.0, finite_float, key),
                              _optional(spec, "offset", 0.0, finite_float, key),
                              _optional(spec, "trainable", True, boolean, key))
    if kind in ("dac", "adc"):
        return ConverterSpec(i, kind, _converter_fields(spec, key))
    # resistive
    hidden = need("hidden")
    if not isinstance(hidden, list | tuple) or not hidden:
        raise ConfigError(f"{key}.hidden must be a non-empty list of layer sizes, e.g. [16], "
                          f"got {hidden!r}")
    hidden = tuple(positive_int(h, f"{key}.hidden[{j}]") for j, h in enumerate(hidden))
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not _BLOCK_NAME_RE.match(name)):
        raise ConfigError(f"{key}.name must be a block name ([A-Za-z][A-Za-z0-9_]*: it prefixes "
                          f"netlist elements and names files), got {name!r}")
    gain = _gain(spec, "amplifier_gain", key, len(hidden))
    back = _gain(spec, "amplifier_back_gain", key, len(hidden))
    if back is not None and gain is None:
        raise ConfigError(f"{key}.amplifier_back_gain needs {key}.amplifier_gain (without it "
                          f"the block has no amplifiers)")
    return ResistiveSpec(
        i, kind, hidden, positive_int(need("out"), f"{key}.out"), name,
        _optional(spec, "beta", None, finite_float, key, min=0.0, exclusive=True),
        _block_params(spec, key),
        _device(spec.get("device"), f"{key}.device"),
        _optional(spec, "tile_rows", None, positive_int, key),
        _optional(spec, "tile_cols", None, positive_int, key),
        _optional(spec, "wire_resistance_ohm", None, finite_float, key, min=0.0, unit="ohm"),
        _tile_converter(spec, "dac", key),
        _tile_converter(spec, "adc", key),
        gain,
        back,
    )


def _check_order(layers: Sequence[LayerSpec]) -> None:
    """Per block the order of converter and resistive layers is ``[dac] resistive [adc]``."""
    last: LayerSpec | None = None  # the last dac, adc or resistive layer
    for spec in layers:
        if spec.kind == "dac" and last is not None and last.kind in ("dac", "resistive"):
            raise ConfigError(
                f"{spec.where} follows {last.where} without an adc between: a dac turns "
                f"digital values into volts for a resistive layer (order: dac -> resistive "
                f"-> adc)")
        if spec.kind == "adc" and (last is None or last.kind != "resistive"):
            after = f"follows {last.where}" if last is not None else "comes before any"
            raise ConfigError(
                f"{spec.where} {after}{' resistive layer' if last is None else ''}: an adc "
                f"reads the output volts of a resistive layer (order: dac -> resistive -> adc)")
        if spec.kind in ("dac", "adc", "resistive"):
            last = spec
    if last is not None and last.kind == "dac":
        raise ConfigError(f"{last.where} drives no resistive layer (order: dac -> resistive "
                          f"-> adc)")
    names = [s.name or f"b{k}" for k, s in
             enumerate(s for s in layers if isinstance(s, ResistiveSpec))]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"resistive layers share the block name(s) {dup} (default names "
                          f"are b0, b1, ... in order): block names must be unique")


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` table: dataset name, IDX directory ("" = default), subset sizes
    (0 = all samples)."""

    dataset: str = "digits"
    data_dir: str = ""
    limit_train: int = 0
    limit_test: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """The ``[model]`` table: the ordered layer specs."""

    layers: tuple[LayerSpec, ...] = ()

    @property
    def resistive(self) -> tuple[ResistiveSpec, ...]:
        """The resistive (analog) layer specs in order."""
        return tuple(s for s in self.layers if isinstance(s, ResistiveSpec))


@dataclass(frozen=True)
class HardwareConfig:
    """The ``[hardware]`` table: boundary buffer capacity (bits, 0 = sized for the batch)
    and bits per stored value without a converter resolution."""

    buffer_bits: int = 0
    buffer_value_bits: int = 32


@dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` table (see :mod:`analogeq.runs.config` for each key)."""

    epochs: int = 10
    batch_size: int = 32
    loss: str = "cross_entropy"
    lr: float = 1e-3
    lr_analog: float = 0.02
    schedule: str = "cosine"
    weight_decay: float = 0.0
    backend: str = "ngspice"
    workers: int | None = None
    scheduler: str | None = None
    timeout_s: float | None = None
    startup_timeout_s: float | None = None
    sweep_points: int | None = None
    gradient: str = "ep"
    eval_batch_size: int = 256


@dataclass(frozen=True)
class RunConfig:
    """A validated run config. ``source`` is the resolved dictionary it was parsed from
    (written to ``config.json``); :meth:`to_dict` returns a copy of it."""

    name: str
    seed: int
    data: DataConfig
    model: ModelConfig
    hardware: HardwareConfig
    train: TrainConfig
    source: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config dictionary (as written to ``config.json``)."""
        import copy

        return copy.deepcopy(dict(self.source))


def check_backend_options(backend: Any, workers: Any = None, scheduler: Any = None,
                          sweep_points: Any = None, *, prefix: str = "train.") -> None:
    """The one check of a backend and its options: ``backend`` is known, ``workers``
    (>= 1) only with ``ngspice-parallel``, ``scheduler`` (an address) only with
    ``ngspice-dask``, ``sweep_points`` valid for :class:`~analogeq.params.SolverOptions`.
    ``prefix`` prefixes the key names in messages (``"--"`` for command-line flags)."""
    one_of(backend, f"{prefix}backend", BACKENDS)
    cli = prefix == "--"
    if workers is not None:
        positive_int(workers, f"{prefix}workers")
        if backend != "ngspice-parallel":
            raise ConfigError("--workers applies to --backend ngspice-parallel, not "
                              f"{backend}" if cli else f"{prefix}workers applies to backend "
                              f"'ngspice-parallel', not {backend!r}")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ConfigError(f"{prefix}scheduler must be a Dask scheduler address such as "
                              f"'tcp://host:8786', got {scheduler!r}")
        if backend != "ngspice-dask":
            raise ConfigError("--scheduler applies to --backend ngspice-dask, not "
                              f"{backend}" if cli else f"{prefix}scheduler (Dask scheduler "
                              f"{scheduler!r}) needs backend 'ngspice-dask', not {backend!r}")
    if sweep_points is not None:
        positive_int(sweep_points, f"{prefix}sweep_points")
        try:
            SolverOptions(sweep_points=sweep_points)
        except ValueError as exc:
            raise ConfigError(f"{prefix}sweep_points: {exc}") from None


def parse_config(cfg: Mapping[str, Any]) -> RunConfig:
    """Check a resolved config dictionary (every table complete, as
    :func:`~analogeq.runs.config.resolve_config` returns it) into a :class:`RunConfig`.

    Raises:
        ConfigError: the first unknown key, wrong type or out-of-range value, named by its
            dotted path.
    """
    cfg = table(cfg, "config")
    check_keys(cfg, "", DEFAULTS)
    name = string(cfg.get("name", DEFAULTS["name"]), "name", nonempty=True)
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise ConfigError(f"name must not contain path separators or control characters (it "
                          f"names the default run folder), got {name!r}")
    seed = integer(cfg.get("seed", DEFAULTS["seed"]), "seed", min=0)

    tables = {}
    for t in ("data", "model", "hardware", "train"):
        tab = table(cfg.get(t, DEFAULTS[t]), t)
        check_keys(tab, t, DEFAULTS[t])
        tables[t] = {**DEFAULTS[t], **tab}

    d = tables["data"]
    data = DataConfig(
        one_of(d["dataset"].strip().lower() if isinstance(d["dataset"], str) else d["dataset"],
               "data.dataset", DATASETS),
        string(d["data_dir"], "data.data_dir"),
        integer(d["limit_train"], "data.limit_train", min=0),
        integer(d["limit_test"], "data.limit_test", min=0),
    )

    layers = tables["model"]["layers"]
    if not isinstance(layers, list | tuple):
        raise ConfigError(f"model.layers must be a list of layer tables, got {layers!r}")
    if not layers:
        raise ConfigError("[model] needs a non-empty 'layers' list")
    specs = tuple(_layer(i, spec) for i, spec in enumerate(layers))
    _check_order(specs)

    h = tables["hardware"]
    hardware = HardwareConfig(integer(h["buffer_bits"], "hardware.buffer_bits", min=0),
                              integer(h["buffer_value_bits"], "hardware.buffer_value_bits",
                                      min=1, max=64))

    t = tables["train"]
    check_backend_options(t["backend"], t["workers"], t["scheduler"], t["sweep_points"])
    timeouts = {}
    for k in ("timeout_s", "startup_timeout_s"):  # seconds, for the worker pool only
        v = t[k]
        if v is not None:
            v = finite_float(v, f"train.{k}", min=0.0, exclusive=True)
            if t["backend"] != "ngspice-parallel":
                raise ConfigError(f"train.{k} applies to backend 'ngspice-parallel', not "
                                  f"{t['backend']!r}")
        timeouts[k] = v
    train = TrainConfig(
        epochs=positive_int(t["epochs"], "train.epochs"),
        batch_size=positive_int(t["batch_size"], "train.batch_size"),
        loss=one_of(t["loss"], "train.loss", LOSSES),
        lr=finite_float(t["lr"], "train.lr", min=0.0),
        lr_analog=finite_float(t["lr_analog"], "train.lr_analog", min=0.0),
        schedule=one_of(t["schedule"], "train.schedule", SCHEDULES),
        weight_decay=finite_float(t["weight_decay"], "train.weight_decay", min=0.0),
        backend=t["backend"],
        workers=t["workers"],
        scheduler=t["scheduler"],
        timeout_s=timeouts["timeout_s"],
        startup_timeout_s=timeouts["startup_timeout_s"],
        sweep_points=t["sweep_points"],
        gradient=one_of(t["gradient"], "train.gradient", GRADIENTS),
        eval_batch_size=positive_int(t["eval_batch_size"], "train.eval_batch_size"),
    )
    return RunConfig(name, seed, data, ModelConfig(specs), hardware, train, source=cfg)
