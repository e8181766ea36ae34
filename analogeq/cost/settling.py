"""Settling time of a phase: an ngspice transient with a capacitance on every free node
(:func:`settling_time_s`), and the RC bound that sizes the transient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..backends.ngspice import NgspiceBackend
from ..circuit import (
    Circuit,
    CurrentSource,
    VoltageSource,
    conductance_laplacian,
    free_nodes,
    validate,
)
from ..errors import InvalidValueError, SimulationError
from ..params import CostParams

__all__ = ["slowest_time_constant_s", "settling_time_s", "phase_energy_J", "free_nodes"]


def slowest_time_constant_s(
    circuit: Circuit, capacitance_F: float, gmin_S: float = 1e-12
) -> float:
    """Upper bound of the slowest time constant of ``circuit`` with ``capacitance_F`` on
    every free node: ``C / lambda_min(G_ff)``, with ``G_ff`` the conductance Laplacian over
    the free nodes (driven nodes eliminated; a ``gmin_S`` shunt per node). Diodes only add
    positive incremental conductance, so they make the circuit faster than this bound."""
    free = free_nodes(circuit)
    if not free:
        return 0.0
    index = {n: k for k, n in enumerate(free)}
    g = conductance_laplacian(circuit, index, len(free)).toarray()
    g[np.diag_indices_from(g)] += gmin_S
    lam = float(np.linalg.eigvalsh(g)[0])
    return capacitance_F / max(lam, gmin_S)


def _step_values(
    circuit: Circuit,
    before: Mapping[str, float],
    after: Mapping[str, float],
) -> dict[str, tuple[float, float]]:
    sources = {
        e.name: (e.dc_V if isinstance(e, VoltageSource) else e.dc_A)
        for e in circuit.elements
        if isinstance(e, VoltageSource | CurrentSource)
    }
    step = {}
    for name in (*before, *(n for n in after if n not in before)):
        if name not in sources:
            raise InvalidValueError(
                f"{name!r} is not a voltage or current source of circuit {circuit.title!r}"
            )
        step[name] = (float(before.get(name, sources[name])), float(after.get(name, sources[name])))
    return step


def settling_time_s(
    circuit: Circuit,
    source_values_before: Mapping[str, float],
    source_values_after: Mapping[str, float],
    params: CostParams | None = None,
    backend: NgspiceBackend | None = None,
    *,
    output_nodes: Sequence[str] | None = None,
    t_stop_s: float | None = None,
) -> float:
    """Time for ``circuit`` to settle after its sources step from one set of values to
    another, with a capacitance ``params.node_capacitance_F`` from every free node to
    ground (an ngspice transient, :meth:`NgspiceBackend.transient`).

    The circuit starts at the DC operating point of the "before" values; the sources step
    to the "after" values at t = 0+. The final values are an independent DC solve of the
    "after" values. The result is the time after which every output node stays within
    ``settle_tolerance * max_k |V_k(final) - V_k(0)|`` (the largest output excursion) of
    its final value, linearly interpolated between time points. For one RC section it is
    ``-tau ln(settle_tolerance)``; for any circuit it is exactly linear in the capacitance.

    Args:
        source_values_before / source_values_after: source name -> value (volts or
            amperes) for one sample; unlisted sources keep their DC value.
        params: :class:`CostParams` (capacitance, tolerance, transient length).
        backend: an :class:`~analogeq.backends.ngspice.NgspiceBackend` (default: a new one
            with default options).
        output_nodes: nodes whose settling counts (default: every free node).
        t_stop_s: transient length (default ``params.t_stop_taus`` times
            :func:`slowest_time_constant_s`); doubled up to 6 times until settled.

    Returns:
        settling time in seconds (0.0 if no output moves).
    """
    params = params or CostParams()
    backend = backend if backend is not None else NgspiceBackend()
    if not hasattr(backend, "transient"):
        raise TypeError(f"settling_time_s needs the ngspice backend, got {backend!r}")
    validate(circuit)
    step = _step_values(circuit, source_values_before, source_values_after)
    free = free_nodes(circuit)
    outputs = list(free if output_nodes is None else output_nodes)
    unknown = [n for n in outputs if n not in set(circuit.nodes)]
    if unknown or not outputs:
        raise InvalidValueError(f"output_nodes {unknown or outputs} are not nodes of the circuit")
    final = backend.solve(
        circuit, {k: np.array([v[1]]) for k, v in step.items()}
    ).voltages(outputs)[0]
    caps = {n: params.node_capacitance_F for n in free}
    if t_stop_s is None:
        tau = slowest_time_constant_s(circuit, params.node_capacitance_F, backend.options.gmin)
        t_stop_s = params.t_stop_taus * tau
    out_idx = [circuit.nodes.index(n) for n in outputs]
    for _ in range(7):
        times, volts = backend.transient(
            circuit, caps, step, t_stop_s, t_stop_s / params.points_per_transient
        )
        v = volts[:, out_idx]
        excursion = float(np.max(np.abs(final - v[0])))
        if excursion == 0.0:
            return 0.0
        band = params.settle_tolerance * excursion
        dev = np.abs(v - final)
        outside = (dev > band).any(axis=1)
        if not outside[-1]:
            break
        t_stop_s *= 2.0
    else:
        raise SimulationError(
            f"circuit {circuit.title!r} did not settle within {t_stop_s / 2:.3g} s "
            f"(last deviation {float(dev[-1].max()):.3g} V, band {band:.3g} V)"
        )
    k = int(np.nonzero(outside)[0][-1])  # last time point outside the band
    t_cross = float(times[k])
    for j in np.nonzero(dev[k] > band)[0]:
        d0, d1 = dev[k, j], dev[k + 1, j]
        frac = (d0 - band) / (d0 - d1) if d0 != d1 else 1.0
        t_cross = max(t_cross, float(times[k] + frac * (times[k + 1] - times[k])))
    return t_cross


def phase_energy_J(power_W: float, settle_s: float) -> float:
    """Static energy of one analog phase: power times settling time (joules)."""
    return float(power_W) * float(settle_s)
