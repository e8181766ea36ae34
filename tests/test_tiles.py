"""Crossbar tiles: mapping, wire topology, IR drop physics, and the sparse NumPy path."""

from __future__ import annotations

import numpy as np
import pytest

import analogeq.backends.numpy_backend as nbmod
from analogeq import (
    Circuit,
    Conductance,
    ConductanceMatrix,
    InvalidValueError,
    ResistiveBlock,
    TileConfig,
    VoltageSource,
    describe_mapping,
    map_to_tiles,
    to_spice,
    wire_circuit,
)
from analogeq.backends.numpy_backend import NumpyBackend
from analogeq.hardware.tiles import cell_nodes, num_wire_segments

BACKENDS = ["ngspice", "numpy_backend"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.getfixturevalue(request.param)


def crossbar(n_rows: int, n_cols: int, name: str = "R0") -> ConductanceMatrix:
    g = np.linspace(1e-6, 2e-6, n_rows * n_cols).reshape(n_rows, n_cols)
    rows = tuple(f"r{i}" for i in range(n_rows))
    cols = tuple(f"c{j}" for j in range(n_cols))
    return ConductanceMatrix(name, rows, cols, g)


def source_power_W(circuit: Circuit, sol, values) -> np.ndarray:
    """(B,) power delivered to the network by all voltage sources (watts)."""
    names = [v.name for v in circuit.voltage_sources]
    volts = np.stack(
        [
            np.broadcast_to(values.get(v.name, v.dc_V), (sol.batch_size,))
            for v in circuit.voltage_sources
        ],
        axis=1,
    )
    return -(volts * sol.currents(names)).sum(axis=1)


# -- configuration and mapping ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": 0},
        {"cols": -1},
        {"rows": 2.5},
        {"rows": True},
        {"wire_resistance_ohm": -1.0},
        {"wire_resistance_ohm": float("inf")},
        {"wire_resistance_ohm": float("nan")},
    ],
)
def test_tile_config_rejects_bad_values(kwargs):
    with pytest.raises(InvalidValueError):
        TileConfig(**kwargs)


def test_130x32_on_64x64_tiles_is_3x1_covering_each_cell_once():
    m = crossbar(130, 32)
    tiles = map_to_tiles(m, TileConfig(64, 64))
    assert [t.grid for t in tiles] == [(0, 0), (1, 0), (2, 0)]
    assert [t.index for t in tiles] == [0, 1, 2]
    assert [t.name for t in tiles] == ["R0_t0_0", "R0_t1_0", "R0_t2_0"]
    assert [t.shape for t in tiles] == [(64, 32), (64, 32), (2, 32)]
    count = np.zeros((130, 32), dtype=int)
    for t in tiles:
        count[t.slices] += 1
    assert (count == 1).all()
    np.testing.assert_allclose([t.utilisation for t in tiles], [0.5, 0.5, 64 / 4096])

    text = describe_mapping(m, TileConfig(64, 64))
    for t in tiles:
        assert t.name in text
    assert "0:64" in text and "64:128" in text and "128:130" in text
    assert "R0: 130 x 32 -> 3 tile(s) (3 x 1)" in text
    assert "total: 3 tile(s), 4160 cells used of 12288" in text


def test_mapping_splits_rows_and_columns():
    m = crossbar(10, 7)
    tiles = map_to_tiles(m, TileConfig(4, 3))
    assert len(tiles) == 3 * 3
    count = np.zeros((10, 7), dtype=int)
    for t in tiles:
        assert t.shape[0] <= 4 and t.shape[1] <= 3
        count[t.slices] += 1
    assert (count == 1).all()
    assert sum(t.cells for t in tiles) == 70


