"""The installed package (not the source tree) works: build a wheel, install it without
``-e`` into a fresh virtual environment, run the CLI from an unrelated directory."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.name for p in (ROOT / "analogeq" / "runs" / "configs").glob("*.toml"))

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel file, python of a fresh venv with that wheel installed, not editable)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a clean copy (symlinks kept, e.g. examples/configs): an in-tree build
    # would leave build/ behind, whose stale files a later wheel would ship
    src = tmp / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".*_cache",
                                  ".hypothesis")

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = {"build", "dist", "runs"} if Path(directory) == ROOT else set()
        return set(skip(directory, names)) | (top & set(names))

    shutil.copytree(ROOT, src, symlinks=True, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
          "-q", "-w", str(tmp / "dist")], cwd=tmp, timeout=300)
    wheels = list((tmp / "dist").glob("analogeq-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # the dependencies (numpy, PySpice, ...) come from this interpreter's site-packages,
    # appended after the venv's own (a path in a .pth file: the editable install's own
    # .pth hook there is not run, so only the wheel provides analogeq)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
          str(wheels[0])], cwd=tmp, timeout=300)
    return wheels[0], py


def test_wheel_ships_the_example_configs(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("analogeq/runs/configs/"))
    assert shipped == CONFIGS and len(CONFIGS) >= 5
    assert not any(n.startswith("examples/") for n in names)  # the symlink is not packaged


def test_installed_package_runs_from_any_directory(installed, tmp_path):
    _, py = installed
    where = _run([str(py), "-c", "import analogeq; print(analogeq.__file__); "
                  "print(analogeq.EXAMPLE_CONFIGS)"], cwd=tmp_path).stdout.split()
    assert not where[0].startswith(str(ROOT)), f"imported the source tree: {where[0]}"
    assert sorted(p.name for p in Path(where[1]).glob("*.toml")) == CONFIGS

    cli = py.parent / "analogeq"
    out = tmp_path / "netlists"
    _run([str(cli), "netlist", "--reference", "--out", str(out)], cwd=tmp_path)
    reference = sorted(p.relative_to(ROOT / "netlists") for p in (ROOT / "netlists").rglob("*")
                       if p.is_file())
    assert reference
    for rel in reference:
        assert filecmp.cmp(out / rel, ROOT / "netlists" / rel, shallow=False), rel

    run = tmp_path / "demo"
    proc = _run([str(cli), "demo", "--epochs", "1", "--backend", "numpy", "--out", str(run)],
                cwd=tmp_path, timeout=300)
    assert "test accuracy" in proc.stdout.lower() or (run / "metrics.csv").exists(), proc.stdout
    assert (run / "config.toml").exists()
