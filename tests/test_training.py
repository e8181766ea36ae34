"""Training runs, the run folder, atomic checkpoints, exact resume and the CLI."""

from __future__ import annotations

import filecmp
import re

import numpy as np
import pytest

from analogeq import ConfigError, build_model, load_config, read_checkpoint, resolve_config, train
from analogeq.cli import main
from analogeq.runs.training import write_checkpoint


def test_resume_gives_identical_results(tiny_config, tmp_path):
    cfg = load_config(tiny_config)
    full = train(cfg, tmp_path / "full", config_path=tiny_config, progress=False)
    train(cfg, tmp_path / "split", config_path=tiny_config, progress=False, stop_after_epochs=1)
    assert len((tmp_path / "split" / "metrics.csv").read_text().splitlines()) == 2
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed.test_accuracy == full.test_accuracy
    assert filecmp.cmp(tmp_path / "full" / "metrics.csv", tmp_path / "split" / "metrics.csv",
                       shallow=False) or _same_metrics(tmp_path)
    a, _ = read_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = read_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _mark_evaluations(monkeypatch, where, epoch_end):
    """Patch the training loop's evaluation: ``where["eval"]`` is True during it, and
    ``epoch_end()`` runs after each one (the end of an epoch's training steps)."""
    import analogeq.runs.training as tr

    evaluate = tr.evaluate

    def marking(*args, **kwargs):
        where["eval"] = True
        try:
            return evaluate(*args, **kwargs)
        finally:
            where["eval"] = False
            epoch_end()

    monkeypatch.setattr(tr, "evaluate", marking)


def _split_epochs(log, is_end):
    """The items of ``log`` grouped per epoch, at the items where ``is_end`` holds."""
    epochs, current = [], []
    for item in log:
        if is_end(item):
            epochs.append(current)
            current = []
        else:
            current.append(item)
    return epochs


def _metrics_rows(run):
    import csv

    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_metrics_report_newton_iterations_of_the_training_steps(tiny_config, tmp_path,
                                                               monkeypatch):
    """metrics.csv's Newton columns against a count of every training-step solve (the
    evaluation's solves excluded), split into forward (free) and backward (nudged)."""
    from analogeq.backends.numpy_backend import NumpyBackend
    from analogeq.model.ffebm import AnalogLayer

    where = {"phase": "free", "eval": False}
    log = []
    record, backward = NumpyBackend._record, AnalogLayer.backward

    def counting_record(self, per_sample, iterations):
        if not where["eval"]:
            log.append((where["phase"], per_sample.copy()))
        record(self, per_sample, iterations)

    def marking_backward(self, dy):
        where["phase"] = "nudged"
        try:
            return backward(self, dy)
        finally:
            where["phase"] = "free"

    monkeypatch.setattr(NumpyBackend, "_record", counting_record)
    monkeypatch.setattr(AnalogLayer, "backward", marking_backward)
    _mark_evaluations(monkeypatch, where, lambda: log.append(("epoch", None)))
    train(load_config(tiny_config), tmp_path / "run", progress=False)
    rows = _metrics_rows(tmp_path / "run")
    epochs = _split_epochs(log, lambda item: item[0] == "epoch")
    assert len(epochs) == len(rows) == 2
    for row, solves in zip(rows, epochs, strict=True):
        def mean(phases, solves=solves):
            its = np.concatenate([x for p, x in solves if p in phases])
            return round(float(its.mean()), 4)

        assert float(row["newton_iterations_mean"]) == mean(("free", "nudged"))
        assert float(row["newton_iterations_free_mean"]) == mean(("free",))
        assert float(row["newton_iterations_nudged_mean"]) == mean(("nudged",))
        assert int(row["newton_iterations_max"]) == max(int(x.max()) for _, x in solves)
        # the nudged phases start from the free state
        assert float(row["newton_iterations_nudged_mean"]) < float(
            row["newton_iterations_free_mean"])


def _same_metrics(tmp_path) -> bool:  # epoch_seconds differ between runs; the rest must not
    def rows(p):
        return [ln.split(",")[:5] for ln in p.read_text().splitlines()]

    return rows(tmp_path / "full" / "metrics.csv") == rows(tmp_path / "split" / "metrics.csv")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, {"w": np.arange(3.0)}, {"epoch": 1})
    import analogeq.runs.checkpoints as tr

    def boom(*args, **kwargs):
        raise OSError("killed mid-write")

    monkeypatch.setattr(tr.os, "replace", boom)
    with pytest.raises(OSError):
        write_checkpoint(path, {"w": np.arange(5.0)}, {"epoch": 2})
    arrays, meta = read_checkpoint(path)  # the previous checkpoint is intact
    assert meta["epoch"] == 1 and arrays["w"].tolist() == [0.0, 1.0, 2.0]


