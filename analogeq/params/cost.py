"""Hardware cost figures (SI units): converter figures of merit, digital MAC energy and
time, node capacitance, settling tolerance and the bias power of the bidirectional
amplifiers. Used by :mod:`analogeq.cost`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CostParams"]


@dataclass(frozen=True)
class CostParams:
    """Hardware cost figures (SI units). Every default is an order of magnitude.

    Attributes:
        node_capacitance_F: capacitance in farads from every free node of a block to ground
            (wire plus device capacitance of a crossbar line). Default 100 fF: assumption
            (order of a ~100-cell crossbar line at ~1 fF per cell).
        settle_tolerance: a phase has settled when every output node stays within this
            fraction of the largest output excursion of the step (dimensionless). Default
            1e-3: assumption (about one LSB of a 10-bit ADC).
        adc_fom_J_per_step: Walden figure of merit of the ADCs in joules per conversion
            step, ``E_conversion = FoM * 2**bits``. Default 50 fJ: order of magnitude of
            the bulk of designs in B. Murmann, "ADC Performance Survey 1997-2023"
            (state-of-the-art designs reach ~1 fJ/step).
        dac_fom_J_per_step: the same figure of merit for the DACs, ``E = FoM * 2**bits``.
            Default 10 fJ: assumption (DACs cost less per conversion than ADCs; no survey
            is cited).
        digital_mac_energy_J: energy in joules of one digital multiply-accumulate. Default
            4.6 pJ: a 32-bit float multiply (3.7 pJ) plus add (0.9 pJ) in 45 nm at 0.9 V,
            M. Horowitz, "Computing's energy problem (and what we can do about it)",
            ISSCC 2014 (an 8-bit integer MAC is ~0.23 pJ: 0.2 pJ multiply + 0.03 pJ add;
            memory access, not counted here, costs more: ~10 pJ per 64-bit 8 kB SRAM read).
        digital_mac_time_s: seconds per MAC of the digital side. Default 1 ns (1 GMAC/s:
            assumption, one scalar unit at ~1 GHz).
        adc_time_s: seconds per ADC conversion. Default 10 ns (100 MS/s SAR: assumption).
        dac_time_s: seconds per DAC conversion. Default 10 ns (assumption).
        adc_channels: ADC conversions that run in parallel (time divides by it). Default 1.
        dac_channels: DAC conversions that run in parallel. Default 1.
        default_bits: resolution assumed for an ideal (``bits=None``) or missing converter.
            Default 8 (assumption).
        t_stop_taus: a transient lasts this many multiples of the slowest RC time constant
            bound (:func:`slowest_time_constant_s`); it is extended automatically if the
            response has not settled. Default 20.
        points_per_transient: output steps per transient (``t_step = t_stop / points``).
        amplifier_static_power_W: quiescent (bias) power in watts of one bidirectional
            amplifier (docs/physics.md, "Bidirectional amplifiers"), drawn whatever the
            signal, on top of the power its sources deliver. Default 10 uW: assumption,
            two low-power CMOS amplifier stages per amplifier (the forward voltage buffer
            and the backward current sink), each biased at ~1.5 uA from a 3.3 V supply:
            2 x 1.5 uA x 3.3 V ~ 10 uW (micropower operational amplifiers draw quiescent
            currents of ~1-10 uA; amplifiers integrated next to a crossbar can be biased
            lower, at the cost of bandwidth). 0 models ideal amplifiers.
    """

    node_capacitance_F: float = 100e-15
    settle_tolerance: float = 1e-3
    adc_fom_J_per_step: float = 50e-15
    dac_fom_J_per_step: float = 10e-15
    digital_mac_energy_J: float = 4.6e-12
    digital_mac_time_s: float = 1e-9
    adc_time_s: float = 10e-9
    dac_time_s: float = 10e-9
    adc_channels: int = 1
    dac_channels: int = 1
    default_bits: int = 8
    t_stop_taus: float = 20.0
    points_per_transient: int = 1000
    amplifier_static_power_W: float = 10e-6

    def __post_init__(self) -> None:
        for name in (
            "node_capacitance_F", "adc_fom_J_per_step", "dac_fom_J_per_step",
            "digital_mac_energy_J", "digital_mac_time_s", "adc_time_s", "dac_time_s",
            "t_stop_taus",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"CostParams.{name} must be finite and > 0, got {v!r}")
        v = self.amplifier_static_power_W
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v)
                                       and v >= 0):
            raise ValueError(
                f"CostParams.amplifier_static_power_W must be finite and >= 0, got {v!r}"
            )
        if not 0 < self.settle_tolerance < 1:
            raise ValueError(
                f"CostParams.settle_tolerance must be in (0, 1), got {self.settle_tolerance!r}"
            )
        for name in ("adc_channels", "dac_channels", "default_bits", "points_per_transient"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CostParams.{name} must be an int >= 1, got {v!r}")

    @staticmethod
    def _bits(bits: int) -> int:
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
            raise ValueError(f"bits must be an int >= 1, got {bits!r}")
        return int(bits)

    def adc_energy_per_conversion_J(self, bits: int) -> float:
        """Joules per ADC conversion at ``bits`` resolution: ``adc_fom_J_per_step * 2**bits``."""
        return self.adc_fom_J_per_step * 2.0 ** self._bits(bits)

    def dac_energy_per_conversion_J(self, bits: int) -> float:
        """Joules per DAC conversion at ``bits`` resolution: ``dac_fom_J_per_step * 2**bits``."""
        return self.dac_fom_J_per_step * 2.0 ** self._bits(bits)
