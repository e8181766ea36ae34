"""Tile parameters: size, wire resistance and the boundary converters of one crossbar tile.

How blocks are mapped onto tiles and how wires are built is :mod:`analogeq.hardware.tiles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from digital.converters import ConverterParams

from ..errors import InvalidValueError

__all__ = ["TileConfig", "ConverterParams"]


@dataclass(frozen=True)
class TileConfig:
    """Size, wiring and converters of one crossbar tile.

    Attributes:
        rows: maximum number of crossbar rows per tile (cells, >= 1).
        cols: maximum number of crossbar columns per tile (cells, >= 1).
        wire_resistance_ohm: resistance in ohms of one wire segment between adjacent cells,
            on both row and column wires (finite, >= 0; 0 means ideal wires).
        dac: the DACs driving the tile's input rows, a
            :class:`~digital.converters.ConverterParams` (bits, range ``v_min..v_max`` in
            volts or ``calibrate``, noise ``noise_V`` in volts rms); None: no DAC (the
            inputs are applied exactly).
        adc: the ADCs reading the block's outputs at the tile's output columns (same
            fields; noise is input-referred); None: no ADC (exact read-out).

    The converters are applied by :class:`~analogeq.model.AnalogLayer` (the boundary
    between the digital and analog halves); a differential DAC per signed input drives
    its row pair ``(+v, -v)`` on every tile that holds those rows, and a differential ADC
    per output reads its column pair where the column wires leave the block (the tiles
    of the last row block). See :meth:`~analogeq.blocks.ResistiveBlock.tile_converters`.
    """

    rows: int = 64
    cols: int = 64
    wire_resistance_ohm: float = 0.0
    dac: ConverterParams | None = None
    adc: ConverterParams | None = None

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise InvalidValueError(f"TileConfig.{name} must be an integer >= 1, got {v!r}")
        r = self.wire_resistance_ohm
        try:
            ok = math.isfinite(float(r)) and float(r) >= 0.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidValueError(
                f"TileConfig.wire_resistance_ohm must be finite and >= 0 ohm, got {r!r}"
            )
        for name in ("dac", "adc"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, ConverterParams):
                raise InvalidValueError(
                    f"TileConfig.{name} must be a digital.converters.ConverterParams or None, "
                    f"got {v!r}"
                )

    @property
    def cells(self) -> int:
        """Capacity of one tile in memristors."""
        return self.rows * self.cols

    @property
    def wire_conductance_S(self) -> float:
        """Conductance of one wire segment in siemens (inf for ideal wires)."""
        r = float(self.wire_resistance_ohm)
        return math.inf if r == 0.0 else 1.0 / r

    @property
    def has_converters(self) -> bool:
        """True when the tile has a DAC or an ADC."""
        return self.dac is not None or self.adc is not None

    @staticmethod
    def describe_converter(spec: ConverterParams | None) -> str:
        """``"8 bits, -1..1 V, noise 0.001 V rms"`` style summary of a converter."""
        if spec is None:
            return "not modelled (exact values)"
        bits = "ideal (no quantisation)" if spec.bits is None else f"{spec.bits} bits"
        rng = ("range calibrated on the first batch" if spec.calibrate
               else f"{spec.v_min:g}..{spec.v_max:g} V")
        noise = spec.noise_sigma_V
        tail = f", noise {noise:g} V rms" if noise > 0 else ""
        return f"{bits}, {rng}{tail}"
