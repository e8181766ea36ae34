"""Standalone netlists of a model's analog blocks, for inspection and for plain ngspice.

``export_netlists`` writes one ``<block>.cir`` per analog block plus a ``README``. Each
netlist carries the block's conductances (initial, or trained when a checkpoint is given)
and, as its DC inputs, what the block sees for one test sample (the sample is pushed
through the digital front-end and the DAC). ``ngspice -b <block>.cir`` prints the block's
outputs ``v(out<k>p,out<k>n)`` with 15 digits.

Blocks placed on crossbar tiles (a :class:`~analogeq.tiles.TileConfig`: config keys
``tile_rows``, ``tile_cols``, ``wire_resistance_ohm``) also get one netlist per tile,
``<block>_tiles/<tile>.cir`` (tile names ``R<k>_t<a>_<b>`` from :mod:`analogeq.tiles`). A
tile netlist holds exactly that tile's elements: its memristors and, with wire resistance,
its row and column wire segments. Its *ports* are the block's nets the tile shares with
the rest of the block (the original row and column nodes of its crossbar block); each is
held by a DC source ``Vport_<net>`` at the voltage the in-process free-phase solution of
the whole block gives that net for the exported sample. ``ngspice -b`` on it prints the
tile's wire-node voltages (volts; none with ideal wires) and ``-i(Vport_<net>)``, the
current each port delivers into the tile (amperes). Since every tile's ports are held at
the block's own solution, the wire-node voltages equal the whole block's, and at every
shared net the tiles' port currents balance the currents of the block's other elements
there (Kirchhoff's current law); ``tests/test_export.py`` checks both with ngspice.
"""

from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..blocks import ResistiveBlock
from ..circuit import (
    GROUND,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Element,
    VoltageSource,
    fold_pinned,
)
from ..errors import ExportError
from ..hardware.tiles import describe_mapping, map_to_tiles, tile_elements, tile_ports
from ..model import AnalogLayer
from ..spice import to_spice
from .config import build_model, load_config
from .datasets import load_dataset

__all__ = [
    "ExportError",
    "ExportedNetlist",
    "ExportedTile",
    "export_netlists",
    "write_block_netlists",
    "port_source_name",
    "REFERENCE_CONFIGS",
    "write_reference_netlists",
]

#: Example configs whose netlists are kept in ``netlists/`` (small, bundled data only).
#: ``digits_realistic`` (the example with tiles) is left out: its tile netlists run to
#: thousands of lines each (64 x 32 cells plus 2 wire segments per cell).
REFERENCE_CONFIGS = ("digits_ffebm", "splitting")


@dataclass(frozen=True)
class ExportedTile:
    """One written tile netlist and what the in-process solution of its block predicts.

    Attributes:
        name: tile name ``R<k>_t<a>_<b>`` (:func:`~analogeq.tiles.map_to_tiles`).
        block: name of the block the tile belongs to.
        matrix: crossbar the tile is cut from; ``R<k>`` is ``block.conductances[k]``
            (rows: the nodes of layer k then the two bias rails; columns: layer k+1).
        path: the written ``.cir`` file.
        grid: (row block a, column block b) of the tile.
        rows: matrix row indices on the tile (half-open range).
        cols: matrix column indices on the tile.
        ports: (P,) the block nets the tile connects to: its row nodes, then its column
            nodes; port ``n`` is driven by the source :func:`port_source_name` ``(n)``.
        port_voltages_V: (P,) the voltages the port sources are set to: the block's
            in-process free-phase solution for the exported sample (volts).
        port_currents_A: (P,) current each port delivers into the tile according to the
            in-process solution (amperes; what ``-i(Vport_<net>)`` should print).
        internal_nodes: (N,) the tile's wire nodes (empty with ideal wires).
        internal_voltages_V: (N,) their in-process voltages (volts; what ``v(<node>)``
            should print).
    """

    name: str
    block: str
    matrix: str
    path: Path
    grid: tuple[int, int]
    rows: range
    cols: range
    ports: tuple[str, ...]
    port_voltages_V: np.ndarray
    port_currents_A: np.ndarray
    internal_nodes: tuple[str, ...]
    internal_voltages_V: np.ndarray


