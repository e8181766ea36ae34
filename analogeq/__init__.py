"""analogeq: circuit-level simulation of hybrid digital/analog networks trained with
Equilibrium Propagation (analog blocks, solved by ngspice) chained with backpropagation
(digital blocks, NumPy)."""

from .backends import get_backend
from .circuit import (
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    DiodeModel,
    VoltageSource,
    validate,
)
from .errors import (
    AnalogeqError,
    CircuitError,
    ConvergenceError,
    FloatingNodeError,
    InvalidValueError,
    NetlistParseError,
    SimulationError,
    SingularMatrixError,
    VoltageSourceLoopError,
)
from .netlist import to_spice
from .options import SolverOptions

__version__ = "0.1.0"

__all__ = [
    "AnalogeqError",
    "Circuit",
    "CircuitError",
    "Conductance",
    "ConductanceMatrix",
    "ConvergenceError",
    "CurrentSource",
    "Diode",
    "DiodeModel",
    "FloatingNodeError",
    "InvalidValueError",
    "NetlistParseError",
    "SimulationError",
    "SingularMatrixError",
    "SolverOptions",
    "VoltageSource",
    "VoltageSourceLoopError",
    "get_backend",
    "to_spice",
    "validate",
]
