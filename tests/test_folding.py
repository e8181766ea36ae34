"""Norton folding of source-pinned nodes: a hand-solved circuit, the condensed form against
the full one on both backends (voltages, source currents, EP gradients), wired tiles."""

from __future__ import annotations

import numpy as np
import pytest

import analogeq as aq
from analogeq.backends.ngspice import NgspiceBackend
from analogeq.backends.numpy_backend import NumpyBackend
from analogeq.circuit import (
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    VoltageSource,
    fold_pinned,
)
from analogeq.params import DiodeModel, SolverOptions, TileConfig

FULL = SolverOptions(fold_pinned_nodes=False)
#: the full form on ngspice solved to a tighter tolerance: a SPICE Newton solve stops at its
#: tolerance, so agreement with the condensed form is limited by the looser of the two
FULL_TIGHT = SolverOptions(fold_pinned_nodes=False, reltol=1e-11)


def _tiny() -> Circuit:
    """Inputs a (V1) and b (V2, minus terminal on the node) into free node n; n to ground
    by g0; a conductance between the two pinned nodes."""
    return Circuit("tiny").add(
        VoltageSource("V1", "a", "0", 1.0),
        VoltageSource("V2", "0", "b", 0.5),  # V(b) = -0.5 V
        Conductance("R1", "a", "n", 1e-3),
        Conductance("R2", "b", "n", 2e-3),
        Conductance("R0", "n", "0", 5e-4),
        Conductance("R3", "a", "b", 1e-4),
    )


@pytest.mark.parametrize("kind", ["ngspice", "numpy"])
def test_tiny_circuit_matches_hand_solution(kind):
    be = NgspiceBackend() if kind == "ngspice" else NumpyBackend()
    v1 = np.array([1.0, -0.3, 2.0])
    v2 = np.array([0.5, 0.25, -1.0])
    sol = be.solve(_tiny(), {"V1": v1, "V2": v2})
    ua, ub = v1, -v2
    g1, g2, g0, g3 = 1e-3, 2e-3, 5e-4, 1e-4
    vn = (g1 * ua + g2 * ub) / (g1 + g2 + g0)
    np.testing.assert_allclose(sol.v("n"), vn, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sol.v("a"), ua)
    np.testing.assert_array_equal(sol.v("b"), ub)
    # SPICE branch currents: plus -> source -> minus
    i_a = g1 * (ua - vn) + g3 * (ua - ub)  # delivered into the network at a
    i_b = g2 * (ub - vn) + g3 * (ub - ua)  # delivered at b; b is V2's minus terminal
    np.testing.assert_allclose(sol.i("V1"), -i_a, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(sol.i("V2"), i_b, rtol=1e-12, atol=1e-18)


def test_fold_structure_of_a_block():
    block = aq.ResistiveBlock((6, 4, 3), seed=0)
    c = block.circuit(nudge=True)
    f = fold_pinned(c)
    names = {e.name for e in f.condensed.elements}
    # inputs and bias rails fold away; diode rails stay (diodes are never folded)
    assert not any(n.startswith("Vb0_in") for n in names)
    assert "Vb0_bias_p" not in names and "Vb0_dpos" in names and "Vb0_dneg" in names
    assert set(f.norton_nodes) == {*block.hidden_nodes[0], *block.output_nodes}
    assert f.n_folded == 14 * 4 + 2 * 6 and f.n_dropped == 0
    r1 = f.condensed.element("R1")  # hidden -> outputs stays, minus its bias rows
    assert isinstance(r1, ConductanceMatrix) and r1.rows == tuple(block.hidden_nodes[0])
    np.testing.assert_allclose(f.norton_g_S[:4], block.conductances[0].sum(axis=0))
    assert all(isinstance(e, Diode | CurrentSource) or e.name in names for e in c.elements
               if isinstance(e, Diode | CurrentSource))


def test_wired_tile_is_not_folded_and_converges_to_ideal_wires(ngspice):
    sizes = (6, 4, 3)
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (4, sizes[0]))
    ideal = aq.ResistiveBlock(sizes, seed=1)
    o_ideal = ideal.free(u, backend=ngspice).outputs
    errors = []
    for r in (1.0, 0.1):
        block = aq.ResistiveBlock(sizes, seed=1, tile=TileConfig(8, 8, wire_resistance_ohm=r))
        f = fold_pinned(block.circuit())
        assert f.n_folded == 0 and not f.folds  # row wires, not source nodes, on the rows
        errors.append(np.abs(block.free(u, backend=ngspice).outputs - o_ideal).max())
    assert errors[1] < 0.2 * errors[0] and errors[1] < 1e-3


