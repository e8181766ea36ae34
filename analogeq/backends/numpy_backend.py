"""An independent NumPy/SciPy DC solver for the circuit IR, batched over samples.

Newton's method on the nodal equations of the free nodes (those not fixed by a grounded
voltage source), with the same device equations as ngspice's level-1 diode (including its
reverse-bias form below -3 n V_T and the ``gmin`` junction shunt), so the two backends
agree to solver tolerance. Being a separate implementation of the physics, it is the
check on ngspice in tests and the fast path for large experiments.

The co-content of a resistive-diode network is strictly convex in the free node voltages,
so damped Newton (steps limited like SPICE's ``pnjlim`` on forward-biased junctions)
converges from any start; the solve stops when the step is below 1e-13 V + 1e-12 |V|, far
tighter than the SPICE tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..circuit import (
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    validate,
    validate_source_values,
)
from ..errors import CircuitError, ConvergenceError
from ..options import SolverOptions
from .base import Solution

__all__ = ["NumpyBackend", "CompiledCircuit", "diode_current"]

_E = math.e


def diode_current(
    vd_V: np.ndarray, is_A: np.ndarray, vte_V: np.ndarray, gmin_S: float
) -> tuple[np.ndarray, np.ndarray]:
    """ngspice's level-1 diode DC current and conductance (no series R, no breakdown).

    Args:
        vd_V: junction voltages (anode minus cathode), any shape broadcastable with the rest.
        is_A: saturation currents in amperes.
        vte_V: n * V_T in volts.
        gmin_S: junction shunt conductance in siemens.

    Returns:
        (current in amperes flowing anode -> cathode, small-signal conductance in siemens).
    """
    x = vd_V / vte_V
    forward = x >= -3.0
    ex = np.exp(np.minimum(x, 600.0))
    i_fwd = is_A * (ex - 1.0)
    g_fwd = is_A * ex / vte_V
    with np.errstate(divide="ignore", invalid="ignore"):
        vd_safe = np.where(forward, -1.0, vd_V)
        arg = (3.0 * vte_V / (vd_safe * _E)) ** 3
        i_rev = -is_A * (1.0 + arg)
        g_rev = is_A * 3.0 * arg / vd_safe
    i = np.where(forward, i_fwd, i_rev) + gmin_S * vd_V
    g = np.where(forward, g_fwd, g_rev) + gmin_S
    return i, g


@dataclass
class CompiledCircuit:
    """Index structures of one circuit for batched nodal analysis.

    Attributes:
        nodes: all non-ground node names (solution order).
        free: indices (into ``nodes``) of free nodes, F of them.
        driven: indices of nodes fixed by grounded voltage sources, D of them.
        laplacian: (N+1, N+1) sparse conductance Laplacian, last row/col is ground.
        g_ff: (F, F) dense block of the Laplacian over free nodes.
        g_fd: (F, D+1) sparse block coupling free nodes to driven nodes and ground.
        diode_a, diode_c: diode anode / cathode indices into [nodes..., ground].
        diode_is, diode_vte: per-diode saturation current (A) and n V_T (V).
    """

    circuit: Circuit
    nodes: list[str]
    free: np.ndarray
    driven: np.ndarray
    laplacian: sp.csr_matrix
    g_ff: np.ndarray
    g_fd: sp.csr_matrix
    diode_a: np.ndarray
    diode_c: np.ndarray
    diode_is: np.ndarray
    diode_vte: np.ndarray
    vsources: list[VoltageSource]
    isources: list[CurrentSource]
    options: SolverOptions

    @classmethod
    def build(cls, circuit: Circuit, options: SolverOptions) -> CompiledCircuit:
        nodes = circuit.nodes
        index = {n: k for k, n in enumerate(nodes)}
        n_all = len(nodes) + 1
        ground = len(nodes)
        index[GROUND] = ground

        rows, cols, vals = [], [], []
        for e in circuit.elements:
            if isinstance(e, ConductanceMatrix):
                g = np.asarray(e.g_S, dtype=np.float64)
                ri = np.array([index[r] for r in e.rows])
                ci = np.array([index[c] for c in e.cols])
                rr = np.repeat(ri, len(ci))
                cc = np.tile(ci, len(ri))
                gg = g.reshape(-1)
                rows += [rr, cc, rr, cc]
                cols += [rr, cc, cc, rr]
                vals += [gg, gg, -gg, -gg]
            elif isinstance(e, Conductance):
                a, b = index[e.a], index[e.b]
                rows.append(np.array([a, b, a, b]))
                cols.append(np.array([a, b, b, a]))
                vals.append(np.array([e.g_S, e.g_S, -e.g_S, -e.g_S]))
        if rows:
            lap = sp.coo_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n_all, n_all),
            ).tocsr()
        else:
            lap = sp.csr_matrix((n_all, n_all))

        vsources = [e for e in circuit.elements if isinstance(e, VoltageSource)]
        driven_set: dict[int, VoltageSource] = {}
        for v in vsources:
            if GROUND not in (v.plus, v.minus):
                raise CircuitError(
                    f"NumPy backend: voltage source {v.name!r} is floating (neither terminal is "
                    "ground); use the ngspice backend for such circuits"
                )
            node = index[v.plus if v.minus == GROUND else v.minus]
            if node in driven_set:
                raise CircuitError(
                    f"NumPy backend: node {nodes[node]!r} is driven by both "
                    f"{driven_set[node].name!r} and {v.name!r}"
                )
            driven_set[node] = v
        driven = np.array(sorted(driven_set), dtype=np.intp)
        free = np.array([k for k in range(len(nodes)) if k not in driven_set], dtype=np.intp)
        fixed = np.concatenate([driven, [ground]])
        g_ff = lap[free][:, free].toarray()
        g_fd = lap[free][:, fixed].tocsr()

        diodes = [e for e in circuit.elements if isinstance(e, Diode)]
        vt = options.thermal_voltage_V
        return cls(
            circuit=circuit,
            nodes=nodes,
            free=free,
            driven=driven,
            laplacian=lap,
            g_ff=g_ff,
            g_fd=g_fd,
            diode_a=np.array([index[d.anode] for d in diodes], dtype=np.intp),
            diode_c=np.array([index[d.cathode] for d in diodes], dtype=np.intp),
            diode_is=np.array([circuit.models[d.model].is_A for d in diodes]),
            diode_vte=np.array([circuit.models[d.model].n * vt for d in diodes]),
            vsources=vsources,
            isources=[e for e in circuit.elements if isinstance(e, CurrentSource)],
            options=options,
        )

    # -- helpers ------------------------------------------------------------------------

    def source_arrays(
        self, values: Mapping[str, np.ndarray], batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B, D) driven-node voltages and (B, N+1) current injected into each node by
        current sources, for every sample."""
        index = {n: k for k, n in enumerate(self.nodes)}
        index[GROUND] = len(self.nodes)
        pos = {int(k): j for j, k in enumerate(self.driven)}
        v_driven = np.zeros((batch, len(self.driven)))
        for v in self.vsources:
            value = values.get(v.name, v.dc_V)
            if v.minus == GROUND:
                v_driven[:, pos[index[v.plus]]] = value
            else:
                v_driven[:, pos[index[v.minus]]] = -np.asarray(value)
        injected = np.zeros((batch, len(self.nodes) + 1))
        for s in self.isources:
            value = np.broadcast_to(np.asarray(values.get(s.name, s.dc_A), dtype=float), (batch,))
            injected[:, index[s.minus]] += value
            injected[:, index[s.plus]] -= value
        return v_driven, injected

    def full_voltages(self, v_free: np.ndarray, v_driven: np.ndarray) -> np.ndarray:
        """(B, N+1) voltages of all nodes with ground (0 V) last."""
        batch = v_free.shape[0]
        full = np.zeros((batch, len(self.nodes) + 1))
        full[:, self.free] = v_free
        full[:, self.driven] = v_driven
        return full

    def diode_state(self, full: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vd = full[:, self.diode_a] - full[:, self.diode_c]
        i, g = diode_current(vd, self.diode_is, self.diode_vte, self.options.gmin)
        return vd, i, g

    def node_currents(self, full: np.ndarray, injected: np.ndarray) -> np.ndarray:
        """(B, N+1) net current leaving each node through its elements minus the current
        injected by current sources: zero at free nodes when KCL holds (amperes)."""
        out = (self.laplacian @ full.T).T
        if self.diode_a.size:
            _, i, _ = self.diode_state(full)
            np.add.at(out, (slice(None), self.diode_a), i)
            np.add.at(out, (slice(None), self.diode_c), -i)
        return out - injected

    def jacobian(self, full: np.ndarray) -> np.ndarray:
        """(B, F, F) derivative of the free-node KCL residual w.r.t. free-node voltages:
        the Hessian of the co-content (conductance Laplacian plus diode conductances)."""
        batch = full.shape[0]
        n_free = len(self.free)
        jac = np.broadcast_to(self.g_ff, (batch, n_free, n_free)).copy()
        if self.diode_a.size:
            _, _, g = self.diode_state(full)
            pos = np.full(len(self.nodes) + 1, -1, dtype=np.intp)
            pos[self.free] = np.arange(n_free)
            a, c = pos[self.diode_a], pos[self.diode_c]
            flat = jac.reshape(batch, -1)
            for ia, ib, sign in ((a, a, 1.0), (c, c, 1.0), (a, c, -1.0), (c, a, -1.0)):
                ok = (ia >= 0) & (ib >= 0)
                np.add.at(flat, (slice(None), ia[ok] * n_free + ib[ok]), sign * g[:, ok])
        return jac


class NumpyBackend:
    """Batched damped-Newton DC solver on the same circuit IR as ngspice.

    Limits: voltage sources must have one terminal at ground (true of every block
    analogeq builds); otherwise a :class:`~analogeq.errors.CircuitError` says so.
    """

    name = "numpy"

    def __init__(self, options: SolverOptions | None = None, max_iterations: int = 200) -> None:
        self.options = options or SolverOptions()
        self.max_iterations = max_iterations

    def compile(self, circuit: Circuit) -> CompiledCircuit:
        validate(circuit)
        return CompiledCircuit.build(circuit, self.options)

    def solve(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None = None,
        *,
        initial_V: np.ndarray | None = None,
    ) -> Solution:
        """DC operating points for B samples (see :class:`~analogeq.backends.base.Backend`).

        Args:
            initial_V: optional (B, N) starting node voltages (e.g. the free state when
                solving nudged phases).
        """
        values, batch = validate_source_values(circuit, source_values)
        cc = self.compile(circuit)
        return self.solve_compiled(cc, values, batch, initial_V=initial_V)

    def solve_compiled(
        self,
        cc: CompiledCircuit,
        values: Mapping[str, np.ndarray],
        batch: int,
        *,
        initial_V: np.ndarray | None = None,
    ) -> Solution:
        v_driven, injected = cc.source_arrays(values, batch)
        scale = max(float(np.abs(v_driven).max(initial=0.0)), 1.0)
        n_free = len(cc.free)
        if initial_V is not None:
            v_free = np.array(initial_V, dtype=float)[:, cc.free]
        else:
            v_free = np.zeros((batch, n_free))

        pos = np.full(len(cc.nodes) + 1, -1, dtype=np.intp)
        pos[cc.free] = np.arange(n_free)
        iterations = 0
        for iterations in range(1, self.max_iterations + 1):  # noqa: B007
            full = cc.full_voltages(v_free, v_driven)
            residual = cc.node_currents(full, injected)[:, cc.free]
            if n_free == 0:
                break
            jac = cc.jacobian(full)
            step = -np.linalg.solve(jac, residual[..., None])[..., 0]
            if cc.diode_a.size:
                step *= self._step_limit(cc, full, step, pos)[:, None]
            v_free = v_free + step
            if np.all(np.abs(step) <= 1e-13 + 1e-12 * np.maximum(np.abs(v_free), scale)):
                break
        else:
            raise ConvergenceError(
                f"NumPy Newton did not converge in {self.max_iterations} iterations "
                f"(last max step {np.abs(step).max():.3e} V)",
                [],
                cc.circuit.title,
            )
        full = cc.full_voltages(v_free, v_driven)
        currents = cc.node_currents(full, injected)
        kcl = np.abs(currents[:, cc.free]).max(initial=0.0)
        i_scale = np.abs(cc.laplacian).max() * scale if cc.laplacian.nnz else 1.0
        if not np.isfinite(full).all() or kcl > 1e-9 * i_scale + 1e-15:
            raise ConvergenceError(
                f"NumPy Newton ended with KCL residual {kcl:.3e} A", [], cc.circuit.title
            )
        return Solution(
            node_names=tuple(cc.nodes),
            voltages_V=full[:, :-1].copy(),
            source_names=tuple(v.name for v in cc.vsources),
            currents_A=self._vsource_currents(cc, currents),
            messages=(f"newton iterations: {iterations}",),
        )

    @staticmethod
    def _step_limit(cc: CompiledCircuit, full: np.ndarray, step: np.ndarray, pos) -> np.ndarray:
        """(B,) factor in (0, 1] limiting forward junction-voltage jumps like SPICE pnjlim."""
        step_full = np.zeros_like(full)
        step_full[:, cc.free] = step
        vd = full[:, cc.diode_a] - full[:, cc.diode_c]
        dvd = step_full[:, cc.diode_a] - step_full[:, cc.diode_c]
        vte = cc.diode_vte
        vcrit = vte * np.log(vte / (math.sqrt(2.0) * cc.diode_is))
        start = np.maximum(vd, vcrit)
        excess = vd + dvd - start
        big = (excess > 2 * vte) & (dvd > 0)
        if not big.any():
            return np.ones(full.shape[0])
        allowed = np.maximum(vcrit - vd, 0.0) + vte * np.log1p(np.maximum(excess, 0) / vte)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(big, allowed / dvd, 1.0)
        return np.clip(ratio.min(axis=1), 1e-6, 1.0)

    @staticmethod
    def _vsource_currents(cc: CompiledCircuit, currents: np.ndarray) -> np.ndarray:
        index = {n: k for k, n in enumerate(cc.nodes)}
        out = np.empty((currents.shape[0], len(cc.vsources)))
        for k, v in enumerate(cc.vsources):
            if v.minus == GROUND:  # current into the network at plus is -i_branch
                out[:, k] = -currents[:, index[v.plus]]
            else:
                out[:, k] = currents[:, index[v.minus]]
        return out