def test_wire_circuit_does_not_mutate_its_input():
    block = ResistiveBlock((4, 3, 2), seed=1)
    c = block.circuit()
    before = list(c.elements)
    g_before = [g.copy() for g in block.conductances]
    for r in (0.0, 10.0):
        out = wire_circuit(c, TileConfig(3, 2, r))
        assert out is not c and out.elements is not c.elements
    assert c.elements == before
    for g, g0 in zip(block.conductances, g_before, strict=True):
        np.testing.assert_array_equal(g, g0)


def test_name_collision_is_refused():
    m = crossbar(1, 1)
    c = Circuit("clash").add(
        VoltageSource("V1", "r0", "0", 1.0),
        m,
        Conductance("Rload", "c0", "R0_t0_0_r000c000_col", 1e-3),
        Conductance("Rload2", "R0_t0_0_r000c000_col", "0", 1e-3),
    )
    with pytest.raises(InvalidValueError, match="collides"):
        wire_circuit(c, TileConfig(wire_resistance_ohm=1.0))


# -- physics ---------------------------------------------------------------------------


def test_zero_wire_resistance_is_electrically_identical(backend):
    block = ResistiveBlock((6, 5, 3), seed=2)
    u = np.random.default_rng(0).uniform(-1, 1, (4, 6))
    values = block.input_source_values(u)
    plain = block.circuit()
    tiled = wire_circuit(plain, TileConfig(4, 3, 0.0))
    assert len(list(tiled.of_type(ConductanceMatrix))) == 4 * 2 + 2 * 2  # R0 14x5, R1 7x6
    assert tiled.num_devices() == plain.num_devices()
    ref = backend.solve(plain, values)
    got = backend.solve(tiled, values)
    np.testing.assert_allclose(got.voltages(ref.node_names), ref.voltages_V, rtol=0, atol=1e-9)


def test_ir_drop_vanishes_linearly_and_lowers_power(ngspice):
    """Outputs converge to the ideal ones as R_wire -> 0, linearly in R_wire (first-order
    perturbation), and the power drawn from the sources falls as R_wire grows (Rayleigh
    monotonicity: adding series resistance never increases a network's conductance).

    Note: the output *magnitude* is not monotone in R_wire for this topology (the outputs
    are floating nodes, conductance-weighted averages that IR drop reweights), so it is
    not asserted."""
    block = ResistiveBlock((8, 6, 3), seed=0)
    u = np.random.default_rng(0).uniform(-1, 1, (6, 8))
    values = block.input_source_values(u)
    ideal = ngspice.solve(block.circuit(), values)
    o_ideal = block.outputs_of(ideal)
    p_ideal = source_power_W(block.circuit(), ideal, values)
    r_wire = [1000.0, 100.0, 10.0, 1.0]
    errors, powers = [], []
    for r in r_wire:
        c = wire_circuit(block.circuit(), TileConfig(64, 64, r))
        sol = ngspice.solve(c, values)
        errors.append(np.abs(block.outputs_of(sol) - o_ideal).max())
        powers.append(source_power_W(c, sol, values))
    errors = np.array(errors)
    assert errors[-1] > 1e-7  # measurable at 1 ohm, far above the solver tolerance
    assert np.all(np.diff(errors) < 0)
    # first order in R for small R: each step divides R (and the error) by 10
    ratios = errors[1:-1] / errors[2:]  # 100 -> 10 ohm, 10 -> 1 ohm
    np.testing.assert_allclose(ratios, 10.0, rtol=0.02)
    powers = np.array([*powers, p_ideal])  # R = 1000, 100, 10, 1, 0
    assert np.all(np.diff(powers, axis=0) > 0)


