"""An independent NumPy/SciPy DC solver for the circuit IR, batched over samples.

Newton's method on the nodal equations of the free nodes (those not fixed by a grounded
voltage source), with the same device equations as ngspice's level-1 diode (including its
reverse-bias form below -3 n V_T and the ``gmin`` junction shunt), so the two backends
agree to solver tolerance. Being a separate implementation of the physics, it is the
check on ngspice in tests and the fast path for large experiments.

The co-content of a resistive-diode network is strictly convex in the free node voltages,
so damped Newton (steps limited like SPICE's ``pnjlim`` on forward-biased junctions)
converges from any start; the solve stops when the step is below 1e-13 V + 1e-12 |V|, far
tighter than the SPICE tolerances. Every sample stops on its own step (a per-sample
convergence mask).

Small circuits (at most :data:`SPARSE_THRESHOLD` free nodes) use a dense path. Its Newton
step eliminates an independent set I of free nodes (no two connected; in a layered block,
the hidden units of alternate layers), whose block of the Jacobian is diagonal, and
factors only the Schur complement over the other free nodes R (:class:`_DenseJacobianSolver`;
for block (784, 100, 10), 20 output nodes instead of 120 free nodes). Before every Newton
step, the KCL of every node of I, which then depends only on its own voltage, is solved
node by node (:meth:`_DenseJacobianSolver.relax`): the diode exponentials of those nodes
no longer slow the outer iteration. With one hidden layer (all hidden units eliminated) it
takes 3 iterations from 0 V (2 from a nearby start) however deep training drives the units
into their clamps; with more, only alternate layers are eliminated.

Larger circuits (e.g. crossbars with explicit wire resistance, see
:mod:`analogeq.hardware.tiles`) use a sparse path with the same equations and stopping rule: the
free nodes are split into the few touched by diodes (N) and the linear rest (L); the
constant block G_LL is factored once with SuperLU, and each Newton step solves the dense
Schur complement over N per sample (the diode conductances only change that block). When
diodes touch more than :data:`SCHUR_MAX_NODES` free nodes, each sample's sparse Jacobian is
factored with ``splu`` instead.

Repeated solves of one topology reuse its validation, folding plan and compiled structure
(:class:`NumpyBackend`); BLAS runs on one thread during a solve (many small matrices).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
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
    validate,
)
from ..errors import CircuitError, ConvergenceError
from ..params import SolverOptions
from .amplifiers import adjoint_amplified, solve_amplified
from .base import Solution
from .diode import (
    BehaviouralDiodes,
    diode_current,
    junction_arrays,
    junction_step_limit,
    junction_voltage_limit,
)
from .kcl import check_solution
from .linalg import blas_limit, greedy_independent_set, solve_batched
from .topology import Prepared, TopologyCache

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
class _Prepared(Prepared):
    """What a :class:`NumpyBackend` keeps per topology: the :class:`~.topology.Prepared`
    checks and folding plan, and the compilation of the (condensed) circuit, whose values
    are swapped per solve."""

    def __init__(self, circuit: Circuit, fold: bool, options: SolverOptions,
                 sparse_threshold: int) -> None:
        super().__init__(circuit, fold)
        self.options = options
        self.sparse_threshold = sparse_threshold
        self._compiled: CompiledCircuit | None = None
        self._columns: np.ndarray | None = None

    def compiled(self, circuit: Circuit) -> CompiledCircuit:
        """The compilation of ``circuit`` (the condensed circuit when folded)."""
        if self._compiled is None:
            self._compiled = CompiledCircuit.build(
                circuit, self.options, sparse_threshold=self.sparse_threshold)
            return self._compiled
        # the latest compilation carries the dense elimination once a solve built it
        self._compiled = self._compiled.with_values(circuit)
        return self._compiled

    def condensed_columns(self, cc: CompiledCircuit) -> np.ndarray:
        """Columns of the full circuit's nodes that the condensed circuit solves for."""
        if self._columns is None:
            full_index = {n: k for k, n in enumerate(self.nodes)}
            self._columns = np.array([full_index[n] for n in cc.nodes], dtype=np.intp)
        return self._columns


