"""Optimizers and learning-rate schedules.

Optimizer API::

    opt = Adam(lr=1e-3)               # lr: float or a schedule (callable step -> lr)
    opt.step(params, grads, clamps=None)

* ``params``/``grads`` are equal-length lists of arrays; ``params`` are updated
  **in place**.  Internal state (momentum, Adam moments) is keyed by list
  *position*, so pass the parameters in the same order every step (e.g.
  ``Sequential.parameters()``/``gradients()``).
* ``clamps`` is ``None`` or a list with one entry per param, each ``None``
  (no constraint), a ``(low, high)`` pair (either side may be ``None``;
  scalars or broadcastable arrays) applied with :func:`numpy.clip` after the
  update, or a callable ``hook(param) -> None`` that edits the array in place
  (e.g. to model conductance saturation or write non-linearity).
* ``opt.t`` counts completed steps.  The learning rate of a step is
  ``schedule(opt.t)`` evaluated *before* the increment, so the first step uses
  ``schedule(0)``; :meth:`Optimizer.current_lr` returns it.
* ``state_dict()`` returns a flat ``dict[str, np.ndarray]`` (saveable with
  :func:`numpy.savez`) with the step count and every state buffer;
  ``load_state_dict`` restores it for an exact resume.

Schedules are small objects that are callable, ``schedule(step) -> lr``
(``lr_at(step)`` is an alias), with ``step`` the 0-based optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "SGD",
    "Adam",
    "Clamp",
    "ConstantLR",
    "CosineLR",
    "Optimizer",
    "Schedule",
    "StepLR",
    "WarmupCosine",
]

Clamp = tuple[object, object] | Callable[[np.ndarray], None] | None


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


class Schedule:
    """Base class: ``schedule(step) -> lr`` for a 0-based step index."""

    def __call__(self, step: int) -> float:
        """Same as :meth:`forward`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.lr_at(int(step))

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        raise NotImplementedError


