"""Hostile circuits: every case once gave a silent wrong answer or a different verdict on
the two backends. Each now ends in the same error class on both, naming the culprit."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import analogeq as aq
from analogeq import (
    Circuit,
    Conductance,
    ConductanceMatrix,
    ConvergenceError,
    CurrentSource,
    Diode,
    DiodeModel,
    InvalidValueError,
    ResistiveBlock,
    Solution,
    TileConfig,
    VoltageSource,
    get_backend,
)
from analogeq.backends.kcl import check_solution
from analogeq.params import SolverOptions
from analogeq.spice import to_spice


@pytest.fixture(params=["ngspice", "numpy"])
def backend(request, ngspice, numpy_backend):
    return ngspice if request.param == "ngspice" else numpy_backend


def both(ngspice, numpy_backend, build, kind, *names, values=None):
    """Both backends raise ``kind`` for ``build()``, the message naming every ``names``."""
    for be in (ngspice, numpy_backend):
        with pytest.raises(kind) as info:
            be.solve(build(), values)
        for name in names:
            assert name in str(info.value), (be.name, str(info.value))


def divider(title="t", g1=1e-3, g2=1e-3) -> Circuit:
    return Circuit(title, [VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "a", "b", g1),
                           Conductance("R2", "b", "0", g2)])


# -- 1. wire resistance far below the devices --------------------------------------------

@pytest.mark.parametrize("r_ohm", [1e-30, 1e-12, 1e-6])
def test_tiny_wire_resistance_is_refused_naming_the_key(ngspice, numpy_backend, r_ohm):
    block = ResistiveBlock((12, 8, 10), seed=0, tile=TileConfig(8, 8, r_ohm))
    u = np.random.default_rng(0).uniform(-1, 1, (2, 12))
    for be in (ngspice, numpy_backend):
        with pytest.raises(InvalidValueError, match="wire_resistance_ohm") as info:
            block.free(u, backend=be)
        assert "double-precision" in str(info.value)


def test_wire_resistance_in_range_still_matches_ideal_wires(ngspice, numpy_backend):
    """1e-3 ohm wires (conductance ratio 2e9 to the devices) solve on both backends to the
    ideal-wire outputs within 1e-7 V (the wire IR drop is ~1e-8 V here)."""
    u = np.random.default_rng(0).uniform(-1, 1, (3, 12))
    ideal = ResistiveBlock((12, 8, 10), seed=0).free(u, backend=numpy_backend).outputs
    wired = ResistiveBlock((12, 8, 10), seed=0, tile=TileConfig(8, 8, 1e-3))
    for be in (ngspice, numpy_backend):
        assert np.abs(wired.free(u, backend=be).outputs - ideal).max() < 1e-7


def test_post_solve_kcl_check_refuses_a_wrong_answer():
    """A solution that violates KCL (here: the divider's midpoint moved by 1 mV) is refused,
    naming the node; the exact answer (hand-solved) passes."""
    c = divider(g2=3e-3)
    exact = Solution(("a", "b"), np.array([[1.0, 0.25]]), ("V1",), np.array([[-0.75e-3]]))
    check_solution(c, exact, {}, SolverOptions(), backend="test")
    wrong = Solution(("a", "b"), np.array([[1.0, 0.251]]), ("V1",), np.array([[-0.75e-3]]))
    with pytest.raises(ConvergenceError, match="node 'b'"):
        check_solution(c, wrong, {}, SolverOptions(), backend="test")


# -- 5. node names that differ only in case ----------------------------------------------

def test_nodes_differing_only_in_case_are_refused(ngspice, numpy_backend):
    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "a", "A", 1e-3),
                             Conductance("R2", "A", "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, "'A'", "'a'", "case")


@pytest.mark.parametrize("node", ["gnd", "GND"])
def test_ground_alias_is_refused(ngspice, numpy_backend, node):
    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "a", node, 1e-3),
                             Conductance("R2", node, "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, repr(node), "ground")


# -- 6. the title line ------------------------------------------------------------------

@pytest.mark.parametrize("title", ["", "two\rlines", "x\n.end", ".end", "tab\there\x00", "é"])
def test_hostile_titles_solve_like_a_plain_one(ngspice, title):
    """The hand-solved divider (g1 = 1e-3 S, g2 = 2e-3 S: V(b) = 1/3 V, I = -2/3 mA) for any
    title; the netlist's first line is one line of printable ASCII."""
    c = divider(title, g2=2e-3)
    text = to_spice(c)
    first = text.splitlines()[0]
    assert first.strip() and first.isascii() and first.isprintable()
    assert not first.startswith(".")
    assert text.splitlines()[1].startswith("V1 ")  # the first element line stays an element
    sol = ngspice.solve(c)
    assert sol.v("b")[0] == pytest.approx(1 / 3, abs=1e-9)
    assert sol.i("V1")[0] == pytest.approx(-2e-3 / 3, rel=1e-7)


# -- 7. the dynamic range of conductances and values -----------------------------------

def test_conductance_span_beyond_double_precision_is_refused(ngspice, numpy_backend):
    both(ngspice, numpy_backend, lambda: divider(g1=1e9, g2=1e-3), InvalidValueError,
         "'R1'", "'R2'", "double-precision")


@pytest.mark.parametrize("g", [1e300, 1e-300, 1e15, 1e-20])
def test_conductances_outside_the_ir_range_are_refused(ngspice, numpy_backend, g):
    both(ngspice, numpy_backend, lambda: divider(g2=g), InvalidValueError, "'R2'", "range")


@pytest.mark.parametrize("element", ["V", "I"])
def test_source_values_outside_the_ir_range_are_refused(ngspice, numpy_backend, element):
    def build():
        src = (VoltageSource("V1", "a", "0", 1e300) if element == "V"
               else CurrentSource("I1", "0", "a", 1e300))
        return Circuit("t", [src, Conductance("R1", "a", "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, f"'{element}1'")
    both(ngspice, numpy_backend, divider, InvalidValueError, "'V1'", "sample 1",
         values={"V1": np.array([1.0, 1e300])})


@pytest.mark.parametrize("is_a, n", [(1e300, 1.0), (1e-12, 1e-300)])
def test_unphysical_diode_models_are_refused(ngspice, numpy_backend, is_a, n):
    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "a", "b", 1e-3),
                             Diode("D1", "b", "0", "dm")], {"dm": DiodeModel("dm", is_a, n)})

    both(ngspice, numpy_backend, build, InvalidValueError, "'dm'")


# -- 8. same circuits accepted, same errors --------------------------------------------

def test_crossbar_cell_named_like_another_element(ngspice, numpy_backend):
    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0),
                             ConductanceMatrix("RX", ("a",), ("b",), np.array([[1e-3]])),
                             Conductance("rx_A_b", "b", "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, "rx_a_b", "'RX'")


def test_two_crossbars_with_colliding_cells(ngspice, numpy_backend):
    def build():
        return Circuit("t", [
            VoltageSource("V1", "a_b", "0", 1.0),
            ConductanceMatrix("RX", ("a",), ("b_c",), np.array([[1e-3]])),
            ConductanceMatrix("RX_a", ("b",), ("c",), np.array([[1e-3]])),
            Conductance("R9", "a", "a_b", 1e-3), Conductance("R8", "b", "b_c", 1e-3),
            Conductance("R7", "c", "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, "rx_a_b_c", "'RX'", "'RX_a'")


def test_crossbar_whose_cells_collide_among_themselves(ngspice, numpy_backend):
    def build():  # cells a + b_c and a_b + c are both "RX_a_b_c"
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0),
                             Conductance("R1", "a_b", "0", 1e-3), Conductance("R2", "c", "0", 1e-3),
                             Conductance("R3", "b_c", "0", 1e-3),
                             ConductanceMatrix("RX", ("a", "a_b"), ("b_c", "c"),
                                               np.full((2, 2), 1e-3))])

    both(ngspice, numpy_backend, build, InvalidValueError, "'RX'", "same element name")


@pytest.mark.parametrize("nodes", [(("a",), ("b", "b")), (("a", "A"), ("b",)), ((), ())])
def test_crossbar_with_repeated_or_no_nodes(ngspice, numpy_backend, nodes):
    rows, cols = nodes

    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "b", "0", 1e-3),
                             ConductanceMatrix("RX", rows, cols,
                                               np.full((len(rows), len(cols)), 1e-3))])

    both(ngspice, numpy_backend, build, InvalidValueError, "'RX'")


