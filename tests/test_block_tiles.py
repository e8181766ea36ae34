"""Blocks on tiles with resistive wires: EP still matches exact gradients, which match
finite differences, and wire resistance appears in configs."""

from __future__ import annotations

import numpy as np

from analogeq import ResistiveBlock, TileConfig, build_model, resolve_config


def _cos_rel(a, b):
    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), float(
        np.linalg.norm(a - b) / np.linalg.norm(b))


def _wired(r_ohm=200.0):
    return ResistiveBlock((6, 5, 3), seed=4, tile=TileConfig(rows=8, cols=4,
                                                              wire_resistance_ohm=r_ohm))


def test_wired_ep_on_ngspice_matches_exact(ngspice):
    block = _wired()
    rng = np.random.default_rng(0)
    u, delta = rng.uniform(-1, 1, (4, 6)), rng.normal(size=(4, 3))
    ep = block.ep_gradients(u, delta, backend=ngspice)
    exact = block.exact_gradients(u, delta)
    for a, b in [*zip(ep.conductances, exact.conductances, strict=True),
                 (ep.inputs, exact.inputs)]:
        cos, rel = _cos_rel(a, b)
        assert cos >= 0.999 and rel <= 0.02, (cos, rel)


def test_wired_exact_gradients_match_finite_differences(numpy_backend):
    block = _wired(500.0)
    rng = np.random.default_rng(1)
    u, delta = rng.uniform(-1, 1, (2, 6)), rng.normal(size=(2, 3))
    exact = block.exact_gradients(u, delta)

    def loss():
        return float((delta * block.free(u, backend=numpy_backend).outputs).sum())

    for k, g in enumerate(block.conductances):
        for idx in [(0, 0), (3, 2), (-1, 1)]:
            g0 = g[idx]
            g[idx] = g0 * (1 + 1e-4)
            up = loss()
            g[idx] = g0 * (1 - 1e-4)
            down = loss()
            g[idx] = g0
            fd = (up - down) / (2e-4 * g0)
            assert abs(fd - exact.conductances[k][idx]) <= 1e-5 * abs(fd) + 1e-9
    up, down = u.copy(), u.copy()
    up[1, 2] += 1e-5
    down[1, 2] -= 1e-5
    fd = (float((delta * block.free(up, backend=numpy_backend).outputs).sum())
          - float((delta * block.free(down, backend=numpy_backend).outputs).sum())) / 2e-5
    assert abs(fd - exact.inputs[1, 2]) <= 1e-5 * abs(fd) + 1e-9


def test_wire_resistance_changes_outputs_and_vanishes_at_zero(numpy_backend):
    u = np.random.default_rng(2).uniform(-1, 1, (3, 6))
    ideal = ResistiveBlock((6, 5, 3), seed=4).free(u, backend=numpy_backend).outputs
    zero = _wired(0.0).free(u, backend=numpy_backend).outputs
    wired = _wired(1000.0).free(u, backend=numpy_backend).outputs
    np.testing.assert_allclose(zero, ideal, rtol=0, atol=1e-12)
    assert np.abs(wired - ideal).max() > 1e-5


def test_config_wire_keys_build_a_tiled_block():
    cfg = resolve_config({"model": {"layers": [
        {"type": "resistive", "hidden": [4], "out": 2, "tile_rows": 8, "tile_cols": 4,
         "wire_resistance_ohm": 10.0}]}})
    model = build_model(cfg, (3,), backend="numpy")
    tile = model.analog_layers[0].block.tile
    assert (tile.rows, tile.cols, tile.wire_resistance_ohm) == (8, 4, 10.0)


def test_numpy_solver_converges_on_ill_conditioned_wires(ngspice, numpy_backend):
    """0.01-ohm wire segments next to ~1-Mohm devices: the NumPy solver stops at its
    round-off floor instead of failing, and still agrees with ngspice."""
    u = np.random.default_rng(0).uniform(-1, 1, (3, 16))
    for r_ohm in (1.0, 0.01):
        block = ResistiveBlock((16, 8, 4), seed=1, tile=TileConfig(8, 8, r_ohm))
        a = block.free(u, backend=numpy_backend).solution.voltages_V
        b = block.free(u, backend=ngspice).solution.voltages_V
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
