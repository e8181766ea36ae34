"""Optimizers against hand-computed updates, schedules against formulas, losses via FD."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digital.gradcheck import numerical_gradient as num_grad
from digital.losses import accuracy, log_softmax, mse_loss, softmax_cross_entropy
from digital.optim import SGD, Adam, ConstantLR, CosineLR, StepLR, WarmupCosine


def arrays():
    return [np.array([1.0, -2.0]), np.array([[0.5]])]


G1 = [np.array([0.1, -0.2]), np.array([[1.0]])]
G2 = [np.array([-0.3, 0.4]), np.array([[2.0]])]


def test_sgd_plain_and_weight_decay():
    p = arrays()
    SGD(lr=0.1).step(p, G1)
    np.testing.assert_allclose(p[0], [1.0 - 0.01, -2.0 + 0.02])
    np.testing.assert_allclose(p[1], [[0.5 - 0.1]])
    p = arrays()
    SGD(lr=0.1, weight_decay=0.5).step(p, G1)
    # g = 0.1 + 0.5*1 = 0.6 ; g = -0.2 + 0.5*(-2) = -1.2
    np.testing.assert_allclose(p[0], [1.0 - 0.06, -2.0 + 0.12])


def test_sgd_momentum_two_steps():
    p = arrays()
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step(p, G1)
    opt.step(p, G2)
    # v1 = g1 = 0.1 ; p1 = 1 - 0.01 = 0.99 ; v2 = 0.9*0.1 - 0.3 = -0.21 ; p2 = 0.99 + 0.021
    assert p[0][0] == pytest.approx(1.011)
    # v1 = -0.2 ; p1 = -1.98 ; v2 = -0.18 + 0.4 = 0.22 ; p2 = -1.98 - 0.022
    assert p[0][1] == pytest.approx(-2.002)
    # v1 = 1 ; p1 = 0.4 ; v2 = 0.9 + 2 = 2.9 ; p2 = 0.4 - 0.29
    assert p[1][0, 0] == pytest.approx(0.11)
    assert opt.t == 2


def test_sgd_nesterov_two_steps():
    p = [np.array([1.0])]
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.step(p, [np.array([0.1])])
    # v1 = 0.1 ; d = 0.1 + 0.09 = 0.19 ; p = 0.981
    assert p[0][0] == pytest.approx(0.981)
    opt.step(p, [np.array([-0.3])])
    # v2 = 0.09 - 0.3 = -0.21 ; d = -0.3 - 0.189 = -0.489 ; p = 0.981 + 0.0489
    assert p[0][0] == pytest.approx(1.0299)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(lr=0.1, nesterov=True)


def adam_reference(p, grads, lr, b1, b2, eps, wd=0.0, decoupled=True):
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        if wd and not decoupled:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1**t), v / (1 - b2**t)
        if wd and decoupled:
            p = p * (1 - lr * wd)
        p = p - lr * mh / (math.sqrt(vh) + eps)
    return p


def test_adam_two_steps_by_hand():
    p = [np.array([1.0])]
    opt = Adam(lr=0.01)
    opt.step(p, [np.array([0.5])])
    # first step of Adam moves by lr * g/|g| (up to eps)
    assert p[0][0] == pytest.approx(1.0 - 0.01, abs=1e-9)
    opt.step(p, [np.array([-1.0])])
    m = 0.9 * 0.05 + 0.1 * (-1.0)  # -0.055
    v = 0.999 * 0.00025 + 0.001 * 1.0  # 0.00124975
    mh, vh = m / (1 - 0.81), v / (1 - 0.999**2)
    p1 = 1.0 - 0.01 * 0.5 / (0.5 + 1e-8)
    assert p[0][0] == pytest.approx(p1 - 0.01 * mh / (math.sqrt(vh) + 1e-8), rel=1e-14)


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_weight_decay(decoupled):
    gs = [0.3, -0.1, 0.7]
    p = [np.array([2.0])]
    opt = Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, decoupled=decoupled)
    for g in gs:
        opt.step(p, [np.array([g])])
    ref = adam_reference(2.0, gs, 0.05, 0.8, 0.99, 1e-6, wd=0.1, decoupled=decoupled)
    assert p[0][0] == pytest.approx(ref, rel=1e-12)


def test_clamps_and_hooks():
    p = [np.array([0.0, 0.5, 1.0]), np.array([3.0]), np.array([-1.0])]
    g = [np.array([1.0, -10.0, -1.0]), np.array([1.0]), np.array([1.0])]

    def hook(a: np.ndarray) -> None:
        a *= 2.0

    SGD(lr=0.1).step(p, g, clamps=[(0.05, 1.0), None, hook])
    np.testing.assert_allclose(p[0], [0.05, 1.0, 1.0])  # -0.1 -> 0.05, 1.5 -> 1.0, 1.1 -> 1.0
    np.testing.assert_allclose(p[1], [2.9])
    np.testing.assert_allclose(p[2], [-2.2])
    p = [np.array([0.0, 5.0])]
    Adam(lr=1.0).step(p, [np.array([1.0, -1.0])], clamps=[(None, 5.5)])
    np.testing.assert_allclose(p[0], [-1.0, 5.5], atol=1e-7)
    with pytest.raises(ValueError, match="clamps"):
        SGD(lr=0.1).step(p, [np.zeros(2)], clamps=[None, None])


def test_state_dict_exact_resume(tmp_path):
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal((3, 2)), rng.standard_normal(2)] for _ in range(6)]
    for make in (lambda: Adam(lr=CosineLR(0.1, 6)), lambda: SGD(0.05, momentum=0.9)):
        p_ref = [np.ones((3, 2)), np.zeros(2)]
        ref = make()
        for g in grads:
            ref.step(p_ref, g)
        p = [np.ones((3, 2)), np.zeros(2)]
        first = make()
        for g in grads[:3]:
            first.step(p, g)
        np.savez(tmp_path / "opt.npz", **first.state_dict())
        resumed = make()
        with np.load(tmp_path / "opt.npz") as f:
            resumed.load_state_dict(dict(f))
        assert resumed.t == 3
        for g in grads[3:]:
            resumed.step(p, g)
        for a, b in zip(p, p_ref, strict=True):
            np.testing.assert_array_equal(a, b)


def test_schedule_used_by_optimizer_and_validation():
    p = [np.array([0.0])]
    opt = SGD(lr=StepLR(1.0, step_size=2, gamma=0.5))
    lrs = []
    for _ in range(5):
        lrs.append(opt.current_lr())
        opt.step(p, [np.array([-1.0])])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert p[0][0] == pytest.approx(sum(lrs))
    with pytest.raises(ValueError, match="shape"):
        opt.step([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match="state"):
        opt_m = SGD(0.1, momentum=0.5)
        opt_m.step([np.zeros(2)], [np.zeros(2)])
        opt_m.step([np.zeros(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="lr"):
        SGD(lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(betas=(1.0, 0.9))


def test_schedules_formulas():
    assert [ConstantLR(0.3)(s) for s in (0, 10)] == [0.3, 0.3]
    s = StepLR(0.1, step_size=3, gamma=0.1)
    assert [s(i) for i in range(7)] == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001])
    c = CosineLR(1.0, total_steps=10, min_lr=0.1)
    for step in (0, 3, 5, 10, 15):
        k = min(step, 10)
        assert c(step) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 10)))
    assert c(5) == pytest.approx(0.55) and c.lr_at(10) == pytest.approx(0.1)
    w = WarmupCosine(1.0, warmup_steps=4, total_steps=14)
    assert [w(i) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert w(4) == pytest.approx(1.0) and w(9) == pytest.approx(0.5) and w(14) == pytest.approx(0)
    with pytest.raises(ValueError, match="step"):
        c(-1)
    with pytest.raises(ValueError, match="total_steps"):
        CosineLR(1.0, 0)




def test_mse_loss_value_and_grad():
    rng = np.random.default_rng(3)
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, dy = mse_loss(y, t)
    assert loss == pytest.approx(0.5 * np.sum((y - t) ** 2) / 4)
    np.testing.assert_allclose(dy, num_grad(lambda: mse_loss(y, t)[0], y), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        mse_loss(y, t[:2])


def test_softmax_cross_entropy_value_grad_and_stability():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 1, 2])
    loss, d = softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), labels])))
    fd = num_grad(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-9)
    big = np.array([[1000.0, 0.0, -1000.0], [0.0, 1e4, 0.0]])
    loss, d = softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(0.5 * 1e4)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(np.exp(log_softmax(big)).sum(1), 1.0)
    with pytest.raises(ValueError, match="labels"):
        softmax_cross_entropy(logits, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(TypeError, match="integers"):
        softmax_cross_entropy(logits, labels.astype(float))


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.5, 0.4]])
    assert accuracy(logits, np.array([1, 0, 0, 1])) == 0.5
