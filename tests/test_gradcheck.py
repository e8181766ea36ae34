"""The static gradient analysis (``analogeq gradcheck``): EP in the blocks + BP against
the exact gradient, checked against central finite differences and run on both solvers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogeq import (
    GradcheckError,
    RunFolderError,
    build_model,
    gradcheck,
    load_config,
    resolve_config,
    train,
)
from analogeq.cli import main
from analogeq.runs.gradcheck import compare_gradients, model_gradients
from digital.gradcheck import numerical_gradient

#: digits, a deep resistive layer of two hidden layers (split into two blocks by the tests)
TWO = """
name = "two"
seed = 1
[data]
dataset = "digits"
limit_train = 60
limit_test = 20
[model]
layers = [
  { type = "linear", out = 10 },
  { type = "batchnorm" },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8, v_min = -1.0, v_max = 1.0 },
  { type = "resistive", hidden = [6, 6], out = 10 },
  { type = "adc", bits = 8, v_min = -0.25, v_max = 0.25 },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 1
batch_size = 20
backend = "numpy"
"""


@pytest.fixture
def two_config(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(TWO)
    return path


def _checked(result):
    rows = [a for a in result.arrays if not a.negligible]
    assert rows
    return rows


def test_ep_agrees_with_exact_on_a_two_block_model(two_config):
    res = gradcheck(two_config, split=2, batch_size=16, write=False)
    assert res.name == "two_2blocks" and set(res.betas) == {"b0", "b1"}
    # every crossbar of both blocks and every digital array is compared
    assert [a.name for a in res.arrays if a.block == "b0"] == ["R0", "R1"]
    assert [a.name for a in res.arrays if a.block == "b1"] == ["R0", "R1"]
    assert [a.connects for a in res.arrays if a.block == "b1"] == ["in->h1", "h1->out"]
    assert {a.layer_type for a in res.arrays if not a.analog} == {"Linear", "BatchNorm",
                                                                   "GainOffset"}
    assert res.loss_ep == pytest.approx(res.loss_exact, rel=1e-12)  # the same forward pass
    for a in _checked(res):
        assert a.cosine > 1 - 1e-9, a
        assert a.rel_error < 1e-4, a
        assert a.norm_ep == pytest.approx(a.norm_exact, rel=1e-4)
    # the bias of the linear layer before batch norm has no gradient in exact arithmetic
    bias = next(a for a in res.arrays if a.layer_type == "Linear" and a.name == "b")
    assert bias.negligible
    # a far too strong nudge reaches every block and makes EP measurably worse
    strong = gradcheck(two_config, split=2, batch_size=16, write=False, beta=1e-3)
    assert set(strong.betas.values()) == {1e-3}
    assert strong.worst(analog=True)[1] > 100 * res.worst(analog=True)[1]


def _fd_model():
    """A tiny continuous model (no converters: the loss is smooth in every parameter)."""
    cfg = resolve_config({
        "name": "fd", "seed": 2,
        "model": {"layers": [
            {"type": "linear", "out": 3},
            {"type": "activation", "name": "tanh"},
            {"type": "resistive", "hidden": [4], "out": 3},
            {"type": "gain_offset", "gain": 50.0},
        ]},
        "train": {"backend": "numpy"},
    })
    return build_model(cfg, (5,), backend="numpy")


def test_trainable_clamp_biases_are_checked_and_named(two_config, tmp_path):
    """With trainable clamp biases each block also compares one bias array per hidden
    layer, named after its layer (not as a crossbar)."""
    path = tmp_path / "biased.toml"
    path.write_text(two_config.read_text().replace(
        'hidden = [6, 6], out = 10', 'hidden = [6, 6], out = 10, trainable_diode_bias = true'))
    res = gradcheck(path, batch_size=16, write=False)
    rows = [a for a in res.arrays if a.block == "b0"]
    assert [a.name for a in rows] == ["R0", "R1", "R2", "V1", "V2"]
    assert [a.connects for a in rows[3:]] == ["h1 clamp bias", "h2 clamp bias"]
    assert [a.shape for a in rows[3:]] == [(6,), (6,)]
    for a in _checked(res):
        assert a.cosine > 1 - 1e-9 and a.rel_error < 1e-4, a


def test_exact_gradient_matches_finite_differences():
    model = _fd_model()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (6, 5))
    y = rng.integers(0, 3, 6)
    _, grads = model_gradients(model, x, y, "cross_entropy", mode="exact", backend="numpy")
    params, _, _ = model.parameter_groups()
    analog = model.analog_layers[0]

    def loss() -> float:
        return model_gradients(model, x, y, "cross_entropy", mode="exact")[0]

    checked = 0
    for p, g in zip(params, grads, strict=True):
        if p is analog.params["g0"]:  # the input crossbar (siemens): step 1e-9 S
            fd = numerical_gradient(loss, p, h=1e-9)
        elif p is model.layers[0].params["w"]:  # the digital weight before the block
            fd = numerical_gradient(loss, p, h=1e-5)
        else:
            continue
        checked += 1
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())
    assert checked == 2


def test_compare_gradients_leaves_the_model_unchanged(two_config):
    cfg = load_config(two_config)
    model = build_model(cfg, (1, 8, 8), backend="numpy")
    before = model.state_dict()
    x = np.random.default_rng(3).uniform(0, 1, (8, 1, 8, 8))
    rows, info = compare_gradients(model, x, np.arange(8) % 10, "cross_entropy", beta=1e-7)
    assert info["betas"] == {"b0": 1e-7} and model.analog_layers[0].beta is None
    after = model.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert len(rows) == len(model.parameter_groups()[0])


def test_cli_on_a_config_writes_table_json_and_plot(two_config, tmp_path, capsys):
    out = tmp_path / "gc"
    assert main(["gradcheck", str(two_config), "--split", "2", "--batch-size", "12",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = (out / "gradcheck.md").read_text()
    assert printed.startswith(table)
    assert "| layer | type | block | array |" in table and "| b1 | R1 (h1->out) |" in table
    data = json.loads((out / "gradcheck.json").read_text())
    assert data["kind"] == "config" and data["batch_size"] == 12
    assert len(data["arrays"]) == table.count("\n| ") - 1  # one row per array
    assert (out / "gradcheck.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_on_a_trained_run_folder(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config(tiny_config, {"train.epochs": 1})
    train(cfg, run, config_path=tiny_config, progress=False)
    assert main(["gradcheck", str(run), "--batch-size", "16", "--seed", "5"]) == 0
    assert "trained, epoch 1" in capsys.readouterr().out
    for name in ("gradcheck.md", "gradcheck.json", "gradcheck.png"):
        assert (run / name).exists(), name
    trained = json.loads((run / "gradcheck.json").read_text())
    fresh = gradcheck(tiny_config, batch_size=16, seed=5, write=False)
    assert trained["seed"] == 5 and trained["epoch"] == 1
    # the trained conductances were loaded: the gradients differ from the fresh model's
    norms = [a["norm_exact"] for a in trained["arrays"]]
    assert norms != pytest.approx([a.norm_exact for a in fresh.arrays], rel=1e-3)
    worst_cos = trained["worst_analog"]["cosine"]
    assert worst_cos > 1 - 1e-9


def test_errors_are_clear(tmp_path, tiny_config, capsys):
    with pytest.raises(GradcheckError, match="does not exist"):
        gradcheck(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="checkpoint.npz does not exist"):
        gradcheck(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(GradcheckError, match="neither a run folder nor a config"):
        gradcheck(tmp_path / "notes.txt")
    digital_only = {"name": "d", "model": {"layers": [{"type": "linear", "out": 10}]}}
    with pytest.raises(GradcheckError, match="no .resistive. layer"):
        gradcheck(digital_only, write=False)
    with pytest.raises(GradcheckError, match="cannot split"):
        gradcheck(tiny_config, split=2, write=False)
    with pytest.raises(GradcheckError, match="batch size"):
        gradcheck(tiny_config, batch_size=0, write=False)
    with pytest.raises(GradcheckError, match="beta"):
        gradcheck(tiny_config, beta=-1.0, write=False)
    assert main(["gradcheck", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run folder" in err


def test_ngspice_ep_agrees_with_exact(tiny_config, ngspice, tmp_path):
    res = gradcheck(tiny_config, backend="ngspice", batch_size=8, out=tmp_path / "ng")
    assert res.backend == "ngspice"
    for a in _checked(res):
        assert a.cosine >= 0.999, a
        assert a.rel_error < 1e-2, a
    assert "centered EP on ngspice" in (tmp_path / "ng" / "gradcheck.md").read_text()
