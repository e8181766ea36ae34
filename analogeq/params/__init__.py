"""Parameters: frozen dataclasses in SI units, the leaves every other layer is built from.

* :class:`SolverOptions` -- solver tolerances and temperature (:mod:`.solver`);
* :class:`MemristorParams`, the ``*Preset`` devices and :class:`DiodeModel` (:mod:`.device`);
* :class:`ResistiveBlockParams` (:mod:`.block`);
* :class:`TileConfig` and :class:`ConverterParams` (:mod:`.tile`);
* :class:`CostParams` (:mod:`.cost`).
"""

from .block import ResistiveBlockParams
from .cost import CostParams
from .device import (
    DIODE_1N4148_CARD,
    IDEAL,
    AgASiNeuroSimPreset,
    DiodeModel,
    MemristorParams,
    PCMInferencePreset,
    TaOxHfOxNeuroSimPreset,
    diode_1n4148,
)
from .solver import SolverOptions, thermal_voltage_V
from .tile import ConverterParams, TileConfig

__all__ = [
    "AgASiNeuroSimPreset",
    "ConverterParams",
    "CostParams",
    "DIODE_1N4148_CARD",
    "DiodeModel",
    "IDEAL",
    "MemristorParams",
    "PCMInferencePreset",
    "ResistiveBlockParams",
    "SolverOptions",
    "TaOxHfOxNeuroSimPreset",
    "TileConfig",
    "diode_1n4148",
    "thermal_voltage_V",
]
