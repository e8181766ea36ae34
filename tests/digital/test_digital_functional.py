"""Finite-difference checks of every backward in digital.functional (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from digital import functional as F
from digital.gradcheck import numerical_gradient as num_grad

RTOL, ATOL = 1e-5, 1e-7




def check(fwd, bwd, arrays: dict[str, np.ndarray], rng: np.random.Generator, grad_index):
    """Compare bwd(dout, cache) against FD of sum(fwd(**arrays) * dout).

    grad_index maps array name -> index in the tuple returned by bwd (None: bwd returns dx).
    """
    out, cache = fwd(**arrays)
    dout = rng.standard_normal(out.shape)
    grads = bwd(dout, cache)

    def loss() -> float:
        return float(np.sum(fwd(**arrays)[0] * dout))

    for name, idx in grad_index.items():
        analytic = grads if idx is None else grads[idx]
        numeric = num_grad(loss, arrays[name])
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_linear_grads(rng):
    arrays = {
        "x": rng.standard_normal((4, 5)),
        "w": rng.standard_normal((5, 3)),
        "b": rng.standard_normal(3),
    }
    check(F.linear_forward, F.linear_backward, arrays, rng, {"x": 0, "w": 1, "b": 2})


def test_linear_no_bias_and_shape_error(rng):
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    out, cache = F.linear_forward(x, w)
    np.testing.assert_allclose(out, x @ w)
    assert F.linear_backward(np.ones((2, 4)), cache)[2] is None
    with pytest.raises(ValueError, match="linear"):
        F.linear_forward(x, rng.standard_normal((4, 4)))


def naive_conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


@pytest.mark.parametrize(("stride", "pad", "hw"), [(1, 0, (6, 5)), (2, 1, (7, 7)), (2, 0, (6, 8))])
def test_conv2d_matches_naive(rng, stride, pad, hw):
    x = rng.standard_normal((2, 3, *hw))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out, _ = F.conv2d_forward(x, w, b, stride=stride, padding=pad)
    np.testing.assert_allclose(out, naive_conv(x, w, b, stride, pad), rtol=1e-12, atol=1e-12)
    assert out.shape[2:] == F.conv2d_output_shape(*hw, 3, stride, pad)


@pytest.mark.parametrize(("stride", "pad"), [(2, 1), (1, 0), ((1, 2), (0, 1))])
def test_conv2d_grads(rng, stride, pad):
    arrays = {
        "x": rng.standard_normal((2, 2, 7, 6)),
        "w": rng.standard_normal((3, 2, 3, 2)),
        "b": rng.standard_normal(3),
    }

    def fwd(x, w, b):
        return F.conv2d_forward(x, w, b, stride=stride, padding=pad)

    check(fwd, F.conv2d_backward, arrays, rng, {"x": 0, "w": 1, "b": 2})


def test_conv2d_errors(rng):
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d_forward(rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d_forward(rng.standard_normal((1, 1, 2, 2)), rng.standard_normal((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d_forward(
            rng.standard_normal((1, 1, 5, 5)), rng.standard_normal((1, 1, 3, 3)), None, 0
        )


def unique_input(rng, shape):
    """Values with distinct entries spaced 0.1 apart, so pooling maxima are unique."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1


@pytest.mark.parametrize(("k", "stride", "hw"), [(2, None, (6, 6)), (3, 2, (7, 8)), (2, 1, (5, 4))])
def test_max_pool_forward_and_grads(rng, k, stride, hw):
    x = unique_input(rng, (2, 3, *hw))
    out, _ = F.max_pool2d_forward(x, k, stride)
    s = k if stride is None else stride
    oh, ow = (hw[0] - k) // s + 1, (hw[1] - k) // s + 1
    assert out.shape == (2, 3, oh, ow)
    ref = np.array(
        [
            [
                [
                    [x[n, c, i * s : i * s + k, j * s : j * s + k].max() for j in range(ow)]
                    for i in range(oh)
                ]
                for c in range(3)
            ]
            for n in range(2)
        ]
    )
    np.testing.assert_array_equal(out, ref)

    def fwd(x):
        return F.max_pool2d_forward(x, k, stride)

    check(fwd, F.max_pool2d_backward, {"x": x}, rng, {"x": None})


