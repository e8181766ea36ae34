"""Stateful layer objects wrapping :mod:`digital.functional`.

Common interface (:class:`Layer`)::

    y = layer.forward(x, train=True)   # stores the cache for backward
    dx = layer.backward(dy)            # writes parameter gradients into layer.grads
    layer.params                        # dict[str, np.ndarray]  trainable arrays
    layer.grads                         # dict[str, np.ndarray]  same keys and shapes
    layer.buffers                       # dict[str, np.ndarray]  non-trainable state
    layer.state_dict() / layer.load_state_dict(d)

Conventions:

* ``backward`` *overwrites* ``grads`` (no accumulation), writing in place so
  the arrays in ``grads`` (and ``params``) keep their identity for the life of
  the layer; an optimizer may therefore hold on to them.
* ``load_state_dict`` also copies *into* the existing arrays.
* ``state_dict`` returns copies of params and buffers, keyed by name; it can be
  saved with :func:`numpy.savez` and restored exactly.
* ``train`` only changes behaviour of :class:`BatchNorm` (batch vs running
  statistics; running statistics are updated only when ``train=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from . import functional as F
from .init import get_initializer

__all__ = [
    "Activation",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Flatten",
    "GainOffset",
    "HardTanh",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
]

NamedParam = tuple[str, np.ndarray, np.ndarray]


class Layer:
    """Base class: parameter-free identity with the common interface."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._cache: dict | None = None

    # -- computation ---------------------------------------------------------
    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Compute the output for input ``x`` and store what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return ``dL/dx`` for ``dy = dL/dy`` of the last forward; set ``grads``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Same as :meth:`forward`."""
        return self.forward(x, train=train)

    def _need_cache(self) -> dict:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def _set_grad(self, name: str, value: np.ndarray) -> None:
        self.grads[name][...] = value

    # -- parameters ----------------------------------------------------------
    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def named_params(self, prefix: str = "") -> list[NamedParam]:
        """List of ``(qualified_name, param, grad)`` for every trainable array."""
        return [(prefix + k, v, self.grads[k]) for k, v in self.params.items()]

    def parameters(self) -> list[np.ndarray]:
        """Trainable arrays in a fixed order (matches :meth:`gradients`)."""
        return [p for _, p, _ in self.named_params()]

    def gradients(self) -> list[np.ndarray]:
        """Gradient arrays in the order of :meth:`parameters`."""
        return [g for _, _, g in self.named_params()]

    def zero_grad(self) -> None:
        """Set every gradient to zero (in place)."""
        for _, _, g in self.named_params():
            g.fill(0.0)

    # -- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all params and buffers, keyed by (qualified) name."""
        out = {k: v.copy() for k, v in self.params.items()}
        out.update({k: v.copy() for k, v in self.buffers.items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` (as produced by :meth:`state_dict`) into this layer, in place.

        Raises:
            KeyError: on missing or unexpected keys.
            ValueError: on a shape mismatch.
        """
        own = {**self.params, **self.buffers}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for k, arr in own.items():
            src = np.asarray(state[k])
            if src.shape != arr.shape:
                raise ValueError(f"shape mismatch for {k!r}: expected {arr.shape}, got {src.shape}")
            arr[...] = src

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ---------------------------------------------------------------------------
# Parametric layers
# ---------------------------------------------------------------------------


class Linear(Layer):
    """Fully connected layer ``y = x @ w + b``.

    Args:
        in_features: ``D``.
        out_features: ``M``.
        rng: Generator used for the weight initialisation (required).
        init: Initialiser name from :data:`digital.init.INITIALIZERS` or a
            callable ``init(shape, rng) -> array``; default Xavier uniform.
        bias: Whether to add a bias (initialised to zero).
        dtype: Parameter dtype (float64 by default).

    Params: ``w`` shape ``(D, M)``, ``b`` shape ``(M,)``.  Input ``(N, D)``,
    output ``(N, M)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator,
        init: str | Callable[..., np.ndarray] = "xavier_uniform",
        bias: bool = True,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        w = get_initializer(init)((self.in_features, self.out_features), rng)
        self._add_param("w", np.asarray(w, dtype=dtype))
        if bias:
            self._add_param("b", np.zeros(self.out_features, dtype=dtype))

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.linear_forward(x, self.params["w"], self.params.get("b"))
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        dx, dw, db = F.linear_backward(dy, self._need_cache())
        self._set_grad("w", dw)
        if db is not None:
            self._set_grad("b", db)
        return dx

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={'b' in self.params})"


class Conv2d(Layer):
    """2-D convolution (cross-correlation) layer.

    Args:
        in_ch: Input channels ``C``.
        out_ch: Output channels ``F``.
        kernel_size: ``k`` or ``(KH, KW)``.
        stride: Stride (default 1).
        padding: Zero padding on each side (default 0).
        rng: Generator for the initialisation (required).
        init: Initialiser (default He uniform, fan-in ``C*KH*KW``).
        bias: Whether to add a per-filter bias (zero-initialised).
        dtype: Parameter dtype.

    Params: ``w`` shape ``(F, C, KH, KW)``, ``b`` shape ``(F,)``.  Input
    ``(N, C, H, W)``, output ``(N, F, OH, OW)``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        rng: np.random.Generator,
        init: str | Callable[..., np.ndarray] = "he_uniform",
        bias: bool = True,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        kh, kw = F._pair(kernel_size, "kernel_size", 1)
        self.stride = F._pair(stride, "stride", 1)
        self.padding = F._pair(padding, "padding", 0)
        self.in_ch, self.out_ch, self.kernel_size = int(in_ch), int(out_ch), (kh, kw)
        w = get_initializer(init)((self.out_ch, self.in_ch, kh, kw), rng)
        self._add_param("w", np.asarray(w, dtype=dtype))
        if bias:
            self._add_param("b", np.zeros(self.out_ch, dtype=dtype))

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.conv2d_forward(
            x, self.params["w"], self.params.get("b"), self.stride, self.padding
        )
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        dx, dw, db = F.conv2d_backward(dy, self._need_cache())
        self._set_grad("w", dw)
        if db is not None:
            self._set_grad("b", db)
        return dx

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_ch}, {self.out_ch}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding})"
        )


class BatchNorm(Layer):
    """Batch normalisation over ``(N, D)`` or ``(N, C, H, W)`` inputs.

    Args:
        num_features: ``D`` or ``C``.
        momentum: Running-stat update ``r = (1 - momentum) * r + momentum * batch``
            (PyTorch convention; the variance uses the unbiased batch estimate).
        eps: Variance epsilon.
        dtype: Parameter dtype.

    Params: ``gamma`` (ones), ``beta`` (zeros), shape ``(num_features,)``.
    Buffers: ``running_mean`` (zeros), ``running_var`` (ones), ``batches_tracked``.
    ``train=True`` normalises with batch statistics and updates the buffers; the first
    training batch *sets* them (instead of blending into the 0/1 initial values), so eval
    mode is right after a few steps even for features whose variance is far from 1 (e.g.
    analog block outputs of ~1e-3 V spread). ``train=False`` uses the buffers and leaves
    them unchanged.
    """

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        *,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features, self.momentum, self.eps = int(num_features), momentum, eps
        self._add_param("gamma", np.ones(self.num_features, dtype=dtype))
        self._add_param("beta", np.zeros(self.num_features, dtype=dtype))
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=dtype)
        self.buffers["batches_tracked"] = np.zeros((), dtype=np.int64)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        out, self._cache = F.batch_norm_forward(
            x, self.params["gamma"], self.params["beta"], rm, rv, train=train, eps=self.eps
        )
        if train:
            tracked = self.buffers["batches_tracked"]
            m = 1.0 if tracked == 0 else self.momentum
            tracked += 1
            rm *= 1.0 - m
            rm += m * self._cache["batch_mean"]
            rv *= 1.0 - m
            rv += m * self._cache["batch_var"]
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        dx, dgamma, dbeta = F.batch_norm_backward(dy, self._need_cache())
        self._set_grad("gamma", dgamma)
        self._set_grad("beta", dbeta)
        return dx

    def __repr__(self) -> str:
        return f"BatchNorm({self.num_features}, momentum={self.momentum}, eps={self.eps})"


class GainOffset(Layer):
    """Per-feature ``y = gain * x + offset`` (feature axis 1).

    Args:
        num_features: ``D`` (for ``(N, D)``) or ``C`` (for ``(N, C, H, W)``).
        gain: Initial gain (scalar broadcast to ``(num_features,)``, or an array).
        offset: Initial offset (likewise).
        trainable: If True ``gain``/``offset`` are params (with grads); if
            False they are buffers (saved in ``state_dict`` but not trained).
        dtype: Array dtype.
    """

    def __init__(
        self,
        num_features: int,
        gain: float | np.ndarray = 1.0,
        offset: float | np.ndarray = 0.0,
        trainable: bool = True,
        *,
        dtype: np.dtype | type = np.float64,
    ) -> None:
        super().__init__()
        self.num_features, self.trainable = int(num_features), trainable
        shape = (self.num_features,)
        g = np.array(np.broadcast_to(np.asarray(gain, dtype=dtype), shape))
        o = np.array(np.broadcast_to(np.asarray(offset, dtype=dtype), shape))
        if trainable:
            self._add_param("gain", g)
            self._add_param("offset", o)
        else:
            self.buffers["gain"] = g
            self.buffers["offset"] = o

    def _arrays(self) -> dict[str, np.ndarray]:
        return self.params if self.trainable else self.buffers

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        a = self._arrays()
        out, self._cache = F.gain_offset_forward(x, a["gain"], a["offset"])
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        dx, dgain, doffset = F.gain_offset_backward(dy, self._need_cache())
        if self.trainable:
            self._set_grad("gain", dgain)
            self._set_grad("offset", doffset)
        return dx

    def __repr__(self) -> str:
        return f"GainOffset({self.num_features}, trainable={self.trainable})"


# ---------------------------------------------------------------------------
# Parameter-free layers
# ---------------------------------------------------------------------------


class MaxPool2d(Layer):
    """Max pooling, kernel ``k`` and stride (default ``k``); ``(N,C,H,W) -> (N,C,OH,OW)``."""

    def __init__(
        self, k: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.k, self.stride = k, stride

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.max_pool2d_forward(x, self.k, self.stride)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        return F.max_pool2d_backward(dy, self._need_cache())

    def __repr__(self) -> str:
        return f"MaxPool2d({self.k}, stride={self.stride})"


class AvgPool2d(Layer):
    """Average pooling, kernel ``k`` and stride (default ``k``); ``(N,C,H,W) -> (N,C,OH,OW)``."""

    def __init__(
        self, k: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.k, self.stride = k, stride

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.avg_pool2d_forward(x, self.k, self.stride)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        return F.avg_pool2d_backward(dy, self._need_cache())

    def __repr__(self) -> str:
        return f"AvgPool2d({self.k}, stride={self.stride})"


class Activation(Layer):
    """Element-wise activation by name (see :data:`digital.functional.ACTIVATIONS`).

    Args:
        name: ``relu``, ``tanh``, ``sigmoid``, ``hardtanh``, ``identity`` or ``leaky_relu``.
        **kwargs: ``negative_slope`` (leaky_relu), ``min_val``/``max_val`` (hardtanh).
    """

    def __init__(self, name: str, **kwargs: float) -> None:
        super().__init__()
        if name not in F.ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; known: {', '.join(F.ACTIVATIONS)}")
        self.name, self.kwargs = name, kwargs

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.activation_forward(x, self.name, **self.kwargs)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        return F.activation_backward(dy, self._need_cache())

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        return f"Activation({self.name!r}{extra})"


class ReLU(Activation):
    """``Activation("relu")``."""

    def __init__(self) -> None:
        super().__init__("relu")


class LeakyReLU(Activation):
    """``Activation("leaky_relu", negative_slope=...)``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__("leaky_relu", negative_slope=negative_slope)


class Tanh(Activation):
    """``Activation("tanh")``."""

    def __init__(self) -> None:
        super().__init__("tanh")


class Sigmoid(Activation):
    """``Activation("sigmoid")``."""

    def __init__(self) -> None:
        super().__init__("sigmoid")


class HardTanh(Activation):
    """``Activation("hardtanh", min_val=..., max_val=...)``."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__("hardtanh", min_val=min_val, max_val=max_val)


class Identity(Activation):
    """``Activation("identity")``."""

    def __init__(self) -> None:
        super().__init__("identity")


class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        out, self._cache = F.flatten_forward(x)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        return F.flatten_backward(dy, self._need_cache())


# ---------------------------------------------------------------------------
# Container
# ---------------------------------------------------------------------------


class Sequential(Layer):
    """Chain of layers; names are qualified by position, e.g. ``"0.w"``, ``"2.running_mean"``.

    ``params``/``grads``/``buffers`` are flat dicts (rebuilt on access) whose
    values are the sub-layers' own arrays, so in-place updates reach the layers.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is not a Layer: {layer!r}")
        self.layers: list[Layer] = list(layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def _flat(self, attr: str) -> dict[str, np.ndarray]:
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in _flat_of(layer, attr)
        }

    @property  # type: ignore[override]
    def params(self) -> dict[str, np.ndarray]:
        """Parameters of every layer, keyed ``<index>.<name>``."""
        return self._flat("params")

    @params.setter
    def params(self, value: dict[str, np.ndarray]) -> None:
        """Parameters of every layer, keyed ``<index>.<name>``."""
        if value:
            raise AttributeError("Sequential.params is derived from its layers")

    @property  # type: ignore[override]
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of every layer, keyed like :attr:`params`."""
        return self._flat("grads")

    @grads.setter
    def grads(self, value: dict[str, np.ndarray]) -> None:
        """Gradients of every layer, keyed like :attr:`params`."""
        if value:
            raise AttributeError("Sequential.grads is derived from its layers")

    @property  # type: ignore[override]
    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state of every layer, keyed ``<index>.<name>``."""
        return self._flat("buffers")

    @buffers.setter
    def buffers(self, value: dict[str, np.ndarray]) -> None:
        """Non-trainable state of every layer, keyed ``<index>.<name>``."""
        if value:
            raise AttributeError("Sequential.buffers is derived from its layers")

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Forward pass (see :meth:`Layer.forward`)."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Backward pass (see :meth:`Layer.backward`)."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def named_params(self, prefix: str = "") -> list[NamedParam]:
        """(name, parameter, gradient) of every layer, names prefixed by the layer index."""
        out: list[NamedParam] = []
        for i, layer in enumerate(self.layers):
            out.extend(layer.named_params(f"{prefix}{i}."))
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers of every layer, keyed ``<index>.<name>``."""
        out: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            out.update({f"{i}.{k}": v for k, v in layer.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore every layer from :meth:`state_dict` output."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for i, layer in enumerate(self.layers):
            pre = f"{i}."
            layer.load_state_dict({k[len(pre) :]: v for k, v in state.items() if k.startswith(pre)})

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


def _flat_of(layer: Layer, attr: str) -> list[tuple[str, np.ndarray]]:
    return list(getattr(layer, attr).items())
