"""Crossbar tiles: split conductance matrices onto tiles of bounded size, with wire resistance.

A physical crossbar tile holds at most ``rows x cols`` memristors. :func:`map_to_tiles`
splits a :class:`~analogeq.circuit.ConductanceMatrix` larger than that into a grid of row
blocks x column blocks (tile ``(a, b)`` holds rows ``a*rows ...`` and columns
``b*cols ...``); :func:`wire_circuit` rebuilds a circuit with every crossbar on tiles.

Without wire resistance (``wire_resistance_ohm == 0``) each tile is a
:class:`~analogeq.circuit.ConductanceMatrix` between the original row and column nodes:
the circuit is electrically identical to the untiled one (the tiles' ``g_S`` are views of
the original arrays, so in-place edits still reach the netlist).

With wire resistance ``R_w > 0`` every tile gets explicit row and column wires, one wire
segment of ``R_w`` ohm per cell on each (a :class:`~analogeq.circuit.Conductance` of
``1/R_w`` siemens). Layout of one tile of m x n cells (local indices i, j), the standard
worst-case IR-drop layout:

* row ``i``'s original node (its driver) enters at the **column-0 edge** (left) and the row
  wire runs to the right: segment ``j`` joins the row-wire node of cell ``(i, j-1)`` (or the
  driver for ``j = 0``) to the row-wire node of cell ``(i, j)``;
* each memristor ``g_S[i, j]`` joins the row-wire node of cell ``(i, j)`` to the
  column-wire node of cell ``(i, j)``;
* column ``j``'s wire runs **down** to the **last-row edge** (bottom), where it meets the
  column's original node: segment ``i`` joins the column-wire node of cell ``(i, j)`` to
  that of cell ``(i+1, j)`` (or to the original column node for ``i = m-1``).

So every row and every column wire has one segment per cell (2 m n segments per tile),
and the cell farthest from both edges, ``(0, n-1)``, sees ``n`` row segments and ``m``
column segments in series::

      driver row 0 --R_w--o--R_w--o--R_w--o        o = row-wire node  {tile}_r{i}c{j}_row
                          |       |       |        | = memristor g_S[i, j]
                          g       g       g        x = column-wire node {tile}_r{i}c{j}_col
                          x       x       x
                          R_w     R_w     R_w
      driver row 1 --R_w--o--R_w--o--R_w--o
                          |       |       |
                          g       g       g
                          x       x       x
                          R_w     R_w     R_w
                          |       |       |
                        col 0   col 1   col 2      (original column nodes, bottom edge)

(each column-wire node ``x`` of row 0 connects through ``R_w`` to the ``x`` below it).
Tile ``t`` of matrix ``R0`` is named ``R0_t{a}_{b}`` (row block a, column block b); its
nodes are ``{tile}_r{i:03d}c{j:03d}_row`` / ``_col`` and its elements ``{tile}_r{i}c{j}``
(memristor), ``..._rw`` (row segment entering cell (i, j)) and ``..._cw`` (column segment
leaving cell (i, j)), with i, j local to the tile. Every wire node reaches ground through
the wires to the original nodes, so the circuit validates whenever the original does.

Different tiles of one matrix share the original row and column nodes (the drivers and
column outputs are common nets); wires of different tiles are separate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..circuit import (
    MAX_CONDUCTANCE_RATIO,
    MAX_CONDUCTANCE_S,
    Circuit,
    Conductance,
    ConductanceMatrix,
    Element,
)
from ..errors import InvalidValueError
from ..params import TileConfig

__all__ = [
    "TileConfig",
    "TileAssignment",
    "map_to_tiles",
    "describe_mapping",
    "wire_circuit",
    "cell_nodes",
    "num_wire_segments",
    "tile_ports",
    "tile_elements",
]


@dataclass(frozen=True)
class TileAssignment:
    """Where one tile sits in its matrix.

    Attributes:
        index: tile number within the matrix, row-major over the tile grid (0-based).
        name: tile name, ``{matrix}_t{a}_{b}`` (a legal SPICE ``R`` name prefix).
        matrix: name of the mapped :class:`~analogeq.circuit.ConductanceMatrix`.
        grid: (row block a, column block b) of the tile in the tile grid.
        rows: indices of the matrix rows placed on this tile.
        cols: indices of the matrix columns placed on this tile.
        capacity: (rows, cols) of the tile (from :class:`TileConfig`).
    """

    index: int
    name: str
    matrix: str
    grid: tuple[int, int]
    rows: range
    cols: range
    capacity: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(used rows, used cols)."""
        return (len(self.rows), len(self.cols))

    @property
    def cells(self) -> int:
        """Number of memristors used on this tile."""
        return len(self.rows) * len(self.cols)

    @property
    def utilisation(self) -> float:
        """Fraction of the tile's cells that are used (0..1)."""
        return self.cells / (self.capacity[0] * self.capacity[1])

    @property
    def slices(self) -> tuple[slice, slice]:
        """(row slice, col slice) selecting this tile's block of the matrix."""
        return (
            slice(self.rows.start, self.rows.stop),
            slice(self.cols.start, self.cols.stop),
        )


