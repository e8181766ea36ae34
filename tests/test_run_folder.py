"""Run folders lose nothing: no overwrite of a folder that is not a run, one training per
folder (a lock), unique temp files, resume only of files that belong together, and clean
errors naming the file for truncated or corrupted checkpoints and metrics."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from analogeq import (
    CheckpointError,
    RunExistsError,
    RunFolderError,
    load_config,
    read_checkpoint,
    train,
)
from analogeq.cli import main
from analogeq.runs.checkpoints import write_checkpoint
from analogeq.runs.training import lock_run_folder

REPO = Path(__file__).resolve().parent.parent

SMALL = """
name = "small"
seed = 3
[data]
dataset = "digits"
limit_train = 60
limit_test = 30
[model]
layers = [
  { type = "linear", out = 12 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8, v_min = -1.0, v_max = 1.0 },
  { type = "resistive", hidden = [6], out = 10 },
  { type = "adc", bits = 8, calibrate = true },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 2
batch_size = 30
backend = "numpy"
"""


@pytest.fixture
def small(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _half_run(small: Path, out: Path) -> None:
    """A run stopped after its first of two epochs."""
    train(load_config(small), out, config_path=small, progress=False, stop_after_epochs=1)


# -- item 9: --out into a folder that is not a run ---------------------------------------

def test_out_into_a_folder_that_is_not_a_run_refuses_and_overwrites_nothing(
        small, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in (("config.toml", "my notes"), ("metrics.csv", "a,b\n1,2\n")):
        (out / name).write_text(text)
    assert main(["train", str(small), "--out", str(out), "--quiet"]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "not empty" in line
    assert sorted(p.name for p in out.iterdir() if p.name != "run.lock") == [
        "config.toml", "metrics.csv"]
    assert (out / "config.toml").read_text() == "my notes"
    assert (out / "metrics.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(RunFolderError, match="not empty"):
        train(load_config(small), out, progress=False)


def test_out_into_a_file_refuses(small, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(["train", str(small), "--out", str(out), "--quiet"]) == 2
    assert str(out) in _error_line(capsys)
    assert out.read_text() == "x"


def test_out_into_an_empty_folder_trains(small, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert train(load_config(small), out, progress=False).epochs == 2


def test_out_into_a_run_says_resume(small, tmp_path):
    out = tmp_path / "run"
    _half_run(small, out)
    with pytest.raises(RunExistsError, match="--resume"):
        train(load_config(small), out, progress=False)


# -- item 10: one process per folder, unique temp names ----------------------------------

def test_a_locked_folder_refuses_a_second_training(small, tmp_path, capsys):
    out = tmp_path / "run"
    with lock_run_folder(out):
        assert main(["train", str(small), "--out", str(out), "--quiet"]) == 2
        line = _error_line(capsys)
        assert "in use" in line and str(out) in line
        with pytest.raises(RunFolderError, match="in use"):
            train(load_config(small), out, resume=False, progress=False)
    assert list(p.name for p in out.iterdir()) == ["run.lock"]  # nothing else written
    assert main(["train", str(small), "--out", str(out), "--quiet"]) == 0  # lock released


def test_two_trainings_racing_on_one_folder(small, tmp_path):
    out = tmp_path / "race"
    cmd = [sys.executable, "-m", "analogeq", "train", str(small), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused
    assert len([ln for ln in refused.splitlines() if ln.startswith("error:")]) == 1
    arrays, meta = read_checkpoint(out / "checkpoint.npz")  # intact and complete
    assert meta["epoch"] == 2 and arrays
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {r["run_id"] for r in rows} == {meta["run_id"]}
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_concurrent_checkpoint_writes_use_unique_temp_files(tmp_path):
    path = tmp_path / "checkpoint.npz"
    errors: list[BaseException] = []

    def writer(k):
        try:
            for i in range(15):
                write_checkpoint(path, {"w": np.full(50, float(k))}, {"epoch": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    arrays, meta = read_checkpoint(path)
    assert arrays["w"].shape == (50,) and len(set(arrays["w"].tolist())) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_a_failed_checkpoint_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import analogeq.runs.checkpoints as ck

    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, {"w": np.arange(3.0)}, {"epoch": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", boom)
    with pytest.raises(OSError):
        write_checkpoint(path, {"w": np.arange(5.0)}, {"epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


# -- item 11: resume checks that the files belong together -------------------------------

def test_resume_refuses_a_checkpoint_of_another_run(small, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _half_run(small, a)
    _half_run(small, b)
    shutil.copyfile(b / "checkpoint.npz", a / "checkpoint.npz")
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        train(load_config(small), a, resume=True, progress=False)
    before = (a / "metrics.csv").read_text()
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    assert "another run" in _error_line(capsys) or "belong" in _error_line(capsys)
    assert (a / "metrics.csv").read_text() == before  # nothing mixed in


def test_resume_refuses_metrics_of_another_run(small, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _half_run(small, a)
    _half_run(small, b)
    shutil.copyfile(b / "metrics.csv", a / "metrics.csv")
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    line = _error_line(capsys)
    assert "metrics.csv" in line and "do not belong together" in line


def test_resume_refuses_a_replaced_config(small, tmp_path, capsys):
    a = tmp_path / "a"
    _half_run(small, a)
    cfg = json.loads((a / "config.json").read_text())
    cfg["train"]["lr"] = 0.5
    (a / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    assert "config.json" in _error_line(capsys)


def test_resume_refuses_metrics_missing_epochs(small, tmp_path):
    a = tmp_path / "a"
    _half_run(small, a)
    lines = (a / "metrics.csv").read_text().splitlines(keepends=True)
    (a / "metrics.csv").write_text(lines[0])  # header only: epoch 1 lost
    with pytest.raises(CheckpointError, match=r"metrics.csv has rows for epochs \[\]"):
        train(load_config(small), a, resume=True, progress=False)


def test_config_with_resume_is_refused(small, tmp_path, capsys):
    a = tmp_path / "a"
    _half_run(small, a)
    assert main(["train", str(small), "--resume", str(a), "--quiet"]) == 2
    assert "CONFIG" in _error_line(capsys)
    assert main(["train", "--resume", str(a), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "--out" in _error_line(capsys)
    assert read_checkpoint(a / "checkpoint.npz")[1]["epoch"] == 1  # untouched


def test_folders_without_run_ids_still_resume(small, tmp_path):
    """Run folders written before run ids existed have none in checkpoint and metrics."""
    a = tmp_path / "a"
    _half_run(small, a)
    (a / "run.json").unlink()
    arrays, meta = read_checkpoint(a / "checkpoint.npz")
    del meta["run_id"]
    write_checkpoint(a / "checkpoint.npz", arrays, meta)
    with (a / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    with (a / "metrics.csv").open("w", newline="") as fh:
        fields = [f for f in rows[0] if f != "run_id"]
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert train(load_config(small), a, resume=True, progress=False).epochs == 2


# -- item 12: truncated or corrupted files -----------------------------------------------

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _flip, _empty])
def test_damaged_checkpoint_gives_an_error_naming_it(damage, small, tmp_path, capsys):
    a = tmp_path / "a"
    _half_run(small, a)
    damage(a / "checkpoint.npz")
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        read_checkpoint(a / "checkpoint.npz")
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    assert str(a / "checkpoint.npz") in _error_line(capsys)
    assert main(["evaluate", str(a), "--backend", "numpy", "--quiet"]) == 2
    assert "checkpoint.npz" in _error_line(capsys)


@pytest.mark.parametrize("damage", [
    _truncate,
    lambda p: p.write_bytes(b"\xff\xfe\x00" + p.read_bytes()[3:]),
    lambda p: p.write_text(p.read_text().replace("\n1,", "\nx,")),
])
def test_damaged_metrics_give_an_error_naming_them(damage, small, tmp_path, capsys):
    a = tmp_path / "a"
    _half_run(small, a)
    damage(a / "metrics.csv")
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    assert str(a / "metrics.csv") in _error_line(capsys)


def test_a_checkpoint_without_a_config_is_refused(small, tmp_path, capsys):
    a = tmp_path / "a"
    a.mkdir()
    write_checkpoint(a / "checkpoint.npz", {"w": np.zeros(2)}, {"epoch": 1})
    assert main(["train", "--resume", str(a), "--quiet"]) == 2
    assert "checkpoint.npz" in _error_line(capsys)
    np.save(a / "checkpoint.npz", np.zeros(3))  # np.save adds .npy: write a bare array
    (a / "checkpoint.npz.npy").replace(a / "checkpoint.npz")
    with pytest.raises(CheckpointError, match="not an analogeq checkpoint"):
        read_checkpoint(a / "checkpoint.npz")
