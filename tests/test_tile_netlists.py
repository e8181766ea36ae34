"""Per-tile netlists: each tile file, run by plain `ngspice -b` as a subprocess, reproduces
the whole block's in-process solution (wire nodes within 1e-6 V), the tile files together
hold exactly the block's crossbar elements, and the port currents the tiles report obey
Kirchhoff's current law at every net they share (with the block's diodes and sources)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analogeq import (
    CurrentSource,
    Diode,
    ResistiveBlock,
    TileConfig,
    VoltageSource,
    export_netlists,
)
from analogeq.backends.numpy_backend import diode_current
from analogeq.cli import main
from analogeq.runs.export import port_source_name, write_block_netlists

SIZES = (6, 5, 3)
TILED = """
name = "tiled"
seed = 2
[data]
dataset = "digits"
[train]
backend = "numpy"
[[model.layers]]
type = "linear"
out = 6
[[model.layers]]
type = "activation"
name = "hardtanh"
[[model.layers]]
type = "dac"
bits = 8
[[model.layers]]
type = "resistive"
hidden = [5]
out = 3
name = "front"
tile_rows = 4
tile_cols = 4
wire_resistance_ohm = 50.0
[[model.layers]]
type = "adc"
bits = 8
v_min = -0.25
v_max = 0.25
[[model.layers]]
type = "gain_offset"
gain = 20.0
"""


def run_ngspice(path: Path, cwd: Path) -> dict[str, float]:
    """Every ``name = value`` line `ngspice -b` prints (names lower-cased by ngspice)."""
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True,
                         timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    values = {k: float(v) for k, v in re.findall(r"^(\S+) = (\S+)$", out.stdout, flags=re.M)}
    assert values, out.stdout[-2000:]
    return values


def block_and_inputs(wire_ohm: float) -> tuple[ResistiveBlock, np.ndarray]:
    block = ResistiveBlock(SIZES, seed=3, tile=TileConfig(4, 4, wire_ohm))
    return block, np.random.default_rng(5).uniform(-1.0, 1.0, SIZES[0])


def injected_currents(block: ResistiveBlock, sol) -> dict[str, tuple[float, float]]:
    """Per net: (current the block's non-crossbar elements inject into it, tolerance).

    The tolerance follows the solvers' own criteria. ngspice stops Newton when every diode
    current agrees with its linearisation to reltol*|I_d| + abstol; the linear network is
    solved exactly at each iteration up to rounding, so that is the KCL residual a net
    with diodes can have. Sources and resistors add only rounding, budgeted per net below
    as 1e-12 V (about 1e4 double-precision ulps of a 1 V node) times the conductance of the
    tile elements at the net.
    """
    opts = block.options
    circuit = block.circuit()
    inj: dict[str, list[float]] = {}

    def add(node: str, i: float, tol: float) -> None:
        cur = inj.setdefault(node, [0.0, 0.0])
        cur[0] += i
        cur[1] += tol

    for e in circuit.elements:
        if isinstance(e, VoltageSource):  # SPICE branch current flows plus -> minus inside
            i = float(sol.i(e.name)[0])
            add(e.plus, -i, 0.0)
            add(e.minus, i, 0.0)
        elif isinstance(e, CurrentSource):  # pragma: no cover - none in the free phase
            raise AssertionError("free-phase circuits have no current sources")
        elif isinstance(e, Diode):
            model = circuit.models[e.model]
            vd = float(sol.v(e.anode)[0] - sol.v(e.cathode)[0])
            i_d, _ = diode_current(np.array(vd), model.is_A,
                                   model.n * opts.thermal_voltage_V, opts.gmin)
            tol = opts.reltol * abs(float(i_d)) + opts.abstol
            add(e.anode, -float(i_d), tol)
            add(e.cathode, float(i_d), tol)
    return {n: (v[0], v[1]) for n, v in inj.items()}


def element_lines(path: Path) -> set[str]:
    """The resistor lines of a netlist (memristors and wire segments)."""
    return {ln for ln in path.read_text().splitlines() if ln[:1] in "Rr" and " " in ln
            and not ln.startswith("*")}


@pytest.mark.parametrize("wire_ohm", [50.0, 0.0])
def test_tile_netlists_reproduce_the_block_and_obey_kcl(tmp_path, ngspice, wire_ohm):
    block, u = block_and_inputs(wire_ohm)
    written = write_block_netlists(block, u, tmp_path, backend="ngspice",
                                   inputs_note="a test input")
    # independent in-process solution of the whole block (same conductances: no noise)
    sol = block.free(u, backend=ngspice).solution
    np.testing.assert_array_equal(written.outputs_V, block.outputs_of(sol)[0])

    tiles = written.tiles
    assert [t.name for t in tiles] == [f"R0_t{a}_{b}" for a in range(4) for b in range(2)] + [
        f"R1_t{a}_{b}" for a in range(2) for b in range(2)]
    assert all(t.path == tmp_path / "b0_tiles" / f"{t.name}.cir" for t in tiles)

    # the tile files hold exactly the block's crossbar elements, each once
    all_lines = [ln for t in tiles for ln in element_lines(t.path)]
    assert len(all_lines) == len(set(all_lines))
    block_lines = element_lines(written.path)
    assert set(all_lines) == block_lines
    n_cells = block.num_devices()
    n_segments = 2 * n_cells if wire_ohm > 0 else 0  # one row and one column segment per cell
    assert len(all_lines) == n_cells + n_segments

    g_tile: dict[str, float] = {}  # conductance of the tile elements at each port net
    into_tiles: dict[str, float] = {}  # sum over tiles of ngspice's port currents
    tiles_at: dict[str, int] = {}
    max_dv = max_di = 0.0
    for t in tiles:
        text = t.path.read_text()
        run = f"ngspice -b b0_tiles/{t.name}.cir"
        assert run in text  # the header's command, run from the export folder
        printed = run_ngspice(Path(run.split()[-1]), cwd=tmp_path)
        nodes = [f"v({n.lower()})" for n in t.internal_nodes]
        currents = [f"-i({port_source_name(n).lower()})" for n in t.ports]
        assert set(printed) == set(nodes) | set(currents)
        if wire_ohm > 0:
            assert len(t.internal_nodes) == 2 * len(t.rows) * len(t.cols)
            got = np.array([printed[k] for k in nodes])
            want = sol.voltages(list(t.internal_nodes))[0]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
            max_dv = max(max_dv, float(np.abs(got - want).max()))
        else:
            assert t.internal_nodes == ()
        np.testing.assert_array_equal(t.port_voltages_V, sol.voltages(list(t.ports))[0])
        i_ports = np.array([printed[k] for k in currents])
        max_di = max(max_di, float(np.abs(i_ports - t.port_currents_A).max()))
        # conductance of the tile elements at one port: a wire segment, or (ideal wires,
        # bounded by) all cells of the matrix
        g_port = (1.0 / wire_ohm if wire_ohm > 0 else
                  float(block.conductances[int(t.matrix[1:])].sum()))
        for n, i in zip(t.ports, i_ports, strict=True):
            into_tiles[n] = into_tiles.get(n, 0.0) + float(i)
            g_tile[n] = g_tile.get(n, 0.0) + g_port
            tiles_at[n] = tiles_at.get(n, 0) + 1
        np.testing.assert_allclose(i_ports, t.port_currents_A, rtol=0, atol=1e-12 * g_port)

    # every hidden unit's net is shared by the 4 R0 tiles of its column and 2 R1 tiles
    assert all(tiles_at[n] == 6 for n in block.hidden_nodes[0])
    assert all(tiles_at[n] == 2 for n in block.output_nodes)
    injected = injected_currents(block, sol)
    residuals = {}
    for n, i_tiles in into_tiles.items():
        i_inj, tol_diodes = injected.get(n, (0.0, 0.0))
        tol = tol_diodes + 1e-12 * g_tile[n]
        residuals[n] = i_tiles - i_inj
        assert abs(residuals[n]) <= tol, (n, i_tiles, i_inj, tol)
    worst = max(abs(r) for r in residuals.values())
    print(f"\nwire {wire_ohm:g} ohm: max |dV| {max_dv:.3g} V over wire nodes, "
          f"max |dI| {max_di:.3g} A over ports, max KCL residual {worst:.3g} A")


def test_tile_netlists_with_the_numpy_solver_match_ngspice(tmp_path, ngspice):
    """The default export solver (NumPy) gives port voltages ngspice agrees with."""
    block, u = block_and_inputs(50.0)
    written = write_block_netlists(block, u, tmp_path, backend="numpy")
    sol = block.free(u, backend=ngspice).solution
    for t in written.tiles:
        printed = run_ngspice(t.path, cwd=tmp_path)
        got = np.array([printed[f"v({n.lower()})"] for n in t.internal_nodes])
        np.testing.assert_allclose(got, sol.voltages(list(t.internal_nodes))[0],
                                   rtol=0, atol=1e-6)


def test_netlist_cli_writes_tiles_and_a_readme(tmp_path, capsys):
    cfg = tmp_path / "tiled.toml"
    cfg.write_text(TILED)
    out = tmp_path / "nets"
    assert main(["netlist", str(cfg), "--out", str(out), "--sample", "2"]) == 0
    printed = capsys.readouterr().out
    # 12 tiles: 4 x 2 of R0 (14 x 5 with the bias rows) and 2 x 2 of R1 (7 x 6)
    assert "wrote 12 tile netlists of front" in printed
    files = sorted(p.name for p in (out / "front_tiles").iterdir())
    assert files == sorted([f"R0_t{a}_{b}.cir" for a in range(4) for b in range(2)]
                           + [f"R1_t{a}_{b}.cir" for a in range(2) for b in range(2)])
    readme = (out / "README").read_text()
    for f in files:
        assert f"front_tiles/{f}" in readme
    assert "ngspice -b front_tiles/TILE.cir" in readme and "Kirchhoff" in readme
    assert "R0_t3_1" in readme and "total: 12 tile(s)" in readme  # describe_mapping table
    header = (out / "front_tiles" / "R0_t1_0.cir").read_text()
    assert "matrix rows 4:8 and columns 0:4" in header
    assert "test sample 2 of 'digits'" in header and "volts, ohms" in header
    assert "Run (from the folder holding front.cir): ngspice -b front_tiles/R0_t1_0.cir" in header


def test_netlist_cli_help_mentions_tiles(capsys):
    with pytest.raises(SystemExit):
        main(["netlist", "--help"])
    text = capsys.readouterr().out
    assert "tile" in text and "ngspice -b" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "-1"], "sample index must be an integer >= 0"),
        (["--sample", "100000"], "sample index 100000 is out of range"),
        (["--checkpoint", "NOPE"], "does not exist"),
    ],
)
def test_netlist_cli_rejects_bad_input_clearly(tmp_path, capsys, args, message):
    cfg = tmp_path / "tiled.toml"
    cfg.write_text(TILED)
    args = [a.replace("NOPE", str(tmp_path / "no_run")) for a in args]
    assert main(["netlist", str(cfg), "--out", str(tmp_path / "nets"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_export_rejects_a_file_as_folder_and_a_foreign_checkpoint(tmp_path):
    from analogeq import ExportError, load_config

    cfg_path = tmp_path / "tiled.toml"
    cfg_path.write_text(TILED)
    cfg = load_config(cfg_path)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="is not a folder"):
        export_netlists(cfg, a_file)
    other = ResistiveBlock((3, 2, 1))
    np.savez(tmp_path / "checkpoint.npz", __meta__=np.array('{"config": {}}'),
             **{"model/3.g0": other.conductances[0]})
    with pytest.raises(ExportError, match="does not fit the model"):
        export_netlists(cfg, tmp_path / "nets", checkpoint=tmp_path)
    with pytest.raises(ExportError, match="needs 6 finite input voltages"):
        write_block_netlists(ResistiveBlock(SIZES), np.zeros(5), tmp_path / "b")


def test_read_noise_one_read_feeds_every_file_and_the_outputs(tmp_path, ngspice):
    """With read noise every solve draws new conductances; an export reads them once, so
    the block file, the tile files and the in-process outputs all describe one circuit."""
    from analogeq import MemristorParams

    block = ResistiveBlock(SIZES, seed=3, tile=TileConfig(4, 4, 50.0),
                           device=MemristorParams(read_noise_rel=0.05))
    u = np.random.default_rng(5).uniform(-1.0, 1.0, SIZES[0])
    written = write_block_netlists(block, u, tmp_path, backend="ngspice")
    printed = run_ngspice(written.path, cwd=tmp_path)
    got = np.array([printed[v.lower()] for v in block.output_vectors()])
    np.testing.assert_allclose(got, written.outputs_V, rtol=0, atol=1e-6)
    t = written.tiles[0]
    printed = run_ngspice(t.path, cwd=tmp_path)
    currents = np.array([printed[f"-i({port_source_name(n).lower()})"] for n in t.ports])
    np.testing.assert_allclose(currents, t.port_currents_A, rtol=0, atol=1e-14)
