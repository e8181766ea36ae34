"""Exceptions raised by analogeq.

Every error names the element, node or ngspice message that caused it, so a failing
circuit can be found in the netlist without a debugger.
"""

from __future__ import annotations

__all__ = [
    "AnalogeqError",
    "CircuitError",
    "FloatingNodeError",
    "VoltageSourceLoopError",
    "InvalidValueError",
    "SimulationError",
    "NetlistParseError",
    "ConvergenceError",
    "SingularMatrixError",
]


class AnalogeqError(Exception):
    """Base class of every error raised by analogeq."""


class CircuitError(AnalogeqError, ValueError):
    """A circuit failed validation before it reached any solver."""


class FloatingNodeError(CircuitError):
    """A node has no DC path to ground (an island of the circuit graph)."""


class VoltageSourceLoopError(CircuitError):
    """Voltage sources form a loop (KVL over-determined, no unique solution)."""


class InvalidValueError(CircuitError):
    """An element value is not finite or not physical (e.g. conductance <= 0)."""


class SimulationError(AnalogeqError, RuntimeError):
    """A solver failed; ``messages`` holds the solver's own diagnostic lines.

    Attributes:
        messages: the lines ngspice (or the NumPy solver) printed about the failure.
        circuit_title: title of the circuit being solved.
    """

    def __init__(self, message: str, messages: list[str] | None = None, circuit_title: str = ""):
        self.messages = list(messages or [])
        self.circuit_title = circuit_title
        detail = ""
        if self.messages:
            shown = self.messages[-20:]
            detail = "\nsolver messages:\n  " + "\n  ".join(shown)
        where = f" [circuit {circuit_title!r}]" if circuit_title else ""
        super().__init__(f"{message}{where}{detail}")


class NetlistParseError(SimulationError):
    """ngspice rejected the netlist text."""


class ConvergenceError(SimulationError):
    """The nonlinear solve did not converge (including failed gmin/source stepping)."""


class SingularMatrixError(SimulationError):
    """The circuit matrix was singular (typically a floating node)."""