@pytest.mark.parametrize(("k", "stride"), [(2, None), (3, 2), ((2, 3), 1)])
def test_avg_pool_forward_and_grads(rng, k, stride):
    x = rng.standard_normal((2, 2, 7, 6))
    out, _ = F.avg_pool2d_forward(x, k, stride)
    if k == 2 and stride is None:
        ref = x[:, :, :6].reshape(2, 2, 3, 2, 3, 2).mean(axis=(3, 5))
        np.testing.assert_allclose(out, ref)

    def fwd(x):
        return F.avg_pool2d_forward(x, k, stride)

    check(fwd, F.avg_pool2d_backward, {"x": x}, rng, {"x": None})


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 4, 3)])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_grads(rng, shape, train):
    c = shape[1]
    arrays = {
        "x": rng.standard_normal(shape) * 2 + 1,
        "gamma": rng.standard_normal(c),
        "beta": rng.standard_normal(c),
    }
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)

    def fwd(x, gamma, beta):
        return F.batch_norm_forward(x, gamma, beta, rm, rv, train=train, eps=1e-5)

    check(fwd, F.batch_norm_backward, arrays, rng, {"x": 0, "gamma": 1, "beta": 2})


def test_batch_norm_statistics(rng):
    x = rng.standard_normal((50, 3, 2, 2)) * 3 + 5
    ones, zeros = np.ones(3), np.zeros(3)
    out, cache = F.batch_norm_forward(x, ones, zeros, zeros, ones, train=True, eps=0.0)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-12)
    np.testing.assert_allclose(cache["batch_mean"], x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(
        cache["batch_var"], x.transpose(1, 0, 2, 3).reshape(3, -1).var(1, ddof=1)
    )
    rm, rv = np.array([1.0, 2, 3]), np.array([4.0, 1, 0.25])
    out, _ = F.batch_norm_forward(x, ones, zeros, rm, rv, train=False, eps=0.0)
    np.testing.assert_allclose(out, (x - rm[:, None, None]) / np.sqrt(rv)[:, None, None])
    with pytest.raises(ValueError, match=r"\(N,D\)"):
        F.batch_norm_forward(rng.standard_normal((2, 3, 4)), ones, zeros, zeros, ones)


def away_from_kinks(rng, shape):
    """Values in +-[0.1, 0.9] or +-[1.1, 2] so relu/hardtanh kinks are not straddled by FD."""
    mag = np.where(
        rng.random(shape) < 0.5, rng.uniform(0.1, 0.9, shape), rng.uniform(1.1, 2, shape)
    )
    return mag * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize("name", F.ACTIVATIONS)
def test_activation_grads(rng, name):
    x = away_from_kinks(rng, (3, 4, 2))

    def fwd(x):
        return F.activation_forward(x, name)

    check(fwd, F.activation_backward, {"x": x}, rng, {"x": None})


def test_activation_values(rng):
    x = np.array([-1000.0, -2.0, -0.5, 0.0, 0.5, 2.0, 1000.0])
    np.testing.assert_allclose(F.activation_forward(x, "relu")[0], np.maximum(x, 0))
    np.testing.assert_allclose(F.activation_forward(x, "hardtanh")[0], np.clip(x, -1, 1))
    sig = F.activation_forward(x, "sigmoid")[0]
    np.testing.assert_allclose(sig[1:-1], 1 / (1 + np.exp(-x[1:-1])))
    assert sig[0] == 0.0 and sig[-1] == 1.0
    lr = F.activation_forward(x, "leaky_relu", negative_slope=0.2)[0]
    np.testing.assert_allclose(lr, np.where(x > 0, x, 0.2 * x))
    out, cache = F.activation_forward(x, "identity")
    np.testing.assert_array_equal(F.activation_backward(x, cache), x)
    with pytest.raises(ValueError, match="unknown activation"):
        F.activation_forward(x, "swish")


def test_flatten(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = F.flatten_forward(x)
    assert out.shape == (2, 60)
    np.testing.assert_array_equal(F.flatten_backward(out, cache), x)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 2)])
def test_gain_offset_grads(rng, shape):
    arrays = {
        "x": rng.standard_normal(shape),
        "gain": rng.standard_normal(3),
        "offset": rng.standard_normal(3),
    }
    check(
        F.gain_offset_forward, F.gain_offset_backward, arrays, rng, {"x": 0, "gain": 1, "offset": 2}
    )
    with pytest.raises(ValueError, match="gain_offset"):
        F.gain_offset_forward(arrays["x"], np.ones(4), np.zeros(4))
