"""Both DC solvers against hand computation, each other, and ngspice's own traps."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from scipy.optimize import brentq

from analogeq import (
    Circuit,
    Conductance,
    ConvergenceError,
    CurrentSource,
    Diode,
    DiodeModel,
    FloatingNodeError,
    InvalidValueError,
    NetlistParseError,
    SimulationError,
    SingularMatrixError,
    VoltageSource,
    VoltageSourceLoopError,
    to_spice,
)
from analogeq.params import thermal_voltage_V

BACKENDS = ["ngspice", "numpy_backend"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.getfixturevalue(request.param)


def divider(v=1.0, g1=1e-3, g2=5e-4) -> Circuit:
    return Circuit("divider").add(
        VoltageSource("V1", "a", "0", v),
        Conductance("R1", "a", "b", g1),
        Conductance("R2", "b", "0", g2),
    )


def diode_circuit(is_A=1e-14, n=1.3, g=1e-4) -> Circuit:
    c = Circuit("diode")
    c.add_model(DiodeModel("dm", is_A=is_A, n=n))
    return c.add(
        VoltageSource("V1", "a", "0", 1.0),
        Conductance("R1", "a", "b", g),
        Diode("D1", "b", "0", "dm"),
    )


def test_voltage_divider_matches_hand_computation(backend):
    v = np.array([-2.0, 0.0, 0.3, 1.0, 5.0])
    sol = backend.solve(divider(), {"V1": v})
    expected_b = v * 1e-3 / (1e-3 + 5e-4)
    np.testing.assert_allclose(sol.v("b"), expected_b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sol.v("a"), v, rtol=0, atol=1e-12)
    # SPICE convention: the source delivering power has negative branch current
    np.testing.assert_allclose(sol.i("V1"), -v / (1 / 1e-3 + 1 / 5e-4), rtol=1e-7, atol=1e-15)


def test_diode_matches_shockley_solved_by_scipy(backend):
    is_A, n, g, gmin = 1e-14, 1.3, 1e-4, backend.options.gmin
    vte = n * thermal_voltage_V(backend.options.temp_C)
    v_in = np.array([0.2, 0.5, 1.0, 2.0, 5.0])
    sol = backend.solve(diode_circuit(is_A, n, g), {"V1": v_in})
    for k, vin in enumerate(v_in):
        # KCL at b: g (vin - vb) = Is (exp(vb / (n V_T)) - 1) + gmin vb
        vb = brentq(
            lambda x, vin=vin: g * (vin - x) - is_A * np.expm1(x / vte) - gmin * x,
            -1.0, vin, xtol=1e-15, rtol=1e-15,
        )
        assert abs(sol.v("b")[k] - vb) < 1e-9, (k, sol.v("b")[k], vb)


def test_reverse_biased_diode_and_current_source_kcl(backend):
    c = diode_circuit().with_elements(CurrentSource("I1", "0", "b", 2e-5))
    sol = backend.solve(c, {"V1": np.array([-3.0, -1.0, 0.4]), "I1": np.array([0, 1e-5, 2e-5])})
    vb = sol.v("b")
    # KCL at b, with the injected current: resistor current in + I = diode current out
    is_A, vte = 1e-14, 1.3 * thermal_voltage_V(27.0)
    for k, (vin, i_src) in enumerate(zip([-3.0, -1.0, 0.4], [0, 1e-5, 2e-5], strict=True)):
        if vb[k] >= -3 * vte:
            i_d = is_A * np.expm1(vb[k] / vte)
        else:  # ngspice's reverse-bias form
            i_d = -is_A * (1 + (3 * vte / (vb[k] * np.e)) ** 3)
        i_d += 1e-12 * vb[k]
        assert abs(1e-4 * (vin - vb[k]) + i_src - i_d) < 1e-12


def test_batch_of_100_matches_100_single_solves(ngspice, rng):
    c = diode_circuit().with_elements(
        Conductance("R2", "b", "c", 3e-5), Diode("D2", "0", "c", "dm"),
        VoltageSource("V2", "d", "0", 0.0), Conductance("R3", "d", "c", 2e-5),
    )
    v1 = rng.uniform(-2, 2, 100)
    v2 = rng.uniform(-2, 2, 100)
    batch = ngspice.solve(c, {"V1": v1, "V2": v2})
    for k in range(100):
        single = ngspice.solve(
            c.with_elements() if False else Circuit(c.title, [
                VoltageSource(e.name, e.plus, e.minus, {"V1": v1[k], "V2": v2[k]}[e.name])
                if isinstance(e, VoltageSource) else e for e in c.elements
            ], dict(c.models))
        )
        np.testing.assert_allclose(batch.voltages_V[k], single.voltages_V[0], rtol=0, atol=1e-8)
        np.testing.assert_allclose(batch.currents_A[k], single.currents_A[0], rtol=1e-6, atol=1e-14)


def test_backends_agree_on_random_diode_network(ngspice, numpy_backend, rng):
    c = Circuit("random network")
    c.add_model(DiodeModel("dm", 1e-12, 1.0))
    c.add(VoltageSource("V1", "in1", "0", 0.0), VoltageSource("V2", "in2", "0", 0.0))
    hidden = [f"h{k}" for k in range(6)]
    for k, h in enumerate(hidden):
        c.add(Conductance(f"R1_{h}", "in1", h, rng.uniform(1e-7, 1e-5)))
        c.add(Conductance(f"R2_{h}", "in2", h, rng.uniform(1e-7, 1e-5)))
        c.add(Diode(f"D_{h}", *(("0", h) if k % 2 else (h, "0")), "dm"))
        c.add(Conductance(f"Ro_{h}", h, "out", rng.uniform(1e-7, 1e-5)))
    c.add(CurrentSource("Inudge", "0", "out", 0.0))
    vals = {"V1": rng.uniform(-2, 2, 20), "V2": rng.uniform(-2, 2, 20),
            "Inudge": rng.uniform(-1e-7, 1e-7, 20)}
    a = ngspice.solve(c, vals)
    b = numpy_backend.solve(c, vals)
    assert a.node_names == b.node_names
    np.testing.assert_allclose(a.voltages_V, b.voltages_V, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.currents_A, b.currents_A, rtol=0, atol=1e-11)


def test_to_spice_runs_in_plain_ngspice_batch_mode(tmp_path):
    path = tmp_path / "divider.cir"
    path.write_text(to_spice(divider(), print_nodes=["b"]))
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("v(b)"))
    assert abs(float(line.split("=")[1]) - 2.0 / 3.0) < 1e-9


# -- the traps of NGSPICE_NOTES.md --------------------------------------------------------


def test_trap_floating_island_never_reaches_ngspice(ngspice):
    c = divider().with_elements(Conductance("R3", "x", "y", 1e-3))
    with pytest.raises(FloatingNodeError, match="R3"):
        ngspice.solve(c)


def test_trap_current_into_island_never_reaches_ngspice(ngspice):
    c = divider().with_elements(
        Conductance("R3", "x", "y", 1e-3), CurrentSource("I1", "0", "x", 1e-3)
    )
    with pytest.raises(FloatingNodeError):
        ngspice.solve(c)


@pytest.mark.parametrize("g", [-1e-3, 0.0, float("nan")])
def test_trap_negative_zero_nan_conductance(ngspice, g):
    with pytest.raises(InvalidValueError, match="R2"):
        ngspice.solve(divider(g2=g))


def test_trap_voltage_source_loop(ngspice):
    with pytest.raises(VoltageSourceLoopError):
        ngspice.solve(divider().with_elements(VoltageSource("V2", "a", "0", 2.0)))


def test_trap_nan_source_value(ngspice):
    with pytest.raises(InvalidValueError, match="V1"):
        ngspice.solve(divider(), {"V1": np.array([1.0, np.nan])})


def test_raw_netlist_errors_raise_and_backend_recovers(ngspice):
    from analogeq.backends.ngspice import engine

    eng = engine()
    # a parse error (nan) is only printed by ngspice: we raise
    with pytest.raises(NetlistParseError, match="nan"):
        eng.load("t\nv1 a 0 1\nr1 a b nan\nr2 b 0 1k\n.op\n.end\n")
    # a floating island in raw text: ngspice prints "singular matrix" and returns numbers
    eng.load("t\nv1 a 0 1\nr1 a 0 1k\nr2 b c 1k\ni1 0 b 1e-3\n.op\n.end\n")
    with pytest.raises(SingularMatrixError):
        eng.run("island")
    # a voltage-source loop in raw text
    eng.load("t\nv1 a 0 1\nv2 a 0 2\nr1 a 0 1k\n.op\n.end\n")
    with pytest.raises(SimulationError):
        eng.run("loop")
    eng.reset()
    # the backend still works afterwards
    sol = ngspice.solve(divider())
    assert abs(sol.v("b")[0] - 2.0 / 3.0) < 1e-9


def test_non_convergence_fallback_raises_with_messages(ngspice):
    """With Newton starved of iterations ngspice falls back to a 'transient op' and reports
    success; that fallback is treated as a failure carrying ngspice's lines."""
    from analogeq.backends.ngspice import engine

    eng = engine()
    eng.load(
        "hard\nV1 a 0 DC 100.0\nR1 a b 0.001\nD1 b 0 dm\nD2 0 b dm\n"
        ".model dm D(IS=1e-20 N=0.05)\n"
        ".options itl1=1 itl2=1 gminsteps=0 srcsteps=0 noopiter\n.op\n.end\n"
    )
    with pytest.raises(ConvergenceError, match="Transient op") as info:
        eng.run("hard")
    assert any("Transient op" in m for m in info.value.messages)
    eng.reset()
    assert abs(ngspice.solve(divider()).v("b")[0] - 2.0 / 3.0) < 1e-9


def test_control_blocks_are_refused_in_process(ngspice):
    from analogeq.backends.ngspice import engine

    with pytest.raises(ValueError, match="control"):
        engine().load(to_spice(divider(), print_nodes=["b"]))


def test_trap_long_command_and_show_are_refused(ngspice):
    from analogeq.backends.ngspice import MAX_COMMAND_LENGTH, engine

    eng = engine()
    with pytest.raises(ValueError, match="exceeds"):
        eng.command("echo " + "x" * MAX_COMMAND_LENGTH)
    with pytest.raises(ValueError, match="crashes"):
        eng.command("show v1")


def test_trap_alter_nan_is_refused(ngspice):
    from analogeq.backends.ngspice import engine

    eng = engine()
    eng.load(to_spice(divider()))
    try:
        with pytest.raises(ValueError, match="not finite"):
            eng.alter("v1", "dc", float("nan"))
        eng.alter("v1", "dc", 3.0)
        eng.run()
        assert abs(eng.vector(eng.current_plot(), "b")[0] - 2.0) < 1e-9
    finally:
        eng.reset()