class _Topology:
    """What :class:`CompiledCircuit` derives from a circuit's topology alone: node order,
    free and driven nodes, the Laplacian's sparsity pattern and where every element's
    conductance lands in it, the diodes and sources (as element positions)."""

    def __init__(self, circuit: Circuit, sparse: bool | None, sparse_threshold: int) -> None:
        nodes = circuit.nodes
        index = {n: k for k, n in enumerate(nodes)}
        n_all = len(nodes) + 1
        ground = len(nodes)
        index[GROUND] = ground
        self.nodes = nodes

        rows, cols = [], []
        #: (element index, is a crossbar) of every linear element, in stamp order
        self.linear: list[tuple[int, bool]] = []
        for k, e in enumerate(circuit.elements):
            if isinstance(e, ConductanceMatrix):
                ri = np.array([index[r] for r in e.rows], dtype=np.intp)
                ci = np.array([index[c] for c in e.cols], dtype=np.intp)
                rr = np.repeat(ri, len(ci))
                cc = np.tile(ci, len(ri))
                rows += [rr, cc, rr, cc]
                cols += [rr, cc, cc, rr]
                self.linear.append((k, True))
            elif isinstance(e, Conductance):
                a, b = index[e.a], index[e.b]
                rows.append(np.array([a, b, a, b]))
                cols.append(np.array([a, b, b, a]))
                self.linear.append((k, False))
        if rows:
            keys = (np.concatenate(rows).astype(np.int64) * n_all
                    + np.concatenate(cols).astype(np.int64))
            uniq, inv = np.unique(keys, return_inverse=True)
            self.lap_inverse = inv.reshape(-1)
            lap_rows, lap_cols = uniq // n_all, uniq % n_all
        else:
            self.lap_inverse = np.zeros(0, dtype=np.intp)
            lap_rows = lap_cols = np.zeros(0, dtype=np.int64)
        self.lap_nnz = lap_rows.size
        self.lap_indices = lap_cols.astype(np.int32)
        self.lap_indptr = np.searchsorted(lap_rows, np.arange(n_all + 1)).astype(np.int32)
        self.n_all = n_all

        self.vsource_at = [k for k, e in enumerate(circuit.elements)
                           if isinstance(e, VoltageSource)]
        self.isource_at = [k for k, e in enumerate(circuit.elements)
                           if isinstance(e, CurrentSource)]
        driven_set: dict[int, VoltageSource] = {}
        for k in self.vsource_at:
            v = circuit.elements[k]
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
        self.driven = np.array(sorted(driven_set), dtype=np.intp)
        self.free = np.array([k for k in range(len(nodes)) if k not in driven_set],
                             dtype=np.intp)
        fixed = np.concatenate([self.driven, [ground]])
        n_free = len(self.free)
        if sparse is None:
            sparse = n_free > sparse_threshold
        self.sparse = bool(sparse)
        # where the Laplacian's entries go in G_ff (dense) and G_fd
        f_pos = np.full(n_all, -1, dtype=np.int64)
        f_pos[self.free] = np.arange(n_free)
        x_pos = np.full(n_all, -1, dtype=np.int64)
        x_pos[fixed] = np.arange(fixed.size)
        in_ff = (f_pos[lap_rows] >= 0) & (f_pos[lap_cols] >= 0)
        self.ff_entries = np.flatnonzero(in_ff)
        self.ff_flat = f_pos[lap_rows[in_ff]] * n_free + f_pos[lap_cols[in_ff]]
        in_fd = (f_pos[lap_rows] >= 0) & (x_pos[lap_cols] >= 0)
        self.fd_entries = np.flatnonzero(in_fd)
        self.fd_indices = x_pos[lap_cols[in_fd]].astype(np.int32)
        self.fd_indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(f_pos[lap_rows[in_fd]], minlength=n_free))]
        ).astype(np.int32)
        self.fd_shape = (n_free, fixed.size)

        self.diode_at = [k for k, e in enumerate(circuit.elements) if isinstance(e, Diode)]
        diodes = [circuit.elements[k] for k in self.diode_at]
        self.diode_a = np.array([index[d.anode] for d in diodes], dtype=np.intp)
        self.diode_c = np.array([index[d.cathode] for d in diodes], dtype=np.intp)
        #: thermal voltage -> (IS, N V_T, behavioural diodes) of the diodes
        self.junctions: dict[float, tuple] = {}

    def laplacian(self, circuit: Circuit) -> sp.csr_matrix:
        """(N+1, N+1) conductance Laplacian of ``circuit`` (ground last) on this pattern."""
        vals = []
        for k, is_matrix in self.linear:
            e = circuit.elements[k]
            if is_matrix:
                gg = np.asarray(e.g_S, dtype=np.float64).reshape(-1)
                vals += [gg, gg, -gg, -gg]
            else:
                g = float(e.g_S)
                vals.append(np.array([g, g, -g, -g]))
        data = (np.bincount(self.lap_inverse, weights=np.concatenate(vals),
                            minlength=self.lap_nnz) if vals else np.zeros(0))
        return sp.csr_matrix((data, self.lap_indices, self.lap_indptr),
                             shape=(self.n_all, self.n_all))

    def compile(
        self, circuit: Circuit, options: SolverOptions, previous: CompiledCircuit | None = None
    ) -> CompiledCircuit:
        """The :class:`CompiledCircuit` of ``circuit`` (this topology, its values)."""
        lap = self.laplacian(circuit)
        n_free = len(self.free)
        if self.sparse:
            g_ff = lap[self.free][:, self.free].tocsc()
        else:
            g_ff = np.zeros(n_free * n_free)
            g_ff[self.ff_flat] = lap.data[self.ff_entries]
            g_ff = g_ff.reshape(n_free, n_free)
        g_fd = sp.csr_matrix((lap.data[self.fd_entries], self.fd_indices, self.fd_indptr),
                             shape=self.fd_shape)
        vt = options.thermal_voltage_V
        junctions = self.junctions.get(vt)
        if junctions is None:  # the models are part of the topology: per temperature only
            models = [circuit.models[circuit.elements[k].model] for k in self.diode_at]
            junctions = self.junctions[vt] = (*junction_arrays(models, vt),
                                              BehaviouralDiodes.of(models))
        diode_is, diode_vte, diode_pwl = junctions
        cc = CompiledCircuit(
            circuit=circuit,
            nodes=self.nodes,
            free=self.free,
            driven=self.driven,
            laplacian=lap,
            g_ff=g_ff,
            g_fd=g_fd,
            diode_a=self.diode_a,
            diode_c=self.diode_c,
            diode_is=diode_is,
            diode_vte=diode_vte,
            vsources=[circuit.elements[k] for k in self.vsource_at],
            isources=[circuit.elements[k] for k in self.isource_at],
            options=options,
            sparse=self.sparse,
            diode_pwl=diode_pwl,
            _topology=self,
        )
        if previous is not None and previous._dense_solver is not None:
            cc._dense_solver = previous._dense_solver.with_values(cc)
        return cc


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
    _dense_solver: _DenseJacobianSolver | None = field(default=None, repr=False)
    #: dependent-node system of a circuit with amplifiers (:mod:`.amplifiers`), built lazily
    _amplified: object | None = field(default=None, repr=False)

    _topology: _Topology | None = field(default=None, repr=False)

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
        return _Topology(circuit, sparse, sparse_threshold).compile(circuit, options)

    def with_values(self, circuit: Circuit) -> CompiledCircuit:
        """This compilation for ``circuit``, a circuit of the same topology (elements,
        names, nodes and models in the same order) with other values (conductances,
        source DC values): only the values are gathered again; the index structures, and
        the choice of eliminated nodes of the dense path, are shared."""
        return self._topology.compile(circuit, self.options, previous=self)

    # -- helpers ------------------------------------------------------------------------

    def source_arrays(
        self, values: Mapping[str, np.ndarray], batch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B, D) driven-node voltages and (B, N+1) current injected into each node by
        current sources, for every sample."""
        v_col, v_sign, i_plus, i_minus = self._source_maps()
        v_driven = np.zeros((batch, len(self.driven)))
        for v, col, sign in zip(self.vsources, v_col, v_sign, strict=True):
            value = values.get(v.name, v.dc_V)
            v_driven[:, col] = value if sign > 0 else -np.asarray(value)
        injected = np.zeros((batch, len(self.nodes) + 1))
        if self.isources:
            amps = np.empty((batch, len(self.isources)))
            for k, src in enumerate(self.isources):
                amps[:, k] = values.get(src.name, src.dc_A)
            np.add.at(injected, (slice(None), i_minus), amps)
            np.add.at(injected, (slice(None), i_plus), -amps)
        return v_driven, injected

    def _source_maps(self) -> tuple[list[int], list[float], np.ndarray, np.ndarray]:
        """Per voltage source its column in the driven nodes and +1 / -1 (plus / minus
        terminal driven); per current source its plus and minus node indices."""
        topo = self._topology
        maps = getattr(topo, "source_maps", None) if topo is not None else None
        if maps is None:
            index = {n: k for k, n in enumerate(self.nodes)}
            index[GROUND] = len(self.nodes)
            pos = {int(k): j for j, k in enumerate(self.driven)}
            v_col, v_sign = [], []
            for v in self.vsources:
                if v.minus == GROUND:
                    v_col.append(pos[index[v.plus]])
                    v_sign.append(1.0)
                else:
                    v_col.append(pos[index[v.minus]])
                    v_sign.append(-1.0)
            i_plus = np.array([index[s.plus] for s in self.isources], dtype=np.intp)
            i_minus = np.array([index[s.minus] for s in self.isources], dtype=np.intp)
            maps = (v_col, v_sign, i_plus, i_minus)
            if topo is not None:
                topo.source_maps = maps
        return maps

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
            out += (self.diode_incidence() @ i.T).T
        return out - injected

    def diode_incidence(self) -> sp.csr_matrix:
        """(N+1, n_diodes) +1 at each diode's anode, -1 at its cathode (cached)."""
        topo = self._topology
        inc = getattr(topo, "incidence", None) if topo is not None else None
        if inc is None:
            n = self.diode_a.size
            inc = sp.csr_matrix(
                (np.r_[np.ones(n), -np.ones(n)],
                 (np.r_[self.diode_a, self.diode_c], np.r_[np.arange(n), np.arange(n)])),
                shape=(len(self.nodes) + 1, n))
            if topo is not None:
                topo.incidence = inc
        return inc

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

    def dense_solver(self) -> _DenseJacobianSolver:
        """The (cached) elimination used by the dense path."""
        if self._dense_solver is None:
            self._dense_solver = _DenseJacobianSolver(self)
        return self._dense_solver

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
            return self.dense_solver().solve(full, rhs)
        return self.sparse_solver().solve(full, rhs)


