"""Nodal analysis with bidirectional amplifiers, for the NumPy backend.

A :class:`~analogeq.circuit.BidirectionalAmplifier` makes its output node *dependent*:
``V(out) = gain * V(in)``, a linear function of another node, and it draws
``back_gain * I_out`` from its input, where ``I_out`` is the current delivered into the
output. With ``nc`` the (B, N+1) net current leaving every node through its elements
(minus current-source injections), the current balance of every node is

    K = S nc,   K[in] = nc[in] + back_gain * K[out] for every amplifier,

and all node voltages are ``full = T v_free + D v_driven``. Equilibrium is
``K[free] = 0``; its Jacobian ``S_f (G + diodes) T`` is not symmetric but is similar to
the Hessian of the weighted co-content ``sum_s w_s E_s`` (docs/physics.md, section
"Bidirectional amplifiers"), so damped Newton behaves as for a passive network.

This module is independent of SPICE's E/F element formulation: it works with the
physical current balance directly, so the two backends check each other. The adjoint
(:func:`adjoint_amplified`) is the exact vector-Jacobian product of this equilibrium and
does not rely on the energy argument. Dense matrices only (the circuits with amplifiers
that analogeq builds have a few hundred nodes).

Newton steps and the adjoint solve the (B, F, F) Jacobian by block elimination
(:meth:`AmplifiedSystem.solve`): the free nodes split into a set E whose Jacobian block is
diagonal for any diode state (no element or amplifier couples two of them: in a layered
block every other layer) and the rest R, and only the Schur complement on R is
factorised, ``O(F |R|^2)`` instead of ``O(F^3)`` per sample. For the Kendall-size block
(100 hidden nodes, 20 outputs) that is a 20 x 20 system instead of 120 x 120.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..circuit import GROUND
from ..errors import CircuitError, ConvergenceError
from .base import Solution
from .diode import junction_step_limit
from .linalg import greedy_independent_set, solve_batched

if TYPE_CHECKING:
    from .numpy_backend import CompiledCircuit, NumpyBackend

__all__ = ["AmplifiedSystem", "solve_amplified", "adjoint_amplified"]


class AmplifiedSystem:
    """Index and routing matrices of a compiled circuit with amplifiers.

    Attributes:
        free: (F,) indices of free nodes (neither driven by a grounded voltage source nor
            an amplifier output).
        dependent: indices of amplifier output nodes.
        t: (N+1, F) node voltages per free-node voltage (ground row zero).
        d: (N+1, D) node voltages per driven-node voltage.
        s: (N+1, N+1) current routing: K = nc @ s.T.
    """

    def __init__(self, cc: CompiledCircuit) -> None:
        nodes = cc.nodes
        n_all = len(nodes) + 1
        index = {n: k for k, n in enumerate(nodes)}
        index[GROUND] = len(nodes)
        amps = cc.circuit.amplifiers
        driven = [int(k) for k in cc.driven]
        dependent = {index[a.output] for a in amps}
        if dependent & set(driven):
            raise CircuitError("NumPy backend: an amplifier output is also driven by a source")
        self.free = np.array(
            [k for k in range(len(nodes)) if k not in dependent and k not in set(driven)],
            dtype=np.intp,
        )
        self.dependent = np.array(sorted(dependent), dtype=np.intp)
        n_free = self.free.size
        t = np.zeros((n_all, n_free))
        t[self.free, np.arange(n_free)] = 1.0
        d = np.zeros((n_all, len(driven)))
        d[driven, np.arange(len(driven))] = 1.0
        resolved = set(self.free.tolist()) | set(driven)
        order = []
        pending = list(amps)
        while pending:
            ready = [a for a in pending if index[a.input] in resolved]
            if not ready:
                raise CircuitError(
                    "NumPy backend: amplifiers "
                    f"{[a.name for a in pending][:5]} form a loop of dependent nodes"
                )
            for a in ready:
                i, o = index[a.input], index[a.output]
                t[o] = a.gain * t[i]
                d[o] = a.gain * d[i]
                resolved.add(o)
                order.append(a)
            pending = [a for a in pending if a not in ready]
        s = np.eye(n_all)
        for a in reversed(order):  # downstream first: K[out] is complete when used
            s[index[a.input]] += a.back_gain * s[index[a.output]]
        self.t, self.d, self.s = t, d, s
        self.s_f = s[self.free]
        lap = cc.laplacian.toarray()
        self.g0 = self.s_f @ lap @ t  # (F, F) linear part of the Jacobian
        # diode stamps of the Jacobian: S_f (e_a - e_c) g (e_a - e_c)^T T
        u = self.s_f[:, cc.diode_a] - self.s_f[:, cc.diode_c]  # (F, nd)
        w = t[cc.diode_a] - t[cc.diode_c]  # (nd, F)
        rows, cols, coef, which = [], [], [], []
        for k in range(len(cc.diode_a)):
            ui = np.flatnonzero(u[:, k])
            wj = np.flatnonzero(w[k])
            rr, jj = np.meshgrid(ui, wj, indexing="ij")
            rows.append(rr.ravel())
            cols.append(jj.ravel())
            coef.append(np.outer(u[ui, k], w[k, wj]).ravel())
            which.append(np.full(rr.size, k))
        cat = (lambda x, dt: np.concatenate(x).astype(dt)) if rows else (
            lambda x, dt: np.zeros(0, dtype=dt))
        self.j_flat = cat(rows, np.intp) * n_free + cat(cols, np.intp)
        self.j_coef = cat(coef, np.float64)
        self.j_diode = cat(which, np.intp)
        # every entry the Jacobian can hold: g0 plus the diode stamps (an exact zero of g0
        # stays exactly zero in every Jacobian of this system)
        pattern = self.g0 != 0
        pattern.reshape(-1)[self.j_flat] = True
        self.elim, self.rest = _diagonal_split(pattern)

    def solve(self, jac: np.ndarray, rhs: np.ndarray, *, transpose: bool = False
              ) -> np.ndarray:
        """``jac[k] x[k] = rhs[k]`` (or ``jac[k]^T x[k] = rhs[k]``) for every sample, by
        eliminating the diagonal block of :attr:`elim` (module docstring); a dense solve
        when that block has a zero or the split is empty."""
        if transpose:
            jac = np.swapaxes(jac, 1, 2)
        e, r = self.elim, self.rest
        if e.size == 0:
            return solve_batched(jac, rhs)
        diag = jac[:, e, e]  # (B, |E|): the E-E block is diagonal
        if not np.all(np.abs(diag) > 0) or not np.all(np.isfinite(diag)):
            return solve_batched(jac, rhs)
        x = np.empty_like(rhs)
        r_e = rhs[:, e] / diag
        if r.size:
            b_er = jac[:, e[:, None], r[None, :]] / diag[:, :, None]  # D^-1 B
            c_re = jac[:, r[:, None], e[None, :]]
            schur = jac[:, r[:, None], r[None, :]] - c_re @ b_er
            x_r = solve_batched(schur, rhs[:, r] - (c_re @ r_e[:, :, None])[..., 0])
            x[:, r] = x_r
            x[:, e] = r_e - (b_er @ x_r[:, :, None])[..., 0]
        else:
            x[:, e] = r_e
        return x

    def full(self, v_free: np.ndarray, v_driven: np.ndarray) -> np.ndarray:
        """(B, N+1) all node voltages, ground last."""
        return v_free @ self.t.T + v_driven @ self.d.T

    def balance(self, cc: CompiledCircuit, full: np.ndarray, injected: np.ndarray,
                rows: np.ndarray | None = None) -> np.ndarray:
        """(B, N+1) current balance K of every node (zero at free nodes at equilibrium),
        or (B, len(rows)) of the nodes ``rows`` only (``rows`` = the rows of :attr:`s`,
        e.g. :attr:`s_f` for the free nodes)."""
        return cc.node_currents(full, injected) @ (self.s if rows is None else rows).T

    def jacobian(self, cc: CompiledCircuit, full: np.ndarray) -> np.ndarray:
        """(B, F, F) derivative of K[free] with respect to the free-node voltages."""
        batch = full.shape[0]
        n_free = self.free.size
        jac = np.broadcast_to(self.g0, (batch, n_free, n_free)).copy()
        if self.j_flat.size:
            _, _, g = cc.diode_state(full)
            flat = jac.reshape(batch, -1)
            np.add.at(flat, (slice(None), self.j_flat), self.j_coef * g[:, self.j_diode])
        return jac


def _diagonal_split(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, R): an independent set E of the (F, F) coupling ``pattern`` (greedy, nodes of
    fewest couplings first, so that E is large and R small) and the other nodes R."""
    coupled = (pattern | pattern.T) & ~np.eye(len(pattern), dtype=bool)
    taken = greedy_independent_set(coupled)
    return np.flatnonzero(taken), np.flatnonzero(~taken)


