"""Resistive blocks: EP on ngspice against implicit differentiation, ID against finite
differences of re-solved circuits, the two solvers against each other, and learning."""

from __future__ import annotations

import numpy as np
import pytest

from analogeq import ResistiveBlock, ResistiveBlockParams

SIZES = [(64, 32, 10), (16, 12, 8, 4)]


def _cos_rel(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.ravel(), b.ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return cos, float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _problem(sizes, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, (batch, sizes[0]))
    delta = rng.normal(size=(batch, sizes[-1]))
    return ResistiveBlock(sizes, seed=seed + 1), u, delta


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_ep_on_ngspice_matches_exact_gradients(ngspice, sizes):
    block, u, delta = _problem(sizes)
    ep = block.ep_gradients(u, delta, backend=ngspice)  # default beta
    exact = block.exact_gradients(u, delta)
    for k, (a, b) in enumerate(zip(ep.conductances, exact.conductances, strict=True)):
        cos, rel = _cos_rel(a, b)
        assert cos >= 0.99999 and rel <= 1e-4, (k, cos, rel)
    cos, rel = _cos_rel(ep.inputs, exact.inputs)
    assert cos >= 0.99999 and rel <= 1e-4, ("inputs", cos, rel)
    assert ep.inputs.shape == (u.shape[0], sizes[0])


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_numpy_backend_agrees_with_ngspice_within_1uV(ngspice, numpy_backend, sizes):
    block, u, delta = _problem(sizes)
    a = block.free(u, backend=ngspice).solution
    b = block.free(u, backend=numpy_backend).solution
    np.testing.assert_allclose(a.voltages_V, b.voltages_V, rtol=0, atol=1e-6)
    # and with nudge sources in place (all three EP phases)
    ga = block.ep_gradients(u, delta, backend=ngspice)
    gb = block.ep_gradients(u, delta, backend=numpy_backend)
    np.testing.assert_allclose(ga.outputs, gb.outputs, rtol=0, atol=1e-6)


def _loss(block, u, delta, backend) -> float:
    return float((delta * block.free(u, backend=backend).outputs).sum())


@pytest.mark.parametrize("sizes", [(6, 5, 3), (4, 5, 4, 2)], ids=["1hidden", "2hidden"])
def test_exact_gradients_match_central_finite_differences(numpy_backend, sizes):
    block, u, delta = _problem(sizes, batch=3, seed=3)
    exact = block.exact_gradients(u, delta)
    rng = np.random.default_rng(7)
    for k, g in enumerate(block.conductances):
        for idx in [tuple(rng.integers(0, s) for s in g.shape) for _ in range(4)] + [(-1, 0)]:
            g0 = g[idx]
            h = 1e-4 * g0
            g[idx] = g0 + h
            up = _loss(block, u, delta, numpy_backend)
            g[idx] = g0 - h
            down = _loss(block, u, delta, numpy_backend)
            g[idx] = g0
            fd = (up - down) / (2 * h)
            assert abs(fd - exact.conductances[k][idx]) <= 1e-5 * abs(fd) + 1e-9, (k, idx)
    for b in range(u.shape[0]):
        for i in range(sizes[0]):
            up, down = u.copy(), u.copy()
            up[b, i] += 1e-5
            down[b, i] -= 1e-5
            fd = (_loss(block, up, delta, numpy_backend) - _loss(block, down, delta, numpy_backend))
            fd /= 2e-5
            assert abs(fd - exact.inputs[b, i]) <= 1e-5 * abs(fd) + 1e-9, (b, i)


def test_exact_gradient_matches_finite_difference_on_ngspice(ngspice):
    """A few entries checked with circuits re-solved by ngspice itself."""
    block, u, delta = _problem((6, 5, 3), batch=2, seed=5)
    exact = block.exact_gradients(u, delta)
    g = block.conductances[0]
    for idx in [(0, 0), (3, 2), (-2, 4)]:
        g0 = g[idx]
        h = 1e-3 * g0
        g[idx] = g0 + h
        up = _loss(block, u, delta, ngspice)
        g[idx] = g0 - h
        down = _loss(block, u, delta, ngspice)
        g[idx] = g0
        fd = (up - down) / (2 * h)
        assert abs(fd - exact.conductances[0][idx]) <= 1e-3 * abs(exact.conductances[0][idx])


def test_ep_error_falls_like_beta_squared(numpy_backend):
    """With an exact solver the centered-EP error is O(beta^2)."""
    block, u, delta = _problem((8, 6, 4, 3), batch=4)
    exact = block.exact_gradients(u, delta)
    errors = []
    for i_nudge in (1e-6, 1e-7):
        ep = block.ep_gradients(u, delta, beta=i_nudge / np.abs(delta).max(), backend=numpy_backend)
        errors.append(_cos_rel(ep.conductances[0], exact.conductances[0])[1])
    assert 70 < errors[0] / errors[1] < 130  # 10x smaller beta -> ~100x smaller error


def test_editing_conductances_changes_next_solve(numpy_backend):
    block, u, _ = _problem((4, 6, 2), batch=2)
    before = block.free(u, backend=numpy_backend).outputs
    block.conductances[-1][0, 0] *= 2.0
    after = block.free(u, backend=numpy_backend).outputs
    assert np.abs(after - before).max() > 1e-6


def test_conductances_stay_in_device_range_after_every_update(numpy_backend):
    prm = ResistiveBlockParams()
    block, u, delta = _problem((4, 6, 2), batch=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        grads = block.ep_gradients(u, delta, backend=numpy_backend).conductances
        block.apply_update([rng.normal(scale=1e-4, size=g.shape) * np.sign(d)
                            for g, d in zip(block.conductances, grads, strict=True)])
        for g in block.conductances:
            assert g.min() >= prm.g_min_S and g.max() <= prm.g_max_S
    hit = sum(int((g == prm.g_max_S).sum() + (g == prm.g_min_S).sum()) for g in block.conductances)
    assert hit > 0  # the updates really were large enough to need clipping


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="hidden"):
        ResistiveBlock((4, 2))
    block = ResistiveBlock((3, 4, 2))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        block.free(np.zeros((2, 4)), backend="numpy")
    with pytest.raises(ValueError, match="non-finite"):
        block.free(np.full((1, 3), np.nan), backend="numpy")
    with pytest.raises(ValueError, match="g_init_S"):
        ResistiveBlockParams(g_init_S=(1e-9, 1e-6))


def test_ep_training_learns_xor_on_ngspice(ngspice):
    """Plain EP training loop (Adam on conductances) on one block, solved by ngspice."""
    x = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], float)
    y = np.array([0, 1, 1, 0])
    target = np.where(y[:, None] == np.arange(2), 1.0, -1.0)
    block = ResistiveBlock((2, 16, 2), seed=0)
    gain, lr = 10.0, 2e-7
    m = [np.zeros_like(g) for g in block.conductances]
    v = [np.zeros_like(g) for g in block.conductances]
    for step in range(1, 61):
        z = gain * block.free(x, backend=ngspice).outputs
        delta = gain * (z - target) / len(x)
        grads = block.ep_gradients(x, delta, backend=ngspice).conductances
        updates = []
        for k, g in enumerate(grads):
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            mh, vh = m[k] / (1 - 0.9**step), v[k] / (1 - 0.999**step)
            updates.append(-lr * mh / (np.sqrt(vh) + 1e-30))
        block.apply_update(updates)
    z = gain * block.free(x, backend=ngspice).outputs
    assert (z.argmax(1) == y).mean() == 1.0
    assert 0.5 * ((z - target) ** 2).sum(1).mean() < 0.05


def test_netlist_is_standalone_and_deterministic():
    a = ResistiveBlock((3, 4, 2), seed=3).netlist([0.1, -0.2, 0.3])
    b = ResistiveBlock((3, 4, 2), seed=3).netlist([0.1, -0.2, 0.3])
    assert a == b
    assert "Vb0_in001p b0_in001p 0 DC -0.2" in a and "print v(b0_out000p,b0_out000n)" in a
