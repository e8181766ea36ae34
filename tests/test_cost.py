"""Energy and time accounting (analogeq.cost) and the boundary buffer (analogeq.hardware.buffer).

Physics checks run the real ngspice: static power against an independent dissipation sum
(Tellegen), settling against the RC formula -tau ln(tol), linearity of settling in C.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from analogeq import (
    FFEBM,
    AnalogLayer,
    Buffer,
    BufferOverflowError,
    Circuit,
    Conductance,
    CostParams,
    CurrentSource,
    Diode,
    DiodeModel,
    InvalidValueError,
    ResistiveBlock,
    VoltageSource,
    block_cost,
    format_cost_table,
    free_nodes,
    report,
    settling_time_s,
    static_power_W,
    step_cost,
)
from analogeq.cost import dissipated_power_W
from analogeq.hardware.buffer import ep_buffer_requirement_bits
from digital import layers as dl
from digital.converters import ADC, DAC


def _independent_dissipation(sol, circuit, options) -> np.ndarray:
    """sum g dV^2 over every conductance + I_D V_D over every diode, written out here
    from the Shockley equation (forward region) with the gmin shunt."""
    total = np.zeros(sol.batch_size)
    vt = options.thermal_voltage_V
    for e in circuit.elements:
        if hasattr(e, "rows"):  # crossbar
            for i, r in enumerate(e.rows):
                for j, c in enumerate(e.cols):
                    total += e.g_S[i, j] * (sol.v(r) - sol.v(c)) ** 2
        elif isinstance(e, Conductance):
            total += e.g_S * (sol.v(e.a) - sol.v(e.b)) ** 2
        elif isinstance(e, Diode):
            m = circuit.models[e.model]
            vd = sol.v(e.anode) - sol.v(e.cathode)
            assert (vd / (m.n * vt) >= -3.0).all()  # the exponential region of the model
            i_d = m.is_A * np.expm1(vd / (m.n * vt)) + options.gmin * vd
            total += i_d * vd
    return total


def test_static_power_equals_dissipation_in_a_block(ngspice, rng):
    """Tellegen: power delivered by every V and I source (nudges swept per sample) equals
    the dissipation in the conductances and diodes."""
    block = ResistiveBlock((4, 5, 2), seed=1)
    circuit = block.circuit(nudge=True)
    u = rng.uniform(-1.0, 1.0, (5, 4))
    values = block.input_source_values(u)
    for s in block.nudge_sources:
        values[s] = rng.uniform(-3e-7, 3e-7, 5)
    sol = ngspice.solve(circuit, values)
    delivered = static_power_W(sol, circuit, values)
    assert delivered.shape == (5,)
    assert (delivered > 0).all()
    independent = _independent_dissipation(sol, circuit, ngspice.options)
    np.testing.assert_allclose(delivered, independent, rtol=1e-9, atol=0)
    library = dissipated_power_W(sol, circuit, ngspice.options)
    np.testing.assert_allclose(library, independent, rtol=1e-12, atol=0)


def test_static_power_sign_of_current_sources_and_floating_sources(ngspice):
    """A circuit where current sources carry a large share of the power, a voltage source
    floats between two nodes and a diode conducts: delivered == dissipated to 1e-9."""
    model = DiodeModel("dtest", 1e-12, 1.0)
    c = Circuit("tellegen").add_model(model)
    c.add(
        VoltageSource("V1", "a", "0", 1.0),
        Conductance("R1", "a", "b", 1e-4),
        VoltageSource("V2", "b", "c", 0.3),  # floating source
        Conductance("R2", "c", "0", 1e-4),
        Diode("D1", "c", "0", "dtest"),
        CurrentSource("I1", "0", "c", 2e-5),  # injects 20 uA into c
        Conductance("R3", "d", "0", 2e-5),
        CurrentSource("I2", "0", "d", 1e-5),  # injects into d: V(d) = 0.5 V
    )
    sol = ngspice.solve(c)
    delivered = static_power_W(sol, c)
    dissipated = _independent_dissipation(sol, c, ngspice.options)
    np.testing.assert_allclose(delivered, dissipated, rtol=1e-9, atol=0)
    # the lone current source into a resistor: P = I^2 / g, delivered by the source
    np.testing.assert_allclose(sol.v("d"), 0.5, rtol=1e-9)
    assert (sol.v("c") > 0.2).all()  # the diode conducts
    # flipping the current-source sign convention breaks the balance
    wrong = delivered - 2 * (2e-5 * sol.v("c") + 1e-5 * sol.v("d"))
    assert abs(wrong[0] - dissipated[0]) > 1e-3 * dissipated[0]


def test_free_nodes_excludes_source_driven_nodes():
    c = Circuit("fn").add(
        VoltageSource("V1", "a", "0", 1.0),
        VoltageSource("V2", "b", "a", 1.0),  # b is driven through a chain of sources
        Conductance("R1", "b", "x", 1e-5),
        Conductance("R2", "x", "0", 1e-5),
    )
    assert free_nodes(c) == ["x"]


@pytest.mark.parametrize("tol", [1e-2, 1e-3])
def test_rc_settling_matches_tau_ln_tol(ngspice, tol):
    """One conductance g from a stepped source into a node with capacitance C: the ngspice
    transient settles to tol at -tau ln(tol), tau = C / g."""
    g, cap = 1e-5, 1e-12
    c = Circuit("rc").add(VoltageSource("V1", "in", "0", 0.0), Conductance("R1", "in", "a", g))
    params = CostParams(node_capacitance_F=cap, settle_tolerance=tol)
    t = settling_time_s(c, {"V1": 0.0}, {"V1": 1.0}, params, ngspice)
    expected = -cap / g * math.log(tol)
    assert t == pytest.approx(expected, rel=1e-3)


def test_transient_starts_at_operating_point_and_follows_rc(ngspice):
    """The raw transient: starts from the DC point of the 'before' value (no uic) and
    follows 1 - exp(-t/tau) toward the 'after' value."""
    g, cap = 1e-5, 1e-12
    c = Circuit("rc").add(
        VoltageSource("V1", "in", "0", 0.0),
        Conductance("R1", "in", "a", g),
        Conductance("R2", "a", "0", g),  # divider: final V(a) = V1 / 2, tau = C / (2 g)
    )
    tau = cap / (2 * g)
    times, volts = ngspice.transient(c, {"a": cap}, {"V1": (0.4, 1.0)}, 10 * tau, tau / 50)
    assert times[0] == 0.0 and times[-1] == pytest.approx(10 * tau)
    a = volts[:, c.nodes.index("a")]
    assert a[0] == pytest.approx(0.2, abs=1e-9)
    expected = 0.5 + (0.2 - 0.5) * np.exp(-times / tau)
    late = times > 0.01 * tau  # past the (1e-6 t_stop) edge
    np.testing.assert_allclose(a[late], expected[late], atol=1e-4)


def test_transient_rejects_bad_arguments(ngspice):
    c = Circuit("rc").add(VoltageSource("V1", "in", "0", 0.0), Conductance("R1", "in", "a", 1e-5))
    with pytest.raises(InvalidValueError, match="nowhere"):
        ngspice.transient(c, {"nowhere": 1e-12}, {"V1": (0.0, 1.0)}, 1e-6, 1e-8)
    with pytest.raises(InvalidValueError, match="V9"):
        ngspice.transient(c, {"a": 1e-12}, {"V9": (0.0, 1.0)}, 1e-6, 1e-8)
    with pytest.raises(InvalidValueError, match="> 0"):
        ngspice.transient(c, {"a": -1e-12}, {"V1": (0.0, 1.0)}, 1e-6, 1e-8)


def test_block_settling_positive_finite_and_linear_in_capacitance(ngspice, rng):
    block = ResistiveBlock((4, 5, 2), seed=3)
    circuit = block.circuit()
    u0, u1 = rng.uniform(-1.0, 1.0, (2, 4))
    before = {k: float(v[0]) for k, v in block.input_source_values(u0[None]).items()}
    after = {k: float(v[0]) for k, v in block.input_source_values(u1[None]).items()}
    times = []
    for cap in (1e-13, 2e-13):
        t = settling_time_s(circuit, before, after, CostParams(node_capacitance_F=cap), ngspice,
                            output_nodes=block.output_nodes)
        assert math.isfinite(t) and t > 0
        times.append(t)
    # C dV/dt = -f(V): doubling every C doubles every time exactly (diodes included)
    assert times[1] / times[0] == pytest.approx(2.0, rel=1e-3)


def test_converter_energy_doubles_per_bit():
    p = CostParams()
    for bits in range(1, 16):
        assert p.adc_energy_per_conversion_J(bits + 1) / p.adc_energy_per_conversion_J(bits) == 2.0
        assert p.dac_energy_per_conversion_J(bits + 1) / p.dac_energy_per_conversion_J(bits) == 2.0
    assert p.adc_energy_per_conversion_J(8) == pytest.approx(50e-15 * 256)
    with pytest.raises(ValueError, match="bits"):
        p.adc_energy_per_conversion_J(0)
    with pytest.raises(ValueError, match="settle_tolerance"):
        CostParams(settle_tolerance=1.5)


def test_block_cost_converter_energy_ratio_per_bit(ngspice, rng):
    block = ResistiveBlock((3, 4, 2), seed=0)
    u = rng.uniform(-1.0, 1.0, (2, 3))
    c6 = block_cost(block, u, 4, dac_bits=6, adc_bits=6, backend=ngspice)
    c7 = block_cost(block, u, 4, dac_bits=7, adc_bits=7, backend=ngspice)
    assert c7.adc_energy_J / c6.adc_energy_J == 2.0
    assert c7.dac_energy_J / c6.dac_energy_J == 2.0
    assert c7.analog_energy_J == pytest.approx(c6.analog_energy_J, rel=1e-12)


def _tiny_model(rng) -> FFEBM:
    return FFEBM(
        dl.Conv2d(1, 2, 3, rng=rng),
        dl.Flatten(),
        dl.Linear(18, 4, rng=rng),
        dl.Activation("hardtanh"),
        DAC(bits=6),
        AnalogLayer(ResistiveBlock((4, 3, 2), seed=0), backend="ngspice"),
        ADC(bits=5, v_min=-0.25, v_max=0.25),
        dl.Linear(2, 3, rng=rng),
    )


def test_step_cost_counts_exactly(rng):
    model = _tiny_model(rng)
    x = rng.uniform(0.0, 1.0, (3, 1, 5, 5))
    batch = 7
    params = CostParams()
    cost = step_cost(model, batch, params, x=x)
    (b,) = cost.blocks
    # block (4, 3, 2): 2*4 input sources, 2*2 nudge sources,
    # devices (8+2)*3 + (3+2)*4 = 50
    assert b.phases == cost.phases == 3 * batch == 21
    assert b.dac_conversions == batch * (3 * 8 + 2 * 4) == 224
    assert b.adc_conversions == batch * (2 + 2 * (50 + 8)) == 826
    assert (b.dac_bits, b.adc_bits) == (6, 5)
    assert b.buffer_bits == batch * (50 + 8 + 2) * 5 == 2100
    # MACs per sample: conv 2*3*3 outputs x 1*3*3 taps = 162, linear 18*4 = 72, 2*3 = 6;
    # forward + backward = 3x forward
    assert cost.digital_macs == 3 * batch * (162 + 72 + 6) == 5040
    assert cost.digital_energy_J == pytest.approx(5040 * 4.6e-12)
    assert cost.converter_energy_J == pytest.approx(
        224 * 10e-15 * 2**6 + 826 * 50e-15 * 2**5
    )
    assert b.power_W > 0 and b.settle_free_s > 0 and b.settle_nudge_s > 0
    assert b.analog_energy_J == pytest.approx(
        batch * b.power_W * (b.settle_free_s + 2 * b.settle_nudge_s)
    )
    assert cost.time_s == pytest.approx(
        batch * (b.settle_free_s + 2 * b.settle_nudge_s)
        + 224 * 10e-9 + 826 * 10e-9 + 5040 * 1e-9
    )
    # the model's layers were not touched (no cached forward state)
    assert model.layers[5].last_free_state is None


def test_step_cost_defaults_ideal_converters_to_default_bits(rng):
    model = FFEBM(
        dl.Linear(3, 4, rng=rng),
        DAC(bits=None),
        AnalogLayer(ResistiveBlock((4, 3, 2), seed=0), backend="ngspice"),
    )
    cost = step_cost(model, 2, CostParams(default_bits=9))
    assert (cost.blocks[0].dac_bits, cost.blocks[0].adc_bits) == (9, 9)


def test_format_cost_table_has_units(rng):
    cost = step_cost(_tiny_model(rng), 4, x=rng.uniform(0.0, 1.0, (2, 1, 5, 5)))
    table = format_cost_table(cost)
    for text in ("phases", "DAC conversions", "ADC conversions", "analog energy",
                 "converter energy", "digital energy", "time", "bit"):
        assert text in table, text
    for unit in ("J", "s", "W"):  # values carry SI units, e.g. "490 pJ", "7.01 us"
        assert re.search(rf"\d [fpnumkMG]?{unit}\b", table), unit
    assert "b0 4-3-2" in table


def test_report_reads_a_run_checkpoint(tmp_path):
    from analogeq import build_model, resolve_config
    from analogeq.runs.checkpoints import prefixed, write_checkpoint

    cfg = resolve_config({
        "name": "tiny",
        "model": {"layers": [
            {"type": "linear", "out": 3},
            {"type": "dac", "bits": 6},
            {"type": "resistive", "hidden": [3], "out": 2},
            {"type": "adc", "bits": 7, "v_min": -0.25, "v_max": 0.25},
        ]},
        "train": {"batch_size": 5},
    })
    model = build_model(cfg, (1, 8, 8))
    write_checkpoint(tmp_path / "checkpoint.npz", prefixed("model", model.state_dict()),
                     {"epoch": 1, "config": cfg})
    text = report(tmp_path, n_representative=2)
    assert "tiny" in text and "batch size 5" in text
    assert f"{5 * (3 * 6 + 2 * 4):,} @6b" in text  # DAC conversions of block b0 (3, 3, 2)


# ------------------------------------------------------------------------------------
# buffer


def test_buffer_counts_bits_exactly():
    buf = Buffer(10_000)
    buf.store("dac_in", np.zeros((4, 8)), bits=6, crossing="dac")  # 192 bits
    buf.store("adc_out", np.zeros((4, 2)), bits=8, crossing="adc")  # 64 bits
    buf.store("delta", np.zeros(4), bits=16)  # 64 bits
    s = buf.stats()
    assert s["occupancy_bits"] == 320 and s["peak_bits"] == 320
    assert s["dac_conversions"] == 32 and s["adc_conversions"] == 8
    buf.free("dac_in")
    buf.store("adc_out", np.zeros((4, 2)), bits=10, crossing="adc")  # replaces: 80 bits
    s = buf.stats()
    assert s["occupancy_bits"] == 144
    assert s["peak_bits"] == 320
    assert s["bits_stored"] == 192 + 64 + 64 + 80
    assert s["stores"] == 4 and s["adc_conversions"] == 16
    assert s["entries"] == {"adc_out": 80, "delta": 64}
    np.testing.assert_array_equal(buf.load("delta"), np.zeros(4))
    with pytest.raises(KeyError, match="dac_in"):
        buf.load("dac_in")


def test_buffer_overflow_names_the_array():
    buf = Buffer(1000)
    buf.store("free_outputs", np.zeros(100), bits=8)  # 800 bits
    with pytest.raises(BufferOverflowError, match="ep_measurements") as info:
        buf.store("ep_measurements", np.zeros((3, 10)), bits=8)  # 240 bits
    msg = str(info.value)
    assert "240 bits" in msg and "1000 bits" in msg and "800" in msg
    assert buf.stats()["occupancy_bits"] == 800  # nothing changed
    buf.store("ep_measurements", np.zeros((5, 5)), bits=8)  # 200 bits: exactly full
    assert buf.free_bits == 0


def test_ep_buffer_requirement_fits_a_batch_of_measurements():
    block = ResistiveBlock((4, 5, 2))
    bits = ep_buffer_requirement_bits(block, batch_size=3, bits=8)
    assert bits == 3 * (78 + 8 + 2) * 8  # devices (8+2)*5 + (5+2)*4 = 78
    buf = Buffer(bits)
    buf.store("outputs", np.zeros((3, 2)), 8, crossing="adc")
    buf.store("dv_plus", np.zeros((3, 78)), 8, crossing="adc")
    buf.store("j_plus", np.zeros((3, 8)), 8, crossing="adc")
    assert buf.free_bits == 0
    with pytest.raises(BufferOverflowError, match="extra"):
        buf.store("extra", np.zeros(1), 1)


# ------------------------------------------------------------------------------------
# amplifiers


def _amplified_block(**kw) -> ResistiveBlock:
    return ResistiveBlock((3, 4, 3, 2), seed=2, amplifier_gain=(4.0, 2.0),
                          amplifier_back_gain=(0.25, 1.5), **kw)


def _independent_amplifier_power(block, sol):
    """Per amplifier (E power, F power) from node voltages and conductances only: the
    current an amplifier delivers into its output node a is the current a's crossbar row
    carries away (a feeds nothing else), I = sum_j g_aj (V(a) - V(col_j)); E sits at
    V(a) and F draws c I from the hidden node h."""
    e_pow, f_pow = [], []
    for l, (hs, as_) in enumerate(zip(block.hidden_nodes, block.amplifier_nodes, strict=True)):
        m = block.crossbar(l + 1)
        v_cols = sol.voltages(m.cols)
        c = block.amplifier_back_gains[l]
        for j, (h, a) in enumerate(zip(hs, as_, strict=True)):
            i_out = ((sol.v(a)[:, None] - v_cols) * m.g_S[j][None, :]).sum(axis=1)
            e_pow.append(sol.v(a) * i_out)
            f_pow.append(-c * i_out * sol.v(h))
    return np.stack(e_pow, axis=1), np.stack(f_pow, axis=1)


@pytest.mark.parametrize("solver", ["ngspice", "numpy"])
def test_amplifier_power_closes_the_energy_balance(solver, ngspice, rng):
    """Tellegen with amplifiers: the V and I sources (nudges swept per sample) plus every
    amplifier's E and F power equal the dissipation in conductances and diodes, computed
    independently; the amplifier powers match the currents the crossbars carry away."""
    from analogeq.backends.numpy_backend import NumpyBackend
    from analogeq.cost import amplifier_power_W

    backend = ngspice if solver == "ngspice" else NumpyBackend()
    block = _amplified_block()
    circuit = block.circuit(nudge=True)
    u = rng.uniform(-1.0, 1.0, (6, 3))
    values = block.input_source_values(u)
    for s in block.nudge_sources:
        values[s] = rng.uniform(-3e-6, 3e-6, 6)
    sol = backend.solve(circuit, values)
    forward, backward = amplifier_power_W(sol, circuit)
    assert forward.shape == backward.shape == (6, 7)
    e_ind, f_ind = _independent_amplifier_power(block, sol)
    scale = np.abs(e_ind).max()
    np.testing.assert_allclose(forward, e_ind, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(backward, f_ind, rtol=1e-7, atol=1e-9 * scale)
    delivered = static_power_W(sol, circuit, values)
    dissipated = _independent_dissipation(sol, circuit, backend.options)
    np.testing.assert_allclose(delivered, dissipated, rtol=1e-9, atol=0)
    # the amplifiers' share is not negligible: without it the balance is off
    passive_only = delivered - forward.sum(axis=1) - backward.sum(axis=1)
    assert (np.abs(passive_only - dissipated) > 1e-3 * dissipated).all()


def test_cost_params_amplifier_static_power_is_checked():
    assert CostParams().amplifier_static_power_W == 10e-6
    assert CostParams(amplifier_static_power_W=0.0).amplifier_static_power_W == 0.0
    for bad in (-1e-6, math.nan, math.inf, True, "1e-5"):
        with pytest.raises(ValueError, match="amplifier_static_power_W"):
            CostParams(amplifier_static_power_W=bad)


def test_block_cost_counts_amplifier_power(ngspice, rng):
    from analogeq.cost import amplifier_power_W

    block = _amplified_block()
    u = rng.uniform(-1.0, 1.0, (3, 3))
    params = CostParams(amplifier_static_power_W=3e-6)
    cost = block_cost(block, u, 5, params, backend=ngspice)
    assert cost.amplifiers == 4 + 3
    assert cost.amplifier_static_W == pytest.approx(7 * 3e-6, rel=1e-15)
    # the free phase of u, solved here: sources and amplifiers from the node voltages
    circuit = block.circuit()
    values = block.input_source_values(u)
    sol = ngspice.solve(circuit, values)
    e_ind, f_ind = _independent_amplifier_power(block, sol)
    handled = np.abs(e_ind).sum(axis=1) + np.abs(f_ind).sum(axis=1)
    assert cost.amplifier_delivered_W == pytest.approx(handled.mean(), rel=1e-7)
    dissipated = _independent_dissipation(sol, circuit, ngspice.options)
    sources = dissipated - e_ind.sum(axis=1) - f_ind.sum(axis=1)  # V and I sources
    assert cost.power_W == pytest.approx(
        sources.mean() + handled.mean() + 7 * 3e-6, rel=1e-7)
    assert cost.analog_energy_J == pytest.approx(
        5 * cost.power_W * (cost.settle_free_s + 2 * cost.settle_nudge_s))
    forward, _ = amplifier_power_W(sol, circuit)
    assert (forward != 0).any()
    passive = block_cost(ResistiveBlock((3, 4, 3, 2), seed=2), u, 5, params, backend=ngspice)
    assert (passive.amplifiers, passive.amplifier_static_W,
            passive.amplifier_delivered_W) == (0, 0.0, 0.0)


class _Recording:
    """A backend that records the source values of every solve."""

    def __init__(self, inner):
        self.inner, self.name, self.options, self.seen = inner, inner.name, inner.options, []

    def solve(self, circuit, source_values=None, **kw):
        self.seen.append(dict(source_values or {}))
        return self.inner.solve(circuit, source_values, **kw)


@pytest.mark.parametrize("amplified", [False, True])
def test_nudge_settling_uses_the_nudge_ep_applies(amplified, ngspice, rng, monkeypatch):
    """The nudged-phase transient steps the nudge sources to what EP applies at the
    block's default beta for a cotangent of max |delta| = 1 (amplified blocks nudge
    harder than passive ones)."""
    from analogeq.backends.numpy_backend import NumpyBackend
    from analogeq.cost import step as step_mod

    block = _amplified_block() if amplified else ResistiveBlock((3, 4, 3, 2), seed=2)
    delta = np.array([[1.0, -0.5]])
    rec = _Recording(NumpyBackend())
    block.ep_gradients(rng.uniform(-1, 1, (1, 3)), delta, backend=rec)
    applied = max(float(np.abs(v).max()) for k, v in rec.seen[-1].items()
                  if k in block.nudge_sources)

    steps = []
    real = step_mod.settling_time_s

    def spy(circuit, before, after, *args, **kw):
        steps.append(dict(after))
        return real(circuit, before, after, *args, **kw)

    monkeypatch.setattr(step_mod, "settling_time_s", spy)
    block_cost(block, rng.uniform(-1, 1, (2, 3)), 2, backend=ngspice)
    nudge = steps[1]
    costed = [nudge[s] for s in block.nudge_sources]
    assert max(abs(v) for v in costed) == pytest.approx(applied, rel=1e-12)
    assert costed[0] == -costed[1] and costed[2] == -costed[3] and costed[0] == -costed[2]
    passive_nudge = block.params.nudge_A
    assert applied == pytest.approx(passive_nudge * (10.0 if amplified else 1.0), rel=1e-12)


def test_report_of_a_config_shows_the_amplifiers(tmp_path, capsys):
    from analogeq.cli import main

    cfg = tmp_path / "amped.toml"
    cfg.write_text("""
name = "amped"
[data]
limit_train = 20
limit_test = 10
[model]
layers = [
  { type = "linear", out = 3 },
  { type = "dac", bits = 6 },
  { type = "resistive", hidden = [3, 2], out = 2, amplifier_gain = 4.0 },
  { type = "adc", bits = 7, v_min = -0.25, v_max = 0.25 },
]
[train]
batch_size = 5
""")
    assert main(["report", str(cfg), "--backend", "numpy"]) == 0
    text = capsys.readouterr().out
    assert f"config {cfg} (amped, initial conductances" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("amplifiers "))
    assert row.split()[1:] == ["5", "5"]  # block b0, total
    power = next(ln for ln in text.splitlines() if "amplifier power: bias / delivered" in ln)
    assert re.search(r"50 uW / \d[\d.]* [pnum]?W", power), power  # 5 x 10 uW bias
    assert "amplifier stages: 2 (5 bidirectional amplifiers" in text
    assert "boundary buffer" not in text  # no training run
