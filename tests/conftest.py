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
