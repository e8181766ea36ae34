"""analogeq: circuit-level simulation of hybrid digital/analog networks trained with
Equilibrium Propagation (analog blocks, solved by ngspice) chained with backpropagation
(digital blocks, NumPy).

The front door: ``import analogeq as aq`` gives every name a user needs, loaded lazily
(``aq.ResistiveBlock`` imports the blocks layer on first use). The layers, each importing
only the ones before it:

``errors`` -> ``params`` -> ``circuit`` -> ``spice`` -> ``backends`` -> ``hardware`` ->
``blocks`` -> ``model`` -> ``cost`` -> ``runs`` (-> the command line, ``analogeq.cli``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the subpackage that defines it
_EXPORTS: dict[str, str] = {
    # errors
    **dict.fromkeys(
        [
            "AnalogeqError", "CircuitError", "FloatingNodeError", "VoltageSourceLoopError",
            "InvalidValueError", "SimulationError", "NetlistParseError", "ConvergenceError",
            "SingularMatrixError", "WorkerCrashedError", "ConfigError", "DatasetNotFoundError",
            "IDXFormatError", "BufferOverflowError", "ExportError", "RunFolderError",
            "RunExistsError", "CheckpointError", "GradcheckError",
        ],
        "errors",
    ),
    # params
    **dict.fromkeys(
        [
            "SolverOptions", "MemristorParams", "IDEAL", "AgASiNeuroSimPreset",
            "TaOxHfOxNeuroSimPreset", "PCMInferencePreset", "DiodeModel", "diode_1n4148",
            "PWLDiodeModel", "ResistiveBlockParams", "TileConfig", "ConverterParams", "CostParams",
        ],
        "params",
    ),
    # circuit IR
    **dict.fromkeys(
        [
            "GROUND", "Circuit", "Conductance", "ConductanceMatrix", "CurrentSource", "Diode",
            "VoltageSource", "Element", "validate", "validate_source_values", "free_nodes",
            "BidirectionalAmplifier",
        ],
        "circuit",
    ),
    "to_spice": "spice",
    **dict.fromkeys(["get_backend", "Backend", "Solution", "BACKENDS"], "backends"),
    **dict.fromkeys(
        ["Buffer", "MemristorArray", "map_to_tiles", "describe_mapping", "wire_circuit"],
        "hardware",
    ),
    **dict.fromkeys(["ResistiveBlock", "BlockState", "BlockGradients", "LayerSignal",
                     "layer_signal"], "blocks"),
    **dict.fromkeys(["FFEBM", "AnalogLayer"], "model"),
    **dict.fromkeys(
        ["step_cost", "block_cost", "format_cost_table", "static_power_W", "settling_time_s"],
        "cost",
    ),
    **dict.fromkeys(
        [
            "load_config", "resolve_config", "build_model", "train", "evaluate", "evaluate_run",
            "load_dataset", "read_checkpoint", "export_netlists", "report", "run_sweep",
            "diagnose", "EXAMPLE_CONFIGS", "gradcheck",
        ],
        "runs",
    ),
}

_SUBPACKAGES = (
    "errors", "params", "circuit", "spice", "backends", "hardware", "blocks", "model", "cost",
    "runs",
)

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'analogeq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static analysers and IDEs see the names eagerly
    from .backends import BACKENDS, Backend, Solution, get_backend
    from .blocks import BlockGradients, BlockState, LayerSignal, ResistiveBlock, layer_signal
    from .circuit import (
        GROUND,
        BidirectionalAmplifier,
        Circuit,
        Conductance,
        ConductanceMatrix,
        CurrentSource,
        Diode,
        Element,
        VoltageSource,
        free_nodes,
        validate,
        validate_source_values,
    )
    from .cost import block_cost, format_cost_table, settling_time_s, static_power_W, step_cost
    from .errors import (
        AnalogeqError,
        BufferOverflowError,
        CheckpointError,
        CircuitError,
        ConfigError,
        ConvergenceError,
        DatasetNotFoundError,
        ExportError,
        FloatingNodeError,
        GradcheckError,
        IDXFormatError,
        InvalidValueError,
        NetlistParseError,
        RunExistsError,
        RunFolderError,
        SimulationError,
        SingularMatrixError,
        VoltageSourceLoopError,
        WorkerCrashedError,
    )
    from .hardware import Buffer, MemristorArray, describe_mapping, map_to_tiles, wire_circuit
    from .model import FFEBM, AnalogLayer
    from .params import (
        IDEAL,
        AgASiNeuroSimPreset,
        ConverterParams,
        CostParams,
        DiodeModel,
        MemristorParams,
        PCMInferencePreset,
        PWLDiodeModel,
        ResistiveBlockParams,
        SolverOptions,
        TaOxHfOxNeuroSimPreset,
        TileConfig,
        diode_1n4148,
    )
    from .runs import (
        EXAMPLE_CONFIGS,
        build_model,
        diagnose,
        evaluate,
        evaluate_run,
        export_netlists,
        gradcheck,
        load_config,
        load_dataset,
        read_checkpoint,
        report,
        resolve_config,
        run_sweep,
        train,
    )
    from .spice import to_spice