@dataclass(frozen=True)
class ExportedNetlist:
    """One written block netlist: its path, the block's inputs (volts), the outputs the
    in-process solver computed for them (volts) and, for a block on tiles, its tile
    netlists (empty tuple otherwise)."""

    block: str
    path: Path
    inputs_V: np.ndarray
    outputs_V: np.ndarray
    tiles: tuple[ExportedTile, ...] = ()


def port_source_name(node: str) -> str:
    """Name of the DC source that holds port net ``node`` in a tile netlist."""
    return f"Vport_{node}"


def _block_inputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Forward one batch in eval mode, recording each analog block's input vector."""
    seen: dict[str, np.ndarray] = {}
    h = x
    for layer in model.layers:
        if isinstance(layer, AnalogLayer):
            seen[layer.block.name] = np.array(h, dtype=np.float64)
        h = layer.forward(h, train=False)
    return seen


def _snapshot(block: ResistiveBlock) -> ResistiveBlock:
    """A shallow copy of ``block`` whose every solve and netlist sees one and the same read
    of its conductances (with read noise, each solve of ``block`` itself draws anew, so the
    written netlist and the in-process outputs would see different conductances)."""
    snap = copy.copy(block)
    snap.conductances = [np.array(g, dtype=np.float64) for g in block.read_conductances()]
    snap.devices = None
    return snap


def _port_currents(elements: list[Element], ports: list[str], v: dict[str, float]) -> np.ndarray:
    """Current (amperes) each port delivers into ``elements`` at node voltages ``v``."""
    into = dict.fromkeys(ports, 0.0)
    for e in elements:
        if isinstance(e, ConductanceMatrix):
            vr = np.array([v[n] for n in e.rows])
            vc = np.array([v[n] for n in e.cols])
            i = np.asarray(e.g_S, dtype=np.float64) * (vr[:, None] - vc[None, :])
            for n, x in zip(e.rows, i.sum(axis=1), strict=True):
                if n in into:
                    into[n] += float(x)
            for n, x in zip(e.cols, i.sum(axis=0), strict=True):
                if n in into:
                    into[n] -= float(x)
        elif isinstance(e, Conductance):
            i_ab = e.g_S * (v[e.a] - v[e.b])
            if e.a in into:
                into[e.a] += i_ab
            if e.b in into:
                into[e.b] -= i_ab
        else:  # pragma: no cover - tiles hold conductances only
            raise TypeError(f"unexpected tile element {e!r}")
    return np.array([into[p] for p in ports])


def _span(nodes: list[str]) -> str:
    return nodes[0] if len(nodes) == 1 else f"{nodes[0]} .. {nodes[-1]} ({len(nodes)} nets)"


