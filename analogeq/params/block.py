"""Physical parameters of a resistive energy block (SI units)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .device import DIODE_MODELS, DiodeModel, PWLDiodeModel, default_diode

__all__ = ["ResistiveBlockParams", "AUTO"]

#: The value of ``ResistiveBlockParams.diode_rail_V`` that derives the rails from the
#: diode model and each hidden layer's conductance scale.
AUTO = "auto"


@dataclass(frozen=True)
class ResistiveBlockParams:
    """Physical parameters of a resistive block (all SI units).

    Attributes:
        g_min_S: lowest programmable conductance in siemens (devices are clipped to it).
        g_max_S: highest programmable conductance in siemens.
        g_init_S: (low, high) of the uniform initial conductances in siemens.
        bias_V: bias rails sit at +bias_V and -bias_V volts.
        diode: diode model of the hidden units' clamps; None (default): the default of
            ``diode_model`` (:func:`~analogeq.params.device.default_diode`).
        diode_model: ``"shockley"`` (default: ngspice's level-1 junction with the card
            ``diode``, by default IS = 1e-12 A, N = 1), ``"1n4148"`` (the 1N4148 card,
            :func:`~analogeq.params.diode_1n4148`) or ``"pwl"`` (the behavioural
            near-ideal clamp :class:`~analogeq.params.PWLDiodeModel`, a ``B`` source in
            ngspice). ``diode``, if given, must be of that kind.
        diode_rail_V: ``"auto"`` (default) or a number of volts. A number puts the clamp
            rails of every hidden layer at +/- that many volts. ``"auto"`` derives one
            rail per hidden layer from the diode model and the layer's expected node
            conductance ``G`` (:meth:`~analogeq.blocks.ResistiveBlock.expected_node_conductance_S`):
            the rail sits at the junction voltage where the diode's small-signal
            conductance equals ``G`` (for the Shockley diode ``N V_T ln(G N V_T / IS)``),
            so that every clamp's knee lands at 0 V whatever the fan-in
            (docs/physics.md, "Diode clamp rails").
        trainable_diode_bias: False (default): the clamps of a hidden layer share its
            rail pair. True: every hidden unit's clamp has its own bias source (rail),
            starting at the layer's rail voltage, trained like the conductances (EP
            measures its gradient from the source's current, as for the inputs;
            :attr:`~analogeq.blocks.ResistiveBlock.diode_biases`).
        nudge_current_A: with ``beta=None``, EP uses beta = nudge_current_A / max|delta|,
            i.e. the largest nudge current in amperes; None (default) means
            ``nudge_voltage_V * g_max_S`` (3e-7 A for the default range), so the nudge
            follows the conductance scale of the devices.
        nudge_voltage_V: see ``nudge_current_A``; 0.03 V sits near the best point of the
            EP-error-versus-beta curve measured on ngspice (RESULTS.md).
    """

    g_min_S: float = 1e-7
    g_max_S: float = 1e-5
    g_init_S: tuple[float, float] = (5e-7, 5e-6)
    bias_V: float = 1.0
    diode: DiodeModel | PWLDiodeModel | None = None
    diode_model: str = "shockley"
    diode_rail_V: float | str = AUTO
    trainable_diode_bias: bool = False
    nudge_current_A: float | None = None
    nudge_voltage_V: float = 0.03

    @property
    def nudge_A(self) -> float:
        """The largest nudge current used with the default beta, in amperes."""
        if self.nudge_current_A is not None:
            return self.nudge_current_A
        return self.nudge_voltage_V * self.g_max_S

    @property
    def auto_rail(self) -> bool:
        """True when the diode rails follow the conductance scale (``diode_rail_V = "auto"``)."""
        return isinstance(self.diode_rail_V, str)

    def __post_init__(self) -> None:
        rail = self.diode_rail_V
        bad = (rail != AUTO if isinstance(rail, str) else
               isinstance(rail, bool) or not isinstance(rail, numbers.Real)
               or not math.isfinite(rail))
        if bad:
            raise ValueError(f"diode_rail_V must be {AUTO!r} or a finite number of volts, "
                             f"got {rail!r}")
        if not isinstance(rail, str):
            object.__setattr__(self, "diode_rail_V", float(rail))
        if not isinstance(self.trainable_diode_bias, bool):
            raise ValueError(f"trainable_diode_bias must be a bool, got "
                             f"{self.trainable_diode_bias!r}")
        if self.diode_model not in DIODE_MODELS:
            raise ValueError(f"diode_model must be one of {', '.join(DIODE_MODELS)}, got "
                             f"{self.diode_model!r}")
        if self.diode is None:
            object.__setattr__(self, "diode", default_diode(self.diode_model))
        pwl = isinstance(self.diode, PWLDiodeModel)
        if pwl != (self.diode_model == "pwl") or not isinstance(
                self.diode, DiodeModel | PWLDiodeModel):
            raise ValueError(f"diode {self.diode!r} is not a diode of diode_model "
                             f"{self.diode_model!r} (give diode=None for its default)")
        card = default_diode("1n4148")
        if self.diode_model == "1n4148" and (self.diode.is_A, self.diode.n) != (card.is_A,
                                                                               card.n):
            raise ValueError(f"diode_model '1n4148' takes the 1N4148 card (IS={card.is_A:g} A, "
                             f"N={card.n:g}), not {self.diode!r}")
        if not 0 < self.g_min_S < self.g_max_S:
            raise ValueError(f"need 0 < g_min_S < g_max_S, got {self.g_min_S}, {self.g_max_S}")
        lo, hi = self.g_init_S
        if not self.g_min_S <= lo <= hi <= self.g_max_S:
            raise ValueError(
                f"g_init_S {self.g_init_S} must lie within [g_min_S, g_max_S] = "
                f"[{self.g_min_S}, {self.g_max_S}]"
            )
        if not self.nudge_A > 0:
            raise ValueError("nudge_current_A / nudge_voltage_V must be > 0")
