"""Post-solve sanity checks shared by the backends: Kirchhoff's current law at every node
and the diode exponent range, on the solved node voltages and V-source currents.

A degenerate matrix (conductances too far apart for double precision, a singular pivot
patched over by the solver) can produce numbers that look like an answer. These checks
recompute every element's current from the solution and refuse it when the currents at
some node do not sum to zero within the solver's own tolerances, so such an answer never
passes silently. Cost: one sparse Laplacian product over the batch (a few ms for the
largest blocks, small beside the solve).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from ..circuit import (
    DIODE_MAX_EXPONENT,
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
)
from ..errors import ConvergenceError
from ..params import DiodeModel, SolverOptions
from .base import Solution
from .diode import diode_currents

__all__ = ["check_solution", "check_diode_exponents", "KCL_TOLERANCE_FACTOR"]

#: A node fails the KCL check when its current sum exceeds this many times the solver's
#: own convergence tolerance at that node, ``reltol * (sum of |g V| terms and |element
#: currents| at the node) + vntol * (sum of conductances at the node) + abstol``.
KCL_TOLERANCE_FACTOR = 1e3


def check_diode_exponents(
    circuit: Circuit, voltages_V: np.ndarray, nodes: tuple[str, ...], options: SolverOptions,
    backend: str,
) -> None:
    """Raise :class:`ConvergenceError` naming the diode if a solved junction voltage
    exceeds :data:`~analogeq.circuit.DIODE_MAX_EXPONENT` ``N V_T`` (the current is then
    beyond double precision, see :func:`~analogeq.circuit.check_pinned_diodes`).

    Args:
        voltages_V: (B, N) solved node voltages of ``nodes``.
    """
    diodes = [e for e in circuit.elements  # exponential junctions only (not PWL)
              if isinstance(e, Diode) and isinstance(circuit.models[e.model], DiodeModel)]
    if not diodes:
        return
    index = {n: k for k, n in enumerate(nodes)}
    full = np.concatenate([voltages_V, np.zeros((voltages_V.shape[0], 1))], axis=1)
    ground = len(nodes)
    a = np.array([index.get(d.anode, ground) for d in diodes])
    c = np.array([index.get(d.cathode, ground) for d in diodes])
    nvt = np.array([circuit.models[d.model].n for d in diodes]) * options.thermal_voltage_V
    x = (full[:, a] - full[:, c]) / nvt
    if x.max() > DIODE_MAX_EXPONENT:
        b, k = np.unravel_index(np.argmax(x), x.shape)
        raise ConvergenceError(
            f"{backend}: diode {diodes[k].name!r} ends at {x[b, k] * nvt[k]:.6g} V forward "
            f"(sample {b}), {x[b, k]:.0f} N V_T, past the {DIODE_MAX_EXPONENT:g} N V_T its "
            "exponential current can have in double precision: limit the voltage across it "
            "(e.g. a series resistance)",
            [],
            circuit.title,
        )


def _scatter(at: np.ndarray, size: int) -> sp.csr_matrix:
    """(m, size) one-hot matrix: ``x @ _scatter(at, size)`` adds column j of a (B, m)
    array ``x`` to column ``at[j]`` (repeated indices add up), as ``np.add.at`` does but
    as one sparse product."""
    m = len(at)
    return sp.csr_matrix((np.ones(m), (np.arange(m), at)), shape=(m, size))


def _conductance_terms(
    circuit: Circuit, index: Mapping[str, int], full: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, N+1) current leaving each node through the linear conductances, the sum of the
    |g V| terms of that KCL sum, and (B, N+1) the sum of conductances at each node; a
    crossbar is two matrix products instead of a stamped Laplacian."""
    batch, size = full.shape
    net = np.zeros((batch, size))
    scale = np.zeros((batch, size))
    g_sum = np.zeros(size)
    absolute = np.abs(full)
    a_idx, b_idx, g_one = [], [], []
    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            # a crossbar's rows are distinct nodes, and so are its columns (validated):
            # plain fancy-index additions are exact here
            g = np.asarray(e.g_S, dtype=np.float64)
            r = np.array([index[x] for x in e.rows])
            c = np.array([index[x] for x in e.cols])
            g_r, g_c = g.sum(axis=1), g.sum(axis=0)
            v_r, v_c = full[:, r], full[:, c]
            net[:, r] += v_r * g_r - v_c @ g.T
            net[:, c] += v_c * g_c - v_r @ g
            scale[:, r] += absolute[:, r] * g_r + absolute[:, c] @ g.T
            scale[:, c] += absolute[:, c] * g_c + absolute[:, r] @ g
            g_sum[r] += g_r
            g_sum[c] += g_c
        elif isinstance(e, Conductance):
            a_idx.append(index[e.a])
            b_idx.append(index[e.b])
            g_one.append(e.g_S)
    if g_one:
        a, b, g = np.array(a_idx), np.array(b_idx), np.array(g_one, dtype=np.float64)
        i = g * (full[:, a] - full[:, b])
        s = g * (absolute[:, a] + absolute[:, b])
        for at, sign in ((a, 1.0), (b, -1.0)):
            scatter = _scatter(at, size)
            net += (sign * i) @ scatter
            scale += s @ scatter
            g_sum += np.bincount(at, weights=g, minlength=size)
    return net, scale, np.broadcast_to(g_sum, (batch, size)).copy()