def _tile_header(block: ResistiveBlock, m: ConductanceMatrix, t, rows: list[str],
                 cols: list[str], run: str, inputs_note: str, backend: str) -> str:
    tile = block.tile
    assert tile is not None
    k = int(m.name[1:])
    r_w = float(tile.wire_resistance_ohm)
    lines = [
        f"Tile {t.name} of resistive block '{block.name}' (analogeq), one part of "
        f"{block.name}.cir: crossbar {m.name} = conductances[{k}] of the block "
        f"({len(m.rows)} x {len(m.cols)}; rows: layer {k} nodes then the bias rails, "
        f"columns: layer {k + 1} nodes).",
        f"This tile: grid position ({t.grid[0]}, {t.grid[1]}), matrix rows "
        f"{t.rows.start}:{t.rows.stop} and columns {t.cols.start}:{t.cols.stop} (half-open), "
        f"{t.shape[0]} x {t.shape[1]} = {t.cells} memristors on a {tile.rows} x {tile.cols} "
        "tile.",
        f"Row nets (ports): {_span(rows)}; column nets (ports): {_span(cols)}.",
    ]
    if r_w > 0:
        lines += [
            f"Wires: one {r_w:g} ohm segment per cell on every row and column wire. Row i's "
            "port enters at the column-0 edge; column j's wire runs down to its port at the "
            "last-row edge.",
            f"Nodes: {t.name}_r<i>c<j>_row / _col are the row-wire and column-wire nodes of "
            "cell (i, j) (i, j local to the tile: matrix row "
            f"{t.rows.start}+i, column {t.cols.start}+j).",
            f"Elements: {t.name}_r<i>c<j> is the memristor of cell (i, j), between its row- "
            f"and column-wire nodes, R = 1/conductances[{k}][{t.rows.start}+i, "
            f"{t.cols.start}+j]; ..._rw is the row segment entering cell (i, j) from the left, "
            "..._cw the column segment leaving it downwards.",
        ]
    else:
        lines += [
            "Wires: ideal (0 ohm): each memristor joins its row net and its column net "
            "directly; the tile has no internal nodes.",
            f"Elements: {t.name}_<row net>_<column net>, R = 1/g of that cell "
            f"(conductances[{k}][row, column]).",
        ]
    lines += [
        f"Ports: every row and column net is held by a DC source Vport_<net> at the voltage "
        f"the in-process free-phase solution ({backend} solver) of the whole block "
        f"'{block.name}' gives that net for {inputs_note}; these sources stand for the "
        "rest of the block (other tiles, diodes, "
        + ("amplifiers, " if block.amplified else "")
        + "input and rail sources), so this tile sits "
        "at exactly its "
        "operating point inside the block.",
        "Units: volts, ohms (R = 1/g), amperes.",
        "Prints: " + ("v(<wire node>) for every internal node in volts, then " if r_w > 0
                      else "")
        + "-i(Vport_<net>), the current in amperes each port delivers into the tile "
        "(SPICE's i(V) flows from + through the source, hence the minus sign). At each "
        "shared net the currents into all tiles on it balance the block's diode and source "
        "currents there (Kirchhoff's current law).",
        f"Run (from the folder holding {block.name}.cir): ngspice -b {run}",
    ]
    return "\n".join(lines)


