"""Circuit IR: elements and circuits (:mod:`.elements`), their validation
(:mod:`.validation`), the graph helpers every solver shares (:mod:`.graph`) and the Norton
folding of source-pinned nodes (:mod:`.folding`)."""

from ..params.device import DiodeModel
from .elements import (
    GROUND,
    GROUND_ALIASES,
    SWEEP_NODE,
    SWEEP_SOURCE,
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    Element,
    VoltageSource,
)
from .folding import FoldedCircuit, FoldPlan, fold_pinned
from .graph import UnionFind, conductance_laplacian, free_nodes
from .validation import (
    DIODE_MAX_EXPONENT,
    MAX_ABS_CURRENT_A,
    MAX_ABS_VOLTAGE_V,
    MAX_CONDUCTANCE_RATIO,
    MAX_CONDUCTANCE_S,
    MIN_CONDUCTANCE_S,
    check_pinned_diodes,
    pinned_diode_paths,
    source_kinds,
    validate,
    validate_source_values,
    validate_values,
    value_positions,
)

__all__ = [
    "GROUND",
    "GROUND_ALIASES",
    "SWEEP_NODE",
    "BidirectionalAmplifier",
    "SWEEP_SOURCE",
    "Circuit",
    "Conductance",
    "ConductanceMatrix",
    "CurrentSource",
    "Diode",
    "DiodeModel",
    "Element",
    "FoldedCircuit",
    "FoldPlan",
    "UnionFind",
    "VoltageSource",
    "conductance_laplacian",
    "fold_pinned",
    "free_nodes",
    "validate",
    "validate_source_values",
    "validate_values",
    "value_positions",
    "check_pinned_diodes",
    "pinned_diode_paths",
    "source_kinds",
    "DIODE_MAX_EXPONENT",
    "MAX_ABS_CURRENT_A",
    "MAX_ABS_VOLTAGE_V",
    "MAX_CONDUCTANCE_RATIO",
    "MAX_CONDUCTANCE_S",
    "MIN_CONDUCTANCE_S",
]
