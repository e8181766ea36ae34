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
    "WorkerCrashedError",
    "ConfigError",
    "DatasetNotFoundError",
    "IDXFormatError",
    "BufferOverflowError",
    "ExportError",
    "RunFolderError",
    "RunExistsError",
    "CheckpointError",
    "GradcheckError",
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

    def __init__(
        self, message: str, messages: list[str] | None = None, circuit_title: str = ""
    ) -> None:
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


class WorkerCrashedError(SimulationError):
    """A worker process died or timed out on a chunk twice (first attempt and one retry).

    Attributes:
        sample_range: ``(start, stop)`` of the chunk's samples in the batch (stop excluded).
        failures: one description per failed attempt (exit code or timeout).
    """

    def __init__(
        self,
        message: str,
        messages: list[str] | None = None,
        circuit_title: str = "",
        sample_range: tuple[int, int] = (0, 0),
        failures: list[str] | None = None,
    ) -> None:
        super().__init__(message, messages, circuit_title)
        self.sample_range = tuple(sample_range)
        self.failures = list(failures or [])


class ConfigError(AnalogeqError, ValueError):
    """A configuration value is missing, unknown or invalid (the message names it)."""


class DatasetNotFoundError(AnalogeqError, FileNotFoundError):
    """A dataset's files are missing; the message says how to get them."""


class IDXFormatError(AnalogeqError, ValueError):
    """An IDX file is malformed (bad magic number, size or shape)."""


class BufferOverflowError(AnalogeqError, MemoryError):
    """Storing an array would exceed the buffer's capacity (the message says which array,
    its size, the capacity and the occupancy)."""


class ExportError(AnalogeqError, ValueError):
    """Bad input to an export (sample index, checkpoint, inputs); the message says which."""


class RunFolderError(AnalogeqError):
    """A run folder cannot be used: it is not a run, another process is training in it,
    or its files (checkpoint, metrics, config) do not belong together; the message names
    the folder or file."""


class RunExistsError(RunFolderError, FileExistsError):
    """The run folder already holds a run (resume it, or choose another folder)."""


class CheckpointError(RunFolderError, ValueError):
    """A checkpoint or metrics file is unreadable (truncated, corrupted) or does not fit the
    run; the message names the file."""


class GradcheckError(AnalogeqError, ValueError):
    """Bad input to a gradient check (``analogeq gradcheck``): a path that is neither a run
    folder nor a config file, a model without analog blocks, an invalid option; the
    message says which."""