class ConstantLR(Schedule):
    """``lr(step) = lr``."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        return self.lr


class StepLR(Schedule):
    """``lr(step) = base_lr * gamma ** (step // step_size)``."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.base_lr, self.step_size, self.gamma = float(base_lr), int(step_size), float(gamma)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineLR(Schedule):
    """Cosine annealing from ``base_lr`` to ``min_lr`` over ``total_steps``.

    ``lr(step) = min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(pi * s / total_steps))``
    with ``s = min(step, total_steps)`` (constant ``min_lr`` afterwards).
    """

    def __init__(self, base_lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.base_lr, self.total_steps, self.min_lr = float(base_lr), int(total_steps), min_lr

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        s = min(step, self.total_steps)
        cos = 0.5 * (1.0 + math.cos(math.pi * s / self.total_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * cos


class WarmupCosine(Schedule):
    """Linear warm-up then cosine annealing.

    ``lr(step) = base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    then :class:`CosineLR` over the remaining ``total_steps - warmup_steps``
    steps, i.e. ``CosineLR(base_lr, total_steps - warmup_steps, min_lr)(step - warmup_steps)``.
    """

    def __init__(
        self, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
    ) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ValueError("need 0 <= warmup_steps < total_steps")
        self.base_lr, self.warmup_steps = float(base_lr), int(warmup_steps)
        self._cos = CosineLR(base_lr, total_steps - warmup_steps, min_lr)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        return self._cos.lr_at(step - self.warmup_steps)


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


def _apply_clamp(p: np.ndarray, clamp: Clamp) -> None:
    if clamp is None:
        return
    if callable(clamp):
        clamp(p)
        return
    low, high = clamp  # type: ignore[misc]
    if low is None and high is None:
        return
    np.clip(p, low, high, out=p)


class Optimizer:
    """Base class holding the step counter, the lr schedule and per-position state.

    Args:
        lr: Learning rate, a float or a callable ``schedule(step) -> lr``.
        buffers: Names of the per-parameter state arrays (e.g. ``("m", "v")``).
    """

    _buffer_names: tuple[str, ...] = ()

    def __init__(self, lr: float | Callable[[int], float]) -> None:
        if not callable(lr) and not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.lr = lr
        self.t = 0
        self.state: list[dict[str, np.ndarray]] = []

    def current_lr(self) -> float:
        """Learning rate the next :meth:`step` will use."""
        return float(self.lr(self.t)) if callable(self.lr) else float(self.lr)

    def _check(
        self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], clamps: object
    ) -> None:
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} params but {len(grads)} grads")
        if clamps is not None and len(clamps) != len(params):  # type: ignore[arg-type]
            raise ValueError(f"got {len(params)} params but {len(clamps)} clamps")  # type: ignore[arg-type]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if p.shape != g.shape:
                raise ValueError(f"param {i}: shape {p.shape} != grad shape {g.shape}")
        if not self.state:
            self.state = [{name: np.zeros_like(p) for name in self._buffer_names} for p in params]
        elif len(self.state) != len(params):
            raise ValueError(
                f"optimizer state has {len(self.state)} entries but {len(params)} params given"
            )
        else:
            for i, (p, st) in enumerate(zip(params, self.state, strict=True)):
                for name, buf in st.items():
                    if buf.shape != p.shape:
                        raise ValueError(f"param {i}: shape {p.shape} != state {name} {buf.shape}")

    def step(
        self,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        clamps: Sequence[Clamp] | None = None,
    ) -> None:
        """Update ``params`` in place from ``grads``, then apply ``clamps``; ``t += 1``."""
        self._check(params, grads, clamps)
        lr = self.current_lr()
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            self._update(p, g, self.state[i], lr)
            if clamps is not None:
                _apply_clamp(p, clamps[i])
        self.t += 1

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, np.ndarray], lr: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat copy of the optimizer state: ``"t"`` and ``"<buffer>.<index>"``."""
        out: dict[str, np.ndarray] = {"t": np.array(self.t)}
        for i, st in enumerate(self.state):
            for name, buf in st.items():
                out[f"{name}.{i}"] = buf.copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`state_dict` (hyper-parameters are not part of it)."""
        self.t = int(state["t"])
        n = 0
        while any(f"{name}.{n}" in state for name in self._buffer_names):
            n += 1
        self.state = [
            {name: np.array(state[f"{name}.{i}"], copy=True) for name in self._buffer_names}
            for i in range(n)
        ]


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Per parameter ``p`` with gradient ``g`` (PyTorch semantics, no dampening)::

        g = g + weight_decay * p
        v = momentum * v + g                       (v starts at 0)
        d = g + momentum * v if nesterov else v    (d = g when momentum == 0)
        p = p - lr * d
    """

    _buffer_names = ("velocity",)

    def __init__(
        self,
        lr: float | Callable[[int], float],
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum requires momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        if momentum == 0:
            self._buffer_names = ()

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, np.ndarray], lr: float) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = st["velocity"]
            v *= self.momentum
            v += g
            d = g + self.momentum * v if self.nesterov else v
        else:
            d = g
        p -= lr * d


class Adam(Optimizer):
    """Adam / AdamW.

    With ``t`` the 1-based step number, per parameter::

        if weight_decay and not decoupled: g = g + weight_decay * p     (Adam + L2)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t);  v_hat = v / (1 - b2**t)
        if weight_decay and decoupled: p = p * (1 - lr * weight_decay)  (AdamW)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)
    """

    _buffer_names = ("m", "v")

    def __init__(
        self,
        lr: float | Callable[[int], float] = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = True,
    ) -> None:
        super().__init__(lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError("eps must be > 0 and weight_decay >= 0")
        self.betas, self.eps = (float(b1), float(b2)), eps
        self.weight_decay, self.decoupled = weight_decay, decoupled

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, np.ndarray], lr: float) -> None:
        b1, b2 = self.betas
        t = self.t + 1
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p
        m, v = st["m"], st["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        m_hat = m / (1.0 - b1**t)
        v_hat = v / (1.0 - b2**t)
        if self.weight_decay and self.decoupled:
            p *= 1.0 - lr * self.weight_decay
        p -= lr * m_hat / (np.sqrt(v_hat) + self.eps)