def check_solution(
    circuit: Circuit,
    solution: Solution,
    values: Mapping[str, np.ndarray],
    options: SolverOptions,
    *,
    backend: str,
    laplacian: sp.spmatrix | None = None,
    factor: float = KCL_TOLERANCE_FACTOR,
) -> None:
    """Check a solved batch: finite, diode exponents in range, KCL at every node.

    Every element's current is recomputed from ``solution`` (conductances from the
    Laplacian, diodes from ngspice's level-1 equations with ``gmin``, current sources,
    and the V-source branch currents the solver reported).

    Args:
        values: per-sample source values used by the solve (validated).
        backend: name used in the error message.
        laplacian: optional (N+1, N+1) conductance Laplacian of ``circuit`` in
            ``solution.node_names`` order with ground last (saves rebuilding it).
        factor: tolerance in units of the solver's convergence tolerance.

    Raises:
        ConvergenceError: names the worst node, its current sum and its current scale.
    """
    nodes = solution.node_names
    volts = solution.voltages_V
    batch = volts.shape[0]
    if not (np.isfinite(volts).all() and np.isfinite(solution.currents_A).all()):
        raise ConvergenceError(f"{backend} returned non-finite values", [], circuit.title)
    check_diode_exponents(circuit, volts, nodes, options, backend)
    n = len(nodes)
    index = {name: k for k, name in enumerate(nodes)}
    index[GROUND] = n
    full = np.concatenate([volts, np.zeros((batch, 1))], axis=1)
    if laplacian is not None:
        absolute = abs(laplacian)
        net = (laplacian @ full.T).T  # current leaving each node through conductances
        scale = (absolute @ np.abs(full).T).T  # sum of |g V| terms of each node's KCL
        g_sum = np.broadcast_to(absolute.diagonal(), (batch, n + 1)).copy()
    else:
        net, scale, g_sum = _conductance_terms(circuit, index, full)

    def add(at: np.ndarray, current: np.ndarray) -> None:
        scatter = _scatter(at, n + 1)
        net[...] += current @ scatter
        scale[...] += np.abs(current) @ scatter

    diodes = [e for e in circuit.elements if isinstance(e, Diode)]
    if diodes:
        a = np.array([index[d.anode] for d in diodes])
        c = np.array([index[d.cathode] for d in diodes])
        i, g = diode_currents(full[:, a] - full[:, c], [circuit.models[d.model] for d in diodes],
                              options.thermal_voltage_V, options.gmin)
        add(a, i)
        add(c, -i)
        g_sum[...] += g @ _scatter(a, n + 1) + g @ _scatter(c, n + 1)
    isrc = [e for e in circuit.elements if isinstance(e, CurrentSource)]
    if isrc:  # dc_A flows plus -> minus through the source
        i_s = np.empty((batch, len(isrc)))
        for k, s in enumerate(isrc):
            i_s[:, k] = values.get(s.name, s.dc_A)
        add(np.array([index[s.plus] for s in isrc]), i_s)
        add(np.array([index[s.minus] for s in isrc]), -i_s)
    vsrc = [e for e in circuit.elements if isinstance(e, VoltageSource)]
    if vsrc:
        i_v = solution.currents(tuple(v.name for v in vsrc))  # plus -> minus inside
        add(np.array([index[v.plus] for v in vsrc]), i_v)
        add(np.array([index[v.minus] for v in vsrc]), -i_v)
    amps = circuit.amplifiers
    if amps:  # I_out delivered into the output; c * I_out drawn from the input
        i_out = solution.currents(tuple(a.sense_name for a in amps))
        back = np.array([float(a.back_gain) for a in amps])
        add(np.array([index[a.output] for a in amps]), -i_out)
        add(np.array([index[a.input] for a in amps]), back * i_out)
    tol = factor * (options.reltol * scale + options.vntol * g_sum + options.abstol)
    excess = np.abs(net[:, :n]) / tol[:, :n]
    if n and excess.max() > 1.0:
        b, k = np.unravel_index(np.argmax(excess), excess.shape)
        raise ConvergenceError(
            f"{backend}: the solution violates Kirchhoff's current law at node {nodes[k]!r} "
            f"(sample {b}): its currents sum to {net[b, k]:.3e} A against a current scale of "
            f"{scale[b, k]:.3e} A (tolerance {tol[b, k]:.3e} A); the circuit matrix is "
            "degenerate or the solve did not converge",
            [],
            circuit.title,
        )
