"""Device physics of the programmable conductances (memristors) and the diode model card.

The resistive blocks store their conductances as NumPy arrays in siemens. A
:class:`MemristorArray` wraps one such array *in place* and decides how a requested change
is actually taken by the devices (:meth:`MemristorArray.program`), what a solve sees
(:meth:`MemristorArray.read`) and how the stored state decays (:meth:`MemristorArray.drift`).
:class:`MemristorParams` holds the parameters; ``*Preset`` classes only override defaults.

Models (all per device ``i``; ``r_i = g_max_i - g_min_i``):

* **Pulses.** A requested change ``delta`` is expressed as a fraction of the *nominal*
  range, ``x = delta / (g_max_S - g_min_S)`` (the write circuit knows the nominal device,
  not each device). With ``levels = L`` the write circuit sends an integer number of
  identical pulses ``n = round(x (L - 1))`` (stochastic rounding by default:
  ``n = floor(y) + Bernoulli(y - floor(y))``, unbiased; or nearest integer, ties to even),
  so ``x = n / (L - 1)``. With ``levels=None`` the update is one analog pulse of size ``x``.
* **Update non-linearity / asymmetry** (exponential pulse response of NeuroSim,
  Chen, Peng & Yu, IEEE TCAD (2018), written per pulse). A device that has received the
  fraction ``u = |x| * s_i`` of the pulses needed to sweep its range (``s_i`` its
  device-to-device step scale) follows, for potentiation (``x > 0``)::

      G_new = G_sat_up - (G_sat_up - G) * exp(-nu_up * u),
      G_sat_up = g_min_i + r_i / (1 - exp(-nu_up))

  so the step per pulse is ``dg_up(G) = (G_sat_up - G) * (1 - exp(-nu_up s_i / (L - 1)))``:
  linear in ``G`` (soft bounds towards the virtual saturation level ``G_sat_up > g_max_i``),
  ``exp(nu_up)`` times larger at ``g_min_i`` than at ``g_max_i``, and ``L - 1`` pulses
  from ``g_min_i`` land exactly on ``g_max_i``. Depression (``x < 0``) is the mirror
  image with ``nu_down``: ``G_new = G_sat_down + (G - G_sat_down) * exp(-nu_down * u)``,
  ``G_sat_down = g_max_i - r_i / (1 - exp(-nu_down))``. ``nu -> 0`` is the linear device
  (``G_new = G +- r_i u``); ``nu -> inf`` is aihwkit's SoftBounds device
  (``dg_up ~ (g_max - G)``). ``nu`` is NeuroSim's ``maxNumLevel / paramA``; NeuroSim's
  "nonlinearity labels" (e.g. 2.4 / -4.88) map to ``nu`` through its ``getParamA`` table.
  Different ``nu_up`` and ``nu_down`` give the up/down asymmetry: at state ``G`` one
  up-pulse and one down-pulse differ by ``dg_up(G) / dg_down(G)``.
* **Write (cycle-to-cycle) noise**: every pulse adds independent Gaussian noise of std
  ``sqrt((write_noise_rel * step_i)^2 + write_noise_abs_S^2)`` with
  ``step_i = s_i r_i / (L - 1)`` the device's nominal (linear) step, so ``n`` pulses add
  ``sqrt(n)`` times that (aihwkit ``dw_min_std`` for the relative part; NeuroSim
  ``sigmaCtoC * sqrt(numPulse)`` for the absolute part). With ``levels=None`` the update is
  one pulse of nominal size ``s_i r_i |x|``: std ``sqrt((write_noise_rel s_i r_i |x|)^2 +
  write_noise_abs_S^2)`` for every non-zero request.
* **Bounds**: after each update the device is clipped to its own ``[g_min_i, g_max_i]``.
* **Device-to-device variability** (drawn once from the constructor's generator):
  ``g_min_i = g_min_S (1 + d2d xi_1)``, ``g_max_i = g_max_S (1 + d2d xi_2)``,
  ``s_i = 1 + d2d xi_3`` with ``xi ~ N(0, 1)``; every factor is floored at 0.05 and
  ``g_max_i >= 1.01 g_min_i`` is enforced.
* **Stuck devices**: a fraction stuck at ``g_min_i`` and one stuck at ``g_max_i`` (disjoint,
  drawn once); they ignore programming and drift (pulses sent to them still count).
* **Read noise**: each read is ``G (1 + read_noise_rel xi)``, fresh ``xi ~ N(0, 1)`` per
  device and read, floored at ``1e-3 g_min_S`` so a solve never sees ``G <= 0``.
* **Drift** (power law, e.g. PCM structural relaxation): ``G(t) = G(t0) (t / t0)^-drift_nu``.

The block-level bounds ``ResistiveBlockParams.g_min_S/g_max_S`` are the nominal range; with
``d2d_variability > 0`` individual devices range slightly outside it.
"""