def test_numpy_sparse_path_matches_ngspice_on_wired_block(ngspice, monkeypatch):
    block = ResistiveBlock((16, 8, 4), seed=4)
    u = np.random.default_rng(1).uniform(-1, 1, (3, 16))
    values = block.input_source_values(u)
    c = wire_circuit(block.circuit(), TileConfig(8, 8, 100.0))
    be = NumpyBackend()
    cc = be.compile(c)
    assert cc.sparse and len(cc.free) > nbmod.SPARSE_THRESHOLD
    got = be.solve_compiled(cc, values, 3)
    ref = ngspice.solve(c, values)
    assert got.node_names == ref.node_names
    np.testing.assert_allclose(got.voltages_V, ref.voltages_V, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.currents_A, ref.currents_A, rtol=1e-6, atol=1e-12)
    # the dense path and the per-sample splu fallback give the same operating points
    dense = NumpyBackend(sparse_threshold=10**9).solve(c, values)
    np.testing.assert_allclose(got.voltages_V, dense.voltages_V, rtol=0, atol=1e-10)
    monkeypatch.setattr(nbmod, "SCHUR_MAX_NODES", 0)
    fallback = NumpyBackend().solve(c, values)
    np.testing.assert_allclose(got.voltages_V, fallback.voltages_V, rtol=0, atol=1e-10)
    # the sparse Jacobian is the dense one, and solve_jacobian inverts it
    full = np.concatenate([got.voltages_V, np.zeros((3, 1))], axis=1)
    jac = cc.jacobian(full)
    for j_dense, j_sparse in zip(jac, cc.jacobian_sparse(full), strict=True):
        np.testing.assert_array_equal(j_sparse.toarray(), j_dense)
    rhs = np.random.default_rng(2).normal(size=(3, len(cc.free)))
    x = cc.solve_jacobian(full, rhs)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", jac, x), rhs, rtol=0, atol=1e-8)


def wired_2x2(g, g_wire, g_load, v_rows, tile_rows=2, tile_cols=2):
    m = ConductanceMatrix("Rx", ("a", "b"), ("x", "y"), np.array(g, dtype=float))
    c = Circuit("2x2").add(
        VoltageSource("Va", "a", "0", v_rows[0]),
        VoltageSource("Vb", "b", "0", v_rows[1]),
        m,
        Conductance("Rlx", "x", "0", g_load),
        Conductance("Rly", "y", "0", g_load),
    )
    return wire_circuit(c, TileConfig(tile_rows, tile_cols, 1.0 / g_wire))


def test_kirchhoff_on_hand_wired_2x2(backend):
    g = [[1e-3, 2e-3], [3e-3, 4e-3]]
    gw, gl, va, vb = 1.0 / 50.0, 1e-3, 1.0, -0.4
    c = wired_2x2(g, gw, gl, (va, vb))
    # the topology of the module docstring, written out by hand: rows enter at column 0,
    # columns leave at the last row
    t = "Rx_t0_0_"
    edges = [
        ("a", t + "r000c000_row", gw),
        (t + "r000c000_row", t + "r000c001_row", gw),
        ("b", t + "r001c000_row", gw),
        (t + "r001c000_row", t + "r001c001_row", gw),
        (t + "r000c000_row", t + "r000c000_col", g[0][0]),
        (t + "r000c001_row", t + "r000c001_col", g[0][1]),
        (t + "r001c000_row", t + "r001c000_col", g[1][0]),
        (t + "r001c001_row", t + "r001c001_col", g[1][1]),
        (t + "r000c000_col", t + "r001c000_col", gw),
        (t + "r001c000_col", "x", gw),
        (t + "r000c001_col", t + "r001c001_col", gw),
        (t + "r001c001_col", "y", gw),
        ("x", "0", gl),
        ("y", "0", gl),
    ]
    fixed = {"0": 0.0, "a": va, "b": vb}
    free = sorted({n for e in edges for n in e[:2]} - set(fixed))
    k = {n: i for i, n in enumerate(free)}
    lap = np.zeros((len(free), len(free)))
    rhs = np.zeros(len(free))
    for p, q, gg in edges:
        for u, v in ((p, q), (q, p)):
            if u in k:
                lap[k[u], k[u]] += gg
                if v in k:
                    lap[k[u], k[v]] -= gg
                else:
                    rhs[k[u]] += gg * fixed[v]
    expected = np.linalg.solve(lap, rhs)
    assert sorted(c.nodes) == sorted([*free, "a", "b"])
    sol = backend.solve(c)
    np.testing.assert_allclose(sol.voltages(free)[0], expected, rtol=0, atol=1e-9)


