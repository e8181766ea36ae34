"""Pure forward/backward pairs for the digital (NumPy) part of a hybrid network.

Every operation comes as a pair in the CS231n style::

    out, cache = op_forward(x, ...)
    grads = op_backward(dout, cache)

``op_forward`` never mutates its inputs and ``op_backward`` returns the
gradients of a scalar loss ``L`` with respect to the inputs of ``op_forward``
given ``dout = dL/dout``.  Shapes use the usual letters:

* ``N`` batch size, ``D`` input features, ``M`` output features,
* ``C`` input channels, ``F`` output channels (filters), ``H``/``W`` spatial
  height/width, ``KH``/``KW`` kernel height/width, ``OH``/``OW`` output height/width.

All values are unit-less (or volts when a block feeds analog hardware); the
functions are dtype-preserving and are tested in float64.  No Python loops run
over pixels or batch elements: convolution uses an im2col built with
:func:`numpy.lib.stride_tricks.sliding_window_view` plus one matrix product,
and the backward scatter (col2im / pooling) loops only over the ``KH*KW``
kernel offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ACTIVATIONS",
    "activation_backward",
    "activation_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_output_shape",
    "flatten_backward",
    "flatten_forward",
    "gain_offset_backward",
    "gain_offset_forward",
    "hardtanh_backward",
    "hardtanh_forward",
    "identity_backward",
    "identity_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]

Cache = dict[str, Any]


def _pair(v: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    """Normalise an int or 2-tuple hyper-parameter and validate it (``>= minimum``)."""
    if isinstance(v, (int, np.integer)):
        out = (int(v), int(v))
    else:
        vals = tuple(int(a) for a in v)
        if len(vals) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        out = (vals[0], vals[1])
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return out


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


def linear_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
) -> tuple[np.ndarray, Cache]:
    """Affine map ``out = x @ w + b``.

    Args:
        x: Input, shape ``(N, D)``.
        w: Weights, shape ``(D, M)`` (note: *in x out*, not PyTorch's out x in).
        b: Bias, shape ``(M,)``, or ``None`` for no bias.

    Returns:
        ``out`` of shape ``(N, M)`` and the cache for :func:`linear_backward`.
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"linear: expected x (N,D) and w (D,M), got {x.shape} and {w.shape}")
    out = x @ w
    if b is not None:
        out = out + b
    return out, {"x": x, "w": w, "has_bias": b is not None}


def linear_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Backward of :func:`linear_forward`.

    Args:
        dout: Upstream gradient ``dL/dout``, shape ``(N, M)``.
        cache: Cache from the forward pass.

    Returns:
        ``(dx, dw, db)`` with shapes ``(N, D)``, ``(D, M)``, ``(M,)`` (``db`` is
        ``None`` when the forward had no bias).
    """
    x, w = cache["x"], cache["w"]
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0) if cache["has_bias"] else None
    return dx, dw, db


# ---------------------------------------------------------------------------
# Conv2d (im2col)
# ---------------------------------------------------------------------------


def conv2d_output_shape(
    h: int,
    w: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[int, int]:
    """Spatial output size ``(OH, OW)`` of a convolution/pooling (floor mode).

    ``OH = (H + 2*pad_h - KH) // stride_h + 1`` and likewise for ``OW``.
    """
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit input {h}x{w} with padding {ph},{pw}")
    return oh, ow


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, Cache]:
    """2-D cross-correlation (what deep-learning libraries call convolution).

    ``out[n, f, i, j] = b[f] + sum_{c,p,q} w[f, c, p, q] *
    xpad[n, c, i*sh + p, j*sw + q]`` with zero padding.

    Args:
        x: Input, shape ``(N, C, H, W)``.
        w: Filters, shape ``(F, C, KH, KW)``.
        b: Bias, shape ``(F,)``, or ``None``.
        stride: Stride ``s`` or ``(sh, sw)``, >= 1.
        padding: Zero padding ``p`` or ``(ph, pw)`` added on both sides, >= 0.

    Returns:
        ``out`` of shape ``(N, F, OH, OW)`` (see :func:`conv2d_output_shape`)
        and the cache (holds the im2col matrix, ``N*OH*OW x C*KH*KW``).
    """
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: expected x (N,C,H,W) and w (F,C,KH,KW), got {x.shape} and {w.shape}"
        )
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    oh, ow = conv2d_output_shape(h, wd, (kh, kw), (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    win = win[:, :, :oh, :ow]  # (N, C, OH, OW, KH, KW), a strided view
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    w_flat = w.reshape(f, c * kh * kw)
    out = cols @ w_flat.T
    if b is not None:
        out += b
    out = np.ascontiguousarray(out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2))
    cache = {
        "cols": cols,
        "w": w,
        "x_shape": x.shape,
        "stride": (sh, sw),
        "padding": (ph, pw),
        "out_hw": (oh, ow),
        "has_bias": b is not None,
    }
    return out, cache


def _col2im(
    dwin: np.ndarray,
    xp_shape: tuple[int, ...],
    stride: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Scatter-add window gradients back to the (padded) input.

    Args:
        dwin: Gradient per window element, shape ``(N, C, KH, KW, OH, OW)``.
        xp_shape: Shape of the padded input ``(N, C, Hp, Wp)``.
        stride: ``(sh, sw)``.
        out_hw: ``(OH, OW)``.

    Returns:
        Gradient w.r.t. the padded input, shape ``xp_shape``.
    """
    _, _, kh, kw, _, _ = dwin.shape
    sh, sw = stride
    oh, ow = out_hw
    dxp = np.zeros(xp_shape, dtype=dwin.dtype)
    for p in range(kh):  # loop over kernel offsets only
        for q in range(kw):
            dxp[:, :, p : p + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw] += dwin[
                :, :, p, q
            ]
    return dxp


