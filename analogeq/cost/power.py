"""Static power of an operating point: delivered by the sources (:func:`static_power_W`),
of which the bidirectional amplifiers' share (:func:`amplifier_power_W`), and, by
Tellegen's theorem, dissipated in the elements (:func:`dissipated_power_W`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..backends import Solution
from ..backends.diode import diode_currents
from ..circuit import (
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    validate_source_values,
)
from ..errors import InvalidValueError
from ..params import SolverOptions

__all__ = ["static_power_W", "amplifier_power_W", "dissipated_power_W"]


def _source_values(
    circuit: Circuit, source_values: Mapping[str, Sequence[float]] | None, batch: int
) -> dict[str, np.ndarray]:
    values, b = validate_source_values(circuit, source_values)
    if values and b != batch:
        raise InvalidValueError(
            f"source_values have {b} samples but the solution has {batch}"
        )
    return values


def static_power_W(
    solution: Solution,
    circuit: Circuit,
    source_values: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """Total power delivered by the sources at each operating point of a batch.

    * Voltage source: ``P = -(V(plus) - V(minus)) * i_branch`` (SPICE branch current,
      positive from ``plus`` through the source to ``minus``, so negative when delivering).
      The source voltage is read from the solution's node voltages, so per-sample
      (swept) values are accounted for.
    * Current source: ``dc_A`` flows from ``plus`` through the source to ``minus``: it
      leaves the source at ``minus`` and returns at ``plus``, so it delivers
      ``P = dc_A * (V(minus) - V(plus))``. Its value is ``source_values[name]`` if given
      (as in the solve), else ``dc_A``.

    * Bidirectional amplifier: the power its forward and backward sources deliver
      (:func:`amplifier_power_W`, signed; negative where a source absorbs power).

    By Tellegen's theorem this equals the power dissipated in the conductances and
    diodes (:func:`dissipated_power_W`).

    Args:
        solution: the DC solution of ``circuit`` (B samples).
        circuit: the solved circuit.
        source_values: the per-sample source values the solve used (needed for current
            sources whose value was swept).

    Returns:
        (B,) power in watts.
    """
    batch = solution.batch_size
    values = _source_values(circuit, source_values, batch)
    power = np.zeros(batch)
    for e in circuit.elements:
        if isinstance(e, VoltageSource):
            v = solution.v(e.plus) - solution.v(e.minus)
            power -= v * solution.i(e.name)
        elif isinstance(e, CurrentSource):
            i = values.get(e.name, np.full(batch, float(e.dc_A)))
            power += i * (solution.v(e.minus) - solution.v(e.plus))
    forward, backward = amplifier_power_W(solution, circuit)
    return power + forward.sum(axis=1) + backward.sum(axis=1)


def amplifier_power_W(solution: Solution, circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Power the bidirectional amplifiers of ``circuit`` deliver into the network, per
    amplifier (in ``circuit.amplifiers`` order), signed (negative where a source absorbs).

    An amplifier is emitted as an E source, a 0 V sense source into its output and an F
    source (:func:`~analogeq.spice.netlist.amplifier_lines`); the solvers report the
    current it delivers into its output, ``I_out``, as the branch current of the sense
    source (:attr:`~analogeq.circuit.BidirectionalAmplifier.sense_name`).

    * forward (E): ``V(output) * I_out`` (the sense source drops 0 V, so the E source's
      own terminal is at ``V(output) = gain * V(input)``);
    * backward (F): it draws ``back_gain * I_out`` from ``input`` into ground, so it
      delivers ``-back_gain * I_out * V(input)`` (it absorbs power when it draws current
      out of a node above ground).

    Returns:
        (forward, backward), each (B, n_amplifiers) in watts.
    """
    amps = [e for e in circuit.elements if isinstance(e, BidirectionalAmplifier)]
    batch = solution.batch_size
    if not amps:
        return np.zeros((batch, 0)), np.zeros((batch, 0))
    i_out = solution.currents([a.sense_name for a in amps])
    v_out = solution.voltages([a.output for a in amps])
    v_in = solution.voltages([a.input for a in amps])
    back = np.array([a.back_gain for a in amps], dtype=np.float64)
    return v_out * i_out, -back * i_out * v_in


def dissipated_power_W(
    solution: Solution, circuit: Circuit, options: SolverOptions | None = None
) -> np.ndarray:
    """(B,) power in watts dissipated in every conductance (``g dV^2``) and diode
    (``I_D(V_D) V_D``: ngspice's level-1 DC equation with its ``gmin`` shunt, or the
    behavioural PWL law) -- the
    element side of Tellegen's theorem, computed from node voltages only."""
    options = options or SolverOptions()
    power = np.zeros(solution.batch_size)
    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            g = np.asarray(e.g_S, dtype=np.float64)
            dv = solution.voltages(e.rows)[:, :, None] - solution.voltages(e.cols)[:, None, :]
            power += np.einsum("bij,ij->b", dv**2, g)
        elif isinstance(e, Conductance):
            power += e.g_S * (solution.v(e.a) - solution.v(e.b)) ** 2
        elif isinstance(e, Diode):
            vd = solution.v(e.anode) - solution.v(e.cathode)
            i, _ = diode_currents(vd[:, None], [circuit.models[e.model]],
                                  options.thermal_voltage_V, options.gmin)
            power += i[:, 0] * vd
    return power
