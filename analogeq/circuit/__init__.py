"""Circuit IR: elements and circuits (:mod:`.elements`), their validation
(:mod:`.validation`) and the graph helpers every solver shares (:mod:`.graph`)."""

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
    "UnionFind",
    "VoltageSource",
    "conductance_laplacian",
    "free_nodes",
    "validate",
    "validate_source_values",
]
