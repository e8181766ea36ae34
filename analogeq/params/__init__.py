"""Parameters: frozen dataclasses in SI units, the leaves every other layer is built from.

* :class:`SolverOptions` -- solver tolerances and temperature (:mod:`.solver`);
* :class:`MemristorParams`, the ``*Preset`` devices, :class:`DiodeModel` and
  :class:`PWLDiodeModel` (:mod:`.device`);
* :class:`ResistiveBlockParams` (:mod:`.block`);
* :class:`TileConfig` and :class:`ConverterParams` (:mod:`.tile`);
* :class:`CostParams` (:mod:`.cost`).
"""

from .block import ResistiveBlockParams
from .cost import CostParams
from .device import (
    DIODE_1N4148_CARD,
    DIODE_MODELS,
    IDEAL,
    AgASiNeuroSimPreset,
    DiodeModel,
    MemristorParams,
    PCMInferencePreset,
    PWLDiodeModel,
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
    "DIODE_MODELS",
    "DiodeModel",
    "IDEAL",
    "MemristorParams",
    "PCMInferencePreset",
    "PWLDiodeModel",
    "ResistiveBlockParams",
    "SolverOptions",
    "TaOxHfOxNeuroSimPreset",
    "TileConfig",
    "diode_1n4148",
    "thermal_voltage_V",
]