from __future__ import annotations

import math

import numpy as np

from ..params.device import MemristorParams

__all__ = ["MemristorArray"]

#: Floor of read conductances relative to ``g_min_S`` (keeps every read strictly positive).
_READ_FLOOR_REL = 1e-3
#: Lower bound of every device-to-device factor ``1 + d2d * xi``.
_D2D_FACTOR_FLOOR = 0.05


def _d2d_factor(rng: np.random.Generator, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    f = 1.0 + sigma * rng.standard_normal(shape)
    return np.maximum(f, _D2D_FACTOR_FLOOR)


class MemristorArray:
    """Device physics for one conductance array, modified IN PLACE.

    Args:
        g_S: the conductance array (siemens, float64, writable); it stays the same object
            (``self.g is g_S``) and every method writes into it with ``g[...] = ...``.
        params: device parameters.
        rng: generator for the per-device draws at construction (variability, stuck masks)
            and for the programming randomness (stochastic rounding, write noise).

    At construction the per-device ranges, step scales and stuck masks are drawn (in that
    order, each only if its parameter is non-zero), the initial values are clipped into each
    device's range, snapped to the nearest reachable state when ``levels`` is set, and
    stuck devices are set to their stuck value.
    """

    def __init__(
        self, g_S: np.ndarray, params: MemristorParams, rng: np.random.Generator
    ) -> None:
        if not isinstance(g_S, np.ndarray) or g_S.dtype != np.float64:
            raise ValueError("g_S must be a float64 numpy array (it is modified in place)")
        if not g_S.flags.writeable:
            raise ValueError("g_S must be writable (it is modified in place)")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.g = g_S
        self.params = params
        self.rng = rng
        p, shape = params, g_S.shape
        d2d = p.d2d_variability
        if d2d > 0:
            self._g_min = p.g_min_S * _d2d_factor(rng, d2d, shape)
            self._g_max = p.g_max_S * _d2d_factor(rng, d2d, shape)
            self._g_max = np.maximum(self._g_max, 1.01 * self._g_min)
            self._step_scale = _d2d_factor(rng, d2d, shape)
        else:
            self._g_min = np.full(shape, p.g_min_S)
            self._g_max = np.full(shape, p.g_max_S)
            self._step_scale = np.ones(shape)
        f_min, f_max = p.stuck_at_min_fraction, p.stuck_at_max_fraction
        if f_min > 0 or f_max > 0:
            u = rng.random(shape)
            self._stuck_min = u < f_min
            self._stuck_max = (u >= f_min) & (u < f_min + f_max)
        else:
            self._stuck_min = np.zeros(shape, dtype=bool)
            self._stuck_max = np.zeros(shape, dtype=bool)
        self._stuck = self._stuck_min | self._stuck_max
        self._pulse_count = np.zeros(shape, dtype=np.int64)
        g = np.clip(g_S, self._g_min, self._g_max)
        if p.levels is not None:
            g = self._snap(g)
        g = np.where(self._stuck_min, self._g_min, g)
        g = np.where(self._stuck_max, self._g_max, g)
        self.g[...] = g

    # -- per-device quantities ------------------------------------------------------------

    @property
    def g_min_device_S(self) -> np.ndarray:
        """Per-device lowest conductance (siemens), a copy."""
        return self._g_min.copy()

    @property
    def g_max_device_S(self) -> np.ndarray:
        """Per-device highest conductance (siemens), a copy."""
        return self._g_max.copy()

    @property
    def step_scale(self) -> np.ndarray:
        """Per-device step-size factor ``s_i`` (1 without variability), a copy."""
        return self._step_scale.copy()

    @property
    def stuck_at_min(self) -> np.ndarray:
        """Boolean mask of devices stuck at their g_min, a copy."""
        return self._stuck_min.copy()

    @property
    def stuck_at_max(self) -> np.ndarray:
        """Boolean mask of devices stuck at their g_max, a copy."""
        return self._stuck_max.copy()

    @property
    def pulse_count(self) -> np.ndarray:
        """Programming pulses received per device so far (continuous devices: one per
        non-zero update), a copy."""
        return self._pulse_count.copy()

    @property
    def pulses_used(self) -> int:
        """Total programming pulses sent to this array so far (stuck devices included)."""
        return int(self._pulse_count.sum())

    # -- physics ----------------------------------------------------------------------------

    def _snap(self, g: np.ndarray) -> np.ndarray:
        """Nearest state of the potentiation ladder from g_min_i: the state reached by ``k``
        pulses, ``g_min_i + r_i (1 - exp(-nu_up u)) / (1 - exp(-nu_up))``,
        ``u = min(k s_i / (L - 1), 1)``."""
        p = self.params
        assert p.levels is not None
        r = self._g_max - self._g_min
        frac = np.clip((g - self._g_min) / r, 0.0, 1.0)
        nu = p.nonlinearity_up
        if nu > 0:  # invert frac = (1 - exp(-nu u)) / (1 - exp(-nu)) for u
            u = -np.log1p(frac * np.expm1(-nu)) / nu
        else:
            u = frac
        steps = (p.levels - 1) / self._step_scale  # pulses that sweep device i's range
        u = np.minimum(np.rint(u * steps) / steps, 1.0)
        return self._g_min + r * _saturating(nu, u)

    def program(self, delta_S: np.ndarray) -> np.ndarray:
        """Apply the requested changes ``delta_S`` (siemens, same shape) the way the devices
        take them (see the module docstring); returns the applied change (siemens)."""
        delta = np.asarray(delta_S, dtype=np.float64)
        if delta.shape != self.g.shape:
            raise ValueError(f"delta_S has shape {delta.shape}, expected {self.g.shape}")
        if not np.all(np.isfinite(delta)):
            raise ValueError("delta_S must be finite")
        p, rng = self.params, self.rng
        before = self.g.copy()
        x = delta / (p.g_max_S - p.g_min_S)
        if p.levels is not None:
            y = x * (p.levels - 1)
            if p.stochastic_rounding:
                fl = np.floor(y)
                n = fl + (rng.random(y.shape) < (y - fl))
            else:
                n = np.rint(y)
            x = n / (p.levels - 1)
            pulses = np.abs(n).astype(np.int64)
        else:
            pulses = (delta != 0).astype(np.int64)
        r = self._g_max - self._g_min
        u = np.abs(x) * self._step_scale
        g = before
        nu_u, nu_d = p.nonlinearity_up, p.nonlinearity_down
        up = r * _saturating(nu_u, u) - (g - self._g_min) * _one_minus_exp(nu_u, u)
        down = r * _saturating(nu_d, u) - (self._g_max - g) * _one_minus_exp(nu_d, u)
        new = np.where(x > 0, g + up, np.where(x < 0, g - down, g))
        if p.write_noise_rel > 0 or p.write_noise_abs_S > 0:
            if p.levels is not None:
                step = self._step_scale * r / (p.levels - 1)
            else:
                step = r * u
            per_pulse = np.sqrt((p.write_noise_rel * step) ** 2 + p.write_noise_abs_S**2)
            new = new + rng.standard_normal(g.shape) * per_pulse * np.sqrt(pulses)
        new = np.clip(new, self._g_min, self._g_max)
        new = np.where(self._stuck, before, new)
        self.g[...] = new
        self._pulse_count += pulses
        return self.g - before

    def read(self, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of the conductances for one solve (``G (1 + read_noise_rel xi)``,
        floored at ``1e-3 g_min_S``); the stored array is never written."""
        if self.params.read_noise_rel == 0:
            return self.g.copy()
        out = self.g * (1.0 + self.params.read_noise_rel * rng.standard_normal(self.g.shape))
        return np.maximum(out, _READ_FLOOR_REL * self.params.g_min_S)

    def drift(self, t_s: float) -> None:
        """Apply retention drift in place: ``G <- G (t_s / t0_s)^-drift_nu`` for a read at
        ``t_s`` seconds after programming (``t_s >= t0_s``). Calls compound; stuck devices do
        not drift."""
        t0 = self.params.t0_s
        if not (math.isfinite(t_s) and t_s >= t0):
            raise ValueError(f"t_s must be finite and >= t0_s = {t0!r} seconds, got {t_s!r}")
        factor = (t_s / t0) ** (-self.params.drift_nu)
        self.g[...] = np.where(self._stuck, self.g, self.g * factor)


def _one_minus_exp(nu: float, u: np.ndarray) -> np.ndarray:
    """``1 - exp(-nu u)``."""
    return -np.expm1(-nu * u)


def _saturating(nu: float, u: np.ndarray) -> np.ndarray:
    """``(1 - exp(-nu u)) / (1 - exp(-nu))``, equal to ``u`` for ``nu = 0``."""
    if nu == 0:
        return np.asarray(u, dtype=np.float64)
    return -np.expm1(-nu * u) / -math.expm1(-nu)