def map_to_tiles(matrix: ConductanceMatrix, tile: TileConfig) -> list[TileAssignment]:
    """Split ``matrix`` into ceil(R / tile.rows) x ceil(C / tile.cols) tiles, row-major.

    Every cell of the matrix lands on exactly one tile; tiles in the last row/column block
    may be partly used.
    """
    n_rows, n_cols = len(matrix.rows), len(matrix.cols)
    if n_rows == 0 or n_cols == 0:
        return []
    n_rb = -(-n_rows // tile.rows)
    n_cb = -(-n_cols // tile.cols)
    out = []
    for a in range(n_rb):
        for b in range(n_cb):
            out.append(
                TileAssignment(
                    index=len(out),
                    name=f"{matrix.name}_t{a}_{b}",
                    matrix=matrix.name,
                    grid=(a, b),
                    rows=range(a * tile.rows, min((a + 1) * tile.rows, n_rows)),
                    cols=range(b * tile.cols, min((b + 1) * tile.cols, n_cols)),
                    capacity=(tile.rows, tile.cols),
                )
            )
    return out


def _matrices(source: Circuit | ConductanceMatrix | Iterable[ConductanceMatrix]):
    if isinstance(source, ConductanceMatrix):
        return [source]
    if isinstance(source, Circuit):
        return list(source.of_type(ConductanceMatrix))
    return list(source)


def describe_mapping(
    source: Circuit | ConductanceMatrix | Iterable[ConductanceMatrix],
    tile: TileConfig,
    *,
    converters: Mapping[str, tuple[int, int]] | None = None,
) -> str:
    """A readable table of the tiles of every crossbar in ``source``.

    One line per tile: tile name, matrix, grid position, matrix row and column ranges
    (half-open), cells used and utilisation; then per-matrix and total tile counts.

    Args:
        converters: tile name -> (DAC channels, ADC channels) on that tile (e.g.
            :meth:`~analogeq.blocks.ResistiveBlock.tile_converters`); adds a DAC and an
            ADC column and their totals, and the header states the tile's converters.
    """
    mats = _matrices(source)
    conv = dict(converters) if converters is not None else None
    header = (
        f"{'tile':<16} {'matrix':<8} {'grid':>6} {'rows':>11} {'cols':>11} {'used':>9} {'util':>7}"
    )
    if conv is not None:
        header += f" {'DACs':>5} {'ADCs':>5}"
    lines = [
        f"tile {tile.rows} x {tile.cols} cells, wire segment "
        f"{float(tile.wire_resistance_ohm):g} ohm",
    ]
    if tile.wire_resistance_ohm > 0:
        lines.append("rows are wire nodes, not source nodes: the solvers keep these crossbars "
                     "in full form (no Norton folding)")
    if conv is not None or tile.has_converters:
        lines.append(f"DAC: {TileConfig.describe_converter(tile.dac)}; "
                     f"ADC: {TileConfig.describe_converter(tile.adc)}")
    lines += [header, "-" * len(header)]
    total_tiles = total_cells = total_dac = total_adc = 0
    per_matrix = []
    for m in mats:
        assignments = map_to_tiles(m, tile)
        for t in assignments:
            r, c = t.shape
            line = (
                f"{t.name:<16} {m.name:<8} {f'{t.grid[0]},{t.grid[1]}':>6} "
                f"{f'{t.rows.start}:{t.rows.stop}':>11} {f'{t.cols.start}:{t.cols.stop}':>11} "
                f"{f'{r}x{c}':>9} {t.utilisation:>6.1%}"
            )
            if conv is not None:
                n_dac, n_adc = conv.get(t.name, (0, 0))
                total_dac += n_dac
                total_adc += n_adc
                line += f" {n_dac:>5} {n_adc:>5}"
            lines.append(line)
        cells = len(m.rows) * len(m.cols)
        n_rb = len({t.grid[0] for t in assignments})
        n_cb = len({t.grid[1] for t in assignments})
        per_matrix.append(
            f"{m.name}: {len(m.rows)} x {len(m.cols)} -> {len(assignments)} tile(s) "
            f"({n_rb} x {n_cb}), utilisation "
            f"{cells / max(len(assignments) * tile.cells, 1):.1%}"
        )
        total_tiles += len(assignments)
        total_cells += cells
    lines.append("-" * len(header))
    lines.extend(per_matrix)
    lines.append(
        f"total: {total_tiles} tile(s), {total_cells} cells used of "
        f"{total_tiles * tile.cells} ({total_cells / max(total_tiles * tile.cells, 1):.1%})"
    )
    if conv is not None:
        lines.append(f"converters: {total_dac} DAC(s), {total_adc} ADC(s) "
                     "(one conversion each per sample)")
    return "\n".join(lines)


def _width(t: TileAssignment) -> int:
    return max(3, len(str(max(t.shape) - 1)))


def _cell(t: TileAssignment, i: int, j: int) -> str:
    w = _width(t)
    return f"{t.name}_r{i:0{w}d}c{j:0{w}d}"


def num_wire_segments(
    source: Circuit | ConductanceMatrix | Iterable[ConductanceMatrix], tile: TileConfig
) -> int:
    """Number of wire-segment resistors :func:`wire_circuit` adds (0 for ideal wires):
    one row and one column segment per used cell."""
    if tile.wire_resistance_ohm == 0:
        return 0
    return 2 * sum(len(m.rows) * len(m.cols) for m in _matrices(source))


def _wired_tile(m: ConductanceMatrix, g: np.ndarray, t: TileAssignment, g_w: float):
    """Elements of one tile with explicit wires (see the module docstring)."""
    n_r, n_c = t.shape
    block = g[t.slices]
    cell = [[_cell(t, i, j) for j in range(n_c)] for i in range(n_r)]
    row_segs, cells, col_segs = [], [], []
    for i in range(n_r):
        prev = m.rows[t.rows[i]]
        for j in range(n_c):
            node = cell[i][j] + "_row"
            row_segs.append(Conductance(cell[i][j] + "_rw", prev, node, g_w))
            prev = node
    for i in range(n_r):
        for j in range(n_c):
            c = cell[i][j]
            cells.append(Conductance(c, c + "_row", c + "_col", float(block[i, j])))
    for j in range(n_c):
        for i in range(n_r):
            nxt = cell[i + 1][j] + "_col" if i + 1 < n_r else m.cols[t.cols[j]]
            col_segs.append(Conductance(cell[i][j] + "_cw", cell[i][j] + "_col", nxt, g_w))
    return [*row_segs, *cells, *col_segs]


def _check_wire_range(tile: TileConfig, matrix: str, g: np.ndarray) -> None:
    """Refuse a wire resistance whose conductance is too far above the devices' for a
    double-precision solve (see ``MAX_CONDUCTANCE_RATIO`` in :mod:`analogeq.circuit`)."""
    g_w = tile.wire_conductance_S
    g_lo = float(np.min(g))
    if not g_lo > 0:
        return  # a bad device value: validate() names the cell
    ratio = g_w / g_lo
    if g_w > MAX_CONDUCTANCE_S or not ratio <= MAX_CONDUCTANCE_RATIO:
        lowest = max(1.0 / MAX_CONDUCTANCE_S, 1.0 / (MAX_CONDUCTANCE_RATIO * g_lo))
        raise InvalidValueError(
            f"wire_resistance_ohm = {tile.wire_resistance_ohm!r} ohm on the tiles of "
            f"{matrix!r}: a wire conductance of {g_w:.3g} S is {ratio:.3g} times its smallest "
            f"device ({g_lo:.3g} S), more than {MAX_CONDUCTANCE_RATIO:g}: a double-precision "
            "solve (ngspice's or the NumPy backend's) cannot resolve the device currents "
            f"next to the wire currents. Use at least {lowest:.3g} ohm (or 0 for ideal wires)"
        )


def wire_circuit(circuit: Circuit, tile: TileConfig) -> Circuit:
    """A new circuit with every :class:`~analogeq.circuit.ConductanceMatrix` of ``circuit``
    placed on tiles (the input circuit and its arrays are not modified).

    With ``tile.wire_resistance_ohm == 0`` each tile is a ``ConductanceMatrix`` named after
    the tile between the original nodes (electrically identical circuit). Otherwise each
    tile gets explicit row and column wires (module docstring); the memristor values are
    copied at call time.

    Raises:
        InvalidValueError: a new node or element name would collide with an existing one.
    """
    wired = tile.wire_resistance_ohm > 0
    g_w = tile.wire_conductance_S
    existing_nodes = {n.lower() for n in circuit.nodes}
    existing_names = {e.name.lower() for e in circuit.elements}
    elements: list[Element] = []
    for e in circuit.elements:
        if not isinstance(e, ConductanceMatrix):
            elements.append(e)
            continue
        g = np.asarray(e.g_S, dtype=np.float64)
        if g.shape != (len(e.rows), len(e.cols)):
            raise InvalidValueError(
                f"conductance matrix {e.name!r}: g_S has shape {g.shape}, expected "
                f"({len(e.rows)}, {len(e.cols)})"
            )
        if wired and g.size:
            _check_wire_range(tile, e.name, g)
        for t in map_to_tiles(e, tile):
            if t.name.lower() in existing_names:
                raise InvalidValueError(
                    f"tile name {t.name!r} collides with an element of {circuit.title!r}"
                )
            if not wired:
                rows = tuple(e.rows[i] for i in t.rows)
                cols = tuple(e.cols[j] for j in t.cols)
                elements.append(ConductanceMatrix(t.name, rows, cols, g[t.slices]))
                continue
            new = _wired_tile(e, g, t, g_w)
            # the memristors' two ends are exactly the new wire nodes
            clash = [
                n
                for x in new[t.cells : 2 * t.cells]
                for n in x.nodes
                if n.lower() in existing_nodes
            ]
            if clash:
                raise InvalidValueError(
                    f"wire node {clash[0]!r} of tile {t.name!r} collides with a node of "
                    f"{circuit.title!r}"
                )
            elements.extend(new)
    suffix = f" [tiles {tile.rows}x{tile.cols}, wire {float(tile.wire_resistance_ohm):g} ohm]"
    return Circuit(title=circuit.title + suffix, elements=elements, models=dict(circuit.models))


def cell_nodes(matrix: ConductanceMatrix, tile: TileConfig) -> tuple[np.ndarray, np.ndarray]:
    """Node names across which each memristor of ``matrix`` sits once wired.

    Returns:
        (row_side, col_side): object arrays of the matrix's shape; ``g_S[i, j]`` is between
        ``row_side[i, j]`` and ``col_side[i, j]``. For ideal wires these are simply
        ``rows[i]`` and ``cols[j]``. Use them to measure the voltage across every device
        (e.g. for EP gradients on a wired circuit).
    """
    shape = (len(matrix.rows), len(matrix.cols))
    row_side = np.empty(shape, dtype=object)
    col_side = np.empty(shape, dtype=object)
    if tile.wire_resistance_ohm == 0:
        row_side[:] = np.asarray(matrix.rows, dtype=object)[:, None]
        col_side[:] = np.asarray(matrix.cols, dtype=object)[None, :]
        return row_side, col_side
    for t in map_to_tiles(matrix, tile):
        for i, gi in enumerate(t.rows):
            for j, gj in enumerate(t.cols):
                c = _cell(t, i, j)
                row_side[gi, gj] = c + "_row"
                col_side[gi, gj] = c + "_col"
    return row_side, col_side


def tile_ports(matrix: ConductanceMatrix, t: TileAssignment) -> tuple[list[str], list[str]]:
    """The nets through which tile ``t`` of ``matrix`` connects to the rest of the circuit.

    Returns:
        (row nodes, column nodes): the original nodes of the matrix rows ``t.rows`` and
        columns ``t.cols``, in tile order. These nets are shared with the other tiles of the
        same row block (rows) or column block (columns) and with every other element of
        the circuit on them; a tile's wire nodes are its own.
    """
    return [matrix.rows[i] for i in t.rows], [matrix.cols[j] for j in t.cols]


def tile_elements(matrix: ConductanceMatrix, t: TileAssignment, tile: TileConfig) -> list[Element]:
    """Exactly the elements :func:`wire_circuit` places for tile ``t`` of ``matrix``.

    With ideal wires: one :class:`~analogeq.circuit.ConductanceMatrix` named ``t.name``
    between the tile's row and column nodes (its ``g_S`` a view of ``matrix.g_S``). With
    wire resistance: the ``2 * t.cells`` wire segments and ``t.cells`` memristors of the
    module docstring's layout (conductances in siemens, copied at call time), whose only
    nodes outside the tile are those of :func:`tile_ports`.
    """
    g = np.asarray(matrix.g_S, dtype=np.float64)
    if g.shape != (len(matrix.rows), len(matrix.cols)):
        raise InvalidValueError(
            f"conductance matrix {matrix.name!r}: g_S has shape {g.shape}, expected "
            f"({len(matrix.rows)}, {len(matrix.cols)})"
        )
    if tile.wire_resistance_ohm == 0:
        rows, cols = tile_ports(matrix, t)
        return [ConductanceMatrix(t.name, tuple(rows), tuple(cols), g[t.slices])]
    return _wired_tile(matrix, g, t, tile.wire_conductance_S)
