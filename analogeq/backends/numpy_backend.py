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

Small circuits (at most :data:`SPARSE_THRESHOLD` free nodes) use a dense batched Jacobian
(B, F, F). Larger ones (e.g. crossbars with explicit wire resistance, see
:mod:`analogeq.hardware.tiles`) use a sparse path with the same equations and stopping rule: the
free nodes are split into the few touched by diodes (N) and the linear rest (L); the
constant block G_LL is factored once with SuperLU, and each Newton step solves the dense
Schur complement over N per sample (the diode conductances only change that block). When
diodes touch more than :data:`SCHUR_MAX_NODES` free nodes, each sample's sparse Jacobian is
factored with ``splu`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..circuit import (
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    check_pinned_diodes,
    fold_pinned,
    validate,
    validate_source_values,
)
from ..errors import CircuitError, ConvergenceError
from ..params import SolverOptions
from .amplifiers import adjoint_amplified, solve_amplified
from .base import Solution
from .diode import BehaviouralDiodes, diode_current, junction_arrays, junction_step_limit
from .kcl import check_solution
from .linalg import solve_batched

__all__ = [
    "Adjoint",
    "NumpyBackend",
    "CompiledCircuit",
    "diode_current",
    "SPARSE_THRESHOLD",
    "SCHUR_MAX_NODES",
]

#: Circuits with more free nodes than this are solved with sparse matrices.
SPARSE_THRESHOLD = 400
#: Largest number of diode-touched free nodes for the Schur-complement sparse solve.
SCHUR_MAX_NODES = 600


@dataclass
class CompiledCircuit:
    """Index structures of one circuit for batched nodal analysis.

    Attributes:
        nodes: all non-ground node names (solution order).
        free: indices (into ``nodes``) of free nodes, F of them.
        driven: indices of nodes fixed by grounded voltage sources, D of them.
        laplacian: (N+1, N+1) sparse conductance Laplacian, last row/col is ground.
        g_ff: (F, F) block of the Laplacian over free nodes: dense, or a CSC sparse matrix
            when ``sparse``.
        g_fd: (F, D+1) sparse block coupling free nodes to driven nodes and ground.
        diode_a, diode_c: diode anode / cathode indices into [nodes..., ground].
        diode_is, diode_vte: per-diode saturation current (A) and n V_T (V).
        diode_pwl: the behavioural (PWL) diodes, whose currents replace the junction
            equation's columns (None: every diode is a junction).
        sparse: whether Newton steps use the sparse path (see the module docstring).
    """

    circuit: Circuit
    nodes: list[str]
    free: np.ndarray
    driven: np.ndarray
    laplacian: sp.csr_matrix
    g_ff: np.ndarray | sp.csc_matrix
    g_fd: sp.csr_matrix
    diode_a: np.ndarray
    diode_c: np.ndarray
    diode_is: np.ndarray
    diode_vte: np.ndarray
    vsources: list[VoltageSource]
    isources: list[CurrentSource]
    options: SolverOptions
    sparse: bool = False
    diode_pwl: BehaviouralDiodes | None = None
    _sparse_solver: _SparseJacobianSolver | None = field(default=None, repr=False)
    #: dependent-node system of a circuit with amplifiers (:mod:`.amplifiers`), built lazily
    _amplified: object | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        circuit: Circuit,
        options: SolverOptions,
        *,
        sparse: bool | None = None,
        sparse_threshold: int = SPARSE_THRESHOLD,
    ) -> CompiledCircuit:
        """Compile ``circuit``; ``sparse=None`` picks the sparse path when there are more
        than ``sparse_threshold`` free nodes."""
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
        if sparse is None:
            sparse = len(free) > sparse_threshold
        g_ff = lap[free][:, free].tocsc() if sparse else lap[free][:, free].toarray()
        g_fd = lap[free][:, fixed].tocsr()

        diodes = [e for e in circuit.elements if isinstance(e, Diode)]
        models = [circuit.models[d.model] for d in diodes]
        diode_is, diode_vte = junction_arrays(models, options.thermal_voltage_V)
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
            diode_is=diode_is,
            diode_vte=diode_vte,
            vsources=vsources,
            isources=[e for e in circuit.elements if isinstance(e, CurrentSource)],
            options=options,
            sparse=bool(sparse),
            diode_pwl=BehaviouralDiodes.of(models),
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
        """Per diode, from (B, N) node voltages: junction voltage (V), current (A) and
        small-signal conductance (S), each (B, n_diodes), gmin included."""
        vd = full[:, self.diode_a] - full[:, self.diode_c]
        i, g = diode_current(vd, self.diode_is, self.diode_vte, self.options.gmin)
        if self.diode_pwl is not None:
            i, g = self.diode_pwl.apply(vd, i, g)
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
        the Hessian of the co-content (conductance Laplacian plus diode conductances).

        Always dense (B F^2 floats, even for a sparse circuit): for large circuits use
        :meth:`jacobian_sparse` or :meth:`solve_jacobian`."""
        batch = full.shape[0]
        n_free = len(self.free)
        g_ff = self.g_ff.toarray() if sp.issparse(self.g_ff) else self.g_ff
        jac = np.broadcast_to(g_ff, (batch, n_free, n_free)).copy()
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

    def sparse_solver(self) -> _SparseJacobianSolver:
        """The (cached) factorisations used by the sparse path."""
        if self._sparse_solver is None:
            self._sparse_solver = _SparseJacobianSolver(self)
        return self._sparse_solver

    def jacobian_sparse(self, full: np.ndarray) -> list[sp.csc_matrix]:
        """The Jacobian of :meth:`jacobian` as one (F, F) CSC matrix per sample."""
        return self.sparse_solver().matrices(full)

    def solve_jacobian(self, full: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """(B, F) solutions x of J_b x_b = rhs_b with J_b the Jacobian at sample b of
        ``full`` (B, N+1); dense or sparse according to :attr:`sparse`."""
        rhs = np.asarray(rhs, dtype=np.float64)
        if not self.sparse:
            return solve_batched(self.jacobian(full), rhs)
        return self.sparse_solver().solve(full, rhs)


class _SparseJacobianSolver:
    """Sparse Newton-step solves J x = r for the Jacobians of one compiled circuit.

    J = G_ff + D(V) where D holds the diode conductances, which touch only the free nodes
    N at the ends of diodes. With L the other free nodes, G_LL is constant: it is factored
    once, and per sample only the dense Schur complement S0 + D_NN(V) (|N| x |N|) is
    solved, with S0 = G_NN - G_NL G_LL^-1 G_LN. G_LL is positive definite because every
    L node reaches ground through conductances (diodes do not touch L). Without any
    L node, or with more than SCHUR_MAX_NODES N nodes, each sample's J is factored.
    """

    def __init__(self, cc: CompiledCircuit) -> None:
        self.cc = cc
        n_free = len(cc.free)
        g = sp.csc_matrix(cc.g_ff)
        pos = np.full(len(cc.nodes) + 1, -1, dtype=np.intp)
        pos[cc.free] = np.arange(n_free)
        a, c = pos[cc.diode_a], pos[cc.diode_c]
        touched = np.zeros(n_free, dtype=bool)
        touched[a[a >= 0]] = True
        touched[c[c >= 0]] = True
        self.nonlin = np.flatnonzero(touched)
        self.lin = np.flatnonzero(~touched)
        # diode stamps as (row, col, sign, diode index) in free-node numbering
        stamps = []
        for ia, ib, sign in ((a, a, 1.0), (c, c, 1.0), (a, c, -1.0), (c, a, -1.0)):
            ok = (ia >= 0) & (ib >= 0)
            idx = np.flatnonzero(ok)
            stamps.append((ia[ok], ib[ok], np.full(idx.size, sign), idx))
        self.d_row = np.concatenate([s[0] for s in stamps]).astype(np.intp)
        self.d_col = np.concatenate([s[1] for s in stamps]).astype(np.intp)
        self.d_sign = np.concatenate([s[2] for s in stamps])
        self.d_idx = np.concatenate([s[3] for s in stamps]).astype(np.intp)
        self._g = g
        self._pattern: tuple | None = None
        self.n_free = n_free
        self.schur = self.lin.size > 0 and self.nonlin.size <= SCHUR_MAX_NODES
        if self.schur:
            g_ll = g[self.lin][:, self.lin].tocsc()
            # symmetric positive definite: a symmetric ordering keeps the fill-in small
            self.lu_ll = spla.splu(
                g_ll, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}
            )
            self.g_ln = g[self.lin][:, self.nonlin].tocsc()
            self.g_nl = self.g_ln.T.tocsr()
            g_nn = g[self.nonlin][:, self.nonlin].toarray()
            if self.nonlin.size:
                x = self.lu_ll.solve(self.g_ln.toarray())
                self.s0 = g_nn - self.g_nl @ x
            else:
                self.s0 = g_nn
            npos = np.full(n_free, -1, dtype=np.intp)
            npos[self.nonlin] = np.arange(self.nonlin.size)
            self.n_row, self.n_col = npos[self.d_row], npos[self.d_col]

    def _diode_g(self, full: np.ndarray) -> np.ndarray:
        if not self.cc.diode_a.size:
            return np.zeros((full.shape[0], 0))
        return self.cc.diode_state(full)[2]

    def _csc_pattern(self) -> tuple:
        """CSC pattern of G_ff plus every diode stamp, and where each stamp lands in it."""
        if self._pattern is None:
            n = self.n_free
            coo = self._g.tocoo()
            keys = np.concatenate(
                [
                    coo.col.astype(np.int64) * n + coo.row,
                    self.d_col.astype(np.int64) * n + self.d_row,
                ]
            )
            uniq, inv = np.unique(keys, return_inverse=True)
            inv = inv.reshape(-1)
            indices = (uniq % n).astype(np.int32)
            indptr = np.searchsorted(uniq // n, np.arange(n + 1)).astype(np.int32)
            base = np.bincount(inv[: coo.nnz], weights=coo.data, minlength=uniq.size)
            d_pos = inv[coo.nnz :]
            self._pattern = (indices, indptr, base, d_pos)
        return self._pattern

    def matrices(self, full: np.ndarray) -> list[sp.csc_matrix]:
        indices, indptr, base, d_pos = self._csc_pattern()
        g = self._diode_g(full)
        out = []
        for b in range(full.shape[0]):
            data = base
            if d_pos.size:
                data = data + np.bincount(
                    d_pos, weights=self.d_sign * g[b, self.d_idx], minlength=data.size
                )
            out.append(
                sp.csc_matrix(
                    (data, indices.copy(), indptr.copy()),
                    shape=(self.n_free, self.n_free),
                )
            )
        return out

    def solve(self, full: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        if not self.schur:
            return np.stack(
                [
                    spla.splu(j, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
                    .solve(r)
                    for j, r in zip(self.matrices(full), rhs, strict=True)
                ]
            )
        batch = full.shape[0]
        k = self.nonlin.size
        y = self.lu_ll.solve(np.ascontiguousarray(rhs[:, self.lin].T))  # (L, B)
        out = np.empty((batch, self.n_free))
        if k == 0:
            out[:, self.lin] = y.T
            return out
        rhs_n = rhs[:, self.nonlin] - (self.g_nl @ y).T  # (B, k)
        s = np.broadcast_to(self.s0, (batch, k, k)).copy()
        g = self._diode_g(full)
        flat = s.reshape(batch, -1)
        stamp = self.d_sign * g[:, self.d_idx]
        np.add.at(flat, (slice(None), self.n_row * k + self.n_col), stamp)
        x_n = solve_batched(s, rhs_n)
        x_l = y - self.lu_ll.solve(np.ascontiguousarray(self.g_ln @ x_n.T))
        out[:, self.lin] = x_l.T
        out[:, self.nonlin] = x_n
        return out


@dataclass(frozen=True)
class Adjoint:
    """Result of :meth:`NumpyBackend.adjoint`.

    Attributes:
        solution: the operating point of the batch.
        node_adjoints: (B, N) lambda per node of ``solution`` (zero at driven nodes), in
            loss units per ampere.
        source_gradients: voltage-source name -> (B,) dL/d(source value), per volt.
    """

    solution: Solution
    node_adjoints: np.ndarray
    source_gradients: dict[str, np.ndarray]


class NumpyBackend:
    """Batched damped-Newton DC solver on the same circuit IR as ngspice.

    Limits: voltage sources must have one terminal at ground (true of every block
    analogeq builds); otherwise a :class:`~analogeq.errors.CircuitError` says so.

    Args:
        options: solver options (gmin, temperature) shared with ngspice.
        max_iterations: Newton iteration limit.
        sparse_threshold: circuits with more free nodes than this use the sparse path.
    """

    name = "numpy"

    def __init__(
        self,
        options: SolverOptions | None = None,
        max_iterations: int = 200,
        sparse_threshold: int = SPARSE_THRESHOLD,
    ) -> None:
        self.options = options or SolverOptions()
        self.max_iterations = max_iterations
        self.sparse_threshold = int(sparse_threshold)
        #: Newton iterations of the last solve (the batch's slowest sample)
        self.last_iterations = 0
        #: Newton iterations of each sample of the last solve, (B,)
        self.last_sample_iterations = np.zeros(0, dtype=np.intp)
        #: running totals: ``solves``, their ``newton_iterations`` (slowest sample of each
        #: batch) and ``sample_iterations`` (summed over samples)
        self.stats = {"solves": 0, "newton_iterations": 0, "sample_iterations": 0}

    def compile(self, circuit: Circuit) -> CompiledCircuit:
        """Validate ``circuit`` and build its index arrays once, for repeated
        :meth:`solve_compiled` calls with different source values."""
        validate(circuit)
        return CompiledCircuit.build(
            circuit, self.options, sparse_threshold=self.sparse_threshold
        )

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
        if self.options.fold_pinned_nodes:
            validate(circuit)
            check_pinned_diodes(circuit, values, batch, self.options.thermal_voltage_V)
            folded = fold_pinned(circuit)
            if folded.folds:
                cc = CompiledCircuit.build(
                    folded.condensed, self.options, sparse_threshold=self.sparse_threshold
                )
                init = None
                if initial_V is not None:
                    full_index = {n: k for k, n in enumerate(circuit.nodes)}
                    cols = [full_index[n] for n in cc.nodes]
                    init = np.asarray(initial_V, dtype=np.float64)[:, cols]
                cvals = folded.condensed_values(values, batch)
                sol = self.solve_compiled(cc, cvals, batch, initial_V=init)
                return folded.expand(sol, values, batch)
        cc = self.compile(circuit)
        return self.solve_compiled(cc, values, batch, initial_V=initial_V)

    def adjoint(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None,
        nodes: Sequence[str],
        cotangent: np.ndarray,
    ) -> Adjoint:
        """Implicit differentiation at the DC operating point (docs/physics.md, section
        "Implicit differentiation").

        For a scalar L with dL/dV = ``cotangent`` on ``nodes`` (and 0 elsewhere), solves
        H lambda = dL/dV over the free nodes, with H the Hessian of the co-content (the
        Jacobian of the free-node KCL residual), at the operating point of every sample.

        Args:
            circuit / source_values: as for :meth:`solve`.
            nodes: K node names (free nodes; a node listed twice adds up).
            cotangent: (B, K) dL/dV on those nodes (loss units per volt).

        Returns:
            The operating point, the node adjoints lambda (B, N) (zero at driven nodes),
            with which dL/dg = -sum_b (lambda_a - lambda_b)(V_a - V_b) for a conductance
            between nodes a and b, and dL/dv_s (B,) for every grounded voltage source s.
        """
        values, batch = validate_source_values(circuit, source_values)
        cc = self.compile(circuit)
        if circuit.amplifiers:  # bidirectional amplifiers: the dependent-node adjoint
            return Adjoint(*adjoint_amplified(self, cc, values, batch, nodes, cotangent))
        sol = self.solve_compiled(cc, values, batch)
        cot = np.asarray(cotangent, dtype=np.float64).reshape(batch, len(nodes))
        full = np.concatenate([sol.voltages_V, np.zeros((batch, 1))], axis=1)
        pos = np.full(len(cc.nodes), -1, dtype=np.intp)
        pos[cc.free] = np.arange(len(cc.free))
        idx = pos[sol.node_indices(nodes)]
        if (idx < 0).any():
            bad = [n for n, i in zip(nodes, idx, strict=True) if i < 0]
            raise CircuitError(f"adjoint: node(s) {bad[:5]} are driven by sources, not free")
        rhs = np.zeros((batch, len(cc.free)))
        np.add.at(rhs, (slice(None), idx), cot)
        lam_free = cc.solve_jacobian(full, rhs)
        lam = np.zeros_like(sol.voltages_V)
        lam[:, cc.free] = lam_free
        # dL/dV_d = -lambda^T dr/dV_d = -(lambda @ G_fd)[:, d] for each driven node d
        d_fixed = -np.asarray(cc.g_fd.T @ lam_free.T).T  # (B, D+1)
        if cc.diode_a.size:  # a diode from a free to a driven node couples them like g_d
            _, _, g_d = cc.diode_state(full)
            fixed = np.full(len(cc.nodes) + 1, -1, dtype=np.intp)
            fixed[np.concatenate([cc.driven, [len(cc.nodes)]])] = np.arange(len(cc.driven) + 1)
            free_pos = np.append(pos, -1)  # ground is not free
            for x, y in ((cc.diode_a, cc.diode_c), (cc.diode_c, cc.diode_a)):
                ok = (free_pos[x] >= 0) & (fixed[y] >= 0)
                np.add.at(d_fixed, (slice(None), fixed[y[ok]]),
                          g_d[:, ok] * lam_free[:, free_pos[x[ok]]])
        driven_pos = {int(n): j for j, n in enumerate(cc.driven)}
        index = {n: k for k, n in enumerate(cc.nodes)}
        grads = {}
        for v in cc.vsources:  # v(plus) - v(minus) = value, one terminal grounded
            if v.minus == GROUND:
                grads[v.name] = d_fixed[:, driven_pos[index[v.plus]]]
            else:
                grads[v.name] = -d_fixed[:, driven_pos[index[v.minus]]]
        return Adjoint(sol, lam, grads)

    def solve_compiled(
        self,
        cc: CompiledCircuit,
        values: Mapping[str, np.ndarray],
        batch: int,
        *,
        initial_V: np.ndarray | None = None,
    ) -> Solution:
        """Batched damped Newton solve of a compiled circuit.

        Args:
            values: source name -> (batch,) volts (V sources) or amperes (I sources).
            batch: B, the number of samples.
            initial_V: optional (B, N) starting node voltages in volts (e.g. the free
                state, to warm-start nudged phases).
        """
        check_pinned_diodes(cc.circuit, values, batch, cc.options.thermal_voltage_V)
        if cc.circuit.amplifiers:  # bidirectional amplifiers: dependent output nodes
            return solve_amplified(self, cc, values, batch, initial_V=initial_V)
        v_driven, injected = cc.source_arrays(values, batch)
        scale = max(float(np.abs(v_driven).max(initial=0.0)), 1.0)
        n_free = len(cc.free)
        if initial_V is not None:
            v_free = np.array(initial_V, dtype=float)[:, cc.free]
        else:
            v_free = np.zeros((batch, n_free))

        pos = np.full(len(cc.nodes) + 1, -1, dtype=np.intp)
        pos[cc.free] = np.arange(n_free)
        # each sample stops iterating once its own step is below the tolerance (a
        # per-sample convergence mask): the batch does not wait for its slowest sample
        active = np.arange(batch)
        previous = np.full(batch, np.inf)
        per_sample = np.zeros(batch, dtype=np.intp)
        iterations = 0
        step = np.zeros((0, n_free))
        for iterations in range(1, self.max_iterations + 1):  # noqa: B007
            if n_free == 0:
                break
            vf = v_free[active]
            full = cc.full_voltages(vf, v_driven[active])
            residual = cc.node_currents(full, injected[active])[:, cc.free]
            if cc.sparse:
                step = -cc.solve_jacobian(full, residual)
            else:
                jac = cc.jacobian(full)
                step = -solve_batched(jac, residual)
            if cc.diode_a.size:
                step *= self._step_limit(cc, full, step)[:, None]
            vf = vf + step
            v_free[active] = vf
            per_sample[active] = iterations
            size = np.abs(step).max(axis=1, initial=0.0)
            done = np.all(np.abs(step) <= 1e-13 + 1e-12 * np.maximum(np.abs(vf), scale), axis=1)
            # ill-conditioned circuits (e.g. 0.01-ohm wires next to 1-Mohm devices) have a
            # round-off floor above that: stop once Newton no longer contracts there; the
            # KCL check below still guards the answer
            if iterations >= 3:
                done |= (size <= 1e-8 * scale) & (size > 0.5 * previous[active])
            previous[active] = size
            active = active[~done]
            if not active.size:
                break
        else:
            raise ConvergenceError(
                f"NumPy Newton did not converge in {self.max_iterations} iterations "
                f"({active.size} of {batch} samples; last max step "
                f"{np.abs(step).max():.3e} V)",
                [],
                cc.circuit.title,
            )
        self.last_sample_iterations = per_sample
        self.last_iterations = iterations
        self.stats["solves"] += 1
        self.stats["newton_iterations"] += iterations
        self.stats["sample_iterations"] += int(per_sample.sum())
        full = cc.full_voltages(v_free, v_driven)
        currents = cc.node_currents(full, injected)
        kcl = np.abs(currents[:, cc.free]).max(initial=0.0)
        # floating-point floor of a node's KCL sum: eps times the sum of |g V| terms at it
        i_terms = (abs(cc.laplacian) @ np.abs(full).T).max(initial=0.0)
        if not np.isfinite(full).all() or kcl > 1e-11 * i_terms + 1e-15:
            raise ConvergenceError(
                f"NumPy Newton ended with KCL residual {kcl:.3e} A", [], cc.circuit.title
            )
        sol = Solution(
            node_names=tuple(cc.nodes),
            voltages_V=full[:, :-1].copy(),
            source_names=tuple(v.name for v in cc.vsources),
            currents_A=self._vsource_currents(cc, currents),
            messages=(f"newton iterations: {iterations}",),
        )
        check_solution(cc.circuit, sol, values, cc.options, backend="NumPy backend",
                       laplacian=cc.laplacian)
        return sol

    @staticmethod
    def _step_limit(cc: CompiledCircuit, full: np.ndarray, step: np.ndarray) -> np.ndarray:
        """(B,) pnjlim factor of a free-node Newton step (:func:`~.diode.junction_step_limit`)."""
        step_full = np.zeros_like(full)
        step_full[:, cc.free] = step
        dvd = step_full[:, cc.diode_a] - step_full[:, cc.diode_c]
        if cc.diode_pwl is not None:
            dvd = cc.diode_pwl.unlimited(dvd)
        return junction_step_limit(full[:, cc.diode_a] - full[:, cc.diode_c], dvd,
                                   cc.diode_vte, cc.diode_is)

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