def test_element_named_like_the_sweep_source(ngspice, numpy_backend):
    def build():
        return Circuit("t", [VoltageSource("VSWEEP_IDX", "a", "0", 1.0),
                             Conductance("R1", "a", "0", 1e-3)])

    both(ngspice, numpy_backend, build, InvalidValueError, "VSWEEP_IDX", "reserved")
    both(ngspice, numpy_backend, build, InvalidValueError, "VSWEEP_IDX",
         values={"VSWEEP_IDX": np.array([1.0, 2.0])})


@pytest.mark.parametrize("where", ["element", "node", "model"])
def test_names_with_a_trailing_newline(ngspice, numpy_backend, where):
    def build():
        name = "R1\n" if where == "element" else "R1"
        node = "b\n" if where == "node" else "b"
        model = "dm\n" if where == "model" else "dm"
        return Circuit("t", [VoltageSource("V1", "a", "0", 1.0), Conductance(name, "a", node, 1e-3),
                             Diode("D1", node, "0", model)], {model: DiodeModel(model)})

    both(ngspice, numpy_backend, build, InvalidValueError, "\\n")


@pytest.mark.parametrize("shape", [(2, 2), (2, 1), ()])
def test_source_values_must_be_one_per_sample(ngspice, numpy_backend, shape):
    values = {"V1": np.ones(shape)}
    both(ngspice, numpy_backend, divider, InvalidValueError, "'V1'", "(B,)", values=values)


