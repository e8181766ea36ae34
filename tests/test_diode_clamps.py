"""Diode clamps of the hidden units: where the clamp knee sits (measured on solved sweeps,
ngspice and NumPy), the auto rail rule, and the rails in netlists."""

from __future__ import annotations

import numpy as np
import pytest

from analogeq import ResistiveBlock, ResistiveBlockParams
from analogeq.circuit import Circuit, Diode
from digital.gradcheck import numerical_gradient

#: (signed inputs, hidden, outputs): crossbar fan-in of 64 and 1,568 input nodes per hidden
#: node, and the digits demo's block
KNEE_SIZES = [(32, 8, 10), (64, 32, 10), (784, 16, 10)]


def _without_diodes(c: Circuit) -> Circuit:
    return Circuit(c.title, [e for e in c.elements if not isinstance(e, Diode)], dict(c.models))


def measured_knee_V(block: ResistiveBlock, backend, unit: int, points: int = 241) -> float:
    """Hidden voltage at the knee of hidden unit ``unit`` (layer 1), measured on solves.

    The inputs ``u = s w`` (w_i = sign of unit's p-minus-n input conductance) sweep the
    unit's voltage ``V_lin(s)`` in the same circuit without diodes (a linear network);
    with diodes the unit sits at ``V(s)``. The knee is where ``dV / dV_lin = 1/2``, i.e.
    where the diode's conductance equals the node's own: found by interpolation on the
    sweep, independent of how the rails were chosen."""
    g = block.conductances[0]
    w = np.sign(g[0:2 * block.n_in:2, unit] - g[1:2 * block.n_in:2, unit])
    s = np.linspace(-1.5, 1.5, points)
    u = s[:, None] * w[None, :]
    node = block.hidden_nodes[0][unit]
    values = block.input_source_values(u)
    v = backend.solve(block.circuit(), values).voltages([node])[:, 0]
    v_lin = backend.solve(_without_diodes(block.circuit()), values).voltages([node])[:, 0]
    slope = np.gradient(v, v_lin)
    # positive clamp: the slope rises from ~0 (clamped, low V_lin) to ~1; negative: falls
    rising = slope if unit % 2 == 0 else slope[::-1]
    vv = v if unit % 2 == 0 else v[::-1]
    k = int(np.flatnonzero((rising[:-1] < 0.5) & (rising[1:] >= 0.5))[0])
    t = (0.5 - rising[k]) / (rising[k + 1] - rising[k])
    return float(vv[k] + t * (vv[k + 1] - vv[k]))


@pytest.mark.parametrize("sizes", KNEE_SIZES, ids=lambda s: "x".join(map(str, s)))
def test_auto_rail_puts_the_knee_within_20mV_of_0V(ngspice, numpy_backend, sizes):
    block = ResistiveBlock(sizes, seed=2)
    assert block.params.diode_rail_V == "auto"
    for unit in (0, 1):  # a positive- and a negative-clamped unit
        knees = [measured_knee_V(block, be, unit) for be in (ngspice, numpy_backend)]
        assert abs(knees[0] - knees[1]) < 1e-6, knees
        assert abs(knees[0]) <= 0.02, (sizes, unit, knees)


def test_fixed_rail_misses_the_knee_on_a_wide_block(numpy_backend):
    """The old fixed 0.4 V rail: the 1,568-input block's clamp engages near -0.08 V, as the
    rule predicts (N V_T ln of the ratio of node conductances); auto moves it to 0 V."""
    fixed = ResistiveBlock((784, 16, 10), seed=2, params=ResistiveBlockParams(diode_rail_V=0.4))
    auto = ResistiveBlock((784, 16, 10), seed=2)
    knee = measured_knee_V(fixed, numpy_backend, 0)
    assert knee < -0.05
    assert abs(knee - (0.4 - auto.diode_rails_V[0])) < 0.01