def test_single_wired_cell_is_a_series_chain(backend):
    """1x1 tile: driver -R_w- cell -R_w- output -load- ground, a plain series chain."""
    gw, gc, gl, v = 1.0 / 200.0, 1e-4, 1e-3, 0.7
    m = ConductanceMatrix("Rx", ("a",), ("x",), np.array([[gc]]))
    c = Circuit("1x1").add(VoltageSource("Va", "a", "0", v), m, Conductance("Rl", "x", "0", gl))
    sol = backend.solve(wire_circuit(c, TileConfig(1, 1, 1.0 / gw)))
    i = v / (1 / gw + 1 / gc + 1 / gw + 1 / gl)
    np.testing.assert_allclose(sol.v("x"), i / gl, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.v("Rx_t0_0_r000c000_row"), v - i / gw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.v("Rx_t0_0_r000c000_col"), i / gl + i / gw, atol=1e-12)
    np.testing.assert_allclose(sol.i("Va"), -i, rtol=1e-12)


# -- netlist and inspection ------------------------------------------------------------


def test_netlist_contains_every_wire_segment():
    block = ResistiveBlock((16, 8, 4), seed=0)
    tile = TileConfig(8, 8, 25.0)
    plain = block.circuit()
    c = wire_circuit(plain, tile)
    text = to_spice(c)
    lines = [ln.split() for ln in text.splitlines()]
    seg = [ln for ln in lines if ln and ln[0].endswith(("_rw", "_cw"))]
    cells = sum(g.size for g in block.conductances)  # 34*8 + 10*8
    assert num_wire_segments(plain, tile) == 2 * cells == 704
    assert len(seg) == 704
    assert sum(ln[0].endswith("_rw") for ln in seg) == cells
    assert all(float(ln[3]) == 25.0 for ln in seg)
    memristors = [ln for ln in lines if ln and ln[0].startswith(("R0_t", "R1_t"))]
    assert len(memristors) - len(seg) == cells
    # R0 (34 x 8) needs 5 row blocks of 8 on 8x8 tiles, R1 (10 x 8) needs 2
    assert {ln[0].split("_r")[0] for ln in memristors} == {
        *(f"R0_t{a}_0" for a in range(5)),
        "R1_t0_0",
        "R1_t1_0",
    }
    assert num_wire_segments(plain, TileConfig(8, 8, 0.0)) == 0
    assert "_rw " not in to_spice(wire_circuit(plain, TileConfig(8, 8, 0.0)))


def test_cell_nodes_name_the_ends_of_each_memristor():
    m = crossbar(5, 4)
    c = Circuit("cells").add(
        *(VoltageSource(f"V{r}", r, "0", 0.1) for r in m.rows),
        m,
        *(Conductance(f"Rl{col}", col, "0", 1e-6) for col in m.cols),
    )
    tile = TileConfig(2, 3, 5.0)
    wired = wire_circuit(c, tile)
    row_side, col_side = cell_nodes(m, tile)
    by_nodes = {
        e.nodes: e.g_S
        for e in wired.of_type(Conductance)
        if not e.name.endswith(("_rw", "_cw")) and e.name.startswith("R0_t")
    }
    assert len(by_nodes) == 20
    for i in range(5):
        for j in range(4):
            assert by_nodes[(row_side[i, j], col_side[i, j])] == m.g_S[i, j]
    ideal_r, ideal_c = cell_nodes(m, TileConfig(2, 3, 0.0))
    assert ideal_r[3, 2] == "r3" and ideal_c[3, 2] == "c2"
