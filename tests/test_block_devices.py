"""Device models inside blocks: reads, device-style updates, and training with them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogeq import (
    ConfigError,
    MemristorParams,
    ResistiveBlock,
    TaOxHfOxNeuroSimPreset,
    load_config,
    read_checkpoint,
    train,
)
from analogeq.runs.config import device_params


def _output_noise(read_noise_rel: float, numpy_backend) -> float:
    block = ResistiveBlock((6, 8, 3), seed=2, device=MemristorParams(read_noise_rel=read_noise_rel))
    u = np.random.default_rng(0).uniform(-1, 1, (1, 6))
    outs = np.array([block.free(u, backend=numpy_backend).outputs[0] for _ in range(200)])
    return float(outs.std(axis=0).mean())


def test_read_noise_scales_output_noise_linearly(numpy_backend):
    small, large = _output_noise(0.01, numpy_backend), _output_noise(0.02, numpy_backend)
    assert small > 0
    assert 1.7 < large / small < 2.3  # output noise ~ read-noise sigma for small noise
    assert _output_noise(0.0, numpy_backend) < 1e-12  # no read noise: repeatable solves


def test_read_noise_never_changes_stored_conductances(numpy_backend):
    block = ResistiveBlock((4, 5, 2), device=MemristorParams(read_noise_rel=0.05))
    before = [g.copy() for g in block.conductances]
    block.free(np.zeros((2, 4)), backend=numpy_backend)
    for a, b in zip(before, block.conductances, strict=True):
        np.testing.assert_array_equal(a, b)


def test_updates_go_through_the_device():
    dev = MemristorParams(levels=11)
    block = ResistiveBlock((3, 4, 2), seed=1, device=dev)
    step = dev.step_S
    ladder = dev.g_min_S + step * np.arange(11)
    applied = block.apply_update([np.full(g.shape, 0.26 * step) for g in block.conductances])
    for g, a in zip(block.conductances, applied, strict=True):
        # every device sits on the 11-level ladder and moved by whole pulses
        assert np.abs(g[..., None] - ladder).min(axis=-1).max() < 1e-12 * dev.g_max_S
        assert np.allclose(np.round(a / step), a / step, atol=1e-9)


def test_device_range_replaces_block_range():
    dev = TaOxHfOxNeuroSimPreset()
    block = ResistiveBlock((3, 4, 2), device=dev)
    assert (block.params.g_min_S, block.params.g_max_S) == (dev.g_min_S, dev.g_max_S)
    for g in block.conductances:
        assert g.min() >= dev.g_min_S and g.max() <= dev.g_max_S
    assert block.params.nudge_A == pytest.approx(0.03 * dev.g_max_S)


def test_device_config_parsing():
    assert device_params(None) is None
    assert isinstance(device_params("taox_hfox"), TaOxHfOxNeuroSimPreset)
    noisy = device_params({"preset": "taox_hfox", "read_noise_rel": 0.02})
    assert noisy.read_noise_rel == 0.02 and noisy.levels == TaOxHfOxNeuroSimPreset().levels
    with pytest.raises(ConfigError, match="unobtainium"):
        device_params("unobtainium")
    with pytest.raises(ConfigError, match="colour"):
        device_params({"preset": "ideal", "colour": 1})
    with pytest.raises(ConfigError, match="read_noise_rel"):
        device_params({"read_noise_rel": -1.0})


DEVICE = '{ preset = "taox_hfox", read_noise_rel = 0.01, write_noise_rel = 0.1 }'
NOISY = """
name = "noisy"
seed = 5
[data]
dataset = "digits"
limit_train = 100
limit_test = 50
[model]
layers = [
  { type = "linear", out = 10 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 6 },
  { type = "resistive", hidden = [8], out = 10, device = DEVICE },
  { type = "adc", bits = 6, v_min = -0.25, v_max = 0.25 },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 2
batch_size = 50
backend = "numpy"
"""


def _assert_resumes_identically(path, tmp_path) -> dict:
    """Train the config at ``path`` in one go and as 1 epoch + resume: the same test
    accuracy and bitwise the same checkpoint. Returns the checkpoint's arrays."""
    cfg = load_config(path)
    full = train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after_epochs=1)
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed.test_accuracy == full.test_accuracy
    a, _ = read_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = read_checkpoint(tmp_path / "split" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    return a


def test_noisy_device_run_resumes_identically(tmp_path):
    path = tmp_path / "noisy.toml"
    path.write_text(NOISY.replace("DEVICE", DEVICE))
    _assert_resumes_identically(path, tmp_path)
    assert dataclasses.is_dataclass(TaOxHfOxNeuroSimPreset())


def test_noisy_converter_layers_train_and_resume_identically(tmp_path):
    """A DAC and an ADC layer with noise (noise_lsb) in a run config: training runs (the
    converters draw from their own seeded generators), the noise is live (another seed
    changes the result) and a resumed run equals the uninterrupted one bit for bit."""
    text = NOISY.replace("DEVICE", "{ preset = 'taox_hfox' }").replace(
        '{ type = "dac", bits = 6 }', '{ type = "dac", bits = 6, noise_lsb = 0.8 }').replace(
        '{ type = "adc", bits = 6, v_min = -0.25, v_max = 0.25 }',
        '{ type = "adc", bits = 6, v_min = -0.25, v_max = 0.25, noise_lsb = 0.5 }')
    path = tmp_path / "noisy_conv.toml"
    path.write_text(text)
    a = _assert_resumes_identically(path, tmp_path)
    plain = tmp_path / "plain.toml"
    plain.write_text(text.replace(", noise_lsb = 0.8", "").replace(", noise_lsb = 0.5", ""))
    c, _ = read_checkpoint(train(load_config(plain), tmp_path / "plain",
                                 progress=False).run_dir / "checkpoint.npz")
    assert any(not np.array_equal(a[k], c[k]) for k in a)
