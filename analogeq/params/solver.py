"""Solver options shared by every backend (so both solve the same equations)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SolverOptions", "BOLTZMANN_J_PER_K", "ELEMENTARY_CHARGE_C", "thermal_voltage_V"]

# The constants ngspice 39 uses (src/include/ngspice/const.h), so that both backends
# compute the same thermal voltage to the last digit.
BOLTZMANN_J_PER_K = 1.38064852e-23
ELEMENTARY_CHARGE_C = 1.6021766208e-19
ZERO_CELSIUS_K = 273.15


def thermal_voltage_V(temp_C: float) -> float:
    """kT/q in volts at ``temp_C`` degrees Celsius (0.025864... V at 27 C)."""
    return BOLTZMANN_J_PER_K * (temp_C + ZERO_CELSIUS_K) / ELEMENTARY_CHARGE_C


@dataclass(frozen=True)
class SolverOptions:
    """Tolerances and physical settings of a DC solve.

    Defaults are fit for gradients: EP differences nearby operating points, so a SPICE
    default reltol of 1e-3 would turn gradients into noise.

    Attributes:
        reltol: relative convergence tolerance (dimensionless).
        vntol: absolute voltage tolerance in volts.
        abstol: absolute current tolerance in amperes.
        gmin: conductance in siemens that SPICE puts across every diode junction; the NumPy
            backend models the same shunt.
        temp_C: circuit and nominal temperature in degrees Celsius.
        max_iterations: Newton iteration limit per operating point (ngspice ITL1/ITL2).
        sweep_points: ngspice only. None (default): a batch is one DC sweep, every point
            warm-started from the previous one (fastest). An integer P (a multiple of 6, so
            EP phase groups of 2 or 3 points stay together): the batch is solved as
            consecutive sweeps of P points, each starting cold. The parallel and Dask
            backends then split batches only at multiples of P, so any number of workers
            gives bitwise the result of one process with the same P.
        fold_pinned_nodes: solve the condensed circuit in which every node pinned by a
            voltage source to ground is folded into Norton pairs of its free neighbours
            (:func:`analogeq.circuit.fold_pinned`); the solution still holds every node and
            source of the full circuit. False: hand the solver the full circuit.
    """

    reltol: float = 1e-8
    vntol: float = 1e-9
    abstol: float = 1e-15
    gmin: float = 1e-12
    temp_C: float = 27.0
    max_iterations: int = 200
    sweep_points: int | None = None
    fold_pinned_nodes: bool = True

    def __post_init__(self) -> None:
        for name in ("reltol", "vntol", "abstol", "gmin"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"SolverOptions.{name} must be finite and > 0, got {v!r}")
        if not math.isfinite(self.temp_C) or self.temp_C <= -ZERO_CELSIUS_K:
            raise ValueError(f"SolverOptions.temp_C must be above absolute zero, got {self.temp_C}")
        if self.max_iterations < 1:
            raise ValueError("SolverOptions.max_iterations must be >= 1")
        p = self.sweep_points
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 6 or p % 6):
            raise ValueError(
                f"SolverOptions.sweep_points must be None or a multiple of 6 (EP phase groups "
                f"of 2 and 3 points must not be split), got {p!r}"
            )

    @property
    def thermal_voltage_V(self) -> float:
        """k T / q at ``temp_C``, in volts."""
        return thermal_voltage_V(self.temp_C)
