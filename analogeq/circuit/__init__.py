"""Circuit IR: elements and circuits (:mod:`.elements`), their validation
(:mod:`.validation`), the graph helpers every solver shares (:mod:`.graph`) and the Norton
folding of source-pinned nodes (:mod:`.folding`)."""

from ..params.device import DiodeModel
from .elements import (
    GROUND,
    SWEEP_NODE,
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    Element,
    VoltageSource,
)
from .folding import FoldedCircuit, fold_pinned
from .graph import UnionFind, conductance_laplacian, free_nodes
from .validation import validate, validate_source_values

__all__ = [
    "GROUND",
    "SWEEP_NODE",
    "BidirectionalAmplifier",
    "Circuit",
    "Conductance",
    "ConductanceMatrix",
    "CurrentSource",
    "Diode",
    "DiodeModel",
    "Element",
    "FoldedCircuit",
    "UnionFind",
    "VoltageSource",
    "conductance_laplacian",
    "fold_pinned",
    "free_nodes",
    "validate",
    "validate_source_values",
]
