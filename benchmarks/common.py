"""Shared helpers: machine description, resident memory, timing, block sizes."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

#: Blocks measured: (n_in, hidden, n_out). S, M and K as named in BENCHMARKS.md.
BLOCKS: dict[str, tuple[int, int, int]] = {
    "S": (64, 64, 10),
    "M": (196, 256, 10),
    "K": (784, 100, 10),
}


def rss_mb() -> float:
    """Resident set size of this process in MB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def machine() -> dict:
    """CPU model, core count, RAM and the date."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gb = float("nan")
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    ram_gb = int(line.split()[1]) / 1024.0**2
                    break
    except OSError:
        pass
    ngspice = "unknown"
    try:
        from analogeq.backends.ngspice import engine

        ngspice = str(engine().version)
    except Exception as exc:  # noqa: BLE001 - report, do not fail
        ngspice = f"unavailable ({exc})"
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_GB": round(ram_gb, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ngspice": ngspice,
        "platform": platform.platform(),
    }


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def inputs(n_in: int, n_out: int, batch: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs u in [-1, 1] V and cotangents delta in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, n_in)), rng.uniform(-1, 1, (batch, n_out))
