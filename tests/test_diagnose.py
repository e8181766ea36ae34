"""`analogeq diagnose`: clamp currents against the rail sources' own currents, node
conductances against the circuit's Laplacian, device bounds against planted values, the two
solvers against each other, and the command on a config and on a run folder."""

from __future__ import annotations

import numpy as np
import pytest

from analogeq import ResistiveBlock
from analogeq.backends.numpy_backend import CompiledCircuit
from analogeq.cli import main
from analogeq.runs.diagnose import OFF_BELOW, ON_FROM, ClampLayerStats, diagnose


@pytest.mark.parametrize("backend", ["ngspice", "numpy_backend"])
def test_clamp_currents_are_what_the_rail_sources_deliver(backend, request):
    be = request.getfixturevalue(backend)
    block = ResistiveBlock((12, 6, 4, 3), seed=1)
    u = np.random.default_rng(0).uniform(-1, 1, (5, 12))
    sol = block.free(u, backend=be).solution
    currents = block.clamp_currents(sol)
    for l, i in enumerate(currents):
        pos, neg = block.diode_rail_nodes[l]
        # SPICE sign: a source delivering current into the network has a negative branch
        # current; the positive rail feeds the even units, the negative rail sinks the odd
        np.testing.assert_allclose(-sol.currents([f"V{pos}"])[:, 0], i[:, 0::2].sum(axis=1),
                                   rtol=1e-6, atol=1e-15)
        np.testing.assert_allclose(sol.currents([f"V{neg}"])[:, 0], i[:, 1::2].sum(axis=1),
                                   rtol=1e-6, atol=1e-15)


def test_node_conductance_is_the_laplacian_diagonal():
    block = ResistiveBlock((6, 5, 4, 3), seed=2)
    cc = CompiledCircuit.build(block.circuit(), block.options, sparse=False)
    diag = cc.laplacian.diagonal()
    index = {n: k for k, n in enumerate(cc.nodes)}
    for l, nodes in enumerate(block.hidden_nodes):
        np.testing.assert_allclose(block.node_conductances_S(l + 1),
                                   diag[[index[n] for n in nodes]], rtol=1e-12)


def test_states_follow_the_thresholds():
    ratio = np.array([[0.0, 0.05, 0.1, 1.0], [9.99, 10.0, 100.0, -1e-3]])
    st = ClampLayerStats("b", 1, 0.4, np.zeros_like(ratio), ratio, np.ones(4))
    assert OFF_BELOW == 0.1 and ON_FROM == 10.0
    np.testing.assert_array_equal(st.states, [[0, 0, 1, 1], [1, 2, 2, 0]])
    np.testing.assert_allclose(st.unit_fractions()[1], [0.5, 0.0, 0.5])


def test_diagnose_config_on_both_solvers_and_planted_bounds(tiny_config, tmp_path):
    diag, out = diagnose(tiny_config, samples=20, backend="numpy", out_dir=tmp_path / "a",
                         progress=False)
    spice, _ = diagnose(tiny_config, samples=20, backend="ngspice", out_dir=tmp_path / "b",
                        progress=False)
    assert (out / "diagnose.md").read_text() == diag.table()
    assert (out / "diagnose.png").stat().st_size > 1000
    (st,), (sp,) = diag.layers, spice.layers
    assert st.voltages_V.shape == (20, 8)
    np.testing.assert_allclose(st.voltages_V, sp.voltages_V, atol=1e-6)
    np.testing.assert_array_equal(st.states, sp.states)
    assert [c.at_min for c in diag.crossbars] == [0.0, 0.0]  # uniform initial values
    # the table's voltage range is the solved range of each parity
    v = st.voltages_V
    assert f"{v[:, 0::2].min():+.3f} |" in diag.table()
    assert f"{v[:, 1::2].max():+.3f} |" in diag.table()


