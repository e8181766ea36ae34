"""Choosing the solver from a config or the command line: the parallel worker pool
(``--backend ngspice-parallel --workers N``) and a Dask cluster (``--scheduler ADDRESS``)
train the same model to the same numbers as the in-process ngspice backend, and
inconsistent choices fail with messages that name the key."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from analogeq import ConfigError, get_backend, resolve_config
from analogeq.cli import main

COMPARED = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def _metrics(run) -> dict:
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    out: dict = {k: np.array([float(r[k]) for r in rows]) for k in COMPARED}
    out["backend"] = [r["backend"] for r in rows]
    return out


@pytest.fixture
def reference_run(tiny_config, tmp_path, ngspice):
    out = tmp_path / "ref"
    assert main(["train", str(tiny_config), "--backend", "ngspice", "--epochs", "1", "--out",
                 str(out), "--quiet"]) == 0
    return _metrics(out)


def _assert_same_training(got, ref):
    # the batch of 40 samples is split over two workers: each chunk's sweep starts cold,
    # which moves operating points within the solver tolerance (gradients ~1e-5 relative)
    np.testing.assert_array_equal(got["test_accuracy"], ref["test_accuracy"])
    np.testing.assert_array_equal(got["train_accuracy"], ref["train_accuracy"])
    for k in ("train_loss", "test_loss"):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=0)


def test_cli_trains_on_parallel_workers_like_one_process(tiny_config, tmp_path, reference_run,
                                                         capsys):
    out = tmp_path / "par"
    assert main(["train", str(tiny_config), "--backend", "ngspice-parallel", "--workers", "2",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    got = _metrics(out)
    assert got["backend"] == ["ngspice-parallel"]
    _assert_same_training(got, reference_run)
    # the run re-measured on the pool reports the run's own final accuracy
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["evaluate", str(out), "--backend", "ngspice-parallel", "--workers", "2",
                 "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last


def test_cli_scheduler_option_trains_on_a_dask_cluster(tiny_config, tmp_path, reference_run):
    distributed = pytest.importorskip("dask.distributed")  # an optional extra
    out = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(["train", str(tiny_config), "--scheduler", cluster.scheduler_address,
                     "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    got = _metrics(out)
    assert got["backend"] == ["ngspice-dask"]
    _assert_same_training(got, reference_run)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"backend": "spice"}, "train.backend must be one of ngspice, numpy, ngspice-parallel"),
        ({"backend": "numpy", "workers": 2}, "train.workers applies to backend"),
        ({"backend": "ngspice-parallel", "workers": 0}, "train.workers must be an integer"),
        ({"backend": "ngspice-parallel", "scheduler": "tcp://x:1"}, "needs backend 'ngspice-dask'"),
        ({"backend": "ngspice-dask", "scheduler": " "}, "train.scheduler must be a Dask"),
        ({"sweep_points": 10}, "train.sweep_points: .*multiple of 6"),
    ],
)
def test_inconsistent_backend_choices_name_the_key(train, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config({"name": "x", "data": {"dataset": "digits"},
                        "model": {"layers": [{"type": "resistive", "hidden": [2], "out": 2}]},
                        "train": train})


def test_get_backend_rejects_options_of_another_backend():
    with pytest.raises(ValueError, match="applies to the 'ngspice-parallel' backend"):
        get_backend("ngspice", workers=2)
    with pytest.raises(ValueError, match="applies to the 'ngspice-dask' backend"):
        get_backend("numpy", scheduler="tcp://x:1")


def test_cli_scheduler_with_another_backend_is_a_clear_error(tiny_config, tmp_path, capsys):
    code = main(["train", str(tiny_config), "--backend", "numpy", "--scheduler", "tcp://x:1",
                 "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    assert "needs backend 'ngspice-dask'" in capsys.readouterr().err


def test_cli_evaluate_rejects_options_of_another_backend(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--workers", "2"]) == 2
    assert "--workers applies to --backend ngspice-parallel" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--backend", "numpy", "--scheduler", "tcp://x:1"]
                ) == 2
    assert "--scheduler applies to --backend ngspice-dask" in capsys.readouterr().err


def test_cli_sweep_points_make_worker_runs_bitwise_equal(tiny_config, tmp_path,
                                                          ngspice):  # noqa: ARG001
    runs = {}
    for name, extra in (("one", ["--backend", "ngspice"]),
                        ("two", ["--backend", "ngspice-parallel", "--workers", "2"])):
        out = tmp_path / name
        assert main(["train", str(tiny_config), *extra, "--sweep-points", "60", "--epochs", "1",
                     "--out", str(out), "--quiet"]) == 0
        runs[name] = _metrics(out)
    for k in COMPARED:
        np.testing.assert_array_equal(runs["two"][k], runs["one"][k])
    one, two = (np.load(tmp_path / n / "checkpoint.npz") for n in ("one", "two"))
    params = [k for k in one.files if k.startswith("model/")]
    assert any(k.endswith(".g0") for k in params)
    for key in params:  # every trained parameter, conductances included, to the bit
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
