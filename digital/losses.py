"""Loss functions returning ``(loss, dloss/dinput)``.

All losses are averaged over the batch axis (axis 0), so gradients carry a
``1/N`` factor.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "log_softmax", "mse_loss", "softmax_cross_entropy"]


def mse_loss(y: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Half squared error, summed over features and averaged over the batch.

    ``loss = (1/N) * sum_n 0.5 * sum_j (y[n, j] - target[n, j])**2``, i.e. the
    energy-style cost used by Equilibrium Propagation, and
    ``dy = (y - target) / N``.

    Args:
        y: Predictions, shape ``(N, ...)``.
        target: Targets, same shape as ``y`` (e.g. one-hot, possibly scaled to volts).

    Returns:
        ``(loss, dy)``: a Python float and an array shaped like ``y``.
    """
    if y.shape != target.shape:
        raise ValueError(f"mse_loss: shape mismatch {y.shape} vs {target.shape}")
    n = y.shape[0]
    diff = y - target
    return float(0.5 * np.sum(diff * diff) / n), diff / n


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(softmax(logits))`` along the last axis; shape preserved."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_labels(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"expected logits (N,K) and labels (N,), got {logits.shape}, {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be in [0, {logits.shape[1]})")
    return labels


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy averaged over the batch.

    ``loss = -(1/N) * sum_n log softmax(logits[n])[labels[n]]`` and
    ``dlogits = (softmax(logits) - onehot(labels)) / N``.  Uses the
    max-shift log-sum-exp trick, so large logits do not overflow.

    Args:
        logits: Unnormalised scores, shape ``(N, K)``.
        labels: Integer class indices in ``[0, K)``, shape ``(N,)``.

    Returns:
        ``(loss, dlogits)``: a Python float and an ``(N, K)`` array.
    """
    labels = _check_labels(logits, labels)
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(logp[rows, labels].sum()) / n
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1.0
    dlogits /= n
    return loss, dlogits


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label (ties -> lowest index).

    Args:
        logits: Scores, shape ``(N, K)``.
        labels: Integer labels, shape ``(N,)``.

    Returns:
        Accuracy in ``[0, 1]`` as a Python float.
    """
    labels = _check_labels(logits, labels)
    return float(np.mean(logits.argmax(axis=1) == labels))
