"""Graph helpers shared by every consumer of the IR: disjoint sets, the conductance
Laplacian, and which nodes are free (not pinned to ground by voltage sources alone)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import scipy.sparse as sp

from .elements import GROUND, Circuit, Conductance, ConductanceMatrix, VoltageSource

__all__ = ["UnionFind", "conductance_laplacian", "free_nodes"]


class UnionFind:
    """Disjoint sets over hashable items (path halving; unseen items are singletons)."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        """The representative of ``x``'s set."""
        parent = self._parent
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(self, a: Hashable, b: Hashable) -> bool:
        """Join the sets of ``a`` and ``b``; False if they were already one set."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self._parent[ra] = rb
        return True


def free_nodes(circuit: Circuit) -> list[str]:
    """Nodes not tied to ground through voltage sources alone (their voltage is not
    imposed by a source), in :attr:`Circuit.nodes` order."""
    sets = UnionFind()
    for e in circuit.of_type(VoltageSource):
        sets.union(e.plus, e.minus)
    ground = sets.find(GROUND)
    return [n for n in circuit.nodes if sets.find(n) != ground]


def conductance_laplacian(circuit: Circuit, index: Mapping[str, int], size: int) -> sp.csr_matrix:
    """(size, size) conductance Laplacian in siemens of the circuit's linear conductances
    (crossbars and single conductances): ``L[a, a] += g``, ``L[a, b] -= g`` per element.

    Args:
        index: node name -> row; nodes it does not list (e.g. pinned nodes the caller
            eliminates) are left out of the matrix, their conductances still count on the
            diagonal of the nodes they join.
        size: matrix size (at least ``max(index.values()) + 1``).
    """
    rows, cols, vals = [], [], []

    def stamp(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> None:
        ok_a, ok_b = a >= 0, b >= 0
        both = ok_a & ok_b
        rows.extend([a[ok_a], b[ok_b], a[both], b[both]])
        cols.extend([a[ok_a], b[ok_b], b[both], a[both]])
        vals.extend([g[ok_a], g[ok_b], -g[both], -g[both]])

    for e in circuit.elements:
        if isinstance(e, ConductanceMatrix):
            ri = np.array([index.get(r, -1) for r in e.rows], dtype=np.intp)
            ci = np.array([index.get(c, -1) for c in e.cols], dtype=np.intp)
            stamp(np.repeat(ri, len(ci)), np.tile(ci, len(ri)),
                  np.asarray(e.g_S, dtype=np.float64).reshape(-1))
        elif isinstance(e, Conductance):
            stamp(np.array([index.get(e.a, -1)]), np.array([index.get(e.b, -1)]),
                  np.array([float(e.g_S)]))
    if not rows:
        return sp.csr_matrix((size, size))
    return sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsr()
