"""The run config is checked, never coerced: every hostile input of tests/data/audit_configs
ends in one ``error:`` line naming the key and exit code 2, or in a run whose recorded
config is what was used; random mutations of a valid config raise only analogeq's errors."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import pytest

from analogeq import (
    EXAMPLE_CONFIGS,
    AnalogeqError,
    BufferOverflowError,
    ConfigError,
    build_model,
    load_config,
    resolve_config,
)
from analogeq.cli import main
from analogeq.runs.config import DEFAULTS, run_config
from analogeq.runs.schema import MAX_CONVERTER_BITS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AUDIT = Path(__file__).parent / "data" / "audit_configs"

#: config file -> the key (or file) its error message must name
CONFIG_ERRORS = {
    "act_typo": "model.layers[1].name",
    "adc_bits99": "model.layers[4].bits",
    "adc_first": "model.layers[2] (adc)",
    "beta_neg": "model.layers[3].beta",
    "beta_str": "model.layers[3].beta",
    "beta_zero": "model.layers[3].beta",
    "bias_nan": "model.layers[3].bias_V",
    "binary": "binary.toml",
    "bs0": "train.batch_size",
    "dac_bits0": "model.layers[2].bits",
    "dac_bits1100": "model.layers[2].bits",
    "dac_bits99": "model.layers[2].bits",
    "dac_bits_float": "model.layers[2].bits",
    "dac_bits_str": "model.layers[2].bits",
    "dac_vmin_gt_vmax": "model.layers[2].v_max",
    "dataset_unknown": "data.dataset",
    "empty": "'layers'",
    "empty_layers": "'layers'",
    "epochs_float": "train.epochs",
    "epochs_neg": "train.epochs",
    "evalbs0": "train.eval_batch_size",
    "g_inverted": "g_min_S",
    "g_min0": "model.layers[3].g_min_S",
    "g_negative": "model.layers[3].g_min_S",
    "gain_nan": "model.layers[5].gain",
    "hidden0": "model.layers[3].hidden[0]",
    "hidden_int16": "model.layers[3].hidden",
    "hidden_str16": "model.layers[3].hidden",
    "hiddenempty": "model.layers[3].hidden",
    "hiddenneg": "model.layers[3].hidden[0]",
    "kernel0": "model.layers[0].kernel",
    "layer_not_table": "model.layers[0]",
    "layers_not_list": "model.layers_x",
    "limit_neg": "data.limit_train",
    "linear0": "model.layers[0].out",
    "linearneg": "model.layers[0].out",
    "lr_analog_nan": "train.lr_analog",
    "lr_inf": "train.lr",
    "lr_nan": "train.lr",
    "lr_neg": "train.lr",
    "lr_str": "train.lr",
    "lrnan_after": "train.lr",
    "malformed": "malformed.toml",
    "name_traversal": "name",
    "no_resistive": "model.layers[3] (adc)",
    "out0": "model.layers[3].out",
    "sched_typo": "train.schedule",
    "seed_neg": "seed",
    "seed_str": "seed",
    "tileadc_bits0": "model.layers[3].adc_bits",
    "tileadc_bits99": "model.layers[3].adc_bits",
    "tiledac_inverted": "model.layers[3].dac_v_max",
    "top_typo": "'nmae'",
    "train_not_table": "model.train",
    "typo_hiden": "model.layers[3].hiden",
    "typo_train_key": "train.epoch",
    "unknown_layer": "model.layers[3].type",
    "wd_nan": "train.weight_decay",
}
#: errors found when the model is built for the data's shape
BUILD_ERRORS = {
    "conv_on_flat": "model.layers[1] (conv2d)",
    "maxpool_big": "model.layers[0] (maxpool)",
}
#: errors found once the data is known or training runs
RUN_ERRORS = {
    "out5": "model.layers[3].out",
    "buf1": "buffer",
}
LEGAL = ("base", "bs_huge", "diode_table", "no_dac", "resistive_only")


def test_every_audit_config_is_classified():
    names = {p.stem for p in AUDIT.glob("*.toml")}
    assert names == {*CONFIG_ERRORS, *BUILD_ERRORS, *RUN_ERRORS, *LEGAL}


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("name", sorted({**CONFIG_ERRORS, **BUILD_ERRORS, **RUN_ERRORS}))
def test_cli_audit_config_ends_in_one_error_naming_the_key(name, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(AUDIT / f"{name}.toml"), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    key = {**CONFIG_ERRORS, **BUILD_ERRORS, **RUN_ERRORS}[name]
    assert key in _one_error_line(captured.err)
    if name != "buf1":  # a buffer overflow shows in the first training step
        assert not out.exists()  # found before anything was written


@pytest.mark.parametrize("name", sorted(CONFIG_ERRORS))
def test_load_config_raises_config_error_naming_the_key(name):
    with pytest.raises(ConfigError) as info:
        load_config(AUDIT / f"{name}.toml")
    assert CONFIG_ERRORS[name] in str(info.value)


@pytest.mark.parametrize("name", sorted(BUILD_ERRORS))
def test_build_model_raises_config_error_naming_the_layer(name):
    cfg = load_config(AUDIT / f"{name}.toml")
    with pytest.raises(ConfigError, match=BUILD_ERRORS[name].replace("[", r"\[").replace(
            "(", r"\(").replace(")", r"\)")):
        build_model(cfg, (1, 8, 8), backend="numpy")


def test_run_errors_have_their_classes(tmp_path):
    from analogeq import train

    with pytest.raises(ConfigError, match=r"model.layers\[3\].out.*10 classes"):
        train(load_config(AUDIT / "out5.toml"), tmp_path / "a", progress=False)
    with pytest.raises(BufferOverflowError):
        train(load_config(AUDIT / "buf1.toml"), tmp_path / "b", progress=False)


@pytest.mark.parametrize("name", LEGAL)
def test_legal_audit_configs_run_and_record_what_was_used(name, tmp_path, capsys):
    path = AUDIT / f"{name}.toml"
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    recorded = json.loads((out / "config.json").read_text())
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    for table in ("data", "train"):  # every given value is recorded as given
        for key, value in raw.get(table, {}).items():
            assert recorded[table][key] == value, f"{table}.{key}"
    assert recorded["model"]["layers"] == raw["model"]["layers"]
    if name == "diode_table":  # the block was built with the recorded diode
        model = build_model(recorded, (1, 8, 8), backend="numpy")
        assert model.analog_layers[0].block.params.diode.is_A == 1e-12


# ---------------------------------------------------------------------------
# issue items one by one, on a minimal valid config
# ---------------------------------------------------------------------------

def _base() -> dict:
    with (AUDIT / "base.toml").open("rb") as fh:
        return tomllib.load(fh)


def _with(path: str, value, raw: dict | None = None) -> dict:
    """A copy of the base config with the dotted ``path`` (``model.layers.3.hidden``) set."""
    raw = copy.deepcopy(raw or _base())
    node = raw
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    node[parts[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("model.layers.3.hidden", "16", r"model.layers\[3\].hidden"),
        ("model.layers.3.hidden", [8.0], r"model.layers\[3\].hidden\[0\]"),
        ("model.layers.3.hidden", [True], r"model.layers\[3\].hidden\[0\]"),
        ("model.layers.0.out", "12", r"model.layers\[0\].out"),
        ("model.layers.3.tile_rows", 8.5, r"model.layers\[3\].tile_rows"),
        ("model.layers.3.tile_rows", True, r"model.layers\[3\].tile_rows"),
        ("model.layers.3.tile_cols", "8", r"model.layers\[3\].tile_cols"),
        ("model.layers.3.wire_resistance_ohm", "1", r"model.layers\[3\].wire_resistance_ohm"),
        ("train.epochs", 1.7, "train.epochs"),
        ("train.epochs", True, "train.epochs"),
        ("train.batch_size", "40", "train.batch_size"),
        ("train.lr", "1e-3", "train.lr"),
        ("train.lr", True, "train.lr"),
        ("seed", 1.5, "seed"),
        ("seed", False, "seed"),
        ("hardware.buffer_bits", 1.0, "hardware.buffer_bits"),
        ("model.layers.4.calibrate", 1, r"model.layers\[4\].calibrate"),
        ("model.layers.5.trainable", "no", r"model.layers\[5\].trainable"),
        ("data.limit_train", 60.0, "data.limit_train"),
    ],
)
def test_types_are_checked_not_coerced(path, value, named):
    with pytest.raises(ConfigError, match=named):
        resolve_config(_with(path, value))


@pytest.mark.parametrize(
    ("raw_change", "named", "hint"),
    [
        (("model.backend", "ngspice"), "model.backend", r"\[train\]"),
        (("model.train", 3), "model.train", "top-level table"),
        (("model.epochs", 3), "model.epochs", r"\[train\]"),
        (("data.lr", 0.1), "data.lr", r"\[train\]"),
        (("model.layers.3.hiden", [8]), r"model.layers\[3\].hiden", "did you mean 'hidden'"),
        (("model.layers.0.outt", 3), r"model.layers\[0\].outt", "did you mean 'out'"),
        (("hardware.buffer_bit", 3), "hardware.buffer_bit", "did you mean 'buffer_bits'"),
        (("train.shedule", "cosine"), "train.shedule", "did you mean 'schedule'"),
        (("nmae", "x"), "nmae", "did you mean 'name'"),
        (("model.layers.3.device", {"preset": "pcm", "read_noise": 0.1}),
         r"model.layers\[3\].device.read_noise", "did you mean 'read_noise_rel'"),
        (("model.layers.3.diode", {"is_a": 1e-12}), r"model.layers\[3\].diode.is_a",
         "did you mean 'is_A'"),
    ],
)
def test_every_table_rejects_unknown_keys_with_the_nearest_name(raw_change, named, hint):
    with pytest.raises(ConfigError, match=named) as info:
        resolve_config(_with(*raw_change))
    assert info.match(hint)


@pytest.mark.parametrize(
    ("path", "value", "named", "says"),
    [
        ("train.schedule", "cosin", "train.schedule", "did you mean 'cosine'"),
        ("train.lr", -1.0, "train.lr", ">= 0"),
        ("train.weight_decay", -0.1, "train.weight_decay", ">= 0"),
        ("train.lr_analog", -0.02, "train.lr_analog", ">= 0"),
        ("train.lr", math.nan, "train.lr", "finite"),
        ("train.lr", math.inf, "train.lr", "finite"),
        ("train.weight_decay", math.nan, "train.weight_decay", "finite"),
        ("train.epochs", 1.7, "train.epochs", "integer"),
        ("model.layers.3.tile_rows", 8.5, r"model.layers\[3\].tile_rows", "integer"),
        ("model.layers.2.bits", MAX_CONVERTER_BITS + 1, r"model.layers\[2\].bits", "1..24"),
        ("model.layers.4.bits", 0, r"model.layers\[4\].bits", "1..24"),
        ("model.layers.3.dac_bits", 99, r"model.layers\[3\].dac_bits", "1..24"),
        ("train.loss", "mae", "train.loss", "cross_entropy"),
        ("train.gradient", "bptt", "train.gradient", "exact"),
    ],
)
def test_values_out_of_range_name_the_key(path, value, named, says):
    with pytest.raises(ConfigError, match=named) as info:
        resolve_config(_with(path, value))
    assert info.match(says)


def test_converter_bits_accept_the_documented_range():
    for bits in (1, MAX_CONVERTER_BITS):
        cfg = resolve_config(_with("model.layers.2.bits", bits))
        assert build_model(cfg, (1, 8, 8), backend="numpy").analog_layers


@pytest.mark.parametrize(
    ("order", "named"),
    [
        (["adc", "resistive", "dac"], r"layers\[0\] \(adc\)"),
        (["resistive", "dac"], r"layers\[1\] \(dac\)"),
        (["dac", "dac", "resistive"], r"layers\[1\] \(dac\)"),
        (["dac", "adc", "resistive"], r"layers\[1\] \(adc\)"),
        (["resistive", "adc", "adc"], r"layers\[2\] \(adc\)"),
        (["dac", "resistive", "adc", "dac"], r"layers\[3\] \(dac\)"),
    ],
)
def test_converter_order_is_dac_resistive_adc(order, named):
    specs = {"dac": {"type": "dac", "bits": 8}, "adc": {"type": "adc", "bits": 8},
             "resistive": {"type": "resistive", "hidden": [4], "out": 10}}
    with pytest.raises(ConfigError, match=named) as info:
        resolve_config({"model": {"layers": [specs[k] for k in order]}})
    assert info.match("dac -> resistive -> adc")


def test_legal_converter_orders():
    r = {"type": "resistive", "hidden": [4], "out": 10}
    for layers in ([r], [{"type": "dac"}, r], [r, {"type": "adc"}],
                   [{"type": "dac"}, r, {"type": "adc"}, {"type": "linear", "out": 6},
                    {"type": "dac"}, dict(r, name="b1"), {"type": "adc"}]):
        resolve_config({"model": {"layers": layers}})


def test_block_names_are_identifiers_and_unique():
    r = {"type": "resistive", "hidden": [4], "out": 10}
    with pytest.raises(ConfigError, match=r"model.layers\[0\].name"):
        resolve_config({"model": {"layers": [dict(r, name="../x")]}})
    with pytest.raises(ConfigError, match="b0"):
        resolve_config({"model": {"layers": [r, {"type": "linear", "out": 4},
                                             dict(r, name="b0")]}})


def test_backend_options_are_checked_in_one_place(capsys, tmp_path):
    # the config and the evaluate command reach the same check
    with pytest.raises(ConfigError, match="train.workers"):
        resolve_config(_with("train.workers", True))
    assert main(["evaluate", str(tmp_path), "--backend", "numpy", "--workers", "2"]) == 2
    assert "--workers applies to --backend ngspice-parallel" in _one_error_line(
        capsys.readouterr().err)


# ---------------------------------------------------------------------------
# valid configs resolve as before; typed view
# ---------------------------------------------------------------------------

def _merged(raw: dict) -> dict:
    """DEFAULTS with ``raw`` merged over them table by table (how configs always
    resolved), computed without resolve_config."""
    cfg = copy.deepcopy(DEFAULTS)
    for k, v in raw.items():
        if isinstance(cfg[k], dict):
            cfg[k].update(copy.deepcopy(v))
        else:
            cfg[k] = v
    return cfg


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLE_CONFIGS.glob("*.toml")))
def test_valid_configs_resolve_to_the_merged_dict(name):
    with (EXAMPLE_CONFIGS / f"{name}.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    cfg = resolve_config(raw)
    assert cfg == _merged(raw)
    assert resolve_config(cfg) == cfg  # resume re-resolves the stored config
    rc = run_config(cfg)
    assert rc.to_dict() == cfg
    assert rc.train.epochs == cfg["train"]["epochs"]
    assert len(rc.model.layers) == len(cfg["model"]["layers"])


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("model.layers.0.out", 2**40, "parameters"),           # 64 x 2^40 weights: 512 TiB
        ("model.layers.3.hidden", [2**24], "parameters"),       # 12 x 2^24 + 2^24 x 10
        ("model.layers.3.out", 10**8, "parameters"),
    ],
)
def test_oversized_layers_are_config_errors_before_any_allocation(path, value, says):
    """A layer too large to allocate is a ConfigError naming it, not a MemoryError (or a
    machine swapping to death) from deep inside NumPy."""
    cfg = resolve_config(_with(path, value))
    layer = path.split(".")[2]
    with pytest.raises(ConfigError, match=rf"model.layers\[{layer}\].*{says}"):
        build_model(cfg, (1, 8, 8), backend="numpy")


def test_oversized_conv_outputs_are_config_errors():
    raw = _base()
    raw["model"]["layers"][0] = {"type": "conv2d", "out": 4, "kernel": 3, "padding": 2**20}
    cfg = resolve_config(raw)
    with pytest.raises(ConfigError, match=r"model.layers\[0\].*outputs per sample"):
        build_model(cfg, (1, 8, 8), backend="numpy")


def test_configs_of_older_runs_still_build():
    cfg = resolve_config(_base())
    old = {k: v for k, v in cfg.items() if k != "hardware"}
    old["train"] = {k: v for k, v in cfg["train"].items() if k != "eval_batch_size"}
    assert build_model(old, (1, 8, 8), backend="numpy").analog_layers


# ---------------------------------------------------------------------------
# random mutations never raise anything but analogeq's own errors
# ---------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


def _paths(node, prefix=()):
    """Every (path, value) of a nested dict/list config."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        yield (*prefix, k)
        if isinstance(v, dict | list):
            yield from _paths(v, (*prefix, k))


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0, 1, 8, 24, 25, 2**40, -(2**40), 1e-30, 1e30, 0.5, -1.0]),
    st.text(max_size=6), st.sampled_from(["ngspice", "numpy", "cosine", "relu", "resistive",
                                          "16", "", "../x", "pcm"]),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["type", "out", "preset", "is_A", "x"]), _SCALARS,
                    max_size=2),
)
_BASE = _base()
_BASE_PATHS = list(_paths(_BASE))