def test_cli_train_on_ngspice_writes_run_folder(tiny_config, tmp_path, capsys, ngspice):
    out = tmp_path / "run"
    code = main(["train", str(tiny_config), "--backend", "ngspice", "--epochs", "1",
                 "--out", str(out), "--quiet"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"test accuracy: \d+\.\d\d%", lines[-1])
    for name in ("config.toml", "config.json", "metrics.csv", "learning_curve.png",
                 "checkpoint.npz", "netlists/b0.cir"):
        assert (out / name).exists(), name
    assert "ngspice" in (out / "metrics.csv").read_text()
    # resuming a finished run trains nothing more and reports the same accuracy
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == lines[-1]
    # re-measuring with either solver reproduces the run's final test accuracy
    for backend in ("ngspice", "numpy"):
        assert main(["evaluate", str(out), "--backend", backend, "--quiet"]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == lines[-1]


def test_cli_refuses_to_overwrite_a_run(tiny_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_config), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(tiny_config), "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_missing_dataset_says_how_to_get_it(tiny_config, tmp_path, capsys):
    code = main(["train", str(tiny_config), "--dataset", "fashion-mnist", "--data-dir",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "dataset-fashion-mnist" in err or "--data-dir" in err


def test_config_errors_name_the_key(tiny_config):
    cfg = load_config(tiny_config)
    with pytest.raises(ConfigError, match="learning_rate"):
        resolve_config({"train": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="hologram"):
        resolve_config({"model": {"layers": [{"type": "hologram"}]}})
    with pytest.raises(ConfigError, match="colour"):
        resolve_config({"model": {"layers": [{"type": "linear", "out": 3, "colour": 1}]}})
    with pytest.raises(ConfigError, match="no 'resistive' layer"):
        build_model(resolve_config({"model": {"layers": [{"type": "linear", "out": 3}]}}), (4,))
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(tiny_config, {"train.epochs": 0})
    assert cfg["train"]["backend"] == "numpy"


@pytest.mark.parametrize(
    "name", ["digits_ffebm", "digits_realistic", "fashion_ffebm", "kendall_mnist",
             "kendall_fashion", "splitting"]
)
def test_example_configs_build(name):
    from analogeq import EXAMPLE_CONFIGS as EXAMPLES

    cfg = load_config(EXAMPLES / f"{name}.toml")
    shape = (1, 8, 8) if cfg["data"]["dataset"] == "digits" else (1, 28, 28)
    model = build_model(cfg, shape, backend="numpy")
    assert model.analog_layers


def test_checkpoints_without_batchnorm_count_still_load():
    from analogeq.runs.training import load_model_state

    cfg = resolve_config({"model": {"layers": [
        {"type": "linear", "out": 4}, {"type": "batchnorm"},
        {"type": "resistive", "hidden": [3], "out": 2}]}})
    model = build_model(cfg, (5,), backend="numpy")
    old = {f"model/{k}": v for k, v in model.state_dict().items()
           if not k.endswith("batches_tracked")}
    load_model_state(model, old)
    assert int(model.layers[1].buffers["batches_tracked"]) == 1


@pytest.mark.parametrize("adc_range, warned", [((-0.02, 0.03), True), ((-1.0, 1.0), False)])
def test_metrics_report_adc_clipping_of_the_training_steps(tiny_config, tmp_path, capsys,
                                                           monkeypatch, adc_range, warned):
    """metrics.csv's adc_clipped against the ADC inputs of every training step counted
    outside its range by hand (the evaluation's readings excluded), and the warning."""

    from digital.converters import ADC

    lo, hi = adc_range
    path = tmp_path / "narrow.toml"
    path.write_text(tiny_config.read_text().replace(
        '{ type = "adc", bits = 8, calibrate = true }',
        f'{{ type = "adc", bits = 8, v_min = {lo}, v_max = {hi} }}'))
    seen, where = [], {"eval": False}
    forward = ADC.forward

    def recording_forward(self, x, rng=None, *, train=True):
        if not where["eval"]:
            seen.append(np.asarray(x).copy())
        return forward(self, x, rng, train=train)

    monkeypatch.setattr(ADC, "forward", recording_forward)
    _mark_evaluations(monkeypatch, where, lambda: seen.append(None))
    train(load_config(path), tmp_path / "run", progress=False)
    rows = _metrics_rows(tmp_path / "run")
    epochs = [np.concatenate(e) for e in _split_epochs(seen, lambda x: x is None)]
    assert len(epochs) == len(rows) == 2
    for row, x in zip(rows, epochs, strict=True):
        outside = float(((x < lo) | (x > hi)).mean())
        assert float(row["adc_clipped"]) == pytest.approx(outside, abs=1e-6)
        assert (outside > 0.1) == warned
    err = capsys.readouterr().err
    assert ("warning: epoch 1: the ADCs clipped" in err) == warned
