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
from dataclasses import dataclass, fields

import numpy as np

from .circuit import DiodeModel

__all__ = [
    "MemristorParams",
    "IDEAL",
    "AgASiNeuroSimPreset",
    "TaOxHfOxNeuroSimPreset",
    "PCMInferencePreset",
    "MemristorArray",
    "diode_1n4148",
    "DIODE_1N4148_CARD",
]

#: Floor of read conductances relative to ``g_min_S`` (keeps every read strictly positive).
_READ_FLOOR_REL = 1e-3
#: Lower bound of every device-to-device factor ``1 + d2d * xi``.
_D2D_FACTOR_FLOOR = 0.05


@dataclass(frozen=True)
class MemristorParams:
    """Parameters of one kind of programmable conductance (memristor).

    The defaults are the ideal device on the block's default range: continuous, linear,
    noiseless, no variability, no stuck devices, no drift.

    Attributes:
        g_min_S: nominal lowest programmable conductance in siemens (> 0).
        g_max_S: nominal highest programmable conductance in siemens (> g_min_S).
        levels: number of programmable conductance states across the range (>= 2), i.e.
            ``levels - 1`` identical pulses sweep g_min -> g_max; ``None`` = continuous.
        stochastic_rounding: with ``levels`` set, convert a request to pulses by stochastic
            (unbiased) rounding if True, by nearest-integer rounding if False.
        write_noise_rel: std of the cycle-to-cycle noise of ONE pulse, relative to the
            device's nominal step ``s_i (g_max_i - g_min_i) / (levels - 1)`` (dimensionless;
            aihwkit ``dw_min_std``). Continuous devices: relative to the requested change.
        write_noise_abs_S: std of the additive cycle-to-cycle noise of one pulse in siemens
            (NeuroSim ``sigmaCtoC``); n pulses add sqrt(n) times the per-pulse std.
        read_noise_rel: std of the multiplicative read fluctuation, drawn afresh for every
            device at every read, i.e. before every solve (dimensionless).
        d2d_variability: device-to-device relative std of g_min, g_max and the step size,
            fixed per device at construction (dimensionless, in [0, 1)).
        nonlinearity_up: update non-linearity ``nu_up >= 0`` of potentiation (dimensionless;
            first/last step ratio is ``exp(nu_up)``; 0 = linear).
        nonlinearity_down: update non-linearity ``nu_down >= 0`` of depression.
        stuck_at_min_fraction: fraction of devices stuck at their g_min (in [0, 1]).
        stuck_at_max_fraction: fraction of devices stuck at their g_max (in [0, 1]).
        drift_nu: power-law drift exponent (dimensionless, >= 0; 0 = no drift).
        t0_s: reference time of the drift law in seconds (> 0): the time after programming
            at which the programmed conductance is defined.
    """

    g_min_S: float = 1e-7
    g_max_S: float = 1e-5
    levels: int | None = None
    stochastic_rounding: bool = True
    write_noise_rel: float = 0.0
    write_noise_abs_S: float = 0.0
    read_noise_rel: float = 0.0
    d2d_variability: float = 0.0
    nonlinearity_up: float = 0.0
    nonlinearity_down: float = 0.0
    stuck_at_min_fraction: float = 0.0
    stuck_at_max_fraction: float = 0.0
    drift_nu: float = 0.0
    t0_s: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("levels", "stochastic_rounding"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v!r}")
        if not self.g_min_S > 0:
            raise ValueError(f"g_min_S must be > 0 siemens, got {self.g_min_S!r}")
        if not self.g_max_S > self.g_min_S:
            raise ValueError(
                f"g_max_S must be > g_min_S = {self.g_min_S!r} siemens, got {self.g_max_S!r}"
            )
        if self.levels is not None and (
            isinstance(self.levels, bool)
            or not isinstance(self.levels, (int, np.integer))
            or self.levels < 2
        ):
            raise ValueError(f"levels must be None or an integer >= 2, got {self.levels!r}")
        if not isinstance(self.stochastic_rounding, bool):
            raise ValueError(
                f"stochastic_rounding must be a bool, got {self.stochastic_rounding!r}"
            )
        for name in (
            "write_noise_rel",
            "write_noise_abs_S",
            "read_noise_rel",
            "nonlinearity_up",
            "nonlinearity_down",
            "drift_nu",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.d2d_variability < 1:
            raise ValueError(f"d2d_variability must be in [0, 1), got {self.d2d_variability!r}")
        for name in ("stuck_at_min_fraction", "stuck_at_max_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.stuck_at_min_fraction + self.stuck_at_max_fraction > 1:
            raise ValueError(
                "stuck_at_min_fraction + stuck_at_max_fraction must be <= 1, got "
                f"{self.stuck_at_min_fraction!r} + {self.stuck_at_max_fraction!r}"
            )
        if not self.t0_s > 0:
            raise ValueError(f"t0_s must be > 0 seconds, got {self.t0_s!r}")

    @classmethod
    def ideal(cls, g_min_S: float = 1e-7, g_max_S: float = 1e-5) -> MemristorParams:
        """The ideal device on ``[g_min_S, g_max_S]``: continuous, linear, noiseless."""
        return MemristorParams(g_min_S=g_min_S, g_max_S=g_max_S)

    @property
    def step_S(self) -> float | None:
        """Nominal step of one pulse ``(g_max_S - g_min_S) / (levels - 1)``, None if
        continuous."""
        if self.levels is None:
            return None
        return (self.g_max_S - self.g_min_S) / (self.levels - 1)


#: The ideal device on the block's default range [1e-7, 1e-5] S.
IDEAL = MemristorParams()


@dataclass(frozen=True)
class AgASiNeuroSimPreset(MemristorParams):
    """Ag:a-Si synapse as modelled in NeuroSim's "RealDevice" (MLP_NeuroSim V1.0):
    device data of Jo et al., "Nanoscale memristor device as synapse in neuromorphic
    systems", Nano Lett. 10, 1297 (2010); model of Chen, Peng & Yu, "NeuroSim: a
    circuit-level macro model ...", IEEE TCAD 37, 3067 (2018).

    Values, read from the NeuroSim V1.0 source (``Cell.cpp``, ``formula.cpp``):
    ``maxConductance = 3.8462e-8 S``, ``minConductance = 3.0769e-9 S`` (ON/OFF 12.5),
    ``maxNumLevelLTP = 97`` pulses (``maxNumLevelLTD = 100``; one count is used here),
    non-linearity labels ``NL_LTP = 2.4``, ``NL_LTD = -4.88`` -> ``getParamA`` = 0.499181
    and 0.200303 -> ``nu = 1 / paramA`` = 2.0033 and 4.9924, cycle-to-cycle
    ``sigmaCtoC = 0.035 (g_max - g_min)`` per sqrt(pulse). NeuroSim's "97 levels" is the
    number of pulses spanning the range, so ``levels = 98`` here gives the same step
    ``(g_max - g_min) / 97``. NeuroSim models no read noise, d2d or drift for this device.
    """

    g_min_S: float = 3.0769e-9
    g_max_S: float = 3.8462e-8
    levels: int | None = 98
    write_noise_abs_S: float = 0.035 * (3.8462e-8 - 3.0769e-9)
    nonlinearity_up: float = 1.0 / 0.499181
    nonlinearity_down: float = 1.0 / 0.200303


@dataclass(frozen=True)
class TaOxHfOxNeuroSimPreset(MemristorParams):
    """TaOx/HfOx ReRAM synapse of Wu et al., "A methodology to improve linearity of analog
    RRAM for neuromorphic computing", VLSI Technology (2018), as tabulated for NeuroSim
    (Chen, Peng & Yu (2018) model).

    Values (g range 1e-6..1e-5 S, 128 pulses, non-linearity labels 0.04 / -0.63,
    cycle-to-cycle 3.7 % of the range per sqrt(pulse)) are the NeuroSim device-library
    values as tabulated by the MELISO benchmark documentation (Chowdhury et al. (2024));
    they were NOT checked against the original paper here: treat them as representative.
    Labels -> ``getParamA`` (NeuroSim table) = 31.566827 and 1.997332 -> ``nu`` = 0.0317
    (nearly linear potentiation) and 0.5007.
    """

    g_min_S: float = 1e-6
    g_max_S: float = 1e-5
    levels: int | None = 129
    write_noise_abs_S: float = 0.037 * (1e-5 - 1e-6)
    nonlinearity_up: float = 1.0 / 31.566827
    nonlinearity_down: float = 1.0 / 1.997332


@dataclass(frozen=True)
class PCMInferencePreset(MemristorParams):
    """Phase-change memory programmed by write-verify, after the statistical PCM model of
    Nandakumar et al. (2019) (IEEE ICECS) and Joshi et al., "Accurate deep neural network
    inference using computational phase-change memory", Nat. Commun. 11, 2473 (2020), as
    documented for aihwkit's ``PCMLikeNoiseModel``.

    * ``g_max_S = 25 uS`` (the ``g_max`` of that model); ``g_min_S = 0.25 uS`` is our choice
      (the model's lowest target is 0, which a resistor cannot represent).
    * ``drift_nu = 0.05``: the model's mean drift exponent lies in [0.049, 0.1] depending on
      the state (Le Gallo et al. (2018) structural relaxation); 0.05 is its high-conductance
      end. ``t0_s = 20 s`` is an order-of-magnitude reference time after programming.
    * ``write_noise_abs_S = 1 uS``: order of magnitude of the model's programming-noise std
      (0.26..1.05 uS over the range, in units of uS for g_max = 25 uS).
    * ``read_noise_rel = 0.03``: order of magnitude of its 1/f read noise for mid/high states
      (Q_s sqrt(log((t + t_read) / (2 t_read))) with Q_s ~ 0.0088 g_T^-0.65).
    * continuous levels, no update non-linearity: this is an inference-style preset (PCM's
      abrupt RESET is not modelled).
    """

    g_min_S: float = 2.5e-7
    g_max_S: float = 2.5e-5
    write_noise_abs_S: float = 1e-6
    read_noise_rel: float = 0.03
    drift_nu: float = 0.05
    t0_s: float = 20.0


#: SPICE model card of the 1N4148 small-signal diode (the widely distributed model:
#: IS=2.52n RS=0.568 N=1.752 CJO=4p M=0.4 TT=20n BV=75 IBV=1u; only IS and N are DC-relevant
#: for our solver, see :func:`diode_1n4148`).
DIODE_1N4148_CARD: dict[str, float] = {
    "IS": 2.52e-9,
    "RS": 0.568,
    "N": 1.752,
    "CJO": 4e-12,
    "M": 0.4,
    "TT": 20e-9,
    "BV": 75.0,
    "IBV": 1e-6,
}


def diode_1n4148(name: str = "d1n4148") -> DiodeModel:
    """The 1N4148 diode as an :class:`~analogeq.circuit.DiodeModel` (IS = 2.52e-9 A,
    N = 1.752, the values of the widely used 1N4148 SPICE model card, see
    :data:`DIODE_1N4148_CARD`).

    The card's series resistance RS = 0.568 ohm is dropped because ``DiodeModel`` has no RS:
    at the microamp currents of our networks (g <= 1e-5 S, ~1 V) it changes the diode
    voltage by < 1 uV. Junction capacitance, transit time and breakdown are irrelevant to
    the DC solves (breakdown at 75 V is far outside the operating range).
    """
    return DiodeModel(name=name, is_A=DIODE_1N4148_CARD["IS"], n=DIODE_1N4148_CARD["N"])


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

    def __init__(self, g_S: np.ndarray, params: MemristorParams, rng: np.random.Generator):
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