@pytest.mark.parametrize("volts", [100.0, 20.0])
def test_forward_diode_held_by_a_source_is_refused(ngspice, numpy_backend, volts):
    """100 V across a diode is 3866 N V_T: its current (IS e^3866) exceeds double precision;
    ngspice did not converge, NumPy returned 3.8e248 A (its clamped exponential)."""
    def build():
        return Circuit("t", [VoltageSource("V1", "a", "0", volts), Diode("D1", "a", "0", "dm")],
                       {"dm": DiodeModel("dm")})

    both(ngspice, numpy_backend, build, InvalidValueError, "'D1'", "600 N V_T")
    both(ngspice, numpy_backend, build, InvalidValueError, "'D1'", "sample 1",
         values={"V1": np.array([0.5, volts])})


def test_forward_diode_below_the_limit_agrees_with_shockley(ngspice, numpy_backend):
    """15 V across the diode (580 N V_T) is accepted: both backends give IS (e^(V/nVt) - 1)
    plus the gmin shunt, a current that fits double precision."""
    from analogeq.params import thermal_voltage_V

    c = Circuit("t", [VoltageSource("V1", "a", "0", 15.0), Diode("D1", "a", "0", "dm")],
                {"dm": DiodeModel("dm", 1e-14, 1.0)})
    expected = 1e-14 * np.expm1(15.0 / thermal_voltage_V(27.0)) + 1e-12 * 15.0
    for be in (ngspice, numpy_backend):
        assert -be.solve(c).i("V1")[0] == pytest.approx(expected, rel=1e-6)


def test_post_solve_check_refuses_a_junction_past_the_limit():
    """A diode can only pass 600 N V_T when sources hold it there (refused before solving);
    the post-solve check still guards any answer that puts it there (here: 20 V across the
    diode behind a conductance, which the circuit's KCL could not satisfy either)."""
    c = Circuit("t", [VoltageSource("V1", "a", "0", 20.0), Conductance("R1", "a", "b", 1e-3),
                      Diode("D1", "b", "0", "dm")], {"dm": DiodeModel("dm")})
    sol = Solution(("a", "b"), np.array([[20.0, 20.0]]), ("V1",), np.array([[0.0]]))
    with pytest.raises(ConvergenceError, match="'D1'.*600 N V_T"):
        check_solution(c, sol, {}, SolverOptions(), backend="test")


# -- 13. memory: PySpice's captured output is cleared ---------------------------------

def test_pyspice_output_lists_stay_empty(ngspice):
    from analogeq.backends.ngspice import engine

    for _ in range(20):
        ngspice.solve(divider())
    shared = engine()._shared
    assert len(shared._stdout) + len(shared._stderr) == 0