def _system(cc: CompiledCircuit) -> AmplifiedSystem:
    if cc._amplified is None:
        cc._amplified = AmplifiedSystem(cc)
    return cc._amplified


def _step_limit(cc: CompiledCircuit, full: np.ndarray, step_full: np.ndarray) -> np.ndarray:
    """(B,) pnjlim factor of a full-node Newton step (:func:`~.diode.junction_step_limit`)."""
    dvd = step_full[:, cc.diode_a] - step_full[:, cc.diode_c]
    if cc.diode_pwl is not None:
        dvd = cc.diode_pwl.unlimited(dvd)
    return junction_step_limit(full[:, cc.diode_a] - full[:, cc.diode_c], dvd,
                               cc.diode_vte, cc.diode_is)


def solve_amplified(
    backend: NumpyBackend,
    cc: CompiledCircuit,
    values: Mapping[str, np.ndarray],
    batch: int,
    *,
    initial_V: np.ndarray | None = None,
) -> Solution:
    """Damped Newton on K[free] = 0 (module docstring); same stopping rules as
    :meth:`NumpyBackend.solve_compiled`. The solution's sources are the voltage sources
    then every amplifier's sense source (current delivered into its output, amperes)."""
    sysm = _system(cc)
    v_driven, injected = cc.source_arrays(values, batch)
    scale = max(float(np.abs(v_driven).max(initial=0.0)), 1.0)
    n_free = sysm.free.size
    if initial_V is not None:
        v_free = np.array(initial_V, dtype=float)[:, sysm.free]
    else:
        v_free = np.zeros((batch, n_free))
    previous = np.inf
    iterations = 0
    step = np.zeros_like(v_free)
    for iterations in range(1, backend.max_iterations + 1):  # noqa: B007
        full = sysm.full(v_free, v_driven)
        if n_free == 0:
            break
        residual = sysm.balance(cc, full, injected, sysm.s_f)
        step = -sysm.solve(sysm.jacobian(cc, full), residual)
        if cc.diode_a.size:
            step *= _step_limit(cc, full, step @ sysm.t.T)[:, None]
        v_free = v_free + step
        size = float(np.abs(step).max(initial=0.0))
        if np.all(np.abs(step) <= 1e-13 + 1e-12 * np.maximum(np.abs(v_free), scale)):
            break
        if iterations >= 3 and size <= 1e-8 * scale and size > 0.5 * previous:
            break
        previous = size
    else:
        raise ConvergenceError(
            f"NumPy Newton did not converge in {backend.max_iterations} iterations "
            f"(last max step {np.abs(step).max():.3e} V)",
            [],
            cc.circuit.title,
        )
    full = sysm.full(v_free, v_driven)
    k_all = sysm.balance(cc, full, injected)
    kcl = np.abs(k_all[:, sysm.free]).max(initial=0.0)
    i_terms = (abs(cc.laplacian) @ np.abs(full).T).max(initial=0.0)
    if not np.isfinite(full).all() or kcl > 1e-11 * i_terms + 1e-15:
        raise ConvergenceError(
            f"NumPy Newton ended with KCL residual {kcl:.3e} A", [], cc.circuit.title
        )
    index = {n: k for k, n in enumerate(cc.nodes)}
    amps = cc.circuit.amplifiers
    currents = np.empty((batch, len(cc.vsources) + len(amps)))
    for k, v in enumerate(cc.vsources):
        if v.minus == GROUND:  # current into the network at plus is -i_branch
            currents[:, k] = -k_all[:, index[v.plus]]
        else:
            currents[:, k] = k_all[:, index[v.minus]]
    for k, a in enumerate(amps):
        currents[:, len(cc.vsources) + k] = k_all[:, index[a.output]]
    backend._record(np.full(batch, iterations, dtype=np.intp), iterations)
    return Solution(
        node_names=tuple(cc.nodes),
        voltages_V=full[:, :-1].copy(),
        source_names=tuple(v.name for v in cc.vsources) + tuple(a.sense_name for a in amps),
        currents_A=currents,
        messages=(f"newton iterations: {iterations}",),
    )