def _compare(sizes, backend_cls, *, device=None, tile=None, batch=6, v_tol=1e-9,
             full_options=FULL):
    rng = np.random.default_rng(3)
    u = rng.uniform(-1, 1, (batch, sizes[0]))
    delta = rng.normal(size=(batch, sizes[-1]))
    blocks = [aq.ResistiveBlock(sizes, seed=2, device=device, tile=tile) for _ in range(2)]
    folded, full = backend_cls(), backend_cls(full_options)
    out = {}
    # free phase and the nudged circuit (with its current sources) at fixed values
    values = blocks[0].input_source_values(u)
    for nudge in (False, True):
        vals = dict(values)
        if nudge:
            for k, s in enumerate(blocks[0].nudge_sources):
                vals[s] = rng.normal(scale=1e-7, size=batch) * (-1) ** k
        a = folded.solve(blocks[0].circuit(nudge=nudge), vals)
        b = full.solve(blocks[1].circuit(nudge=nudge), vals)
        assert a.node_names == b.node_names and a.source_names == b.source_names
        assert np.abs(a.voltages_V - b.voltages_V).max() <= v_tol
        scale = np.abs(b.currents_A).max()
        assert np.abs(a.currents_A - b.currents_A).max() <= 1e-6 * scale
    ga = blocks[0].ep_gradients(u, delta, backend=folded)
    gb = blocks[1].ep_gradients(u, delta, backend=full)
    for x, y in zip([*ga.conductances, ga.inputs], [*gb.conductances, gb.inputs], strict=True):
        out.setdefault("ep_rel", []).append(float(np.abs(x - y).max() / np.abs(y).max()))
    out["blocks"] = blocks
    out["u"], out["delta"] = u, delta
    return out


SIZES = [(8, 6, 3), (10, 8, 6, 4)]


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_numpy_condensed_equals_full(sizes):
    res = _compare(sizes, NumpyBackend)
    assert max(res["ep_rel"]) <= 1e-6, res["ep_rel"]


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_ngspice_condensed_agrees_with_full_and_exact(sizes):
    res = _compare(sizes, NgspiceBackend, full_options=FULL_TIGHT)
    # the condensed solve at the default options (its tightened tolerances, docs/physics.md
    # "Norton folding") against the full form solved to reltol 1e-11
    assert max(res["ep_rel"]) <= 1e-6, res["ep_rel"]
    block, u, delta = res["blocks"][0], res["u"], res["delta"]
    ep = block.ep_gradients(u, delta, backend=NgspiceBackend())
    exact = block.exact_gradients(u, delta)
    for a, b in zip([*ep.conductances, ep.inputs], [*exact.conductances, exact.inputs],
                    strict=True):
        rel = np.linalg.norm(a - b) / np.linalg.norm(b)
        assert rel <= 1e-4, rel


@pytest.mark.parametrize("kind", ["ngspice", "numpy"])
def test_condensed_with_device_preset(kind):
    cls = NgspiceBackend if kind == "ngspice" else NumpyBackend
    res = _compare((8, 6, 3), cls, device=aq.TaOxHfOxNeuroSimPreset(),
                   full_options=FULL_TIGHT if kind == "ngspice" else FULL)
    assert max(res["ep_rel"]) <= 1e-6, res["ep_rel"]


def test_condensed_diode_to_pinned_rail_matches_shockley():
    """A diode to a pinned rail is not folded: condensed solve against a scalar root."""
    from scipy.optimize import brentq

    from analogeq.params import thermal_voltage_V

    m = DiodeModel("dm", 1e-14, 1.2)
    c = Circuit("d").add_model(m).add(
        VoltageSource("Vin", "a", "0", 0.0), VoltageSource("Vr", "r", "0", 0.3),
        Conductance("R1", "a", "n", 1e-4), Diode("D1", "n", "r", "dm"),
    )
    v_in = np.array([0.5, 0.8, 1.2])
    vte = 1.2 * thermal_voltage_V(27.0)
    for be in (NgspiceBackend(), NumpyBackend()):
        sol = be.solve(c, {"Vin": v_in})
        for k, vin in enumerate(v_in):
            vn = brentq(lambda x, vin=vin: 1e-4 * (vin - x) - 1e-14 * np.expm1((x - 0.3) / vte)
                        - 1e-12 * (x - 0.3), -1, vin, xtol=1e-15, rtol=1e-15)
            assert abs(sol.v("n")[k] - vn) < 1e-8
            # Vr's branch current: the diode current flows into r, out through the source
            assert sol.i("Vr")[k] == pytest.approx(1e-4 * (vin - sol.v("n")[k]), rel=1e-6)


