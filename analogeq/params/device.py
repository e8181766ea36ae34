"""Device parameters: programmable conductances (memristors), their literature presets,
and the diode models of the hidden units (all SI units).

:class:`MemristorParams` holds the parameters of one kind of memristor; ``*Preset`` classes
only override defaults and cite their source. The device physics that uses them (pulses,
non-linearity, noise, drift) is :class:`analogeq.hardware.MemristorArray`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "DiodeModel",
    "PWLDiodeModel",
    "DIODE_MODELS",
    "MemristorParams",
    "IDEAL",
    "AgASiNeuroSimPreset",
    "TaOxHfOxNeuroSimPreset",
    "PCMInferencePreset",
    "diode_1n4148",
    "default_diode",
    "DIODE_1N4148_CARD",
]


@dataclass(frozen=True)
class DiodeModel:
    """Shockley junction diode model (SPICE level-1 ``D`` model, DC part only).

    I(V) = is_A * (exp(V / (n * V_T)) - 1), with V_T = k T / q at the simulation temperature,
    plus ngspice's reverse-bias form below -3 n V_T and its ``gmin`` shunt (see
    :mod:`analogeq.backends.numpy_backend`).

    Attributes:
        name: model name used in ``.model`` lines.
        is_A: saturation current in amperes (> 0).
        n: emission coefficient (ideality factor, > 0, dimensionless).
    """

    name: str = "dmod"
    is_A: float = 1e-12
    n: float = 1.0

    def voltage_scale_V(self, thermal_voltage_V: float) -> float:
        """Voltage scale of the exponential: ``N V_T`` in volts."""
        return self.n * thermal_voltage_V

    def knee_voltage_V(self, conductance_S: float, thermal_voltage_V: float) -> float:
        """Forward junction voltage at which the diode's small-signal conductance
        ``IS / (N V_T) exp(V / (N V_T))`` equals ``conductance_S``:
        ``N V_T ln(conductance_S N V_T / IS)`` (the ``gmin`` shunt neglected).

        Between a pinned rail and a node of conductance ``conductance_S`` this is where
        the clamp's knee sits (docs/physics.md, "Diode clamp rails")."""
        if not conductance_S > 0:
            raise ValueError(f"conductance_S must be > 0, got {conductance_S!r}")
        nvt = self.n * thermal_voltage_V
        return nvt * math.log(conductance_S * nvt / self.is_A)


@dataclass(frozen=True)
class PWLDiodeModel:
    """Behavioural near-ideal diode: piecewise linear with a smoothed corner.

    I(V) = g_off_S V + g_on_S w softplus((V - v_on_V) / w), with w = ``smooth_V`` and
    softplus(x) = ln(1 + e^x): below ``v_on_V`` the diode conducts only ``g_off_S`` (no
    ``gmin`` shunt is added); above it the on-conductance ``g_on_S`` is added; the corner
    is rounded over a few ``w`` so that the law is smooth (C-infinity) for Newton's method;
    its current differs from the exact piecewise-linear law by at most ``g_on_S w ln 2``
    (at the corner). Its small-signal
    conductance is ``g_off_S + g_on_S sigmoid((V - v_on_V) / w)``, and its co-content is
    convex, so the energy of a block stays strictly convex. ngspice solves it as a
    behavioural current source (``B`` element), the NumPy solver with the same equation
    (:func:`analogeq.backends.diode.pwl_diode_current`).

    Defaults: ``g_on_S = 1 S`` (1 ohm on-resistance: a clamped node of total conductance
    ``G`` leaks ``G / g_on`` of its pull, 0.4% for the 4 mS node of a 1,568-input block),
    ``g_off_S = 1e-12 S`` (the ``gmin`` of the junction diodes), ``v_on_V = 0``,
    ``smooth_V = 2 mV`` (the slope of a clamped node goes from 0.9 to 0.1 over ``w ln 81``
    = 8.8 mV, 13 times sharper than the 1e-12 A, N = 1 junction diode).

    Attributes:
        name: model name (a SPICE name; only used to reference the model).
        g_on_S: on-conductance in siemens (> 0).
        g_off_S: off-conductance in siemens (>= 0).
        v_on_V: turn-on voltage of the corner in volts.
        smooth_V: width of the rounded corner in volts (> 0).
    """

    name: str = "dpwl"
    g_on_S: float = 1.0
    g_off_S: float = 1e-12
    v_on_V: float = 0.0
    smooth_V: float = 0.002

    def __post_init__(self) -> None:
        for k in ("g_on_S", "g_off_S", "v_on_V", "smooth_V"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"PWLDiodeModel.{k} must be a finite number, got {v!r}")
        if not self.g_on_S > 0 or not self.smooth_V > 0 or self.g_off_S < 0:
            raise ValueError(
                f"PWLDiodeModel needs g_on_S > 0, g_off_S >= 0 and smooth_V > 0, got "
                f"{self.g_on_S!r}, {self.g_off_S!r}, {self.smooth_V!r}")

    def voltage_scale_V(self, thermal_voltage_V: float) -> float:  # noqa: ARG002
        """Voltage scale of the corner: ``smooth_V`` (the junction diode's is ``N V_T``)."""
        return self.smooth_V

    def knee_voltage_V(self, conductance_S: float, thermal_voltage_V: float) -> float:  # noqa: ARG002
        """Voltage at which the small-signal conductance equals ``conductance_S``:
        ``v_on + w ln(p / (1 - p))`` with ``p = (conductance_S - g_off) / g_on``
        (docs/physics.md, "Diode clamp rails"); needs ``g_off < conductance_S < g_off +
        g_on``."""
        p = (conductance_S - self.g_off_S) / self.g_on_S
        if not 0 < p < 1:
            raise ValueError(
                f"a node conductance of {conductance_S:g} S is outside the PWL diode's "
                f"conductance range ({self.g_off_S:g}, {self.g_off_S + self.g_on_S:g}) S: "
                "no knee (raise g_on_S)")
        return self.v_on_V + self.smooth_V * math.log(p / (1.0 - p))


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
    """The 1N4148 diode as an :class:`~analogeq.params.DiodeModel` (IS = 2.52e-9 A,
    N = 1.752, the values of the widely used 1N4148 SPICE model card, see
    :data:`DIODE_1N4148_CARD`).

    The card's series resistance RS = 0.568 ohm is dropped because ``DiodeModel`` has no RS:
    at the microamp currents of our networks (g <= 1e-5 S, ~1 V) it changes the diode
    voltage by < 1 uV. Junction capacitance, transit time and breakdown are irrelevant to
    the DC solves (breakdown at 75 V is far outside the operating range).
    """
    return DiodeModel(name=name, is_A=DIODE_1N4148_CARD["IS"], n=DIODE_1N4148_CARD["N"])


#: The clamp diodes a block can use (``ResistiveBlockParams.diode_model``): the level-1
#: junction with the block's ``diode`` card (default IS = 1e-12 A, N = 1), the 1N4148 card
#: (:func:`diode_1n4148`), or the behavioural near-ideal clamp (:class:`PWLDiodeModel`).
DIODE_MODELS = ("shockley", "1n4148", "pwl")


def default_diode(kind: str) -> DiodeModel | PWLDiodeModel:
    """The default diode of a ``diode_model`` choice (:data:`DIODE_MODELS`)."""
    if kind == "shockley":
        return DiodeModel("dunit", 1e-12, 1.0)
    if kind == "1n4148":
        return diode_1n4148()
    if kind == "pwl":
        return PWLDiodeModel()
    raise ValueError(f"diode_model must be one of {', '.join(DIODE_MODELS)}, got {kind!r}")
