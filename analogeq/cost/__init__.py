"""Energy and time of a training step on hybrid hardware.

* :mod:`.power` -- static power of an operating point (sources, amplifiers, elements);
* :mod:`.settling` -- settling time of a phase (an ngspice transient);
* :mod:`.step` -- the cost of a block and of a training step (conversions, MACs, energy);
* :mod:`.tables` -- the per-step table.

What is counted is documented in :mod:`.step`.
"""

from ..params import CostParams
from .power import amplifier_power_W, dissipated_power_W, static_power_W
from .settling import free_nodes, phase_energy_J, settling_time_s, slowest_time_constant_s
from .step import BlockCost, StepCost, block_cost, step_cost
from .tables import format_cost_table, si_format

__all__ = [
    "BlockCost",
    "CostParams",
    "StepCost",
    "amplifier_power_W",
    "block_cost",
    "dissipated_power_W",
    "format_cost_table",
    "free_nodes",
    "phase_energy_J",
    "settling_time_s",
    "si_format",
    "slowest_time_constant_s",
    "static_power_W",
    "step_cost",
]