def write_block_netlists(
    block: ResistiveBlock,
    u: ArrayLike | None,
    out_dir: str | Path,
    *,
    backend: str = "numpy",
    inputs_note: str = "the exported input vector",
    condensed: bool = False,
) -> ExportedNetlist:
    """Write ``<block>.cir`` for inputs ``u`` and, when ``block.tile`` is set, one netlist
    per tile in ``<block>_tiles/`` (see the module docstring).

    Args:
        block: the block (its conductances are read once; with read noise that one read
            is what every written file and the in-process solution use).
        u: (n_in,) or (1, n_in) signed inputs in volts.
        out_dir: folder to write into (created if missing).
        backend: solver of the in-process free phase (``"numpy"`` or ``"ngspice"``) whose
            solution gives the outputs and the tiles' port voltages.
        inputs_note: what the inputs are, for the tile headers (e.g. "test sample 0 of
            'digits'").
        condensed: also write ``<block>_condensed.cir``, the Norton-folded form the ngspice
            backend solves (:func:`condensed_netlist`).

    Returns:
        The written block netlist with its in-process outputs (n_out,) in volts and its
        :class:`ExportedTile` list.
    """
    try:
        u = np.asarray(u, dtype=np.float64).reshape(1, -1)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"inputs of block {block.name!r} are not numeric: {exc}") from None
    if u.shape[1] != block.n_in or not np.isfinite(u).all():
        raise ExportError(f"block {block.name!r} needs {block.n_in} finite input voltages, "
                          f"got shape {u.shape[1:]} (finite: {bool(np.isfinite(u).all())})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    snap = _snapshot(block)
    path = out / f"{block.name}.cir"
    path.write_text(snap.netlist(u[0]))
    if condensed:
        (out / f"{block.name}_condensed.cir").write_text(condensed_netlist(snap, u[0]))
    state = snap.free(u, backend=backend)
    tiles: tuple[ExportedTile, ...] = ()
    if snap.tile is not None:
        tiles = _write_tiles(snap, state.solution, out, inputs_note, str(backend))
    return ExportedNetlist(block.name, path, u[0], state.outputs[0], tiles)


def condensed_netlist(block: ResistiveBlock, u: ArrayLike | None) -> str:
    """The standalone netlist of the circuit the ngspice backend solves for inputs ``u``
    (n_in,) volts: source-pinned nodes folded into Norton pairs
    (:func:`~analogeq.circuit.fold_pinned` with sense sources), the per-sample currents
    written as DC values. ``ngspice -b FILE`` prints the same outputs as the full netlist."""
    u = np.asarray(u, dtype=np.float64).reshape(1, -1)
    circuit = block.circuit()
    values = {k: np.asarray(v) for k, v in block.input_source_values(u).items()}
    folded = fold_pinned(circuit, sense=True)
    currents = folded.condensed_values(values, 1)
    elements = [
        CurrentSource(e.name, e.plus, e.minus, float(currents[e.name][0]))
        if isinstance(e, CurrentSource) and e.name in currents else e
        for e in folded.condensed.elements
    ]
    c = Circuit(circuit.title + " (condensed)", elements, dict(circuit.models))
    p = block.name
    header = (
        f"CONDENSED form of resistive block '{p}' (analogeq): the circuit the ngspice "
        "backend solves.\n"
        "Every node pinned by a voltage source to ground (inputs, bias rails) is folded: each "
        "conductance g between\n"
        "a pinned node (voltage u) and a free node n is a conductance g from n to ground plus "
        "a current g*u into n.\n"
        "Per free node n: Rnorton_<n> = 1 / sum(g) from <n>_norton to ground (through the "
        "0 V sense source Vnorton_<n>,\n"
        "whose current SPICE checks for convergence) and Inorton_<n> = sum(g*u) A injected "
        "into n (plus the\n"
        "constant parts from the bias rails). Diodes, hidden-to-output conductances and the "
        "diode rails are as in\n"
        f"the full netlist {p}.cir; the input nodes are gone (their voltages are the inputs "
        "and their source\n"
        "currents are sum g (V_n - u), recovered in analogeq). In training every Inorton "
        "source is a table over\n"
        "the sweep index, one point per sample; here it holds the value for the exported "
        "input vector.\n"
        f"Folded devices: {folded.n_folded}; free nodes with a Norton pair: "
        f"{len(folded.norton_nodes)}.\n"
        f"Outputs: o_k = v({p}_out<k>p, {p}_out<k>n), printed below.\n"
        "Run: ngspice -b FILE"
    )
    return to_spice(c, options=block.options, header=header,
                    print_vectors=block.output_vectors())


def _write_tiles(snap: ResistiveBlock, solution, out: Path, inputs_note: str, backend: str):
    tile = snap.tile
    assert tile is not None
    plain = copy.copy(snap)
    plain.tile = None
    folder = out / f"{snap.name}_tiles"
    folder.mkdir(exist_ok=True)
    v_all = dict(zip(solution.node_names, solution.voltages_V[0].tolist(), strict=True))
    v_all[GROUND] = 0.0
    written = []
    for m in plain.circuit().of_type(ConductanceMatrix):
        for t in map_to_tiles(m, tile):
            rows, cols = tile_ports(m, t)
            ports = [n for n in (*rows, *cols) if n != GROUND]
            elements = tile_elements(m, t, tile)
            port_set = set(ports) | {GROUND}
            internal = list(dict.fromkeys(
                n for e in elements for n in e.nodes if n not in port_set
            ))
            sources = [VoltageSource(port_source_name(n), n, GROUND, v_all[n]) for n in ports]
            circuit = Circuit(
                f"{snap.name} tile {t.name}: matrix {m.name} rows {t.rows.start}:{t.rows.stop}, "
                f"columns {t.cols.start}:{t.cols.stop} (analogeq)",
                [*elements, *sources],
            )
            run = f"{folder.name}/{t.name}.cir"
            text = to_spice(
                circuit,
                options=snap.options,
                header=_tile_header(snap, m, t, rows, cols, run, inputs_note, backend),
                print_nodes=internal,
                print_vectors=[f"-i({s.name})" for s in sources],
            )
            path = folder / f"{t.name}.cir"
            path.write_text(text)
            written.append(ExportedTile(
                name=t.name, block=snap.name, matrix=m.name, path=path, grid=t.grid,
                rows=t.rows, cols=t.cols, ports=tuple(ports),
                port_voltages_V=np.array([v_all[n] for n in ports]),
                port_currents_A=_port_currents(elements, ports, v_all),
                internal_nodes=tuple(internal),
                internal_voltages_V=np.array([v_all[n] for n in internal]),
            ))
    return tuple(written)


def _load_checkpoint(model, checkpoint: str | Path, name: str) -> None:
    from .checkpoints import load_model_state, read_checkpoint

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise ExportError(f"checkpoint {path} does not exist (give a run folder holding "
                          "checkpoint.npz, or the .npz file itself)")
    try:
        arrays, _ = read_checkpoint(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"cannot read checkpoint {path}: {exc}") from None
    try:
        load_model_state(model, arrays)
    except (KeyError, ValueError) as exc:
        raise ExportError(f"checkpoint {path} does not fit the model of config {name!r} "
                          f"(was it written for another config?): {exc}") from None


def export_netlists(
    cfg: dict[str, Any],
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    sample_index: int = 0,
    backend: str = "numpy",
    source: str = "",
    condensed: bool = False,
) -> list[ExportedNetlist]:
    """Write the netlist of every analog block of ``cfg``'s model into ``out_dir``, plus
    one netlist per tile for blocks on tiles (module docstring) and a ``README``.

    Args:
        checkpoint: a run folder (or its ``checkpoint.npz``) whose trained state to use.
        sample_index: which test sample provides the block inputs (>= 0).
        backend: solver used to push the sample through the model in-process.
        source: text naming where the config came from (written in the README).
        condensed: also write ``<block>_condensed.cir`` per block (:func:`condensed_netlist`).

    Raises:
        ExportError: bad sample index or checkpoint; ``out_dir`` is an existing file.
    """
    if isinstance(sample_index, bool) or not isinstance(sample_index, int | np.integer) \
            or sample_index < 0:
        raise ExportError(f"sample index must be an integer >= 0, got {sample_index!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"output folder {out} exists and is not a folder")
    # the run's own test split (the config's limit, if any), so that sample N here is
    # sample N of the test split training and `analogeq evaluate` use
    data = load_dataset(
        cfg["data"]["dataset"], cfg["data"]["data_dir"] or None,
        limit_train=1, limit_test=int(cfg["data"].get("limit_test") or 0) or None,
    )
    if sample_index >= len(data.x_test):
        raise ExportError(f"sample index {sample_index} is out of range: the test split of "
                          f"{cfg['data']['dataset']!r} has {len(data.x_test)} samples")
    model = build_model(cfg, data.x_test.shape[1:], backend=backend)
    if checkpoint is not None:
        _load_checkpoint(model, checkpoint, cfg["name"])
    x = data.x_test[sample_index : sample_index + 1]
    inputs = _block_inputs(model, x)
    note = f"test sample {sample_index} of '{cfg['data']['dataset']}'"
    written = [
        write_block_netlists(layer.block, inputs[layer.block.name], out, backend=backend,
                             inputs_note=note, condensed=condensed)
        for layer in model.analog_layers
    ]
    lines = [
        f"Netlists of the analog blocks of '{cfg['name']}'"
        + (f" ({source})" if source else ""),
        "",
        f"Conductances: {'trained, from ' + str(checkpoint) if checkpoint else 'initial (seed ' + str(cfg['seed']) + ')'}.",  # noqa: E501
        f"Inputs: test sample {sample_index} of '{cfg['data']['dataset']}', pushed through "
        "the digital layers and DACs in front of each block.",
        "Units: volts, ohms, amperes. Each file's header explains its node names, how inputs",
        "are driven (+u/-u source pairs) and how EP nudges are applied (output current sources).",
        "",
        "Run one with:   ngspice -b FILE.cir",
        "It prints the block outputs v(<block>_out<k>p,<block>_out<k>n) in volts.",
        *(["<block>_condensed.cir: the Norton-folded form the ngspice backend solves "
           "(its header explains it); same outputs.", ""] if condensed else [""]),
        "| file | block | layer sizes | devices |",
        "|---|---|---|---|",
    ]
    for layer, w in zip(model.analog_layers, written, strict=True):
        lines.append(f"| {w.path.name} | {w.block} | {layer.block.layer_sizes} | "
                     f"{layer.block.num_devices()} conductances |")
    for layer in model.analog_layers:
        if layer.block.amplified:
            lines += _readme_amplifiers(layer.block)
    for layer, w in zip(model.analog_layers, written, strict=True):
        if w.tiles:
            lines += _readme_tiles(layer.block, w, note, str(backend))
    (out / "README").write_text("\n".join(lines) + "\n")
    return written


def _readme_amplifiers(block: ResistiveBlock) -> list[str]:
    """README section on the bidirectional amplifiers of ``block``."""
    p = block.name
    text = (
        f"Block {p} has bidirectional amplifiers (docs/physics.md, \"Bidirectional "
        f"amplifiers\"). In {p}.cir each is three lines: E{p}_amp<l>_<j> (forward: a "
        f"voltage source at A * v({p}_h<l>_<j>)), the 0 V sense source "
        f"V{p}_amp<l>_<j>_sense into {p}_a<l>_<j> (its current is the current the amplifier "
        f"delivers) and F{p}_amp<l>_<j> (backward: draws c times that current from "
        f"{p}_h<l>_<j>). The next crossbar's rows are the {p}_a<l>_<j> nodes."
    )
    return ["", f"## Amplifiers of block {p}", "", textwrap.fill(text, width=90), "",
            "```", block.describe_amplifiers(), "```"]


def _readme_tiles(block: ResistiveBlock, w: ExportedNetlist, note: str,
                  backend: str) -> list[str]:
    tile = block.tile
    assert tile is not None
    wired = tile.wire_resistance_ohm > 0
    folder = w.tiles[0].path.parent.name
    plain = copy.copy(block)
    plain.tile = None
    text = (
        f"Block {w.block} sits on crossbar tiles of {tile.rows} x {tile.cols} cells with "
        f"{float(tile.wire_resistance_ohm):g} ohm wire segments. {w.path.name} is the whole "
        f"block (all tiles together); {folder}/ holds one netlist per tile. A tile netlist "
        "holds only that tile's memristors"
        + (" and its row and column wire segments" if wired else "")
        + ". Its ports, the block's row and column nets it shares with other tiles, diodes "
        "and sources, are held by DC sources Vport_<net> at the voltages the in-process "
        f"free-phase solution ({backend} solver) of the whole block gives them for {note}. "
        "It prints "
        + ("the tile's wire-node voltages v(<tile>_r<i>c<j>_row / _col) in volts and " if wired
           else "")
        + "-i(Vport_<net>), the current in amperes each port delivers into the tile. At every "
        "shared net the currents into the tiles on it balance the block's diode and source "
        "currents there (Kirchhoff's current law). Matrix R<k> is conductances[k] of the "
        "block: its rows are the nodes of layer k then the bias rails, its columns the nodes "
        "of layer k+1. Each tile file's header gives its node and element names."
    )
    lines = [
        "",
        f"## Tiles of block {w.block}",
        "",
        textwrap.fill(text, width=90),
        "",
        f"Run one with:   ngspice -b {folder}/TILE.cir",
        "",
        "| file | matrix | grid | matrix rows | matrix cols | row nets | column nets | "
        "wire nodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in w.tiles:
        n_r = len(t.rows)
        lines.append(
            f"| {folder}/{t.path.name} | {t.matrix} | {t.grid[0]},{t.grid[1]} | "
            f"{t.rows.start}:{t.rows.stop} | {t.cols.start}:{t.cols.stop} | "
            f"{_span(list(t.ports[:n_r]))} | {_span(list(t.ports[n_r:]))} | "
            f"{len(t.internal_nodes)} |"
        )
    lines += ["", "```", describe_mapping(plain.circuit(), tile), "```"]
    return lines


def write_reference_netlists(root: str | Path) -> list[Path]:
    """(Re)generate ``root/<config>/`` for every config in :data:`REFERENCE_CONFIGS`."""
    from .config import EXAMPLE_CONFIGS as EXAMPLES

    paths: list[Path] = []
    for name in REFERENCE_CONFIGS:
        cfg = load_config(EXAMPLES / f"{name}.toml")
        written = export_netlists(cfg, Path(root) / name,
                                  source=f"examples/configs/{name}.toml")
        paths += [w.path for w in written] + [Path(root) / name / "README"]
        paths += [t.path for w in written for t in w.tiles]
    return paths