def test_bounds_count_planted_devices(monkeypatch, tiny_config, tmp_path):
    """Devices set to g_min and g_max before the solve are counted as such."""
    import importlib

    dg = importlib.import_module("analogeq.runs.diagnose")  # the module, not the function

    real = dg.diagnose_model

    def planted(model, x, **kw):
        block = model.analog_layers[0].block
        g = block.conductances[0]
        flat = g.reshape(-1)
        n = flat.size
        flat[: n // 4] = block.params.g_min_S
        flat[n // 4: n // 4 + n // 10] = block.params.g_max_S
        flat[n // 4 + n // 10] = block.params.g_max_S * (1 - 1e-2)  # near, not at, g_max
        return real(model, x, **kw)

    monkeypatch.setattr(dg, "diagnose_model", planted)
    diag, _ = diagnose(tiny_config, samples=8, out_dir=tmp_path, progress=False)
    n = diag.crossbars[0].devices
    assert diag.crossbars[0].at_min == pytest.approx((n // 4) / n)
    assert diag.crossbars[0].at_max == pytest.approx((n // 10) / n)


def test_diagnose_command_on_a_config_and_a_run(tiny_config, tmp_path, capsys):
    assert main(["diagnose", str(tiny_config), "--samples", "16", "--out",
                 str(tmp_path / "cfg"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "| b0 | 1 | even (V >~ 0): 4 |" in text and "| b0 | R0 |" in text
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--quiet"]) == 0
    assert main(["diagnose", str(run), "--samples", "16", "--quiet"]) == 0
    assert (run / "diagnose.md").exists() and (run / "diagnose.png").exists()
    assert "Diagnosis of run" in (run / "diagnose.md").read_text()
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "nothing")]) == 2
    assert "neither a run folder nor a config" in capsys.readouterr().err



def test_converter_clipping_counts_the_values_outside_each_range(tiny_config, tmp_path):
    """A DAC narrower than the hardtanh's +-1 V and an ADC narrower than the block's
    outputs: the diagnosis counts the values outside each range, checked by pushing the
    same inputs through the layers by hand."""
    from analogeq import build_model, load_config, load_dataset
    from analogeq.model import AnalogLayer
    from analogeq.runs.diagnose import diagnose_model

    text = tiny_config.read_text().replace(
        'v_min = -1.0, v_max = 1.0', 'v_min = -0.5, v_max = 0.5').replace(
        '{ type = "adc", bits = 8, calibrate = true }',
        '{ type = "adc", bits = 8, v_min = -0.02, v_max = 0.03 }')
    path = tmp_path / "narrow.toml"
    path.write_text(text)
    cfg = load_config(path)
    x = load_dataset("digits", limit_train=10, limit_test=30).x_test
    model = build_model(cfg, x.shape[1:], backend="numpy")
    diag = diagnose_model(model, x, batch_size=16)
    dac, adc = diag.converters
    assert (dac.where, dac.kind, adc.where, adc.kind) == ("-> b0", "DAC", "b0 ->", "ADC")
    assert (adc.v_min, adc.v_max) == (-0.02, 0.03)

    v = x.reshape(len(x), -1)
    for layer in model.layers:
        if isinstance(layer, AnalogLayer):
            break
        if type(layer).__name__ == "DAC":
            before_dac = v
        v = layer.forward(v, train=False)
    outputs = layer.block.free(v, backend="numpy").outputs
    outside_dac = (np.abs(before_dac) > 0.5)
    outside_adc = (outputs < -0.02) | (outputs > 0.03)
    assert 0.05 < outside_dac.mean() < 0.95 and 0.05 < outside_adc.mean() < 0.95
    assert dac.values == before_dac.size and adc.values == outputs.size
    assert dac.clipped == pytest.approx(outside_dac.mean(), abs=1e-12)
    assert adc.clipped == pytest.approx(outside_adc.mean(), abs=1e-12)
    assert adc.worst_channel == pytest.approx(outside_adc.mean(axis=0).max(), abs=1e-12)
    assert f"| b0 -> ADC | 8 | -0.02 .. +0.03 | {outputs.size} | {adc.clipped:.1%} |" \
        in diag.table()
