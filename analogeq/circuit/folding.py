"""Norton folding of source-pinned nodes (docs/physics.md, "Norton folding").

A node whose voltage is fixed by a voltage source to ground (block inputs, bias rails,
diode rails, swept or not) is not an unknown. Every plain conductance ``g`` between such a
pinned node (voltage ``u``, per sample) and a free node ``n`` is exactly a conductance
``g`` from ``n`` to ground plus a current ``g u`` injected into ``n``. Summed per free
node: one conductance ``G_n = sum g`` (element ``Rnorton_<n>``, from ``n`` to ground) and
one current ``I_n = sum g u`` (element ``Inorton_<n>``, injected into ``n``; per sample a
matrix product ``u @ F`` with ``F`` the (P, F) folded conductances). The condensed circuit
holds only those pairs in place of the folded devices: a crossbar from 1,568 input nodes to
100 hidden nodes becomes 100 conductances and 100 current sources.

What is folded, exactly: cells of a :class:`~.elements.ConductanceMatrix` and
:class:`~.elements.Conductance` elements with one end on a pinned node and the other on a
free (non-ground) node. Conductances between two pinned nodes (or a pinned node and
ground) are dropped from the condensed circuit: they do not change any free voltage, but
their current still counts in the source currents. Everything else stays as it is: diodes
(even to a pinned rail), conductances between free nodes or to ground, current sources
(EP nudges), floating voltage sources, and the wire segments of
:func:`analogeq.hardware.tiles.wire_circuit` (names ending in ``_rw`` / ``_cw``): a crossbar
with wire resistance has wire nodes, not source nodes, on its rows, so it keeps its full
form. A pinned node's source stays in the condensed circuit only while a kept element
touches the node (e.g. the diode rails).

Recovery (:meth:`FoldedCircuit.expand`) gives the :class:`~analogeq.backends.Solution` of
the full circuit: pinned node voltages are the source values; a pinned source's SPICE
branch current (from ``plus`` through the source to ``minus``) is its current in the
condensed circuit (0 if it was dropped) plus ``s * sum g (V_n - u)`` over its folded and
dropped conductances, with ``s = +1`` when the node is the source's ``plus`` terminal and
``-1`` when it is ``minus``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidValueError
from .elements import (
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Element,
    VoltageSource,
)

if TYPE_CHECKING:  # the solvers' result type; folding only rebuilds it
    from ..backends.base import Solution

__all__ = ["FoldedCircuit", "FoldPlan", "fold_pinned", "pinned_sources", "NORTON_G_PREFIX",
           "NORTON_I_PREFIX", "UNFOLDED_SUFFIXES"]

#: Name prefix of the Norton conductance of free node ``n``: ``Rnorton_<n>``.
NORTON_G_PREFIX = "Rnorton_"
#: Name prefix of the Norton current source of free node ``n``: ``Inorton_<n>``.
NORTON_I_PREFIX = "Inorton_"
#: Name prefix of the 0 V sense source of free node ``n`` (``sense=True``): ``Vnorton_<n>``.
NORTON_V_PREFIX = "Vnorton_"
#: Suffix of the node between a sense source and its Norton conductance.
NORTON_NODE_SUFFIX = "_norton"
#: Conductances with these name endings (wire segments of hardware tiles) are never folded.
UNFOLDED_SUFFIXES = ("_rw", "_cw")
#: Folded-conductance matrices with fewer cells than this are held dense.
_DENSE_CELLS = 4_000_000


def pinned_sources(circuit: Circuit) -> dict[str, tuple[VoltageSource, float]]:
    """Pinned node -> (its voltage source, sign): the nodes fixed by exactly one voltage
    source whose other terminal is ground. ``sign`` is +1.0 when the node is the source's
    ``plus`` terminal (V = dc_V) and -1.0 when it is ``minus`` (V = -dc_V)."""
    out: dict[str, tuple[VoltageSource, float]] = {}
    twice: set[str] = set()
    for e in circuit.elements:
        if not isinstance(e, VoltageSource) or (GROUND not in e.nodes) or e.plus == e.minus:
            continue
        node, sign = (e.plus, 1.0) if e.minus == GROUND else (e.minus, -1.0)
        if node in out:
            twice.add(node)
        out[node] = (e, sign)
    for node in twice:  # a voltage-source loop: validation reports it; never fold it
        del out[node]
    return out


@dataclass(frozen=True, eq=False)
class FoldedCircuit:
    """A circuit with its source-pinned nodes folded into Norton pairs.

    Attributes:
        circuit: the full circuit.
        condensed: the circuit a solver sees (see the module docstring).
        pinned_nodes: the P pinned nodes, in ``circuit.nodes`` order.
        pinned_sources: the voltage source of each pinned node.
        pinned_sign: (P,) +1.0 if the node is its source's ``plus`` terminal, else -1.0.
        norton_nodes: the F free nodes with a Norton pair, in ``circuit.nodes`` order.
        folded_S: (P, F) folded conductances in siemens (dense ndarray or CSR matrix).
        pinned_laplacian_S: (P, P) Laplacian in siemens of the dropped conductances
            between pinned nodes (a pinned-to-ground conductance is on the diagonal only).
        n_folded: number of folded devices.
        n_dropped: number of dropped pinned-to-pinned devices.
        nodes: ``circuit.nodes`` (the full circuit's node order).
        plan: the :class:`FoldPlan` that folded it.
    """

    circuit: Circuit
    condensed: Circuit
    pinned_nodes: tuple[str, ...]
    pinned_sources: tuple[VoltageSource, ...]
    pinned_sign: np.ndarray
    norton_nodes: tuple[str, ...]
    folded_S: np.ndarray | sp.csr_matrix
    pinned_laplacian_S: sp.csr_matrix
    n_folded: int
    n_dropped: int
    nodes: tuple[str, ...] = ()
    #: the :class:`FoldPlan` this came from (holds what only depends on the topology)
    plan: FoldPlan | None = None

    @property
    def folds(self) -> bool:
        """True if anything was folded or dropped (else ``condensed`` is ``circuit``)."""
        return self.n_folded + self.n_dropped > 0

    @property
    def norton_g_S(self) -> np.ndarray:
        """(F,) Norton conductance to ground of each node of :attr:`norton_nodes` (S)."""
        return np.asarray(self.folded_S.sum(axis=0)).reshape(-1)

    def pinned_voltages(self, values: Mapping[str, np.ndarray], batch: int) -> np.ndarray:
        """(B, P) voltage of every pinned node for per-sample ``values`` (source name ->
        (B,) volts; sources not listed keep their DC value). The last result is reused
        for the same ``values`` object (a solve calls this twice)."""
        cache = self.__dict__.get("_u_cache")
        if cache is not None and cache[0] is values and cache[1] == batch:
            return cache[2]
        u_t = np.empty((len(self.pinned_nodes), batch))
        given = [values.get(src.name) for src in self.pinned_sources]
        swept = [k for k, v in enumerate(given) if v is not None]
        fixed = [k for k, v in enumerate(given) if v is None]
        if swept:
            try:  # validated values: one (B,) array per source (np.array: faster than stack)
                rows = np.array([given[k] for k in swept], dtype=np.float64)
            except ValueError:
                rows = None
            if rows is None or rows.shape != (len(swept), batch):
                rows = np.stack([np.broadcast_to(given[k], (batch,)) for k in swept])
            u_t[swept] = rows
        if fixed:
            u_t[fixed] = np.array([self.pinned_sources[k].dc_V for k in fixed],
                                  dtype=np.float64)[:, None]
        u_t *= self.pinned_sign[:, None]
        u = u_t.T
        object.__setattr__(self, "_u_cache", (values, batch, u))
        return u

    def condensed_values(
        self, values: Mapping[str, np.ndarray], batch: int
    ) -> dict[str, np.ndarray]:
        """Per-sample source values of :attr:`condensed`: the given values of the sources
        it kept, and ``I_n = sum g u`` (amperes, (B,)) for every Norton current source fed
        by a swept pinned node (the others are constant and carry their DC value)."""
        kept = self._kept_names
        out = {k: np.asarray(v) for k, v in values.items() if k in kept}
        swept = np.array([s.name in values for s in self.pinned_sources], dtype=bool)
        if swept.any() and self.norton_nodes:
            fed = self._fed_columns(swept)
            if fed.size:
                u = self.pinned_voltages(values, batch)
                f = self.folded_S
                cur = (f.T @ u.T).T if sp.issparse(f) else u @ f
                for j in fed.tolist():
                    out[NORTON_I_PREFIX + self.norton_nodes[j]] = cur[:, j]
        return out

    def expand(
        self, solution: Solution, values: Mapping[str, np.ndarray], batch: int
    ) -> Solution:
        """The full circuit's solution from the condensed one.

        Args:
            solution: a :class:`~analogeq.backends.Solution` of :attr:`condensed` (B points).
            values: the full circuit's per-sample source values (as given to the solver).
            batch: B.

        Returns:
            A solution of the same class holding every node voltage of :attr:`circuit`
            (in ``circuit.nodes`` order) and every voltage-source branch current (SPICE
            convention, in element order), with ``solution``'s messages.
        """
        u = self.pinned_voltages(values, batch)
        nodes = self.nodes
        volts = np.empty((batch, len(nodes)))
        pin_pos, free_pos, free_src = self._node_maps(solution)
        volts[:, pin_pos] = u
        volts[:, free_pos] = solution.voltages_V[:, free_src]
        v_n = solution.voltages(self.norton_nodes) if self.norton_nodes else np.zeros((batch, 0))
        f = self.folded_S
        if sp.issparse(f):
            into = (f @ v_n.T).T
        else:
            into = v_n @ f.T
        rowsum = self._rowsum
        leaving = u * rowsum - into  # (B, P) current leaving each pinned node into them
        if self.pinned_laplacian_S.nnz:
            leaving = leaving + (self.pinned_laplacian_S @ u.T).T
        extra = -self.pinned_sign * leaving  # SPICE branch current of each pinned source
        vsrc, pinned_cols, kept_names, kept_cols, sense = self._source_maps(solution)
        amps = np.zeros((batch, len(vsrc)))
        amps[:, pinned_cols] = extra
        if kept_names:
            amps[:, kept_cols] += solution.currents(kept_names)
        if sense:  # amplifiers: never folded
            vsrc = vsrc + sense
            amps = np.concatenate([amps, solution.currents(sense)], axis=1)
        return type(solution)(nodes, volts, vsrc, amps, solution.messages)

    # -- cached helpers ----------------------------------------------------------------

    def _topology_cache(self) -> dict:
        """Caches that depend only on the topology: the plan's (shared by every circuit
        it folds), else this object's own."""
        if self.plan is not None:
            return self.plan._cache
        cache = self.__dict__.get("_own_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_own_cache", cache)
        return cache

    def _source_maps(self, solution) -> tuple:
        """Voltage-source names of the full circuit, the column of every pinned source
        among them, the sources the condensed solution kept and their columns, and the
        amplifiers' sense sources."""
        cache = self._topology_cache()
        key = ("sources", solution.source_names)
        maps = cache.get(key)
        if maps is None:
            vsrc = tuple(e.name for e in self.circuit.elements if isinstance(e, VoltageSource))
            src_pos = {n: k for k, n in enumerate(vsrc)}
            pinned_cols = np.array([src_pos[s.name] for s in self.pinned_sources], dtype=np.intp)
            kept = set(solution.source_names)
            kept_names = tuple(n for n in vsrc if n in kept)
            kept_cols = np.array([src_pos[n] for n in kept_names], dtype=np.intp)
            sense = tuple(a.sense_name for a in self.circuit.amplifiers)
            maps = (vsrc, pinned_cols, kept_names, kept_cols, sense)
            cache[key] = maps
        return maps

    @property
    def _kept_names(self) -> set[str]:
        cache = self._topology_cache()
        names = cache.get("kept")
        if names is None:
            names = {e.name for e in self.condensed.elements}
            cache["kept"] = names
        return names

    @property
    def _rowsum(self) -> np.ndarray:
        cache = self.__dict__.get("_rowsum_cache")
        if cache is None:
            cache = np.asarray(self.folded_S.sum(axis=1)).reshape(-1)
            object.__setattr__(self, "_rowsum_cache", cache)
        return cache

    def _fed_columns(self, swept: np.ndarray) -> np.ndarray:
        """Columns of :attr:`folded_S` with a device on a swept pinned node (conductances
        are > 0, so this depends on the topology only)."""
        cache = self._topology_cache()
        key = ("fed", swept.tobytes())
        fed = cache.get(key)
        if fed is None:
            f = self.folded_S
            sub = f[np.flatnonzero(swept)]
            nz = np.asarray((abs(sub) if sp.issparse(sub) else np.abs(sub)).sum(axis=0))
            fed = np.flatnonzero(nz.reshape(-1) > 0)
            cache[key] = fed
        return fed

    def _node_maps(self, solution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = solution.node_names
        topo = self._topology_cache()
        cache = topo.get("maps")
        if cache is None or cache[0] != key:
            full = {n: k for k, n in enumerate(self.nodes)}
            pinned = set(self.pinned_nodes)
            pin_pos = np.array([full[n] for n in self.pinned_nodes], dtype=np.intp)
            free = [n for n in self.nodes if n not in pinned]
            free_pos = np.array([full[n] for n in free], dtype=np.intp)
            free_src = solution.node_indices(free)
            cache = (key, pin_pos, free_pos, free_src)
            topo["maps"] = cache
        return cache[1], cache[2], cache[3]


def _foldable(e: Element) -> bool:
    return isinstance(e, ConductanceMatrix) or (
        isinstance(e, Conductance) and not e.name.endswith(UNFOLDED_SUFFIXES)
    )


def fold_pinned(circuit: Circuit, *, sense: bool = False) -> FoldedCircuit:
    """Fold the source-pinned nodes of ``circuit`` into Norton pairs (module docstring).

    Args:
        sense: put a 0 V source ``Vnorton_<n>`` in series with each Norton conductance
            (through node ``<n>_norton``). It changes no voltage; its branch current is the
            current of the folded devices, so SPICE's convergence test checks that current
            (to ``reltol`` and ``abstol``) as it checks the currents of the pinned sources
            in the full circuit; without it a DC sweep may stop a Newton solve once node
            voltages move less than ``reltol |V| + vntol``, about 100 times looser on
            this circuit family (BENCHMARKS.md, "Norton folding"). Solvers that do not
            take floating voltage sources (NumPy) use ``sense=False``.

    The circuit is not validated here (the solvers validate the full circuit); the
    conductance arrays are copied, so later edits of ``circuit`` do not reach the result.
    ``FoldPlan(circuit, sense=sense).apply(circuit)`` is the same; a :class:`FoldPlan`
    refolds further circuits of the same topology without redoing the per-node work.

    Returns:
        A :class:`FoldedCircuit`; when nothing can be folded, its ``condensed`` is
        ``circuit`` itself and :attr:`FoldedCircuit.folds` is False.
    """
    return FoldPlan(circuit, sense=sense).apply(circuit)


def _index(ix: np.ndarray) -> np.ndarray | slice:
    """``ix`` as a slice when it is a contiguous ascending range (a view, not a copy)."""
    if ix.size and ix[-1] - ix[0] == ix.size - 1 and (ix.size == 1 or (np.diff(ix) == 1).all()):
        return slice(int(ix[0]), int(ix[-1]) + 1)
    return ix


def _block(g: np.ndarray, ri: np.ndarray | slice, ci: np.ndarray | slice) -> np.ndarray:
    if isinstance(ri, slice) and isinstance(ci, slice):
        return g[ri, ci]
    r = np.arange(g.shape[0])[ri] if isinstance(ri, slice) else ri
    c = np.arange(g.shape[1])[ci] if isinstance(ci, slice) else ci
    return g[np.ix_(r, c)]


class FoldPlan:
    """The Norton folding of one circuit topology (:func:`fold_pinned`), to apply to any
    circuit with the same elements, names and nodes in the same order (only the values
    may differ: conductances, source DC values).

    Building the plan does the per-node work (which nodes are pinned, which devices fold,
    are dropped or kept, where every folded conductance lands); :meth:`apply` only gathers
    the values. A circuit of another topology gives wrong results: callers key plans on
    the topology (:meth:`analogeq.backends.numpy_backend.NumpyBackend` does).

    Args:
        circuit: the circuit whose topology is planned.
        sense: as for :func:`fold_pinned`.
    """

    def __init__(self, circuit: Circuit, *, sense: bool = False) -> None:
        self.sense = bool(sense)
        elements = circuit.elements
        pins = pinned_sources(circuit)
        node_list = circuit.nodes
        self.nodes = tuple(node_list)
        pinned_nodes = tuple(n for n in node_list if n in pins)
        position = {id(e): k for k, e in enumerate(elements)}
        self.pinned_nodes = pinned_nodes
        self.pinned_src = np.array([position[id(pins[n][0])] for n in pinned_nodes],
                                   dtype=np.intp)
        self.pinned_sign = np.array([pins[n][1] for n in pinned_nodes])
        p_index = {n: k for k, n in enumerate(pinned_nodes)}
        ground_p = len(pinned_nodes)  # ground as an extra pinned index (0 V, no source)
        f_nodes = [n for n in node_list if n not in pins]
        f_index = {n: k for k, n in enumerate(f_nodes)}

        fold_r: list[np.ndarray] = []  # pinned index
        fold_c: list[np.ndarray] = []  # free index
        drop_a: list[np.ndarray] = []
        drop_b: list[np.ndarray] = []
        #: where each folded / dropped value comes from: (element index, rows, cols, kind)
        #: with kind "block" (a crossbar block), "pairs" (crossbar cells (rows[i],
        #: cols[i])) or "scalar" (a conductance)
        self._fold_src: list[tuple] = []
        self._drop_src: list[tuple] = []
        #: kept elements: element index, or (element index, rows, cols, row names,
        #: col names) for the unpinned part of a crossbar
        kept: list = []

        def pidx(n: str) -> int:
            return ground_p if n == GROUND else p_index.get(n, -1)

        for k, e in enumerate(elements):
            if not _foldable(e) or not pins:
                kept.append(k)
                continue
            if isinstance(e, Conductance):
                pa, pb = pidx(e.a), pidx(e.b)
                a_pin, b_pin = e.a in pins, e.b in pins
                if a_pin and b_pin or (a_pin and e.b == GROUND) or (b_pin and e.a == GROUND):
                    drop_a.append(np.array([pa]))
                    drop_b.append(np.array([pb]))
                    self._drop_src.append((k, None, None, "scalar"))
                elif a_pin or b_pin:
                    p, n = (pa, e.b) if a_pin else (pb, e.a)
                    fold_r.append(np.array([p]))
                    fold_c.append(np.array([f_index[n]]))
                    self._fold_src.append((k, None, None, "scalar"))
                else:
                    kept.append(k)
                continue
            # ConductanceMatrix: split rows and columns into pinned / ground / free
            r_p = np.array([pidx(r) for r in e.rows], dtype=np.intp)
            c_p = np.array([pidx(c) for c in e.cols], dtype=np.intp)
            r_free = np.array([r != GROUND and r not in pins for r in e.rows], dtype=bool)
            c_free = np.array([c != GROUND and c not in pins for c in e.cols], dtype=bool)
            r_pin = np.array([r in pins for r in e.rows], dtype=bool)
            c_pin = np.array([c in pins for c in e.cols], dtype=bool)
            if not (r_pin.any() or c_pin.any()):
                kept.append(k)
                continue
            r_f = np.array([f_index.get(r, -1) for r in e.rows], dtype=np.intp)
            c_f = np.array([f_index.get(c, -1) for c in e.cols], dtype=np.intp)
            # pinned rows x free columns, free rows x pinned columns: folded
            ri, ci = np.flatnonzero(r_pin), np.flatnonzero(c_free)
            if ri.size and ci.size:
                fold_r.append(np.repeat(r_p[ri], ci.size))
                fold_c.append(np.tile(c_f[ci], ri.size))
                self._fold_src.append((k, _index(ri), _index(ci), "block"))
            ri, ci = np.flatnonzero(r_free), np.flatnonzero(c_pin)
            if ri.size and ci.size:
                fold_r.append(np.tile(c_p[ci], ri.size))
                fold_c.append(np.repeat(r_f[ri], ci.size))
                self._fold_src.append((k, _index(ri), _index(ci), "block"))
            # pinned (or ground) on both sides, not ground on both: dropped
            both = np.outer(~r_free, ~c_free) & (r_pin[:, None] | c_pin[None, :])
            if both.any():
                ii, jj = np.nonzero(both)
                drop_a.append(r_p[ii])
                drop_b.append(c_p[jj])
                self._drop_src.append((k, ii, jj, "pairs"))
            # pinned on neither side: kept as a smaller crossbar (same cell names)
            rk, ck = np.flatnonzero(~r_pin), np.flatnonzero(~c_pin)
            if rk.size and ck.size:
                kept.append((k, _index(rk), _index(ck), tuple(e.rows[i] for i in rk),
                             tuple(e.cols[j] for j in ck)))

        self.n_folded = int(sum(a.size for a in fold_r))
        self.n_dropped = int(sum(a.size for a in drop_a))
        n_p = len(pinned_nodes)
        self.folds = self.n_folded + self.n_dropped > 0
        self.norton_nodes: tuple[str, ...] = ()
        self._cache: dict = {}
        if not self.folds:
            return

        # Norton pairs of every free node touched by a folded device
        self._n_used = 0
        self._dense = True
        if self.n_folded:
            rr, cc = np.concatenate(fold_r), np.concatenate(fold_c)
            used = np.unique(cc)
            col = np.full(len(f_nodes), -1, dtype=np.intp)
            col[used] = np.arange(used.size)
            self._rr, self._cc = rr, col[cc]
            self._n_used = used.size
            self._dense = n_p * used.size <= _DENSE_CELLS
            lin = rr.astype(np.int64) * used.size + self._cc
            # every (pinned, free) pair once: the dense matrix is a plain scatter
            self._scatter = lin if (self._dense and np.unique(lin).size == lin.size) else None
            self.norton_nodes = tuple(f_nodes[k] for k in used.tolist())
        if self.n_dropped:
            self._da, self._db = np.concatenate(drop_a), np.concatenate(drop_b)

        # a pinned source stays while a kept element (other than itself) touches its node
        pinned_src = {pins[n][0].name: n for n in pinned_nodes}
        touched: set[str] = set()
        for item in kept:
            k = item if isinstance(item, int) else item[0]
            e = elements[k]
            if isinstance(item, int):
                if e.name not in pinned_src or not isinstance(e, VoltageSource):
                    touched.update(e.nodes)
            else:
                touched.update(item[3])
                touched.update(item[4])
        self._kept = [
            item for item in kept
            if not isinstance(item, int)
            or not (isinstance(elements[item], VoltageSource) and elements[item].name in pinned_src)
            or pinned_src[elements[item].name] in touched
        ]

        names = {e.name.lower() for e in elements}
        for n in self.norton_nodes:
            rn, inn = NORTON_G_PREFIX + n, NORTON_I_PREFIX + n
            if {rn.lower(), inn.lower(), (NORTON_V_PREFIX + n).lower()} & names:
                raise InvalidValueError(
                    f"cannot fold circuit {circuit.title!r}: it already has an element named "
                    f"{rn!r} or {inn!r}"
                )

    def apply(self, circuit: Circuit) -> FoldedCircuit:
        """Fold ``circuit`` (the planned topology, any values): see :func:`fold_pinned`."""
        elements = circuit.elements
        pinned_sources_ = tuple(elements[k] for k in self.pinned_src.tolist())
        n_p = len(self.pinned_nodes)
        if not self.folds:
            return FoldedCircuit(
                circuit, circuit, self.pinned_nodes, pinned_sources_, self.pinned_sign.copy(),
                (), np.zeros((n_p, 0)), sp.csr_matrix((n_p, n_p)), 0, 0, self.nodes, self,
            )

        def gather(src: list[tuple]) -> np.ndarray:
            parts = []
            for k, ri, ci, kind in src:
                e = elements[k]
                if kind == "scalar":
                    parts.append(np.array([float(e.g_S)]))
                    continue
                g = np.asarray(e.g_S, dtype=np.float64)
                parts.append(g[ri, ci] if kind == "pairs" else _block(g, ri, ci).reshape(-1))
            return np.concatenate(parts)

        if self.n_folded:
            gg = gather(self._fold_src)
            if self._scatter is not None:
                folded = np.zeros((n_p, self._n_used))
                folded.reshape(-1)[self._scatter] = gg
            else:
                folded = sp.coo_matrix((gg, (self._rr, self._cc)),
                                       shape=(n_p, self._n_used)).tocsr()
                if self._dense:
                    folded = folded.toarray()
        else:
            folded = np.zeros((n_p, 0))
        if self.n_dropped:
            a, b, gd = self._da, self._db, gather(self._drop_src)
            lap = sp.coo_matrix(
                (np.concatenate([gd, gd, -gd, -gd]),
                 (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]))),
                shape=(n_p + 1, n_p + 1),
            ).tocsr()[:n_p, :n_p]
        else:
            lap = sp.csr_matrix((n_p, n_p))

        out: list[Element] = []
        for item in self._kept:
            if isinstance(item, int):
                out.append(elements[item])
            else:
                k, rk, ck, rows, cols = item
                e = elements[k]
                out.append(ConductanceMatrix(
                    e.name, rows, cols, _block(np.asarray(e.g_S, dtype=np.float64),
                                               rk, ck).copy()))
        g_n = np.asarray(folded.sum(axis=0)).reshape(-1)
        u_dc = np.array([sign * src.dc_V for src, sign in
                         zip(pinned_sources_, self.pinned_sign.tolist(), strict=True)])
        i_dc = u_dc @ folded if not sp.issparse(folded) else folded.T @ u_dc
        for n, gv, iv in zip(self.norton_nodes, g_n.tolist(), np.asarray(i_dc).tolist(),
                             strict=True):
            rn, inn = NORTON_G_PREFIX + n, NORTON_I_PREFIX + n
            if self.sense:  # n -> Vnorton_<n> (0 V) -> n_norton -> Rnorton_<n> -> ground
                m = n + NORTON_NODE_SUFFIX
                out.append(VoltageSource(NORTON_V_PREFIX + n, n, m, 0.0))
                out.append(Conductance(rn, m, GROUND, gv))
            else:
                out.append(Conductance(rn, n, GROUND, gv))
            out.append(CurrentSource(inn, GROUND, n, iv))
        condensed = Circuit(circuit.title, out, dict(circuit.models))
        return FoldedCircuit(
            circuit=circuit,
            condensed=condensed,
            pinned_nodes=self.pinned_nodes,
            pinned_sources=pinned_sources_,
            pinned_sign=self.pinned_sign.copy(),
            norton_nodes=self.norton_nodes,
            folded_S=folded,
            pinned_laplacian_S=lap,
            n_folded=self.n_folded,
            n_dropped=self.n_dropped,
            nodes=self.nodes,
            plan=self,
        )