class _DenseJacobianSolver:
    """Dense Newton-step solves J x = r, with the nodes of an independent set eliminated.

    A free node none of whose neighbours (through conductances or free-free diodes) is in
    a set I has a diagonal row in J_II: in a layered block no two nodes of one hidden
    layer are connected, and the diodes of hidden units go to pinned rails. With R the
    other free nodes, J = [[D_I, G_IR], [G_RI, J_RR]] with D_I (diagonal) and J_RR holding
    the diode conductances of the sample, and G_IR constant. Per sample

        (J_RR - G_RI D_I^-1 G_IR) x_R = r_R - G_RI D_I^-1 r_I,   x_I = D_I^-1 (r_I - G_IR x_R),

    so the dense factorisation is |R| x |R| instead of F x F: for block (784, 100, 10),
    20 output nodes instead of 120 free nodes. J is the Hessian of a strictly convex
    co-content (symmetric positive definite), and so is its Schur complement. Nodes at
    either end of a diode between two free nodes stay in R (their coupling changes per
    sample). I is chosen greedily, nodes of fewest neighbours first.
    """

    def __init__(self, cc: CompiledCircuit) -> None:
        n_free = len(cc.free)
        g = cc.g_ff.toarray() if sp.issparse(cc.g_ff) else np.asarray(cc.g_ff)
        pos = np.full(len(cc.nodes) + 1, -1, dtype=np.intp)
        pos[cc.free] = np.arange(n_free)
        a, c = pos[cc.diode_a], pos[cc.diode_c]
        adjacent = g != 0
        np.fill_diagonal(adjacent, False)
        blocked = np.zeros(n_free, dtype=bool)
        both = (a >= 0) & (c >= 0)
        blocked[a[both]] = True
        blocked[c[both]] = True
        chosen = greedy_independent_set(adjacent, blocked)
        self.elim = np.flatnonzero(chosen)
        self.rest = np.flatnonzero(~chosen)
        self.n_free = n_free
        self._load(g)
        # diode conductances: on the diagonal of an eliminated node, or stamped into J_RR
        ipos = np.full(n_free, -1, dtype=np.intp)
        ipos[self.elim] = np.arange(self.elim.size)
        rpos = np.full(n_free, -1, dtype=np.intp)
        rpos[self.rest] = np.arange(self.rest.size)
        e_idx, e_at = [], []
        r_idx, r_flat, r_sign = [], [], []
        k_r = self.rest.size
        for end in (a, c):
            ok = end >= 0
            in_i = ok & (ipos[np.where(ok, end, 0)] >= 0)
            e_idx.append(np.flatnonzero(in_i))
            e_at.append(ipos[end[in_i]])
        for ia, ib, sign in ((a, a, 1.0), (c, c, 1.0), (a, c, -1.0), (c, a, -1.0)):
            ok = (ia >= 0) & (ib >= 0)
            ra, rb = np.where(ok, rpos[np.where(ok, ia, 0)], -1), np.where(
                ok, rpos[np.where(ok, ib, 0)], -1)
            ok &= (ra >= 0) & (rb >= 0)
            r_idx.append(np.flatnonzero(ok))
            r_flat.append(ra[ok] * k_r + rb[ok])
            r_sign.append(np.full(int(ok.sum()), sign))
        self.e_idx = np.concatenate(e_idx).astype(np.intp)
        self.e_at = np.concatenate(e_at).astype(np.intp)
        self.e_unique = np.unique(self.e_at).size == self.e_at.size
        self.r_idx = np.concatenate(r_idx).astype(np.intp)
        self.r_flat = np.concatenate(r_flat).astype(np.intp)
        self.r_sign = np.concatenate(r_sign)
        # diodes at an eliminated node (their other end is not free): the node's own
        # equation, solved node by node in relax(); sign +1 when the node is the anode
        at_a = (a >= 0) & (ipos[np.where(a >= 0, a, 0)] >= 0)
        at_c = (c >= 0) & (ipos[np.where(c >= 0, c, 0)] >= 0)
        self.n_diode = np.flatnonzero(at_a | at_c)
        self.n_node = np.where(at_a, ipos[np.where(a >= 0, a, 0)],
                               ipos[np.where(c >= 0, c, 0)])[self.n_diode].astype(np.intp)
        self.n_sign = np.where(at_a, 1.0, -1.0)[self.n_diode]
        self.n_unique = np.unique(self.n_node).size == self.n_node.size
        #: the other diodes (touching kept nodes): a Newton step is scaled for them
        self.r_diode = np.flatnonzero(~(at_a | at_c))
        #: the behavioural (PWL) diodes among each set: no junction limit on their steps
        pwl = cc.diode_pwl
        self.n_pwl = pwl.subset(self.n_diode) if pwl is not None else None
        self.r_pwl = pwl.subset(self.r_diode) if pwl is not None else None
        self.cc = cc
        self._lap_elim: sp.csr_matrix | None = None

    @property
    def relaxes(self) -> bool:
        """True when some eliminated node holds a diode (:meth:`relax` applies)."""
        return bool(self.n_diode.size)

    def _node_sum(self, out: np.ndarray, values: np.ndarray) -> None:
        """Add per-diode ``values`` (B, n) into their eliminated nodes' columns of ``out``."""
        if self.n_unique:
            out[:, self.n_node] += values
        else:
            np.add.at(out, (slice(None), self.n_node), values)

    def limit_nodes(self, full: np.ndarray, step: np.ndarray) -> np.ndarray:
        """``step`` (B, F) with the change of every eliminated node whose diode it would
        push far forward cut like SPICE's pnjlim (:func:`~.diode.junction_voltage_limit`),
        node by node: no other node's change is scaled."""
        if not self.n_diode.size:
            return step
        cc, d = self.cc, self.n_diode
        vd = full[:, cc.diode_a[d]] - full[:, cc.diode_c[d]]
        sub = step[:, self.elim]
        dvd = self.n_sign * sub[:, self.n_node]
        lim = junction_voltage_limit(vd, dvd, cc.diode_vte[d], cc.diode_is[d])
        if self.n_pwl is not None:
            lim = self.n_pwl.keep_steps(dvd, lim)
        if lim is dvd:
            return step
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dvd != 0, lim / dvd, 1.0)
        factor = np.ones_like(sub)
        if self.n_unique:
            factor[:, self.n_node] = ratio
        else:
            np.minimum.at(factor, (slice(None), self.n_node), ratio)
        out = step.copy()
        out[:, self.elim] = sub * factor
        return out

    def relax(
        self, v_free: np.ndarray, v_driven: np.ndarray, injected: np.ndarray, scale: float,
        max_iterations: int = 100,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Solve every eliminated node's own equation for the present voltages of the
        others: a node's KCL depends only on its own voltage then (its neighbours are
        kept or fixed nodes, its diodes go to fixed nodes), a monotone scalar equation,
        solved by Newton with pnjlim on its junctions for all nodes and samples at once,
        to the tolerance of the Newton solve.

        This takes the exponentials out of the outer Newton: from 0 V, a full Newton step
        overshoots a clamping diode (0.4 V -> 0.65 V where it settles at 0.52 V) and then
        walks back about N V_T per iteration, which made the free phase of a trained
        block (784, 100, 10) take 9-12 iterations instead of 4 (BENCHMARKS.md, "Newton
        iterations during training").

        Returns:
            (new free-node voltages (B, F), node voltages (B, N+1), KCL residual at the
            free nodes (B, F), iterations of the node-by-node solve).
        """
        cc, elim, d = self.cc, self.elim, self.n_diode
        full = cc.full_voltages(v_free, v_driven)
        nodes = cc.free[elim]
        # the node's KCL but its own terms: linear currents to its neighbours (its diodes
        # only touch fixed nodes and no other diode touches it)
        if self._lap_elim is None:
            self._lap_elim = cc.laplacian[nodes]  # the eliminated nodes' rows
        base = ((self._lap_elim @ full.T).T - injected[:, nodes]
                - self.g_diag * v_free[:, elim])
        v_i = v_free[:, elim]
        vd0 = full[:, cc.diode_a[d]] - full[:, cc.diode_c[d]]
        is_a, vte, gmin = cc.diode_is[d], cc.diode_vte[d], cc.options.gmin
        vd_rest = vd0 - self.n_sign * v_i[:, self.n_node]
        x = v_i.copy()
        iterations = 0
        for iterations in range(1, max_iterations + 1):  # noqa: B007
            vd = vd_rest + self.n_sign * x[:, self.n_node]
            i, g = diode_current(vd, is_a, vte, gmin)
            if self.n_pwl is not None:
                i, g = self.n_pwl.apply(vd, i, g)
            h = base + self.g_diag * x
            self._node_sum(h, self.n_sign * i)
            dh = np.broadcast_to(self.g_diag, x.shape).copy()
            self._node_sum(dh, g)
            dx = -h / dh
            dvd = self.n_sign * dx[:, self.n_node]
            lim = junction_voltage_limit(vd, dvd, vte, is_a)
            if self.n_pwl is not None:
                lim = self.n_pwl.keep_steps(dvd, lim)
            if lim is not dvd:  # one diode per node in the blocks analogeq builds
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(dvd != 0, lim / dvd, 1.0)
                factor = np.ones_like(dx)
                np.minimum.at(factor, (slice(None), self.n_node), ratio)
                dx *= factor
            x += dx
            if np.all(np.abs(dx) <= 1e-13 + 1e-12 * np.maximum(np.abs(x), scale)):
                break
        v_new = v_free.copy()
        v_new[:, elim] = x
        full[:, nodes] = x
        return v_new, full, cc.node_currents(full, injected)[:, cc.free], iterations

    def _load(self, g: np.ndarray) -> None:
        """The blocks of G_ff (F, F) the elimination uses."""
        self.g_diag = g[self.elim, self.elim].copy()
        self.g_ir = np.ascontiguousarray(g[np.ix_(self.elim, self.rest)])
        self.g_ri = np.ascontiguousarray(self.g_ir.T)
        self.g_rr = np.ascontiguousarray(g[np.ix_(self.rest, self.rest)])

    def with_values(self, cc: CompiledCircuit) -> _DenseJacobianSolver:
        """The same elimination for ``cc``, a compilation of the same topology."""
        new = copy.copy(self)
        new.cc = cc
        new._lap_elim = None
        new._load(cc.g_ff.toarray() if sp.issparse(cc.g_ff) else np.asarray(cc.g_ff))
        return new

    def solve(self, full: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """(B, F) solutions of J_b x_b = rhs_b at the node voltages ``full`` (B, N+1)."""
        batch = full.shape[0]
        g = (self.cc.diode_state(full)[2] if self.cc.diode_a.size
             else np.zeros((batch, 0)))
        d = np.broadcast_to(self.g_diag, (batch, self.elim.size)).copy()
        if self.e_idx.size:
            if self.e_unique:
                d[:, self.e_at] += g[:, self.e_idx]
            else:
                np.add.at(d, (slice(None), self.e_at), g[:, self.e_idx])
        out = np.empty((batch, self.n_free))
        r_i = rhs[:, self.elim]
        if not self.rest.size:
            out[:, self.elim] = r_i / d
            return out
        k = self.rest.size
        s = np.broadcast_to(self.g_rr, (batch, k, k)).copy()
        if self.r_idx.size:
            np.add.at(s.reshape(batch, -1), (slice(None), self.r_flat),
                      self.r_sign * g[:, self.r_idx])
        inv = 1.0 / d
        w = self.g_ri[None, :, :] * inv[:, None, :]  # G_RI D_I^-1, (B, R, I)
        s -= w @ self.g_ir
        r_r = rhs[:, self.rest] - np.einsum("bri,bi->br", w, r_i)
        x_r = solve_batched(s, r_r)
        out[:, self.rest] = x_r
        out[:, self.elim] = inv * (r_i - x_r @ self.g_ri)
        return out


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

    Repeated solves of one topology (e.g. every training step of a block, whose circuit
    is rebuilt with new conductances) reuse what depends on the topology alone: its full
    validation (each solve still checks every value), the Norton folding plan
    (:class:`~analogeq.circuit.FoldPlan`) and the compiled index structures
    (:meth:`CompiledCircuit.with_values`), in a :class:`~.topology.TopologyCache` keyed
    on element types, names, nodes, diode models and amplifier gains.

    Args:
        options: solver options (gmin, temperature) shared with ngspice.
        max_iterations: Newton iteration limit.
        sparse_threshold: circuits with more free nodes than this use the sparse path.
        blas_threads: BLAS threads while solving (None: leave BLAS as it is). The batched
            solves are many small matrices, which threaded BLAS slows down, by 20 times and
            more on a machine whose cores are busy with other work (BENCHMARKS.md, "Norton
            folding").
    """

    name = "numpy"
    #: the NumPy solver takes ``initial_V`` (EP warm-starts its nudged phases with it)
    accepts_initial_V = True

    def __init__(
        self,
        options: SolverOptions | None = None,
        max_iterations: int = 200,
        sparse_threshold: int = SPARSE_THRESHOLD,
        blas_threads: int | None = 1,
    ) -> None:
        self.options = options or SolverOptions()
        self.max_iterations = max_iterations
        self.sparse_threshold = int(sparse_threshold)
        self.blas_threads = blas_threads
        #: Newton iterations of the last solve (the batch's slowest sample)
        self.last_iterations = 0
        #: Newton iterations of each sample of the last solve, (B,)
        self.last_sample_iterations = np.zeros(0, dtype=np.intp)
        #: running totals: ``solves``, their ``newton_iterations`` (slowest sample of each
        #: batch), ``samples`` solved, ``sample_iterations`` (summed over samples),
        #: ``max_sample_iterations`` (the most any sample took; reset it to 0 to start a
        #: new window) and ``relaxation_iterations`` (node-by-node iterations of the
        #: eliminated diode nodes, :meth:`_DenseJacobianSolver.relax`, one count per
        #: batch iteration)
        self.stats = {"solves": 0, "newton_iterations": 0, "samples": 0,
                      "sample_iterations": 0, "max_sample_iterations": 0,
                      "relaxation_iterations": 0}
        self._prepared = TopologyCache()

    def compile(self, circuit: Circuit) -> CompiledCircuit:
        """Validate ``circuit`` and build its index arrays once, for repeated
        :meth:`solve_compiled` calls with different source values."""
        validate(circuit)
        return CompiledCircuit.build(
            circuit, self.options, sparse_threshold=self.sparse_threshold
        )

    # -- per-topology preparation ---------------------------------------------------------

    def _prepare(
        self, circuit: Circuit, source_values: Mapping[str, np.ndarray] | None, fold: bool
    ) -> tuple[_Prepared, dict[str, np.ndarray], int]:
        """Validate ``circuit`` and its source values; the preparation of its topology,
        from the cache when it was seen before (:meth:`TopologyCache.prepare`)."""
        return self._prepared.prepare(
            circuit, source_values, fold,
            lambda c: _Prepared(c, fold, self.options, self.sparse_threshold))

    def _threads(self) -> AbstractContextManager:
        """Limit BLAS to :attr:`blas_threads` for the ``with`` block (if set)."""
        if self.blas_threads is None:
            return nullcontext()
        return blas_limit(self.blas_threads)

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
                solving nudged phases), columns in ``circuit.nodes`` order.
        """
        with self._threads():
            prep, values, batch = self._prepare(
                circuit, source_values, bool(self.options.fold_pinned_nodes))
            check_pinned_diodes(circuit, values, batch, self.options.thermal_voltage_V,
                                paths=prep.pinned_paths)
            if prep.plan is not None:
                folded = prep.plan.apply(circuit)
                cc = prep.compiled(folded.condensed)
                init = None
                if initial_V is not None:
                    init = np.asarray(initial_V, dtype=np.float64)[:, prep.condensed_columns(cc)]
                cvals = folded.condensed_values(values, batch)
                sol = self._newton(cc, cvals, batch, initial_V=init)
                return folded.expand(sol, values, batch)
            cc = prep.compiled(circuit)
            return self._newton(cc, values, batch, initial_V=initial_V)

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
        with self._threads():
            return self._adjoint(circuit, source_values, nodes, cotangent)

    def _adjoint(
        self,
        circuit: Circuit,
        source_values: Mapping[str, np.ndarray] | None,
        nodes: Sequence[str],
        cotangent: np.ndarray,
    ) -> Adjoint:
        prep, values, batch = self._prepare(circuit, source_values, fold=False)
        cc = prep.compiled(circuit)
        if circuit.amplifiers:  # bidirectional amplifiers: the dependent-node adjoint
            return Adjoint(*adjoint_amplified(self, cc, values, batch, nodes, cotangent))
        check_pinned_diodes(circuit, values, batch, self.options.thermal_voltage_V,
                            paths=prep.pinned_paths)
        sol = self._newton(cc, values, batch)
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
        with self._threads():
            check_pinned_diodes(cc.circuit, values, batch, cc.options.thermal_voltage_V)
            return self._newton(cc, values, batch, initial_V=initial_V)

    def _record(self, per_sample: np.ndarray, iterations: int) -> None:
        """Keep the iteration counts of a finished solve (:attr:`stats`)."""
        self.last_sample_iterations = per_sample
        self.last_iterations = iterations
        st = self.stats
        st["solves"] += 1
        st["newton_iterations"] += iterations
        st["samples"] = st.get("samples", 0) + int(per_sample.size)
        st["sample_iterations"] += int(per_sample.sum())
        st["max_sample_iterations"] = max(st.get("max_sample_iterations", 0),
                                          int(per_sample.max(initial=0)))

    def _newton(
        self,
        cc: CompiledCircuit,
        values: Mapping[str, np.ndarray],
        batch: int,
        *,
        initial_V: np.ndarray | None = None,
    ) -> Solution:
        """:meth:`solve_compiled` once the values are checked."""
        if cc.circuit.amplifiers:  # bidirectional amplifiers: dependent output nodes
            return solve_amplified(self, cc, values, batch, initial_V=initial_V)
        v_driven, injected = cc.source_arrays(values, batch)
        scale = max(float(np.abs(v_driven).max(initial=0.0)), 1.0)
        n_free = len(cc.free)
        if initial_V is not None:
            v_free = np.array(initial_V, dtype=float)[:, cc.free]
        else:
            v_free = np.zeros((batch, n_free))

        # dense path with diodes at eliminated nodes: those nodes are solved node by node
        # before every Newton step (_DenseJacobianSolver.relax)
        ds = cc.dense_solver() if not cc.sparse and n_free else None
        relax = ds is not None and ds.relaxes
        # each sample stops iterating once its own step is below the tolerance (a
        # per-sample convergence mask): the batch does not wait for its slowest sample
        active = np.arange(batch)
        previous = np.full(batch, np.inf)
        per_sample = np.zeros(batch, dtype=np.intp)
        iterations = 0
        relaxations = 0
        step = np.zeros((0, n_free))
        for iterations in range(1, self.max_iterations + 1):  # noqa: B007
            if n_free == 0:
                break
            vf = v_free[active]
            if relax:
                vf, full, residual, inner = ds.relax(vf, v_driven[active], injected[active],
                                                     scale)
                relaxations += inner
            else:
                full = cc.full_voltages(vf, v_driven[active])
                residual = cc.node_currents(full, injected[active])[:, cc.free]
            step = -cc.solve_jacobian(full, residual)
            if relax:
                step = ds.limit_nodes(full, step)
                if ds.r_diode.size:
                    step *= self._step_limit(cc, full, step, ds.r_diode, ds.r_pwl)[:, None]
            elif cc.diode_a.size:
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
        self._record(per_sample, iterations)
        self.stats["relaxation_iterations"] = (self.stats.get("relaxation_iterations", 0)
                                               + relaxations)
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
    def _step_limit(
        cc: CompiledCircuit, full: np.ndarray, step: np.ndarray,
        diodes: np.ndarray | None = None, pwl: BehaviouralDiodes | None = None,
    ) -> np.ndarray:
        """(B,) pnjlim factor of a free-node Newton step (:func:`~.diode.junction_step_limit`),
        over all diodes or those listed in ``diodes`` (``pwl``: the behavioural ones among
        them, whose steps are not limited; with all diodes, ``cc.diode_pwl``)."""
        step_full = np.zeros_like(full)
        step_full[:, cc.free] = step
        a, c = cc.diode_a, cc.diode_c
        vte, is_a = cc.diode_vte, cc.diode_is
        if diodes is not None:
            a, c, vte, is_a = a[diodes], c[diodes], vte[diodes], is_a[diodes]
        else:
            pwl = cc.diode_pwl
        dvd = step_full[:, a] - step_full[:, c]
        if pwl is not None:
            dvd = pwl.unlimited(dvd)
        return junction_step_limit(full[:, a] - full[:, c], dvd, vte, is_a)

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
