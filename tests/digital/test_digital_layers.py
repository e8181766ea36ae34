"""Layer objects: parameter/input gradients via FD, state dicts, BatchNorm buffers."""

from __future__ import annotations

import numpy as np
import pytest

from digital import init, layers
from digital.gradcheck import numerical_gradient as num_grad
from digital.layers import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    GainOffset,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Tanh,
)
from digital.losses import softmax_cross_entropy

RTOL, ATOL = 1e-5, 1e-7




def check_layer(layer: layers.Layer, x: np.ndarray, rng: np.random.Generator, train=True):
    """FD-check dx and every param grad of a layer for L = sum(layer(x) * dout).

    (BatchNorm's running stats drift during the FD loop in train mode, but they do not
    affect the train-mode output.)
    """
    out = layer.forward(x, train=train)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)

    def loss() -> float:
        return float(np.sum(layer.forward(x, train=train) * dout))

    np.testing.assert_allclose(dx, num_grad(loss, x), rtol=RTOL, atol=ATOL, err_msg="dx")
    for name, p, g in layer.named_params():
        np.testing.assert_allclose(g, num_grad(loss, p), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_linear_layer(rng):
    lin = Linear(4, 3, rng=rng)
    lin.params["b"][...] = rng.standard_normal(3)
    assert lin.params["w"].shape == (4, 3) and lin.grads["w"].shape == (4, 3)
    check_layer(lin, rng.standard_normal((5, 4)), rng)
    nb = Linear(4, 3, rng=rng, bias=False, init="he_normal")
    assert set(nb.params) == {"w"}
    check_layer(nb, rng.standard_normal((2, 4)), rng)


def test_conv_layer(rng):
    conv = Conv2d(2, 3, 3, stride=2, padding=1, rng=rng)
    conv.params["b"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 5, 6))
    assert conv.forward(x).shape == (2, 3, 3, 3)
    check_layer(conv, x, rng)


@pytest.mark.parametrize("shape", [(8, 3), (3, 3, 2, 2)])
def test_batchnorm_layer_grads(rng, shape):
    bn = BatchNorm(3)
    bn.params["gamma"][...] = rng.uniform(0.5, 2, 3)
    bn.params["beta"][...] = rng.standard_normal(3)
    check_layer(bn, rng.standard_normal(shape), rng, train=True)
    check_layer(bn, rng.standard_normal(shape), rng, train=False)


def test_batchnorm_running_stats(rng):
    bn = BatchNorm(2, momentum=0.25)
    x0 = rng.standard_normal((10, 2)) * 1e-3 + 0.5
    bn.forward(x0, train=True)  # the first batch sets the running statistics
    np.testing.assert_allclose(bn.buffers["running_mean"], x0.mean(0))
    np.testing.assert_allclose(bn.buffers["running_var"], x0.var(0, ddof=1))
    x = rng.standard_normal((10, 2)) * 2 + 3
    bn.forward(x, train=True)  # later batches blend in with the momentum
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.75 * x0.mean(0) + 0.25 * x.mean(0))
    np.testing.assert_allclose(bn.buffers["running_var"],
                               0.75 * x0.var(0, ddof=1) + 0.25 * x.var(0, ddof=1))
    before = bn.state_dict()
    y = bn.forward(x, train=False)
    for k, v in before.items():
        np.testing.assert_array_equal(bn.state_dict()[k], v)
    rm, rv = before["running_mean"], before["running_var"]
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + bn.eps))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(2, momentum=1.5)


def test_gain_offset_layer(rng):
    go = GainOffset(3, gain=2.0, offset=np.array([0.0, 1.0, -1.0]))
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(go.forward(x), 2 * x + np.array([0.0, 1.0, -1.0]))
    go.params["gain"][...] = rng.standard_normal(3)
    check_layer(go, x, rng)
    check_layer(go, rng.standard_normal((2, 3, 2, 2)), rng)
    frozen = GainOffset(3, gain=0.5, trainable=False)
    assert frozen.params == {} and frozen.named_params() == []
    assert set(frozen.state_dict()) == {"gain", "offset"}
    np.testing.assert_allclose(frozen.forward(x), 0.5 * x)
    np.testing.assert_allclose(frozen.backward(np.ones((4, 3))), np.full((4, 3), 0.5))


@pytest.mark.parametrize(
    "layer", [MaxPool2d(2), AvgPool2d(3, stride=1), Flatten(), Activation("tanh"), ReLU()]
)
def test_parameter_free_layers(rng, layer):
    assert layer.params == {} and layer.grads == {} and layer.state_dict() == {}
    x = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1 - 4.95
    check_layer(layer, x, rng)


