"""ff-EBM: BP through digital layers chained with EP through analog blocks."""

from __future__ import annotations

import numpy as np

from analogeq import FFEBM, AnalogLayer, ResistiveBlock
from digital.layers import GainOffset, Linear, Tanh
from digital.losses import mse_loss


def two_block_model(backend) -> FFEBM:
    rng = np.random.default_rng(0)
    return FFEBM(
        Linear(6, 5, rng=rng),
        Tanh(),
        AnalogLayer(ResistiveBlock((5, 6, 3), seed=1, name="b1"), backend=backend),
        GainOffset(3, gain=20.0),
        Linear(3, 4, rng=rng),
        Tanh(),
        AnalogLayer(ResistiveBlock((4, 5, 4, 2), seed=2, name="b2"), backend=backend),
        GainOffset(2, gain=20.0),
    )


def _grads(model, x, t, mode):
    model.set_gradient(mode)
    y = model.forward(x)
    loss, dy = mse_loss(y, t)
    model.backward(dy)
    _, grads, _ = model.parameter_groups()
    return loss, [g.copy() for g in grads]


def test_two_block_ep_gradient_matches_exact_chain(ngspice):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 6))
    t = rng.normal(size=(8, 2))
    model = two_block_model(ngspice)
    _, ep = _grads(model, x, t, "ep")
    _, exact = _grads(model, x, t, "exact")
    a = np.concatenate([g.ravel() for g in ep])
    b = np.concatenate([g.ravel() for g in exact])
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cos >= 0.999, cos
    for ga, gb in zip(ep, exact, strict=True):  # every parameter array on its own too
        cos_k = ga.ravel() @ gb.ravel() / (np.linalg.norm(ga) * np.linalg.norm(gb) + 1e-300)
        assert cos_k >= 0.999 or np.linalg.norm(gb) == 0


def test_exact_chain_matches_finite_differences_of_the_loss(numpy_backend):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6))
    t = rng.normal(size=(3, 2))
    model = two_block_model(numpy_backend)
    _, grads = _grads(model, x, t, "exact")
    params, _, _ = model.parameter_groups()

    def loss_now():
        return mse_loss(model.forward(x), t)[0]

    for p, g in zip(params, grads, strict=True):
        for _ in range(2):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            p0 = p[idx]
            h = 1e-4 * abs(p0) if abs(p0) > 0 else 1e-6
            p[idx] = p0 + h
            up = loss_now()
            p[idx] = p0 - h
            down = loss_now()
            p[idx] = p0
            fd = (up - down) / (2 * h)
            assert abs(fd - g[idx]) <= 1e-4 * abs(fd) + 1e-8 * (np.abs(g).max() + 1e-300), (
                p.shape, idx, fd, g[idx]
            )


def test_parameter_groups_clamp_conductances_to_device_range():
    model = two_block_model("numpy")
    params, grads, clamps = model.parameter_groups()
    analog = [c for c in clamps if c is not None]
    assert len(analog) == 2 + 3  # (5,6,3) has 2 arrays, (4,5,4,2) has 3
    assert all(c == (1e-7, 1e-5) for c in analog)
    assert len(params) == len(grads) == len(clamps)