def conv2d_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv2d_forward`.

    Args:
        dout: Upstream gradient, shape ``(N, F, OH, OW)``.
        cache: Cache from the forward pass.

    Returns:
        ``(dx, dw, db)`` with shapes ``(N, C, H, W)``, ``(F, C, KH, KW)``,
        ``(F,)`` (``db`` is ``None`` without bias).
    """
    cols, w = cache["cols"], cache["w"]
    n, c, h, wd = cache["x_shape"]
    f, _, kh, kw = w.shape
    oh, ow = cache["out_hw"]
    ph, pw = cache["padding"]
    dout_r = dout.transpose(0, 2, 3, 1).reshape(n * oh * ow, f)
    db = dout_r.sum(axis=0) if cache["has_bias"] else None
    dw = (dout_r.T @ cols).reshape(w.shape)
    # dcols: (N*OH*OW, C*KH*KW) -> (N, C, KH, KW, OH, OW) contiguous for the scatter
    dcols = dout_r @ w.reshape(f, c * kh * kw)
    dwin = np.ascontiguousarray(dcols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2))
    dxp = _col2im(dwin, (n, c, h + 2 * ph, wd + 2 * pw), cache["stride"], (oh, ow))
    dx = dxp[:, :, ph : ph + h, pw : pw + wd] if (ph or pw) else dxp
    return dx, dw, db


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


def _pool_windows(
    x: np.ndarray, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], tuple[int, int]]:
    if x.ndim != 4:
        raise ValueError(f"pooling expects x of shape (N,C,H,W), got {x.shape}")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride if stride is not None else (kh, kw), "stride", 1)
    oh, ow = conv2d_output_shape(x.shape[2], x.shape[3], (kh, kw), (sh, sw), 0)
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    return win, (kh, kw), (sh, sw), (oh, ow)


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> tuple[np.ndarray, Cache]:
    """Max pooling without padding (floor mode).

    Args:
        x: Input, shape ``(N, C, H, W)``.
        kernel_size: Window ``k`` or ``(kh, kw)``.
        stride: Stride; defaults to the kernel size (non-overlapping windows).

    Returns:
        ``out`` of shape ``(N, C, OH, OW)`` and the cache.  With ties the
        gradient goes to the first maximal element of the window (row-major).
    """
    win, (kh, kw), st, (oh, ow) = _pool_windows(x, kernel_size, stride)
    n, c = x.shape[:2]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    idx = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    cache = {"idx": idx, "x_shape": x.shape, "kernel": (kh, kw), "stride": st, "dtype": x.dtype}
    return out, cache


def max_pool2d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`max_pool2d_forward`.

    Args:
        dout: Upstream gradient, shape ``(N, C, OH, OW)``.

    Returns:
        ``dx`` of shape ``(N, C, H, W)``; each window routes its gradient to its argmax.
    """
    idx = cache["idx"]
    kh, kw = cache["kernel"]
    oh, ow = idx.shape[2:]
    dwin = np.zeros((*idx.shape[:2], kh, kw, oh, ow), dtype=np.result_type(dout, cache["dtype"]))
    for p in range(kh):
        for q in range(kw):
            dwin[:, :, p, q] = np.where(idx == p * kw + q, dout, 0.0)
    return _col2im(dwin, cache["x_shape"], cache["stride"], (oh, ow))


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> tuple[np.ndarray, Cache]:
    """Average pooling without padding (floor mode).

    Args:
        x: Input, shape ``(N, C, H, W)``.
        kernel_size: Window ``k`` or ``(kh, kw)``.
        stride: Stride; defaults to the kernel size.

    Returns:
        ``out`` of shape ``(N, C, OH, OW)`` (window means) and the cache.
    """
    win, k, st, hw = _pool_windows(x, kernel_size, stride)
    out = win.mean(axis=(-2, -1))
    return out, {"x_shape": x.shape, "kernel": k, "stride": st, "out_hw": hw}


def avg_pool2d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`avg_pool2d_forward`.

    Args:
        dout: Upstream gradient, shape ``(N, C, OH, OW)``.

    Returns:
        ``dx`` of shape ``(N, C, H, W)``.
    """
    kh, kw = cache["kernel"]
    oh, ow = cache["out_hw"]
    share = dout / (kh * kw)
    dwin = np.broadcast_to(share[:, :, None, None], (*dout.shape[:2], kh, kw, oh, ow))
    return _col2im(dwin, cache["x_shape"], cache["stride"], (oh, ow))


# ---------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------


def _bn_axes(x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Reduction axes and parameter broadcast shape for (N, D) or (N, C, H, W)."""
    if x.ndim == 2:
        return (0,), (1, x.shape[1])
    if x.ndim == 4:
        return (0, 2, 3), (1, x.shape[1], 1, 1)
    raise ValueError(f"batch_norm expects (N,D) or (N,C,H,W) input, got shape {x.shape}")


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    train: bool = True,
    eps: float = 1e-5,
) -> tuple[np.ndarray, Cache]:
    """Batch normalisation ``out = gamma * (x - mu) / sqrt(var + eps) + beta``.

    In train mode ``mu``/``var`` are the (biased) batch statistics over the
    batch (and spatial) axes; in eval mode they are ``running_mean`` /
    ``running_var``.  The running statistics are *not* modified (this module is
    pure); in train mode the cache holds ``"batch_mean"`` and ``"batch_var"``
    (unbiased, PyTorch convention) so the caller can update them, e.g.
    ``running = (1 - momentum) * running + momentum * batch``.

    Args:
        x: Input, shape ``(N, D)`` or ``(N, C, H, W)``.
        gamma: Scale, shape ``(D,)`` or ``(C,)``.
        beta: Shift, same shape as ``gamma``.
        running_mean: Running mean, same shape as ``gamma`` (used in eval mode).
        running_var: Running variance, same shape as ``gamma`` (used in eval mode).
        train: Use batch statistics (True) or running statistics (False).
        eps: Added to the variance for numerical stability.

    Returns:
        ``out`` with the shape of ``x`` and the cache.
    """
    axes, bshape = _bn_axes(x)
    if gamma.shape != (x.shape[1],) or beta.shape != gamma.shape:
        raise ValueError(f"batch_norm: gamma/beta must have shape ({x.shape[1]},)")
    m = x.size // x.shape[1]
    if train:
        if m < 2:
            raise ValueError("batch_norm in train mode needs more than one value per feature")
        mu = x.mean(axis=axes)
        var = x.var(axis=axes)
    else:
        mu, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu.reshape(bshape)) * inv_std.reshape(bshape)
    out = gamma.reshape(bshape) * xhat + beta.reshape(bshape)
    cache: Cache = {
        "xhat": xhat,
        "inv_std": inv_std,
        "gamma": gamma,
        "axes": axes,
        "bshape": bshape,
        "train": train,
    }
    if train:
        cache["batch_mean"] = mu
        cache["batch_var"] = var * (m / (m - 1))
    return out, cache


def batch_norm_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`batch_norm_forward` (through the batch statistics in train mode).

    Args:
        dout: Upstream gradient, shape of ``x``.

    Returns:
        ``(dx, dgamma, dbeta)``; ``dgamma``/``dbeta`` have shape ``(D,)``/``(C,)``.
    """
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    axes, bshape = cache["axes"], cache["bshape"]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * gamma.reshape(bshape)
    if not cache["train"]:
        return dxhat * inv_std.reshape(bshape), dgamma, dbeta
    mean_dxhat = dxhat.mean(axis=axes).reshape(bshape)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes).reshape(bshape)
    dx = inv_std.reshape(bshape) * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# Element-wise activations
# ---------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """``max(x, 0)`` element-wise; any shape. The derivative at 0 is taken as 0."""
    return np.maximum(x, 0), {"x": x}


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`relu_forward`; ``dx`` has the shape of ``x``."""
    return dout * (cache["x"] > 0)


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, Cache]:
    """``x if x > 0 else negative_slope * x`` element-wise; any shape."""
    return np.where(x > 0, x, negative_slope * x), {"x": x, "negative_slope": negative_slope}


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`leaky_relu_forward`."""
    return dout * np.where(cache["x"] > 0, 1.0, cache["negative_slope"])


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """``tanh(x)`` element-wise; any shape."""
    out = np.tanh(x)
    return out, {"out": out}


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`tanh_forward`: ``dout * (1 - tanh(x)**2)``."""
    return dout * (1.0 - cache["out"] ** 2)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Logistic ``1 / (1 + exp(-x))`` element-wise, overflow-free; any shape."""
    out = np.exp(-np.logaddexp(0.0, -x))
    return out, {"out": out}


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`sigmoid_forward`: ``dout * s * (1 - s)``."""
    s = cache["out"]
    return dout * s * (1.0 - s)


def hardtanh_forward(
    x: np.ndarray, min_val: float = -1.0, max_val: float = 1.0
) -> tuple[np.ndarray, Cache]:
    """``clip(x, min_val, max_val)`` element-wise; any shape."""
    if not max_val > min_val:
        raise ValueError(f"hardtanh needs max_val > min_val, got {min_val}, {max_val}")
    return np.clip(x, min_val, max_val), {"x": x, "min_val": min_val, "max_val": max_val}


def hardtanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`hardtanh_forward`: gradient 1 strictly inside the range, else 0."""
    x = cache["x"]
    return dout * ((x > cache["min_val"]) & (x < cache["max_val"]))


def identity_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Identity; any shape."""
    return x, {}


def identity_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`identity_forward`."""
    return dout


_ACT = {
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "hardtanh": (hardtanh_forward, hardtanh_backward),
    "identity": (identity_forward, identity_backward),
}

#: Names accepted by :func:`activation_forward` and :class:`digital.layers.Activation`.
ACTIVATIONS: tuple[str, ...] = tuple(_ACT)


def activation_forward(x: np.ndarray, name: str, **kwargs: float) -> tuple[np.ndarray, Cache]:
    """Apply the activation ``name`` (one of :data:`ACTIVATIONS`) element-wise.

    Args:
        x: Input, any shape.
        name: Activation name.
        **kwargs: Extra hyper-parameters (``negative_slope`` for leaky_relu,
            ``min_val``/``max_val`` for hardtanh).

    Returns:
        ``out`` with the shape of ``x`` and the cache.
    """
    try:
        fwd, _ = _ACT[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None
    out, cache = fwd(x, **kwargs)
    cache["name"] = name
    return out, cache


def activation_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`activation_forward`; ``dx`` has the shape of ``x``."""
    return _ACT[cache["name"]][1](dout, cache)


# ---------------------------------------------------------------------------
# Flatten and gain/offset
# ---------------------------------------------------------------------------


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Reshape ``(N, ...)`` to ``(N, prod(...))`` (C order)."""
    return x.reshape(x.shape[0], -1), {"x_shape": x.shape}


def flatten_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Backward of :func:`flatten_forward`: reshape back to the input shape."""
    return dout.reshape(cache["x_shape"])


def gain_offset_forward(
    x: np.ndarray, gain: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, Cache]:
    """Per-feature affine ``y = gain * x + offset``.

    The feature axis is axis 1: for ``x`` of shape ``(N, D)`` the arrays have
    shape ``(D,)``; for ``(N, C, H, W)`` they have shape ``(C,)`` and are
    broadcast over ``H, W``.  Typical use: map a digital activation to a
    voltage range for an analog block, or an analog output back to logits.

    Returns:
        ``y`` with the shape of ``x`` and the cache.
    """
    if x.ndim < 2 or gain.shape != (x.shape[1],) or offset.shape != gain.shape:
        raise ValueError(
            f"gain_offset: gain/offset must have shape ({x.shape[1] if x.ndim > 1 else '?'},), "
            f"got {gain.shape}, {offset.shape} for x {x.shape}"
        )
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return gain.reshape(bshape) * x + offset.reshape(bshape), {"x": x, "gain": gain}


def gain_offset_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`gain_offset_forward`.

    Returns:
        ``(dx, dgain, doffset)`` with shapes ``x.shape``, ``(F,)``, ``(F,)``.
    """
    x, gain = cache["x"], cache["gain"]
    axes = (0, *range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return dout * gain.reshape(bshape), (dout * x).sum(axis=axes), dout.sum(axis=axes)
