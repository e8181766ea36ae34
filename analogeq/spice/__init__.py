"""SPICE text: the only writer of netlists. Emitters consume the circuit IR
(:mod:`analogeq.circuit`) and never change it."""

from .netlist import (
    SWEEP_SOURCE,
    model_card,
    options_card,
    swept_source_name,
    title_line,
    to_spice,
)

__all__ = [
    "SWEEP_SOURCE",
    "model_card",
    "options_card",
    "swept_source_name",
    "title_line",
    "to_spice",
]
