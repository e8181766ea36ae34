"""DAC/ADC quantisers: error statistics, clipping, STE mask, noise, calibration, state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digital.converters import ADC, DAC, ConverterParams, quantization_rms_error
from digital.layers import Linear, Sequential


def ramp(lo: float, hi: float, n: int = 200_001) -> np.ndarray:
    return np.linspace(lo, hi, n)


@pytest.mark.parametrize("cls", [DAC, ADC])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8, 10])
def test_ramp_rms_error_matches_lsb_over_sqrt12(cls, bits):
    conv = cls(ConverterParams(bits=bits, v_min=-0.5, v_max=1.5))
    x = ramp(-0.5, 1.5)
    q = conv.forward(x)
    rms = np.sqrt(np.mean((q - x) ** 2))
    theory = quantization_rms_error(bits, 2.0)
    assert theory == pytest.approx(conv.lsb / np.sqrt(12))
    assert rms == pytest.approx(theory, rel=0.10)
    assert len(np.unique(q)) == 2**bits


def test_error_halves_per_extra_bit():
    x = ramp(0.0, 1.0)
    rms = {
        b: np.sqrt(np.mean((DAC(bits=b, v_min=0.0, v_max=1.0).forward(x) - x) ** 2))
        for b in range(3, 11)
    }
    for b in range(3, 10):
        assert rms[b + 1] / rms[b] == pytest.approx(0.5, rel=0.10)


def test_levels_and_mid_rise_grid():
    dac = DAC(bits=2, v_min=-1.0, v_max=1.0)
    levels = np.array([-1.0, -1 / 3, 1 / 3, 1.0])
    np.testing.assert_allclose(np.unique(dac.forward(ramp(-1, 1, 1001))), levels, atol=1e-15)
    np.testing.assert_allclose(dac.forward(np.array([-0.3, 0.2, 0.7])), [-1 / 3, 1 / 3, 1.0])
    assert dac.config.levels == 4 and dac.lsb == pytest.approx(2 / 3)
    uni = DAC(bits=3, v_min=0.0, v_max=0.7)  # unipolar: 0 is a level
    assert uni.forward(np.array([0.01]))[0] == 0.0


def test_clipping_and_straight_through_mask():
    dac = DAC(bits=4, v_min=-1.0, v_max=1.0)
    x = np.array([-3.0, -1.0, -0.2, 0.0, 0.9, 1.0, 1.0001, 5.0])
    q = dac.forward(x)
    assert q.min() >= -1.0 and q.max() <= 1.0
    assert q[0] == -1.0 and q[-1] == 1.0 and q[6] == 1.0
    dq = np.arange(1.0, 9.0)
    np.testing.assert_array_equal(dac.backward(dq), dq * np.array([0, 1, 1, 1, 1, 1, 0, 0]))
    free = DAC(bits=4, v_min=-1.0, v_max=1.0, clip=False)
    q = free.forward(x)
    assert q[-1] == pytest.approx(5.0, abs=free.lsb / 2) and q[0] < -1.0
    np.testing.assert_array_equal(free.backward(dq), dq)


def test_ideal_converter():
    x = np.array([-2.0, -0.123456789, 0.5, 2.0])
    q = DAC(bits=None).forward(x)
    np.testing.assert_array_equal(q, [-1.0, -0.123456789, 0.5, 1.0])
    np.testing.assert_array_equal(DAC(bits=None, clip=False).forward(x), x)
    assert DAC(bits=None).lsb is None


def test_dac_output_noise_std():
    p = ConverterParams(bits=6, v_min=-1.0, v_max=1.0, noise_lsb=0.5)
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 200_000)
    clean = DAC(dataclasses.replace(p, noise_lsb=0.0)).forward(x)
    noisy = DAC(p).forward(x, rng=np.random.default_rng(1))
    assert np.std(noisy - clean) == pytest.approx(0.5 * p.lsb, rel=0.02)
    assert np.mean(noisy - clean) == pytest.approx(0.0, abs=0.01 * p.lsb)


def test_adc_input_referred_noise():
    p = ConverterParams(bits=5, v_min=-1.0, v_max=1.0, noise_lsb=2.0)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 200_000)
    q = ADC(p, rng=np.random.default_rng(2)).forward(x)
    expected = p.lsb * np.sqrt(2.0**2 + 1 / 12)
    assert np.std(q - x) == pytest.approx(expected, rel=0.02)
    assert set(np.round((q - p.v_min) / p.lsb, 9)) <= set(np.arange(32.0))  # still on the grid


def test_noise_requires_rng_and_is_reproducible():
    dac = DAC(bits=4, noise_lsb=1.0)
    x = np.zeros(10)
    with pytest.raises(ValueError, match="rng"):
        dac.forward(x)
    a = dac.forward(x, rng=np.random.default_rng(5))
    b = dac.forward(x, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bits": 0}, "bits"),
        ({"bits": 2.5}, "bits"),
        ({"bits": True}, "bits"),
        ({"v_min": 1.0, "v_max": 1.0}, "v_max must be > v_min"),
        ({"v_min": 0.0, "v_max": float("inf")}, "finite"),
        ({"noise_lsb": -1.0}, "noise_lsb"),
        ({"bits": None, "noise_lsb": 1.0}, "bits"),
        ({"calib_method": "kl"}, "calib_method"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConverterParams(**kwargs)
    with pytest.raises(ValueError, match="bits"):
        quantization_rms_error(0, 1.0)


def test_calibration_methods_and_freeze():
    x = np.concatenate([np.linspace(-0.5, 2.0, 1000), [-1.0]])
    adc = ADC(bits=8)
    p = adc.calibrate(x)
    assert (p.v_min, p.v_max) == (-2.0, 2.0) and adc.calibrated
    with pytest.raises(RuntimeError, match="frozen"):
        adc.calibrate(x)
    p = adc.calibrate(x, method="minmax", force=True)
    assert (p.v_min, p.v_max) == (-1.0, 2.0)
    p = adc.calibrate(x, method="percentile", percentile=50.0, force=True)
    assert p.v_max == pytest.approx(np.percentile(np.abs(x), 50.0)) and p.v_min == -p.v_max
    with pytest.raises(ValueError, match="empty range"):
        ADC(bits=4).calibrate(np.zeros(5))
    auto = DAC(bits=4, calibrate=True, calib_method="minmax")
    auto.forward(np.array([0.0, 3.0]))
    assert (auto.config.v_min, auto.config.v_max) == (0.0, 3.0)
    auto.forward(np.array([-10.0, 10.0]))  # frozen: range unchanged
    assert (auto.config.v_min, auto.config.v_max) == (0.0, 3.0)


def test_state_dict_round_trip():
    rng = np.random.default_rng(0)
    data = rng.standard_normal(1000) * 0.7
    adc = ADC(bits=6, calibrate=True, calib_method="percentile", calib_percentile=99.0)
    y_ref = adc.forward(data)
    restored = ADC(bits=6, calibrate=True, calib_method="percentile", calib_percentile=99.0)
    restored.load_state_dict(adc.state_dict())
    assert restored.calibrated
    np.testing.assert_array_equal(restored.forward(data), y_ref)
    with pytest.raises(KeyError):
        restored.load_state_dict({"v_min": np.array(0.0)})


def test_converter_inside_sequential():
    rng = np.random.default_rng(0)
    net = Sequential(DAC(bits=4, v_min=0.0, v_max=1.0), Linear(3, 2, rng=rng), ADC(bits=8))
    x = np.array([[0.1, 0.5, 1.5]])
    y = net.forward(x)
    assert y.shape == (1, 2)
    dx = net.backward(np.ones((1, 2)))
    assert dx[0, 2] == 0.0 and dx[0, 0] != 0.0
    assert [n for n, _, _ in net.named_params()] == ["1.w", "1.b"]
    assert set(net.state_dict()) == {"1.w", "1.b"} | {
        f"{i}.{k}" for i in (0, 2) for k in ("v_min", "v_max", "calibrated")
    }