def test_timing_hook_records_every_stage(ngspice):
    from analogeq.backends.ngspice import STAGES, NgspiceBackend

    timings: dict[str, float] = {}
    be = NgspiceBackend(timings=timings)
    sol = be.solve(divider(), {"V1": np.array([1.0, 2.0])})
    assert sol.v("b") == pytest.approx([0.5, 1.0], abs=1e-9)
    assert {"emit", "load", "analysis", "read", "reset", "check"} <= set(timings) <= set(STAGES)
    assert all(t >= 0 for t in timings.values())


# -- 15. parallel workers: timeouts and a worker stopped during start-up ---------------

@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"timeout_s": -1.0},
                                    {"startup_timeout_s": float("inf")},
                                    {"startup_timeout_s": "10"}, {"timeout_s": True}])
def test_parallel_timeouts_are_validated(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=key):
        get_backend("ngspice-parallel", workers=1, **kwargs)


def test_timeouts_apply_only_to_the_parallel_backend():
    with pytest.raises(ValueError, match="startup_timeout_s"):
        get_backend("ngspice", startup_timeout_s=10.0)
    be = get_backend("ngspice-parallel", workers=1, timeout_s=30.0, startup_timeout_s=None)
    assert (be.timeout_s, be.startup_timeout_s) == (30.0, None)
    be.close()


@pytest.mark.slow
def test_worker_stopped_during_startup_does_not_stall_the_solve(ngspice):
    """SIGSTOP the worker as soon as it exists (still importing): the solve must still
    finish, in a fresh worker, well before the 120 s start-up timeout."""
    from analogeq.backends.pool import STOPPED_GRACE_S

    c = divider(g2=3e-3)
    values = {"V1": np.linspace(0.1, 1.0, 12)}
    par = get_backend("ngspice-parallel", workers=1)
    out: dict = {}

    def run():
        try:
            out["sol"] = par.solve(c, values)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    try:
        t = threading.Thread(target=run)
        t0 = time.monotonic()
        t.start()
        pid = None
        while pid is None and time.monotonic() - t0 < 30:
            pid = par.worker_pids()[0]
            time.sleep(0.01)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        t.join(60)
        elapsed = time.monotonic() - t0
        assert not t.is_alive(), "the solve stalled"
        assert "error" not in out, out.get("error")
        assert elapsed < STOPPED_GRACE_S + 45
        assert par.worker_pids()[0] != pid
        assert np.allclose(out["sol"].v("b"), values["V1"] / 4, atol=1e-9)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass
        par.close()


def test_ngspice_topology_cache_checks_values_and_matches_a_fresh_backend():
    """The ngspice backend prepares a topology once: later circuits of that topology are
    solved bitwise like by a fresh backend, and bad values in them are still refused
    with the error a full validation gives."""
    from analogeq.backends.ngspice import NgspiceBackend

    block = aq.ResistiveBlock((6, 5, 3), seed=1)
    u = np.random.default_rng(0).uniform(-1, 1, (4, 6))
    be = NgspiceBackend()
    be.solve(block.circuit(), block.input_source_values(u))  # prepares the topology
    block.conductances[0][1, 2] *= 1.7  # new values, same topology
    cached = be.solve(block.circuit(), block.input_source_values(u))
    fresh = NgspiceBackend().solve(block.circuit(), block.input_source_values(u))
    np.testing.assert_array_equal(cached.voltages_V, fresh.voltages_V)
    np.testing.assert_array_equal(cached.currents_A, fresh.currents_A)
    assert len(be._prepared) == 1
    for bad in (np.nan, -1e-6, 0.0, 1e13):
        block.conductances[0][0, 0] = bad
        with pytest.raises(aq.CircuitError) as cached_err:
            be.solve(block.circuit(), block.input_source_values(u))
        with pytest.raises(aq.CircuitError) as fresh_err:
            NgspiceBackend().solve(block.circuit(), block.input_source_values(u))
        assert str(cached_err.value) == str(fresh_err.value)
    block.conductances[0][0, 0] = 1e-6
    values = block.input_source_values(u)
    values[block.input_sources[0]] = np.full(4, np.inf)
    with pytest.raises(aq.CircuitError, match="finite"):
        be.solve(block.circuit(), values)