def adjoint_amplified(
    backend: NumpyBackend,
    cc: CompiledCircuit,
    values: Mapping[str, np.ndarray],
    batch: int,
    nodes: Sequence[str],
    cotangent: np.ndarray,
) -> tuple[Solution, np.ndarray, dict[str, np.ndarray]]:
    """Exact adjoint of the amplified equilibrium: J^T lambda = T^T dL/dV, then the node
    adjoints mu = S_f^T lambda, so dL/dg = -sum_b (mu_a - mu_b)(V_a - V_b) for a
    conductance between a and b, as without amplifiers. Cotangents may sit on free or
    amplifier-output nodes.

    Returns:
        (solution, node adjoints mu (B, N), voltage-source name -> (B,) dL/dv_s), the
        fields of :class:`~analogeq.backends.numpy_backend.Adjoint`.
    """
    sysm = _system(cc)
    sol = solve_amplified(backend, cc, values, batch)
    cot = np.asarray(cotangent, dtype=np.float64).reshape(batch, len(nodes))
    idx = sol.node_indices(nodes)
    driven = set(int(k) for k in cc.driven)
    bad = [n for n, i in zip(nodes, idx, strict=True) if int(i) in driven]
    if bad:
        raise CircuitError(f"adjoint: node(s) {bad[:5]} are driven by sources, not free")
    full = np.concatenate([sol.voltages_V, np.zeros((batch, 1))], axis=1)
    dl_dfull = np.zeros_like(full)
    np.add.at(dl_dfull, (slice(None), idx), cot)
    rhs = dl_dfull @ sysm.t  # (B, F)
    jac = sysm.jacobian(cc, full)
    lam = sysm.solve(jac, rhs, transpose=True)
    mu = lam @ sysm.s_f  # (B, N+1)
    # dL/dv_d = -mu^T (G + diodes) D[:, d]; the node-current Jacobian is symmetric
    jmu = (cc.laplacian @ mu.T).T
    if cc.diode_a.size:
        _, _, g = cc.diode_state(full)
        flow = g * (mu[:, cc.diode_a] - mu[:, cc.diode_c])
        np.add.at(jmu, (slice(None), cc.diode_a), flow)
        np.add.at(jmu, (slice(None), cc.diode_c), -flow)
    d_driven = -jmu @ sysm.d  # (B, D)
    pos = {int(n): j for j, n in enumerate(cc.driven)}
    index = {n: k for k, n in enumerate(cc.nodes)}
    grads = {}
    for v in cc.vsources:
        if v.minus == GROUND:
            grads[v.name] = d_driven[:, pos[index[v.plus]]]
        else:
            grads[v.name] = -d_driven[:, pos[index[v.minus]]]
    return sol, mu[:, :-1].copy(), grads
