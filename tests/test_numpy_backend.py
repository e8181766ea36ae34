"""NumPy backend speed machinery, each against an independent reference: the per-topology
cache against fresh solves (bitwise) and against the unfolded circuit, the eliminated dense
Newton step against a plain dense solve, the node-by-node relaxation against ngspice and
against the plain Newton iteration, the warm-started nudged phases against the cold
3-phase solve, the BLAS thread limit against threadpoolctl's own report."""

from __future__ import annotations

import numpy as np
import pytest

import analogeq as aq
from analogeq.backends import numpy_backend as nbm
from analogeq.backends.ngspice import NgspiceBackend
from analogeq.backends.numpy_backend import CompiledCircuit, NumpyBackend
from analogeq.circuit import (
    Circuit,
    Conductance,
    Diode,
    FoldPlan,
    VoltageSource,
    fold_pinned,
)
from analogeq.errors import InvalidValueError
from analogeq.params import DiodeModel, SolverOptions

SIZES = [(12, 8, 4), (12, 8, 6, 4)]


def _inputs(block, batch, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, block.n_in))


def _saturate(block, seed=0):
    """Every conductance at one end of the range: hidden units clamp hard."""
    rng = np.random.default_rng(seed)
    p = block.params
    for g in block.conductances:
        g[...] = rng.choice([p.g_min_S, p.g_max_S], g.shape)


