"""Device physics: each non-ideality in the direction and size the model's equations predict.

Expected values are computed here from the documented equations (or closed forms), never by
calling the code under test a second time.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import analogeq as aq
from analogeq import (
    IDEAL,
    AgASiNeuroSimPreset,
    DiodeModel,
    MemristorArray,
    MemristorParams,
    PCMInferencePreset,
    TaOxHfOxNeuroSimPreset,
    diode_1n4148,
)

G_MIN, G_MAX = 1e-7, 1e-5
R = G_MAX - G_MIN


def make(params: MemristorParams, shape=(100, 1000), value=None, seed=0):
    g = np.full(shape, 0.5 * (G_MIN + G_MAX) if value is None else value, dtype=np.float64)
    return g, MemristorArray(g, params, np.random.default_rng(seed))


# -- ideal device ------------------------------------------------------------------------


def test_ideal_programs_exactly_and_in_place():
    rng = np.random.default_rng(1)
    g = rng.uniform(2e-7, 9e-6, size=(12, 7))
    g0 = g.copy()
    arr = MemristorArray(g, IDEAL, np.random.default_rng(0))
    assert arr.g is g
    np.testing.assert_array_equal(g, g0)  # already inside the range: untouched
    delta = rng.uniform(-1e-7, 1e-7, size=g.shape)
    applied = arr.program(delta)
    assert arr.g is g
    np.testing.assert_allclose(applied, delta, rtol=1e-9, atol=1e-22)
    np.testing.assert_allclose(g, g0 + delta, rtol=1e-12)
    assert arr.pulses_used == g.size  # continuous: one analog pulse per non-zero update


def test_ideal_bounds_clip_request():
    g, arr = make(IDEAL, shape=(3,), value=5e-6)
    applied = arr.program(np.array([1e-4, -1e-4, 0.0]))
    np.testing.assert_allclose(g, [G_MAX, G_MIN, 5e-6], rtol=1e-12)
    np.testing.assert_allclose(applied, [G_MAX - 5e-6, G_MIN - 5e-6, 0.0], rtol=1e-9)
    assert arr.pulses_used == 2


def test_ideal_constructor_clips_initial_values():
    g = np.array([1e-9, 5e-6, 1e-3])
    MemristorArray(g, IDEAL, np.random.default_rng(0))
    np.testing.assert_allclose(g, [G_MIN, 5e-6, G_MAX])


# -- quantisation --------------------------------------------------------------------------


def test_levels_quantise_to_the_state_ladder():
    p = MemristorParams(levels=11)
    ladder = G_MIN + np.arange(11) * (R / 10)
    rng = np.random.default_rng(3)
    g = rng.uniform(G_MIN, G_MAX, size=2000)
    arr = MemristorArray(g, p, np.random.default_rng(4))

    def on_ladder(v):
        return np.min(np.abs(v[:, None] - ladder[None, :]), axis=1).max() < 1e-9 * R / 10

    assert on_ladder(g)  # initial values snapped
    for _ in range(50):
        applied = arr.program(rng.normal(0, 0.3 * R, size=g.shape))
        assert on_ladder(g)
        steps = applied / (R / 10)  # applied changes are whole numbers of steps
        np.testing.assert_allclose(steps, np.rint(steps), atol=1e-6)
    assert set(np.unique(np.rint((g - G_MIN) / (R / 10)))) == set(range(11))


def test_stochastic_rounding_is_unbiased_and_counts_pulses():
    p = MemristorParams(levels=101)  # step R/100
    g, arr = make(p, shape=(200_000,))
    applied = arr.program(np.full(g.shape, 2.3 * R / 100))
    steps = np.rint(applied / (R / 100))
    assert set(np.unique(steps)) == {2.0, 3.0}
    frac3 = np.mean(steps == 3)
    assert abs(frac3 - 0.3) < 5 * math.sqrt(0.3 * 0.7 / g.size)
    assert arr.pulses_used == int(steps.sum())


def test_deterministic_rounding_is_nearest():
    p = MemristorParams(levels=101, stochastic_rounding=False)
    g, arr = make(p, shape=(4,))
    applied = arr.program(np.array([2.3, 2.7, -2.3, -2.7]) * R / 100)
    np.testing.assert_allclose(applied / (R / 100), [2, 3, -2, -3], atol=1e-9)
    assert arr.pulses_used == 10


# -- write noise ------------------------------------------------------------------------------


def test_write_noise_per_pulse_scales_with_sqrt_pulses():
    rel, abs_S = 0.5, 3e-8
    p = MemristorParams(levels=101, write_noise_rel=rel, write_noise_abs_S=abs_S)
    step = R / 100
    g, arr = make(p, shape=(100_000,))
    applied = arr.program(np.full(g.shape, 4 * step))
    expected_std = math.sqrt(4) * math.sqrt((rel * step) ** 2 + abs_S**2)
    assert abs(applied.std() / expected_std - 1) < 0.10
    assert abs(applied.mean() - 4 * step) < 5 * expected_std / math.sqrt(g.size)


def test_write_noise_continuous_relative_to_request():
    p = MemristorParams(write_noise_rel=0.1)
    g, arr = make(p, shape=(100_000,))
    applied = arr.program(np.full(g.shape, 2e-7))
    assert abs(applied.std() / 2e-8 - 1) < 0.10
    assert abs(applied.mean() / 2e-7 - 1) < 0.01


# -- read noise ---------------------------------------------------------------------------------


def test_read_noise_std_and_storage_unchanged():
    p = MemristorParams(read_noise_rel=0.05)
    rng = np.random.default_rng(7)
    g = rng.uniform(G_MIN, G_MAX, size=100_000)
    arr = MemristorArray(g, p, np.random.default_rng(0))
    stored = g.copy()
    r = arr.read(np.random.default_rng(8))
    assert r is not g
    np.testing.assert_array_equal(g, stored)
    assert abs(np.std(r / g - 1) / 0.05 - 1) < 0.05
    assert abs(np.mean(r / g - 1)) < 5 * 0.05 / math.sqrt(g.size)
    r2 = arr.read(np.random.default_rng(9))  # fresh noise each read
    assert not np.array_equal(r, r2)


def test_read_stays_positive_under_huge_noise():
    p = MemristorParams(read_noise_rel=5.0)
    g, arr = make(p, shape=(10_000,))
    assert arr.read(np.random.default_rng(1)).min() > 0


def test_read_without_noise_is_an_exact_copy():
    g, arr = make(IDEAL, shape=(10,))
    r = arr.read(np.random.default_rng(0))
    np.testing.assert_array_equal(r, g)
    r[0] = 0.0
    assert g[0] > 0


# -- non-linearity and asymmetry ---------------------------------------------------------------


def _sat_up(nu):
    return G_MIN + R / (1 - math.exp(-nu))


def _sat_down(nu):
    return G_MAX - R / (1 - math.exp(-nu))


def test_soft_bounds_steps_shrink_towards_g_max_by_the_formula():
    nu, L = 2.0, 101
    p = MemristorParams(levels=L, nonlinearity_up=nu)
    states = np.array([G_MIN, G_MIN + 0.5 * R, G_MIN + 0.9 * R])
    g = states.copy()
    arr = MemristorArray(g, p, np.random.default_rng(0))
    g[...] = states  # place devices exactly (constructor snapped them to the ladder)
    applied = arr.program(np.full(3, R / (L - 1)))  # exactly one pulse each
    expected = (_sat_up(nu) - states) * (1 - math.exp(-nu / (L - 1)))
    np.testing.assert_allclose(applied, expected, rtol=1e-9)
    assert applied[0] > applied[1] > applied[2]
    # step at g_max vs at g_min: exp(-nu)
    ratio_end = (_sat_up(nu) - G_MAX) / (_sat_up(nu) - G_MIN)
    assert ratio_end == pytest.approx(math.exp(-nu), rel=1e-12)


def test_full_sweep_of_pulses_lands_on_g_max_and_first_last_ratio():
    nu, L = 3.0, 51
    p = MemristorParams(levels=L, nonlinearity_up=nu)
    g, arr = make(p, shape=(1,), value=G_MIN)
    steps = [arr.program(np.array([R / (L - 1)]))[0] for _ in range(L - 1)]
    assert g[0] == pytest.approx(G_MAX, rel=1e-12)
    assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    assert steps[-1] / steps[0] == pytest.approx(math.exp(-nu * (L - 2) / (L - 1)), rel=1e-9)
    assert sum(steps) == pytest.approx(R, rel=1e-12)


def test_depression_mirror_and_up_down_asymmetry():
    nu_u, nu_d = 1.0, 4.0
    p = MemristorParams(nonlinearity_up=nu_u, nonlinearity_down=nu_d)
    mid = G_MIN + 0.5 * R
    g, arr = make(p, shape=(2,), value=mid)
    dx = 1e-5 * R  # small: the step is the local slope times dx
    applied = arr.program(np.array([dx, -dx]))
    u = dx / R
    up = (_sat_up(nu_u) - mid) * (1 - math.exp(-nu_u * u))
    down = (mid - _sat_down(nu_d)) * (1 - math.exp(-nu_d * u))
    np.testing.assert_allclose(applied, [up, -down], rtol=1e-9)
    assert abs(applied[0] / applied[1]) == pytest.approx(up / down, rel=1e-9)
    # mid-range slope relative to the linear device is nu (1 / (1 - exp(-nu)) - 1/2):
    # 1.082 for nu = 1 and 2.075 for nu = 4, so the down step is the larger one here
    assert up / dx == pytest.approx(1.0 * (1 / (1 - math.exp(-1.0)) - 0.5), rel=1e-3)
    assert down / dx == pytest.approx(4.0 * (1 / (1 - math.exp(-4.0)) - 0.5), rel=1e-3)
    assert dx < up < down
    # a device at g_max takes its largest down step: exp(nu_d) times that at g_min
    g2, arr2 = make(p, shape=(2,), value=G_MAX)
    g2[1] = G_MIN + 1e-3 * R
    a = arr2.program(np.full(2, -1e-4 * R))
    d_top = (G_MAX - _sat_down(nu_d)) * (1 - math.exp(-nu_d * 1e-4))
    d_bot = (G_MIN + 1e-3 * R - _sat_down(nu_d)) * (1 - math.exp(-nu_d * 1e-4))
    np.testing.assert_allclose(-a, [d_top, d_bot], rtol=1e-9)


def test_up_then_down_does_not_return_with_asymmetry():
    p = MemristorParams(nonlinearity_up=0.5, nonlinearity_down=3.0)
    start = G_MIN + 0.8 * R
    g, arr = make(p, shape=(1,), value=start)
    arr.program(np.array([0.05 * R]))
    arr.program(np.array([-0.05 * R]))
    # near the top depression steps are larger (mirror soft bound): net downward drift
    assert g[0] < start


# -- stuck devices ------------------------------------------------------------------------------


def test_stuck_fractions_and_stuck_devices_never_change():
    f_min, f_max = 0.1, 0.05
    p = MemristorParams(stuck_at_min_fraction=f_min, stuck_at_max_fraction=f_max)
    n = 100_000
    g, arr = make(p, shape=(n,))
    smin, smax = arr.stuck_at_min, arr.stuck_at_max
    assert not np.any(smin & smax)
    for frac, mask in ((f_min, smin), (f_max, smax)):
        assert abs(mask.sum() - frac * n) < 5 * math.sqrt(n * frac * (1 - frac))
    np.testing.assert_array_equal(g[smin], G_MIN)
    np.testing.assert_array_equal(g[smax], G_MAX)
    rng = np.random.default_rng(5)
    for _ in range(20):
        applied = arr.program(rng.normal(0, 0.2 * R, size=n))
        assert np.all(applied[smin | smax] == 0)
    np.testing.assert_array_equal(g[smin], G_MIN)
    np.testing.assert_array_equal(g[smax], G_MAX)
    free = ~(smin | smax)
    assert np.any(g[free] != 0.5 * (G_MIN + G_MAX))


# -- device-to-device variability ----------------------------------------------------------------


def test_d2d_spread_and_seed_reproducibility():
    d2d = 0.1
    p = MemristorParams(d2d_variability=d2d, levels=101)
    _, a = make(p, seed=11)
    for arr_vals, nominal in ((a.g_min_device_S, G_MIN), (a.g_max_device_S, G_MAX)):
        rel = arr_vals / nominal - 1
        assert abs(rel.std() / d2d - 1) < 0.05
        assert abs(rel.mean()) < 5 * d2d / math.sqrt(rel.size)
    assert abs((a.step_scale - 1).std() / d2d - 1) < 0.05
    # step size spread: one nominal pulse moves device i by s_i (g_max_i - g_min_i) / 100
    g, b = make(p, shape=(1000,), seed=12)
    g[...] = 0.5 * (b.g_min_device_S + b.g_max_device_S)
    applied = b.program(np.full(g.shape, R / 100))
    expected = b.step_scale * (b.g_max_device_S - b.g_min_device_S) / 100
    np.testing.assert_allclose(applied, expected, rtol=1e-9)
    # same seed -> identical devices and identical trajectories; other seed -> different
    ga, a1 = make(p, shape=(50, 50), seed=21)
    gb, a2 = make(p, shape=(50, 50), seed=21)
    gc, a3 = make(p, shape=(50, 50), seed=22)
    np.testing.assert_array_equal(a1.g_max_device_S, a2.g_max_device_S)
    np.testing.assert_array_equal(a1.step_scale, a2.step_scale)
    d = np.random.default_rng(0).normal(0, 0.1 * R, size=(50, 50))
    a1.program(d)
    a2.program(d)
    np.testing.assert_array_equal(ga, gb)
    assert not np.array_equal(a1.g_min_device_S, a3.g_min_device_S)


# -- drift -------------------------------------------------------------------------------------


@pytest.mark.parametrize("t_rel", [1.0, 10.0, 1000.0])
def test_drift_power_law(t_rel):
    nu, t0 = 0.05, 2.0
    p = MemristorParams(drift_nu=nu, t0_s=t0)
    rng = np.random.default_rng(2)
    g = rng.uniform(G_MIN, G_MAX, size=1000)
    g0 = g.copy()
    arr = MemristorArray(g, p, np.random.default_rng(0))
    arr.drift(t_rel * t0)
    np.testing.assert_allclose(g, g0 * t_rel ** (-nu), rtol=1e-12)
    if t_rel == 10.0:
        np.testing.assert_allclose(g / g0, 10 ** (-0.05), rtol=1e-12)  # 10.9 % drop


def test_drift_validates_time_and_spares_stuck_devices():
    p = MemristorParams(drift_nu=0.1, stuck_at_max_fraction=0.5)
    g, arr = make(p, shape=(1000,))
    with pytest.raises(ValueError, match="t_s"):
        arr.drift(0.5)
    before = g.copy()
    arr.drift(100.0)
    s = arr.stuck_at_max
    np.testing.assert_array_equal(g[s], before[s])
    np.testing.assert_allclose(g[~s], before[~s] * 100 ** (-0.1), rtol=1e-12)


# -- bounds ------------------------------------------------------------------------------------


def test_bounds_never_violated_after_1000_random_updates():
    p = MemristorParams(
        levels=64,
        write_noise_rel=2.0,
        write_noise_abs_S=2e-7,
        d2d_variability=0.2,
        nonlinearity_up=2.0,
        nonlinearity_down=5.0,
        stuck_at_min_fraction=0.02,
        stuck_at_max_fraction=0.02,
    )
    rng = np.random.default_rng(6)
    g = rng.uniform(G_MIN, G_MAX, size=(20, 30))
    arr = MemristorArray(g, p, np.random.default_rng(7))
    lo, hi = arr.g_min_device_S, arr.g_max_device_S
    for _ in range(1000):
        arr.program(rng.normal(0, 0.3 * R, size=g.shape))
        assert np.all(g >= lo) and np.all(g <= hi)
    assert np.all(lo > 0) and np.all(hi > lo)


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("g_min_S", 0.0),
        ("g_min_S", -1e-6),
        ("g_max_S", 1e-8),
        ("g_max_S", float("inf")),
        ("levels", 1),
        ("levels", 2.5),
        ("levels", True),
        ("stochastic_rounding", 1),
        ("write_noise_rel", -0.1),
        ("write_noise_abs_S", -1e-9),
        ("read_noise_rel", float("nan")),
        ("d2d_variability", 1.0),
        ("d2d_variability", -0.1),
        ("nonlinearity_up", -1.0),
        ("nonlinearity_down", -2.0),
        ("stuck_at_min_fraction", 1.5),
        ("stuck_at_max_fraction", -0.1),
        ("drift_nu", -0.05),
        ("t0_s", 0.0),
    ],
)
def test_invalid_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=re.escape(field)):
        MemristorParams(**{field: value})


def test_stuck_fraction_sum_and_array_validation():
    with pytest.raises(ValueError, match="stuck_at_min_fraction"):
        MemristorParams(stuck_at_min_fraction=0.6, stuck_at_max_fraction=0.6)
    with pytest.raises(ValueError, match="float64"):
        MemristorArray(np.ones(3, dtype=np.float32), IDEAL, np.random.default_rng(0))
    g, arr = make(IDEAL, shape=(3,))
    with pytest.raises(ValueError, match="shape"):
        arr.program(np.zeros(4))


# -- presets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset", [AgASiNeuroSimPreset, TaOxHfOxNeuroSimPreset, PCMInferencePreset]
)
def test_presets_construct_and_cite(preset):
    p = preset()
    assert isinstance(p, MemristorParams)
    doc = preset.__doc__ or ""
    assert re.search(r"\((19|20)\d\d\)", doc) and "et al." in doc
    g = np.full((8, 8), 0.5 * (p.g_min_S + p.g_max_S))
    arr = MemristorArray(g, p, np.random.default_rng(0))
    arr.program(np.full(g.shape, 0.1 * (p.g_max_S - p.g_min_S)))
    assert arr.read(np.random.default_rng(1)).min() > 0


def test_ag_a_si_preset_matches_neurosim_numbers():
    p = AgASiNeuroSimPreset()
    assert p.step_S == pytest.approx((3.8462e-8 - 3.0769e-9) / 97)
    # NeuroSim paramA/maxNumLevel = 0.499181 (NL 2.4) and 0.200303 (NL -4.88)
    assert 1 / p.nonlinearity_up == pytest.approx(0.499181)
    assert 1 / p.nonlinearity_down == pytest.approx(0.200303)
    assert p.write_noise_abs_S == pytest.approx(0.035 * 3.53851e-8, rel=1e-4)
    assert MemristorParams.ideal() == IDEAL


def test_diode_1n4148():
    d = diode_1n4148()
    assert isinstance(d, DiodeModel)
    assert (d.is_A, d.n) == (2.52e-9, 1.752)
    card = aq.spice.model_card(d)
    assert "IS=" in card and "N=" in card
    assert "RS" in (diode_1n4148.__doc__ or "")
