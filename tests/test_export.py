"""Standalone netlists: plain `ngspice -b` reproduces the in-process outputs; the reference
netlists in netlists/ are exactly what the code emits."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analogeq import export_netlists
from analogeq.cli import main
from analogeq.runs.export import REFERENCE_CONFIGS, write_reference_netlists

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name = "tiny"
seed = 1
[data]
dataset = "digits"
limit_train = 80
limit_test = 20
[model]
layers = [
  { type = "linear", out = 6 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8 },
  { type = "resistive", hidden = [5], out = 4, name = "front" },
  { type = "adc", bits = 8, v_min = -0.25, v_max = 0.25 },
  { type = "gain_offset", gain = 20.0 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8 },
  { type = "resistive", hidden = [4, 4], out = 10, name = "back" },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 1
batch_size = 40
backend = "numpy"
"""


def run_standalone(path: Path) -> np.ndarray:
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    values = re.findall(r"^v\(\S+\) = (\S+)$", out.stdout, flags=re.M)
    assert values, out.stdout[-2000:]
    return np.array([float(v) for v in values])


def test_exported_netlists_run_in_plain_ngspice(tmp_path, capsys, ngspice):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    run = tmp_path / "run"
    assert main(["train", str(cfg_path), "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "nets"
    assert main(["netlist", str(cfg_path), "--checkpoint", str(run), "--out", str(out),
                 "--backend", "ngspice", "--sample", "3"]) == 0
    printed = capsys.readouterr().out
    assert "ngspice -b" in printed
    from analogeq import export_netlists, load_config

    written = export_netlists(load_config(cfg_path), tmp_path / "again", checkpoint=run,
                              sample_index=3, backend="ngspice")
    assert [w.block for w in written] == ["front", "back"]
    for w in written:
        assert (out / f"{w.block}.cir").read_text() == w.path.read_text()
        standalone = run_standalone(w.path)
        np.testing.assert_allclose(standalone, w.outputs_V, rtol=0, atol=1e-6)
    readme = (out / "README").read_text()
    assert "ngspice -b" in readme and "front.cir" in readme and "trained" in readme


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_netlists_are_up_to_date(tmp_path, name):
    write_reference_netlists(tmp_path)
    for path in sorted(p for p in (tmp_path / name).rglob("*") if p.is_file()):
        committed = ROOT / "netlists" / name / path.relative_to(tmp_path / name)
        assert committed.exists(), f"{committed} missing: run `make netlists`"
        assert committed.read_text() == path.read_text(), (
            f"{committed} differs from what the code emits: run `make netlists` if intended"
        )


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_netlists_run_in_plain_ngspice(name, tmp_path, ngspice):
    from analogeq import export_netlists, load_config

    cfg = load_config(ROOT / "examples" / "configs" / f"{name}.toml")
    expected = {w.block: w.outputs_V for w in export_netlists(cfg, tmp_path, backend="ngspice")}
    for block, outputs in expected.items():
        got = run_standalone(ROOT / "netlists" / name / f"{block}.cir")
        np.testing.assert_allclose(got, outputs, rtol=0, atol=1e-6)


def test_sample_index_is_the_nth_sample_of_the_runs_test_split(tmp_path):
    from analogeq import AnalogLayer, build_model, load_config, load_dataset

    cfg = load_config(ROOT / "examples" / "configs" / "digits_ffebm.toml")
    [w] = export_netlists(cfg, tmp_path, sample_index=7)
    x = load_dataset("digits").x_test[7:8]  # the full test split, as training evaluates it
    model = build_model(cfg, x.shape[1:], backend="numpy")
    for layer in model.layers:  # the digital front-end and DAC in front of the block
        if isinstance(layer, AnalogLayer):
            break
        x = layer.forward(x, train=False)
    np.testing.assert_array_equal(w.inputs_V, x[0])