def test_numpy_reports_newton_iterations():
    be = NumpyBackend()
    block = aq.ResistiveBlock((8, 6, 3), seed=0)
    block.free(np.ones((5, 8)) * 0.3, backend=be)
    assert be.last_iterations >= 1 and be.last_sample_iterations.shape == (5,)
    assert be.last_sample_iterations.max() == be.last_iterations
    assert be.stats["solves"] == 1


def test_condensed_netlist_runs_in_plain_ngspice_with_the_same_outputs(tmp_path, capsys):
    import subprocess

    from analogeq.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_EXPORT)
    out = tmp_path / "nets"
    assert main(["netlist", str(cfg), "--out", str(out), "--condensed"]) == 0
    capsys.readouterr()

    def run(path):
        res = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        import re

        return np.array([float(v) for v in
                         re.findall(r"^v\(\S+\) = (\S+)$", res.stdout, flags=re.M)])

    full, cond = run(out / "b.cir"), run(out / "b_condensed.cir")
    assert full.size == 3 and cond.size == 3
    np.testing.assert_allclose(cond, full, rtol=0, atol=1e-7)
    text = (out / "b_condensed.cir").read_text()
    assert "CONDENSED" in text and "Inorton_" in text and "Vb_in000p" not in text
    assert "Vb_in000p" in (out / "b.cir").read_text()  # the full form is unchanged


TINY_EXPORT = """
name = "fold"
seed = 0
[data]
dataset = "digits"
limit_train = 40
limit_test = 10
[model]
layers = [
  { type = "resistive", hidden = [6], out = 3, name = "b" },
]
[train]
epochs = 1
batch_size = 40
backend = "numpy"
"""


@pytest.mark.parametrize("kind", ["ngspice", "numpy"])
def test_condensed_equals_full_through_a_model_with_converter_noise(kind):
    """A model whose DAC adds noise (noise_lsb) and whose ADC reads the block: the same
    seed through the condensed and the full form gives the same block outputs (<= 1e-9 V)
    and the same gradients of every parameter (<= 1e-6 relative)."""
    from analogeq.runs.config import build_model, resolve_config

    cfg = resolve_config({
        "name": "noisy", "seed": 4, "data": {"dataset": "digits"},
        "model": {"layers": [
            {"type": "linear", "out": 6}, {"type": "activation", "name": "hardtanh"},
            {"type": "dac", "bits": 8, "v_min": -1.0, "v_max": 1.0, "noise_lsb": 0.7},
            {"type": "resistive", "hidden": [5], "out": 3},
            {"type": "adc", "bits": 10, "v_min": -0.3, "v_max": 0.3},
        ]},
        "train": {"backend": kind},
    })
    x = np.random.default_rng(5).uniform(0, 1, (7, 64))
    delta = np.random.default_rng(6).normal(size=(7, 3))
    out, grads, inputs = [], [], []
    for fold in (True, False):
        model = build_model(cfg, (64,))
        model.set_backend(kind, SolverOptions(fold_pinned_nodes=fold,
                                              reltol=1e-8 if fold else 1e-11))
        logits = model.forward(x, train=True)
        model.backward(delta)
        lay = model.analog_layers[0]
        out.append(lay.last_free_state.outputs)
        inputs.append(lay.last_inputs_V)
        grads.append({k: np.array(v) for k, v in model.grads.items()})
        assert np.isfinite(logits).all()
    np.testing.assert_array_equal(inputs[0], inputs[1])  # the same noise draws
    assert np.abs(out[0] - out[1]).max() <= 1e-9
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) >= 4
    for k, b in grads[1].items():
        assert np.abs(grads[0][k] - b).max() <= 1e-6 * np.abs(b).max(), k
