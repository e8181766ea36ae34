"""Shared fixtures. Physics tests run the real ngspice: a missing ngspice is a failure."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ngspice():
    """The in-process ngspice backend (fails, never skips, when libngspice is missing)."""
    from analogeq.backends.ngspice import NgspiceBackend, engine

    engine()  # load the library now so a missing ngspice fails loudly here
    return NgspiceBackend()


@pytest.fixture(scope="session")
def numpy_backend():
    from analogeq.backends.numpy_backend import NumpyBackend

    return NumpyBackend()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


#: A tiny ff-EBM (digits subset, one small resistive block) for training and CLI tests.
TINY = """
name = "tiny"
seed = 3
[data]
dataset = "digits"
limit_train = 120
limit_test = 60
[model]
layers = [
  { type = "linear", out = 12 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8, v_min = -1.0, v_max = 1.0 },
  { type = "resistive", hidden = [8], out = 10 },
  { type = "adc", bits = 8, calibrate = true },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 2
batch_size = 40
backend = "numpy"
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path