@pytest.mark.parametrize("sizes", SIZES)
def test_cached_solves_equal_fresh_solves_bitwise(sizes):
    block = aq.ResistiveBlock(sizes, seed=3)
    cached = NumpyBackend()
    rng = np.random.default_rng(1)
    for round_ in range(3):
        u = _inputs(block, 5, seed=round_)
        delta = rng.normal(size=(5, block.n_out))
        a = block.free(u, backend=cached).solution
        b = block.free(u, backend=NumpyBackend()).solution
        np.testing.assert_array_equal(a.voltages_V, b.voltages_V)
        np.testing.assert_array_equal(a.currents_A, b.currents_A)
        ga = block.ep_gradients(u, delta, backend=cached)
        gb = block.ep_gradients(u, delta, backend=NumpyBackend())
        for x, y in zip(ga.conductances, gb.conductances, strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(ga.inputs, gb.inputs)
        # the unfolded circuit (another compilation of other equations) agrees
        c = block.free(u, backend=NumpyBackend(SolverOptions(fold_pinned_nodes=False)))
        np.testing.assert_allclose(a.voltages_V, c.solution.voltages_V, rtol=0, atol=1e-12)
        # new values, same topology: the next round must see them
        block.apply_update([rng.normal(0, 1e-6, g.shape) for g in block.conductances])
    assert len(cached._prepared) == 2  # free and nudged circuits


def test_fold_plan_refolds_new_values_like_fold_pinned():
    block = aq.ResistiveBlock((6, 5, 3), seed=0)
    plan = FoldPlan(block.circuit(nudge=True))
    block.conductances[0] *= 1.5
    block.conductances[1][0, 0] = 3e-6
    c = block.circuit(nudge=True)
    a, b = plan.apply(c), fold_pinned(c)
    np.testing.assert_array_equal(a.folded_S, b.folded_S)
    assert [repr(e) for e in a.condensed.elements if not hasattr(e, "rows")] == [
        repr(e) for e in b.condensed.elements if not hasattr(e, "rows")]
    for x, y in zip(a.condensed.elements, b.condensed.elements, strict=True):
        if hasattr(x, "rows"):
            np.testing.assert_array_equal(x.g_S, y.g_S)


def test_cache_still_checks_every_value():
    block = aq.ResistiveBlock((6, 5, 3), seed=0)
    u = _inputs(block, 2)
    be = NumpyBackend()
    block.free(u, backend=be)  # cached from here on

    def message(fn):
        with pytest.raises(InvalidValueError) as exc:
            fn()
        return str(exc.value)

    def both(mutate, values=None):
        mutate()
        vals = values if values is not None else block.input_source_values(u)
        got = message(lambda: be.solve(block.circuit(), vals))
        want = message(lambda: NumpyBackend().solve(block.circuit(), vals))
        assert got == want
        return got

    g = block.conductances[0]
    keep = g.copy()
    assert "not finite" in both(lambda: g.__setitem__((1, 2), -1e-6))
    g[...] = keep
    assert "outside" in both(lambda: g.__setitem__((0, 0), 1e13))
    g[...] = keep
    assert "span" in both(lambda: g.__setitem__((0, 0), 1e-17))
    g[...] = keep
    bad = block.input_source_values(u)
    bad[block.input_sources[3]] = np.array([0.1, np.nan])
    assert "finite" in both(lambda: None, bad)
    bad[block.input_sources[3]] = np.array([0.1, 2e6])
    assert "range" in both(lambda: None, bad)


def test_same_names_other_topology_is_not_taken_from_the_cache():
    model = DiodeModel("dm", 1e-14, 1.0)

    def circuit(node):
        return Circuit("t", [
            VoltageSource("V1", "a", "0", 1.0),
            Conductance("R1", "a", node, 1e-3),
            Conductance("R2", "n", "0", 1e-3),
            Conductance("R3", "m", "0", 2e-3),
            Conductance("R4", "n", "m", 5e-4),
            Diode("D1", "n", "0", "dm"),
        ], {"dm": model})

    be = NumpyBackend()
    for node in ("n", "m", "n"):
        got = be.solve(circuit(node), {"V1": np.array([0.3, 0.9])})
        want = NumpyBackend().solve(circuit(node), {"V1": np.array([0.3, 0.9])})
        np.testing.assert_array_equal(got.voltages_V, want.voltages_V)
    assert len(be._prepared) == 2


@pytest.mark.parametrize("sizes", [(64, 32, 10), (12, 8, 6, 4)])
def test_eliminated_newton_step_equals_a_dense_solve(sizes):
    block = aq.ResistiveBlock(sizes, seed=0)
    folded = fold_pinned(block.circuit(nudge=True))
    cc = CompiledCircuit.build(folded.condensed, SolverOptions())
    rng = np.random.default_rng(0)
    full = np.zeros((4, len(cc.nodes) + 1))
    full[:, :-1] = rng.uniform(-0.6, 0.6, (4, len(cc.nodes)))
    rhs = rng.normal(size=(4, len(cc.free)))
    want = np.linalg.solve(cc.jacobian(full), rhs[..., None])[..., 0]
    got = cc.solve_jacobian(full, rhs)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    ds = cc.dense_solver()
    assert ds.elim.size and ds.rest.size < len(cc.free)
    if len(sizes) == 3:  # one hidden layer: every hidden unit is eliminated
        hidden = {cc.nodes.index(n) for n in block.hidden_nodes[0]}
        assert set(cc.free[ds.elim].tolist()) == hidden


@pytest.mark.parametrize("sizes", [(64, 32, 10), (784, 100, 10)])
def test_relaxation_keeps_clamped_units_at_three_iterations(sizes, monkeypatch):
    block = aq.ResistiveBlock(sizes, seed=0)
    _saturate(block)
    u = np.random.default_rng(0).uniform(0, 1, (8, sizes[0]))
    be = NumpyBackend()
    got = block.free(u, backend=be).solution
    assert be.last_sample_iterations.max() <= 3
    ng = block.free(u, backend=NgspiceBackend()).solution
    np.testing.assert_allclose(got.voltages_V, ng.voltages_V, rtol=0, atol=1e-8)
    # the plain Newton iteration (no node-by-node solve) reaches the same point, slower
    monkeypatch.setattr(nbm._DenseJacobianSolver, "relaxes", property(lambda self: False))
    plain = NumpyBackend()
    ref = block.free(u, backend=plain).solution
    np.testing.assert_allclose(got.voltages_V, ref.voltages_V, rtol=0, atol=1e-12)
    assert plain.stats["sample_iterations"] > be.stats["sample_iterations"]


class _Cold:
    """A NumPy backend without ``accepts_initial_V``: EP solves every phase from 0 V."""

    name = "numpy"

    def __init__(self) -> None:
        self.inner = NumpyBackend()
        self.options = self.inner.options

    def solve(self, circuit, values=None):
        return self.inner.solve(circuit, values)


@pytest.mark.parametrize("given_free_state", [False, True])
def test_warm_started_nudged_phases_match_the_cold_solve(given_free_state):
    block = aq.ResistiveBlock((12, 8, 6, 4), seed=2)
    _saturate(block, seed=2)
    u = _inputs(block, 6)
    delta = np.random.default_rng(3).normal(size=(6, block.n_out))
    warm = NumpyBackend()
    state = block.free(u, backend=warm) if given_free_state else None
    a = block.ep_gradients(u, delta, backend=warm, free_state=state)
    assert warm.last_sample_iterations.max() <= 4  # nudged phases from the free state
    cold = _Cold()
    b = block.ep_gradients(u, delta, backend=cold,
                           free_state=block.free(u, backend=cold) if given_free_state else None)
    assert cold.inner.last_sample_iterations.max() > warm.last_sample_iterations.max()
    for x, y in zip(a.conductances, b.conductances, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-9 * np.abs(y).max())
    np.testing.assert_allclose(a.inputs, b.inputs, rtol=1e-6, atol=1e-7 * np.abs(b.inputs).max())
    np.testing.assert_allclose(a.outputs, b.outputs, rtol=0, atol=1e-12)


def test_blas_is_limited_during_a_solve_and_restored_after():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    before = blas_threads()
    seen = []
    real = nbm._DenseJacobianSolver.solve

    def spy(self, full, rhs):
        seen.append(blas_threads())
        return real(self, full, rhs)

    block = aq.ResistiveBlock((6, 5, 3), seed=0)
    nbm._DenseJacobianSolver.solve = spy
    try:
        block.free(_inputs(block, 3), backend=NumpyBackend())
    finally:
        nbm._DenseJacobianSolver.solve = real
    assert seen and all(t == [1] * len(before) for t in seen)
    assert blas_threads() == before


def test_stats_count_samples_and_the_largest_count():
    be = NumpyBackend()
    block = aq.ResistiveBlock((8, 6, 3), seed=0)
    block.free(_inputs(block, 4), backend=be)
    block.free(_inputs(block, 6, seed=1), backend=be)
    assert be.stats["solves"] == 2 and be.stats["samples"] == 10
    assert be.stats["max_sample_iterations"] == max(be.last_sample_iterations.max(), 1)
    assert be.stats["sample_iterations"] >= 10


# -- the clamp features on the fast paths: PWL diodes, per-layer rails, trainable biases --

def _pwl_block(sizes, **kw):
    return aq.ResistiveBlock(sizes, seed=0, params=aq.ResistiveBlockParams(diode_model="pwl",
                                                                           **kw))


@pytest.mark.parametrize("sizes", [(64, 32, 10), (12, 8, 6, 4)])
def test_pwl_relaxation_matches_plain_newton_and_ngspice(sizes, monkeypatch):
    block = _pwl_block(sizes)
    _saturate(block)
    u = np.random.default_rng(0).uniform(0, 1, (6, sizes[0]))
    be = NumpyBackend()
    got = block.free(u, backend=be).solution
    cc = next(iter(be._prepared.values()))._compiled
    ds = cc.dense_solver()
    assert cc.diode_pwl is not None and ds.relaxes and ds.n_pwl is not None
    ng = block.free(u, backend=NgspiceBackend()).solution
    np.testing.assert_allclose(got.voltages_V, ng.voltages_V, rtol=0, atol=1e-8)
    monkeypatch.setattr(nbm._DenseJacobianSolver, "relaxes", property(lambda self: False))
    ref = block.free(u, backend=NumpyBackend()).solution
    np.testing.assert_allclose(got.voltages_V, ref.voltages_V, rtol=0, atol=1e-12)


def test_pwl_steps_are_not_junction_limited_node_by_node():
    block = _pwl_block((12, 8, 4))
    folded = fold_pinned(block.circuit())
    cc = CompiledCircuit.build(folded.condensed, SolverOptions())
    ds = cc.dense_solver()
    full = np.zeros((2, len(cc.nodes) + 1))
    step = np.full((2, len(cc.free)), -2.0)  # every even unit's clamp pushed 2 V forward
    np.testing.assert_array_equal(ds.limit_nodes(full, step), step)
    # the same step on junction diodes is cut to a logarithm
    jblock = aq.ResistiveBlock((12, 8, 4), seed=0)
    jcc = CompiledCircuit.build(fold_pinned(jblock.circuit()).condensed, SolverOptions())
    jds = jcc.dense_solver()
    assert (np.abs(jds.limit_nodes(full, step)) < 2.0).any()


def test_eliminated_step_with_pwl_diodes_equals_a_dense_solve():
    block = _pwl_block((12, 8, 6, 4))
    cc = CompiledCircuit.build(fold_pinned(block.circuit(nudge=True)).condensed,
                               SolverOptions())
    rng = np.random.default_rng(1)
    full = np.zeros((3, len(cc.nodes) + 1))
    full[:, :-1] = rng.uniform(-0.6, 0.6, (3, len(cc.nodes)))
    rhs = rng.normal(size=(3, len(cc.free)))
    want = np.linalg.solve(cc.jacobian(full), rhs[..., None])[..., 0]
    np.testing.assert_allclose(cc.solve_jacobian(full, rhs), want, rtol=1e-9,
                               atol=1e-12 * np.abs(want).max())


def _source_dc(circuit):
    return {e.name: e.dc_V for e in circuit.elements if isinstance(e, VoltageSource)}


def test_block_circuit_cache_follows_trained_biases():
    """The shared fixed elements hold the present bias values: a bias changed in place
    (as the optimizer does) shows in the next circuit and its solve, like a fresh block."""
    params = aq.ResistiveBlockParams(trainable_diode_bias=True)
    block = aq.ResistiveBlock((8, 6, 4, 3), seed=1, params=params)
    u = _inputs(block, 3)
    be = NumpyBackend()
    before = block.free(u, backend=be).outputs
    assert block.circuit() is not block.circuit()
    block.diode_biases[0][0] += 0.05
    block.diode_biases[1][1] -= 0.03
    dc = _source_dc(block.circuit())
    assert dc[block.bias_sources(1)[0]] == block.diode_biases[0][0]
    assert dc[block.bias_sources(2)[1]] == block.diode_biases[1][1]
    after = block.free(u, backend=be).outputs
    fresh = aq.ResistiveBlock((8, 6, 4, 3), seed=1, params=params)
    fresh.diode_biases[0][...] = block.diode_biases[0]
    fresh.diode_biases[1][...] = block.diode_biases[1]
    np.testing.assert_array_equal(after, fresh.free(u, backend=NumpyBackend()).outputs)
    assert np.abs(after - before).max() > 0


def test_block_circuit_cache_follows_the_clamp_rails():
    block = aq.ResistiveBlock((8, 6, 4, 3), seed=1)
    first = _source_dc(block.circuit())
    pos = block.diode_rail_nodes[0][0]
    assert first[f"V{pos}"] == block.diode_rails_V[0]
    block.diode_rails_V = (0.3, 0.2)
    block.diode_rail_nodes = [("b0_dpos", "b0_dneg"), ("b0_dpos2", "b0_dneg2")]
    c = block.circuit()
    dc = _source_dc(c)
    assert dc["Vb0_dpos"] == 0.3 and dc["Vb0_dpos2"] == 0.2 and dc["Vb0_dneg2"] == -0.2
    diodes = {e.name: e for e in c.elements if isinstance(e, Diode)}
    assert diodes[f"D{block.hidden_nodes[1][0]}"].anode == "b0_dpos2"