def make_net(rng):
    return Sequential(
        Conv2d(1, 3, 3, padding=1, rng=rng),
        BatchNorm(3),
        Tanh(),
        MaxPool2d(2),
        Flatten(),
        Linear(3 * 3 * 3, 8, rng=rng),
        GainOffset(8, gain=1.5, offset=0.1),
        Activation("sigmoid"),
        Linear(8, 4, rng=rng, init="xavier_normal"),
    )


def test_sequential_names_and_grads(rng):
    net = make_net(rng)
    names = [n for n, _, _ in net.named_params()]
    assert names == [
        "0.w",
        "0.b",
        "1.gamma",
        "1.beta",
        "5.w",
        "5.b",
        "6.gain",
        "6.offset",
        "8.w",
        "8.b",
    ]
    assert set(net.state_dict()) == set(names) | {"1.running_mean", "1.running_var",
                                                  "1.batches_tracked"}
    assert net.params["5.w"] is net.layers[5].params["w"]
    assert len(net.parameters()) == len(net.gradients()) == 10
    x = rng.standard_normal((4, 1, 6, 6))
    labels = np.array([0, 1, 2, 3])

    def loss() -> float:
        return softmax_cross_entropy(net.forward(x, train=True), labels)[0]

    _, dlogits = softmax_cross_entropy(net.forward(x, train=True), labels)
    dx = net.backward(dlogits)
    np.testing.assert_allclose(dx, num_grad(loss, x), rtol=RTOL, atol=ATOL)
    for name, p, g in net.named_params():
        np.testing.assert_allclose(g, num_grad(loss, p), rtol=RTOL, atol=ATOL, err_msg=name)
    net.zero_grad()
    assert all(not g.any() for g in net.gradients())


def test_state_dict_round_trip(rng, tmp_path):
    net = make_net(rng)
    x = rng.standard_normal((5, 1, 6, 6))
    for _ in range(3):
        net.forward(x, train=True)  # move the running statistics
    y_ref = net.forward(x, train=False)
    np.savez(tmp_path / "ckpt.npz", **net.state_dict())

    other = make_net(np.random.default_rng(99))
    assert not np.allclose(other.forward(x, train=False), y_ref)
    ids = [id(p) for p in other.parameters()]
    with np.load(tmp_path / "ckpt.npz") as f:
        other.load_state_dict(dict(f))
    assert [id(p) for p in other.parameters()] == ids  # loaded in place
    np.testing.assert_array_equal(other.forward(x, train=False), y_ref)

    sd = net.state_dict()
    sd["0.w"] += 1.0  # state_dict returns copies
    assert not np.array_equal(sd["0.w"], net.params["0.w"])
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "0.b"})
    with pytest.raises(ValueError, match="shape mismatch"):
        other.load_state_dict({**sd, "0.b": np.zeros(5)})


def test_errors_and_init(rng):
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(2, 2, rng=rng).backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match="unknown initializer"):
        Linear(2, 2, rng=rng, init="orthogonal")
    with pytest.raises(ValueError, match="unknown activation"):
        Activation("gelu")
    with pytest.raises(TypeError, match="not a Layer"):
        Sequential(lambda x: x)  # type: ignore[arg-type]
    same = [Linear(3, 2, rng=np.random.default_rng(5)).params["w"] for _ in range(2)]
    np.testing.assert_array_equal(*same)


def test_init_statistics():
    rng = np.random.default_rng(0)
    assert init.compute_fans((10, 20)) == (10, 20)
    assert init.compute_fans((8, 4, 3, 3)) == (36, 72)
    assert init.compute_fans((7,)) == (7, 7)
    shape = (400, 300)
    np.testing.assert_allclose(init.he_normal(shape, rng).std(), np.sqrt(2 / 400), rtol=0.02)
    a = np.sqrt(6 / 400)
    w = init.he_uniform(shape, rng)
    assert w.max() <= a and w.min() >= -a
    np.testing.assert_allclose(w.std(), a / np.sqrt(3), rtol=0.02)
    a = np.sqrt(6 / 700)
    w = init.xavier_uniform(shape, rng)
    assert w.max() <= a and w.min() >= -a
    np.testing.assert_allclose(init.xavier_normal(shape, rng).std(), np.sqrt(2 / 700), rtol=0.02)
    w = init.uniform(shape, rng, 0.1, 0.3)
    assert w.min() >= 0.1 and w.max() < 0.3 and w.dtype == np.float64
    assert not init.zeros((2, 3), rng).any()
    np.testing.assert_allclose(
        init.he_normal(shape, rng, fan_in=100).std(), np.sqrt(2 / 100), rtol=0.02
    )
    with pytest.raises(ValueError, match="high > low"):
        init.uniform(shape, rng, 1.0, 0.0)