def test_auto_rail_follows_the_rule():
    vt = ResistiveBlock((4, 2, 1)).options.thermal_voltage_V
    block = ResistiveBlock((784, 100, 10))
    g = 0.5 * (5e-7 + 5e-6) * (2 * 784 + 2 + 20)  # fan-in incl. bias rails + fan-out
    assert block.expected_node_conductance_S(1) == pytest.approx(g, rel=1e-12)
    assert block.diode_rails_V[0] == pytest.approx(vt * np.log(g * vt / 1e-12), rel=1e-12)
    # deterministic: independent of the seed and of the drawn conductances
    assert ResistiveBlock((784, 100, 10), seed=5).diode_rails_V == block.diode_rails_V
    # a number is still accepted, for every layer
    fixed = ResistiveBlock((8, 6, 6, 2), params=ResistiveBlockParams(diode_rail_V=0.35))
    assert fixed.diode_rails_V == (0.35, 0.35)
    assert fixed.diode_rail_nodes == [("b0_dpos", "b0_dneg")] * 2
    with pytest.raises(ValueError, match="diode_rail_V"):
        ResistiveBlockParams(diode_rail_V="automatic")
    with pytest.raises(ValueError, match="diode_rail_V"):
        ResistiveBlockParams(diode_rail_V=float("nan"))


def test_per_layer_rails_in_deep_and_amplified_blocks():
    block = ResistiveBlock((32, 32, 32, 32, 10), seed=0)
    g = [block.expected_node_conductance_S(l) for l in (1, 2, 3)]
    assert g[0] > g[1] > g[2]  # fan 66+32, 34+32, 34+20
    assert block.diode_rails_V[0] > block.diode_rails_V[1] > block.diode_rails_V[2]
    assert block.diode_rail_nodes == [("b0_dpos", "b0_dneg"), ("b0_dpos2", "b0_dneg2"),
                                      ("b0_dpos3", "b0_dneg3")]
    names = {e.name for e in block.circuit().elements}
    assert {"Vb0_dpos", "Vb0_dneg2", "Vb0_dpos3"} <= names
    amp = ResistiveBlock((32, 32, 32, 10), amplifier_gain=4.0, amplifier_back_gain=0.5)
    # the stage after layer 1 draws c = 0.5 times what A = 4 delivers: fan-out counts A c = 2
    assert amp.expected_node_conductance_S(1) == pytest.approx(2.75e-6 * (66 + 2 * 32))
    text = block.netlist()
    assert "b0_dpos3 +" in text and "auto" in text
    assert "Diode clamp rails" in block.describe_mapping()


def _config(**resistive):
    layer = {"type": "resistive", "hidden": [8], "out": 10, **resistive}
    return {"model": {"layers": [{"type": "dac"}, layer]}}


def test_config_takes_auto_or_volts_for_the_rail():
    from analogeq import resolve_config
    from analogeq.errors import ConfigError
    from analogeq.runs.config import run_config

    def params(**kw):
        return run_config(resolve_config(_config(**kw))).model.resistive[0].params

    assert params().diode_rail_V == "auto"
    assert params(diode_rail_V="auto").diode_rail_V == "auto"
    assert params(diode_rail_V=0.4).diode_rail_V == 0.4
    for bad in ("Auto", True, [0.4], float("inf")):
        with pytest.raises(ConfigError, match=r"model.layers\[1\].diode_rail_V"):
            resolve_config(_config(diode_rail_V=bad))


# -- diode models: the behavioural PWL clamp and the 1N4148 card -------------------------

MODELS = ["shockley", "1n4148", "pwl"]


def _pwl_block(sizes, seed=1, **kw):
    return ResistiveBlock(sizes, seed=seed, params=ResistiveBlockParams(diode_model="pwl"),
                          **kw)


def test_pwl_law_on_ngspice_is_the_documented_equation(ngspice):
    """One PWL diode across a swept source: the current ngspice's B source conducts is
    g_off V + g_on w ln(1 + exp((V - v_on) / w)), written out here independently, and stays
    within g_on w ln 2 of the exact piecewise-linear law."""
    from analogeq import PWLDiodeModel
    from analogeq.circuit import VoltageSource

    m = PWLDiodeModel("dp", g_on_S=0.5, g_off_S=1e-9, v_on_V=0.05, smooth_V=0.004)
    c = Circuit("one pwl diode",
                [VoltageSource("V1", "a", "0", 0.0), Diode("D1", "a", "0", "dp")], {"dp": m})
    v = np.linspace(-0.3, 0.3, 61)
    i = -ngspice.solve(c, {"V1": v}).currents(["V1"])[:, 0]
    expected = 1e-9 * v + 0.5 * 0.004 * np.log1p(np.exp((v - 0.05) / 0.004))
    np.testing.assert_allclose(i, expected, rtol=1e-7, atol=1e-15)  # ngspice's reltol
    exact = 1e-9 * v + 0.5 * np.maximum(v - 0.05, 0.0)
    assert np.abs(i - exact).max() <= 0.5 * 0.004 * np.log(2) * (1 + 1e-7)


