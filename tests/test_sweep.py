"""Sensitivity sweeps over one parameter, in parallel worker processes."""

from __future__ import annotations

import csv

import pytest

from analogeq import ConfigError, resolve_config
from analogeq.cli import main
from analogeq.runs.sweep import apply_param, parse_values

CFG = {
    "name": "tiny",
    "data": {"dataset": "digits", "limit_train": 60, "limit_test": 30},
    "model": {"layers": [
        {"type": "linear", "out": 6},
        {"type": "activation", "name": "hardtanh"},
        {"type": "dac", "bits": 8},
        {"type": "resistive", "hidden": [5], "out": 10},
        {"type": "adc", "bits": 8, "v_min": -0.25, "v_max": 0.25},
        {"type": "gain_offset", "gain": 100.0},
    ]},
    "train": {"epochs": 1, "batch_size": 30, "backend": "numpy"},
}


def test_apply_param_paths():
    cfg = resolve_config(CFG)
    assert apply_param(cfg, "adc.bits", 4)["model"]["layers"][4]["bits"] == 4
    assert apply_param(cfg, "train.lr", 0.1)["train"]["lr"] == 0.1
    dev = apply_param(cfg, "resistive.device.read_noise_rel", 0.02)["model"]["layers"][3]
    assert dev["device"] == {"read_noise_rel": 0.02}
    assert cfg["model"]["layers"][4]["bits"] == 8  # the original is untouched
    with pytest.raises(ConfigError, match="nonsense"):
        apply_param(cfg, "train.nonsense", 1)
    with pytest.raises(ConfigError, match="conv2d"):
        apply_param(cfg, "conv2d.out", 1)
    assert parse_values("2, 4.5,none") == [2, 4.5, None]


def test_cli_sweep_writes_csv_and_plot_in_parallel(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\n[data]\ndataset = "digits"\nlimit_train = 60\nlimit_test = 30\n'
        "[model]\nlayers = [\n"
        '  { type = "linear", out = 6 },\n'
        '  { type = "activation", name = "hardtanh" },\n'
        '  { type = "dac", bits = 8 },\n'
        '  { type = "resistive", hidden = [5], out = 10 },\n'
        '  { type = "adc", bits = 8, v_min = -0.25, v_max = 0.25 },\n'
        '  { type = "gain_offset", gain = 100.0 },\n]\n'
        '[train]\nepochs = 1\nbatch_size = 30\nbackend = "numpy"\n'
    )
    out = tmp_path / "sweep"
    code = main(["sweep", str(path), "--param", "adc.bits", "--values", "2,8", "--seeds", "2",
                 "--workers", "2", "--out", str(out), "--quiet"])
    assert code == 0
    with (out / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["adc.bits"], r["seed"]) for r in rows] == [("2", "0"), ("2", "1"), ("8", "0"),
                                                          ("8", "1")]
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert (out / "sweep.png").stat().st_size > 1000
    assert "| adc.bits |" in capsys.readouterr().out