@hypothesis.settings(max_examples=250, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(
    mutations=st.lists(
        st.tuples(st.sampled_from(_BASE_PATHS), st.sampled_from(["set", "delete", "add"]),
                  _VALUES, st.sampled_from(["hidden", "epoch", "backend", "bits", "x", "lr"])),
        min_size=1, max_size=3),
)
def test_random_config_mutations_raise_only_analogeq_errors(mutations):
    raw = copy.deepcopy(_BASE)
    for path, op, value, new_key in mutations:
        node = raw
        try:
            for p in path[:-1]:
                node = node[p]
            last = path[-1]
            if op == "set":
                node[last] = value
            elif op == "delete":
                del node[last]
            elif isinstance(node[last], dict):
                node[last][new_key] = value
            else:
                node[last] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced that path
    try:
        cfg = resolve_config(raw)
        build_model(cfg, (1, 8, 8), backend="numpy")
    except AnalogeqError:
        pass


@hypothesis.settings(max_examples=150, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(gain=_VALUES, back=st.one_of(st.just("absent"), _VALUES),
                  hidden=st.sampled_from([[8], [8, 4], [4, 4, 4]]))
def test_random_amplifier_gains_raise_only_config_errors(gain, back, hidden):
    """Whatever ``amplifier_gain`` / ``amplifier_back_gain`` hold, the config either
    builds a block with exactly those gains or raises a ConfigError naming the key."""
    raw = copy.deepcopy(_BASE)
    spec = raw["model"]["layers"][3]
    spec["hidden"], spec["amplifier_gain"] = hidden, gain
    if back != "absent":
        spec["amplifier_back_gain"] = back
    try:
        cfg = resolve_config(raw)
    except ConfigError as exc:
        assert "amplifier_" in str(exc), exc
        return
    block = build_model(cfg, (1, 8, 8), backend="numpy").analog_layers[0].block
    n = len(hidden)
    if gain is None:
        assert not block.amplified
        return
    gains = tuple(float(g) for g in gain) if isinstance(gain, list) else (float(gain),) * n
    assert block.amplifier_gains == gains
    if back not in ("absent", None):
        want = tuple(float(c) for c in back) if isinstance(back, list) else (float(back),) * n
        assert block.amplifier_back_gains == want


# ---------------------------------------------------------------------------
# IDX data errors reach the CLI as one error line naming the file
# ---------------------------------------------------------------------------

def _idx(path: Path, arr, magic: bytes | None = None) -> None:
    import struct

    import numpy as np

    arr = np.asarray(arr, dtype=np.uint8)
    header = magic if magic is not None else bytes([0, 0, 0x08, arr.ndim])
    path.write_bytes(header + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def _idx_set(directory: Path, n_train: int) -> None:
    import numpy as np

    from analogeq.runs.datasets import IDX_FILES

    directory.mkdir()
    sizes = {"train": n_train, "t10k": 5}
    for role, base in IDX_FILES.items():
        n = sizes[base.split("-")[0]]
        arr = np.zeros((n, 8, 8)) if "images" in role else np.arange(n) % 10
        _idx(directory / base, arr)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("empty", "train-images-idx3-ubyte: holds no images"),
        ("magic", "train-labels-idx1-ubyte: bad IDX magic"),
        ("truncated", "t10k-images-idx3-ubyte: header announces"),
        ("labels", "labels exceed 9"),
    ],
)
def test_idx_errors_end_in_one_error_line(damage, named, tmp_path, capsys):
    import numpy as np

    d = tmp_path / "idx"
    _idx_set(d, 0 if damage == "empty" else 20)
    if damage == "magic":
        _idx(d / "train-labels-idx1-ubyte", np.arange(20) % 10, magic=b"\x08\x01\x08\x01")
    elif damage == "truncated":
        raw = (d / "t10k-images-idx3-ubyte").read_bytes()
        (d / "t10k-images-idx3-ubyte").write_bytes(raw[:-7])
    elif damage == "labels":
        _idx(d / "train-labels-idx1-ubyte", np.full(20, 12))
    cfg = tmp_path / "c.toml"
    cfg.write_text((AUDIT / "base.toml").read_text().replace('dataset = "digits"',
                                                             'dataset = "mnist"'))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--data-dir", str(d), "--out", str(out), "--quiet"]) == 2
    assert named in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


# -- item 15: the worker pool's timeouts from the config --------------------------------


@pytest.mark.parametrize(("key", "value", "match"), [
    ("train.timeout_s", 0, "train.timeout_s"),
    ("train.timeout_s", -1.0, "train.timeout_s"),
    ("train.timeout_s", "10", "train.timeout_s"),
    ("train.startup_timeout_s", float("inf"), "train.startup_timeout_s"),
    ("train.startup_timeout_s", True, "train.startup_timeout_s"),
])
def test_bad_worker_timeouts_name_the_key(key, value, match):
    raw = _with("train.backend", "ngspice-parallel")
    with pytest.raises(ConfigError, match=match):
        resolve_config(_with(key, value, raw))


def test_worker_timeouts_need_the_worker_pool():
    with pytest.raises(ConfigError, match="train.timeout_s applies to backend 'ngspice-parallel'"):
        resolve_config(_with("train.timeout_s", 30.0))


def test_worker_timeouts_reach_the_pool():
    from analogeq.runs.config import build_model

    raw = _with("train.backend", "ngspice-parallel")
    raw = _with("train.timeout_s", 30.0, raw)
    raw = _with("train.startup_timeout_s", 45.0, raw)
    cfg = resolve_config(raw)
    model = build_model(cfg, (64,))
    try:
        pool = model.analog_layers[0].backend
        assert (pool.timeout_s, pool.startup_timeout_s) == (30.0, 45.0)
    finally:
        model.close()