def test_pwl_conductance_is_the_derivative_of_its_current():
    from analogeq.backends.diode import pwl_diode_current

    v = np.linspace(-0.2, 0.2, 401)
    args = (0.8, 1e-10, 0.01, 0.002)
    h = 1e-7
    i_up, _ = pwl_diode_current(v + h, *args)
    i_dn, _ = pwl_diode_current(v - h, *args)
    _, g = pwl_diode_current(v, *args)
    np.testing.assert_allclose(g, (i_up - i_dn) / (2 * h), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("sizes", [(64, 32, 10), (16, 12, 8, 4)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("drive", [1.0, 6.0], ids=["mild", "clamping"])
def test_pwl_clamp_agrees_between_ngspice_and_numpy_within_1nV(ngspice, numpy_backend, sizes,
                                                                 drive):
    block = _pwl_block(sizes)
    rng = np.random.default_rng(0)
    u = drive * rng.uniform(-1, 1, (8, sizes[0]))
    a = block.free(u, backend=ngspice).solution
    b = block.free(u, backend=numpy_backend).solution
    np.testing.assert_allclose(a.voltages_V, b.voltages_V, rtol=0, atol=1e-9)
    if drive > 1:  # the clamps do engage: most units are held (on) in some sample
        w = block.params.diode.smooth_V
        ratio = block.clamp_currents(b)[0] / (block.node_conductances_S(1) * w)
        assert (ratio >= 10).any(axis=0).mean() > 0.5
    delta = rng.normal(size=(8, sizes[-1]))
    ga = block.ep_gradients(u, delta, backend=ngspice)
    gb = block.ep_gradients(u, delta, backend=numpy_backend)
    np.testing.assert_allclose(ga.outputs, gb.outputs, rtol=0, atol=1e-9)


def test_pwl_clamp_agrees_with_amplifiers_and_without_folding(ngspice, numpy_backend):
    from analogeq import SolverOptions
    from analogeq.backends.numpy_backend import NumpyBackend

    block = _pwl_block((12, 8, 8, 4), amplifier_gain=3.0)
    u = 3 * np.random.default_rng(1).uniform(-1, 1, (6, 12))
    a = block.free(u, backend=ngspice).solution
    b = block.free(u, backend=numpy_backend).solution
    np.testing.assert_allclose(a.voltages_V, b.voltages_V, rtol=0, atol=1e-9)
    full = NumpyBackend(SolverOptions(fold_pinned_nodes=False))
    c = block.free(u, backend=full).solution
    np.testing.assert_allclose(c.voltages_V, b.voltages_V, rtol=0, atol=1e-9)


def _cos_rel(a, b):
    a, b = a.ravel(), b.ravel()
    return (float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
            float(np.linalg.norm(a - b) / np.linalg.norm(b)))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sizes", [(64, 32, 10), (16, 12, 8, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_ep_on_ngspice_matches_exact_gradients_for_each_diode_model(ngspice, model, sizes):
    rng = np.random.default_rng(0)
    u = 2 * rng.uniform(-1, 1, (8, sizes[0]))
    delta = rng.normal(size=(8, sizes[-1]))
    block = ResistiveBlock(sizes, seed=1, params=ResistiveBlockParams(diode_model=model))
    ep = block.ep_gradients(u, delta, backend=ngspice)
    exact = block.exact_gradients(u, delta)
    # the PWL corner is sharp (w = 2 mV), so EP's O(beta^2) bias is larger at the default
    # beta: up to 1.2e-4 on the deep block, falling 4x per halving of beta (below)
    tol = 3e-4 if model == "pwl" else 1e-4
    for k, (a, b) in enumerate(zip(ep.conductances, exact.conductances, strict=True)):
        cos, rel = _cos_rel(a, b)
        assert cos >= 0.99999 and rel <= tol, (model, k, cos, rel)
    cos, rel = _cos_rel(ep.inputs, exact.inputs)
    assert cos >= 0.99999 and rel <= tol, (model, "inputs", cos, rel)
    if model == "pwl":
        half = block.ep_gradients(u, delta, beta=block.default_beta(delta) / 2,
                                  backend=ngspice)
        for a, b, c in zip(ep.conductances, half.conductances, exact.conductances,
                           strict=True):
            ratio = _cos_rel(a, c)[1] / _cos_rel(b, c)[1]
            assert 3.0 < ratio < 5.0, ratio  # O(beta^2)


def test_exact_gradient_of_pwl_block_matches_finite_differences(numpy_backend):
    block = _pwl_block((6, 5, 3), seed=3)
    rng = np.random.default_rng(3)
    u = 3 * rng.uniform(-1, 1, (3, 6))
    delta = rng.normal(size=(3, 3))
    exact = block.exact_gradients(u, delta)

    def loss():
        return float((delta * block.free(u, backend=numpy_backend).outputs).sum())

    for k in range(2):
        for idx in [(0, 0), (2, 1), (-1, 2)]:
            g0 = block.conductances[k][idx]
            h = 1e-4 * g0
            block.conductances[k][idx] = g0 + h
            up = loss()
            block.conductances[k][idx] = g0 - h
            down = loss()
            block.conductances[k][idx] = g0
            fd = (up - down) / (2 * h)
            assert abs(fd - exact.conductances[k][idx]) <= 1e-4 * abs(fd) + 1e-9, (k, idx)


@pytest.mark.parametrize("model", ["1n4148", "pwl"])
@pytest.mark.parametrize("sizes", [(32, 8, 10), (784, 16, 10)], ids=["fanin64", "fanin1568"])
def test_auto_rail_puts_the_knee_at_0V_for_each_diode_model(ngspice, numpy_backend, model,
                                                             sizes):
    block = ResistiveBlock(sizes, seed=2, params=ResistiveBlockParams(diode_model=model))
    for unit in (0, 1):
        knees = [measured_knee_V(block, be, unit, points=601) for be in (ngspice, numpy_backend)]
        assert abs(knees[0] - knees[1]) < 1e-6, knees
        assert abs(knees[0]) <= 0.02, (model, sizes, unit, knees)


def test_pwl_block_netlist_runs_in_plain_ngspice(tmp_path, ngspice):
    import subprocess

    block = _pwl_block((5, 4, 2), seed=4)
    u = np.array([0.9, -0.8, 0.7, -0.2, 0.5])
    path = tmp_path / "b0.cir"
    path.write_text(block.netlist(u))
    text = path.read_text()
    assert "BDb0_h1_000 b0_dpos b0_h1_000 I=" in text and "uramp(" in text
    assert ".model dpwl" not in text and "* PWL diode model dpwl" in text
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    import re

    printed = np.array([float(v) for v in re.findall(r"^v\(\S+\) = (\S+)$", out.stdout,
                                                     flags=re.M)])
    np.testing.assert_allclose(printed, block.free(u, backend=ngspice).outputs[0], atol=1e-9)


def test_diode_model_choice_in_params_and_config():
    from analogeq import PWLDiodeModel, diode_1n4148, resolve_config
    from analogeq.errors import ConfigError
    from analogeq.runs.config import run_config

    assert ResistiveBlockParams().diode.is_A == 1e-12
    assert ResistiveBlockParams(diode_model="1n4148").diode == diode_1n4148()
    assert ResistiveBlockParams(diode_model="pwl").diode == PWLDiodeModel()
    with pytest.raises(ValueError, match="diode_model"):
        ResistiveBlockParams(diode_model="ideal")
    with pytest.raises(ValueError, match="not a diode of diode_model"):
        ResistiveBlockParams(diode_model="pwl", diode=diode_1n4148())

    def params(**kw):
        return run_config(resolve_config(_config(**kw))).model.resistive[0].params

    p = params(diode_model="pwl", diode={"g_on_S": 0.2, "smooth_V": 0.001})
    assert p.diode == PWLDiodeModel(g_on_S=0.2, smooth_V=0.001)
    assert params(diode_model="1n4148").diode == diode_1n4148()
    assert params(diode={"is_A": 1e-14}).diode.is_A == 1e-14
    for bad, named in ((dict(diode_model="pwl", diode={"is_A": 1e-12}), "diode.is_A"),
                       (dict(diode_model="1n4148", diode={"n": 2.0}), "diode.n"),
                       (dict(diode_model="PWL"), "diode_model"),
                       (dict(diode_model="pwl", diode={"g_on_S": -1.0}), "diode.g_on_S")):
        with pytest.raises(ConfigError, match=named):
            resolve_config(_config(**bad))


def test_pwl_block_power_balances_tellegen(ngspice):
    """Power delivered by the sources equals what the conductances and PWL clamps dissipate
    (sum g dV^2 + sum I_D V_D with the PWL law)."""
    from analogeq.cost import dissipated_power_W, static_power_W

    block = _pwl_block((6, 6, 2), seed=5)
    circuit = block.circuit()
    u = 4 * np.random.default_rng(2).uniform(-1, 1, (5, 6))
    values = block.input_source_values(u)
    sol = ngspice.solve(circuit, values)
    np.testing.assert_allclose(static_power_W(sol, circuit, values),
                               dissipated_power_W(sol, circuit, ngspice.options), rtol=1e-7)


# -- trainable clamp biases ------------------------------------------------------------

def _bias_block(model="shockley", **kw):
    return ResistiveBlock((8, 6, 4, 3), seed=1, **kw, params=ResistiveBlockParams(
        trainable_diode_bias=True, diode_model=model))


def _bias_fd(block, u, delta, backend, h):
    def loss():
        return float((delta * block.free(u, backend=backend).outputs).sum())

    return [numerical_gradient(loss, bias, h) for bias in block.diode_biases]


@pytest.mark.parametrize("model", ["shockley", "pwl"])
def test_ep_bias_gradient_matches_finite_differences_on_ngspice(ngspice, model):
    block = _bias_block(model)
    assert [b.shape for b in block.diode_biases] == [(6,), (4,)]
    np.testing.assert_allclose(block.diode_biases[0][:2], [block.diode_rails_V[0],
                                                           -block.diode_rails_V[0]])
    rng = np.random.default_rng(0)
    u = 2 * rng.uniform(-1, 1, (4, 8))
    delta = rng.normal(size=(4, 3))
    ep = block.ep_gradients(u, delta, backend=ngspice)
    fd = _bias_fd(block, u, delta, ngspice, h=2e-4)
    for a, b in zip(ep.diode_biases, fd, strict=True):
        assert np.abs(a - b).max() <= 1e-3 * np.abs(b).max(), (model, a, b)
        assert np.abs(b).max() > 1e-2  # the biases matter


@pytest.mark.parametrize("amplified", [False, True])
def test_exact_bias_gradient_matches_finite_differences(numpy_backend, amplified):
    block = _bias_block(**({"amplifier_gain": 3.0} if amplified else {}))
    rng = np.random.default_rng(1)
    u = 2 * rng.uniform(-1, 1, (3, 8))
    delta = rng.normal(size=(3, 3))
    exact = block.exact_gradients(u, delta)
    fd = _bias_fd(block, u, delta, numpy_backend, h=1e-5)
    for a, b in zip(exact.diode_biases, fd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7 * np.abs(b).max())
    ep = block.ep_gradients(u, delta, beta=block.default_beta(delta) / 10,
                            backend=numpy_backend)
    for a, b in zip(ep.diode_biases, exact.diode_biases, strict=True):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_bias_sources_in_the_circuit_and_netlist():
    block = _bias_block()
    names = {e.name: e for e in block.circuit().elements}
    assert names["Vb0_h1_000_rail"].dc_V == pytest.approx(block.diode_rails_V[0])
    assert names["Vb0_h2_003_rail"].dc_V == pytest.approx(-block.diode_rails_V[1])
    assert "Vb0_dpos" not in names
    block.diode_biases[0][0] = 0.25
    assert {e.name: e for e in block.circuit().elements}["Vb0_h1_000_rail"].dc_V == 0.25
    assert "trainable" in block.netlist()


def test_training_with_trainable_biases_moves_them_and_resumes_exactly(tmp_path):
    from analogeq import load_config, read_checkpoint, train
    from tests.conftest import TINY

    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('{ type = "resistive", hidden = [8], out = 10 }',
                                 '{ type = "resistive", hidden = [8], out = 10, '
                                 'trainable_diode_bias = true }'))
    cfg = load_config(path)
    train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after_epochs=1)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, _ = read_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = read_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert a.keys() == b.keys() and any(k.startswith("opt_b0/") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    bias = next(v for k, v in a.items() if k.endswith(".v1"))
    start = ResistiveBlock((12, 8, 10)).diode_rails_V[0]
    assert bias.shape == (8,) and np.abs(np.abs(bias) - start).max() > 1e-4


def test_trainable_bias_key_is_a_bool():
    from analogeq import resolve_config
    from analogeq.errors import ConfigError

    with pytest.raises(ConfigError, match="trainable_diode_bias"):
        resolve_config(_config(trainable_diode_bias="yes"))
