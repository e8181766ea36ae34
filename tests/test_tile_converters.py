"""Tile converters (TileConfig.dac / .adc) and the boundary buffer in the training path.

Checks against independent references: the quantisation grid written out here
(LSB = range / (2**b - 1)), the block's exact input Jacobian (implicit differentiation),
finite differences of the forward pass, hand counts of the tile mapping, and the same
computation without the buffer (bit for bit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogeq import (
    FFEBM,
    AnalogLayer,
    BufferOverflowError,
    ConfigError,
    ResistiveBlock,
    TileConfig,
    build_model,
    resolve_config,
)
from digital import layers as dl
from digital.converters import ADC, DAC, ConverterParams
from digital.losses import mse_loss

SIZES = (4, 6, 3)


def _layer(tile: TileConfig, backend, *, sizes=SIZES, seed=5, gradient="exact"):
    block = ResistiveBlock(sizes, seed=seed, tile=tile)
    return AnalogLayer(block, backend=backend, gradient=gradient)


# -- converter effect -----------------------------------------------------------------


def test_adc_error_within_half_lsb_and_rms_scales_as_2_to_minus_b(numpy_backend):
    rng = np.random.default_rng(0)
    u = rng.uniform(-1.0, 1.0, (600, SIZES[0]))
    raw = ResistiveBlock(SIZES, seed=5).free(u, backend=numpy_backend).outputs
    v = float(np.abs(raw).max()) * 1.001  # range just covering the outputs: nothing clips
    rms = {}
    for bits in (4, 6, 8):
        spec = ConverterParams(bits=bits, v_min=-v, v_max=v)
        layer = _layer(TileConfig(adc=spec), numpy_backend)
        err = layer.forward(u, train=False) - raw
        lsb = 2 * v / (2**bits - 1)
        assert np.abs(err).max() <= lsb / 2 * (1 + 1e-9)
        rms[bits] = float(np.sqrt(np.mean(err**2)))
        # a signal spread over many levels: uniform error, rms = LSB / sqrt(12)
        assert rms[bits] == pytest.approx(lsb / math.sqrt(12), rel=0.1)
    # 2 more bits: 4x smaller error ((2**6 - 1) / (2**4 - 1) = 4.2, (2**8 - 1) / 63 = 4.05)
    assert rms[4] / rms[6] == pytest.approx(63 / 15, rel=0.1)
    assert rms[6] / rms[8] == pytest.approx(255 / 63, rel=0.1)


@pytest.mark.parametrize("backend_name", ["numpy_backend", "ngspice"])
def test_dac_noise_spreads_outputs_by_sigma_times_the_input_jacobian(backend_name, request):
    backend = request.getfixturevalue(backend_name)
    rng = np.random.default_rng(1)
    u0 = rng.uniform(-0.8, 0.8, SIZES[0])
    u = np.repeat(u0[None], 500, axis=0)
    block = ResistiveBlock(SIZES, seed=5)
    # rows of the exact input Jacobian d o_k / d u (implicit differentiation)
    jac = np.stack([block.exact_gradients(u0[None], np.eye(SIZES[-1])[k][None]).inputs[0]
                    for k in range(SIZES[-1])])
    spreads = {}
    for sigma in (1e-3, 2e-3):
        spec = ConverterParams(bits=None, v_min=-2.0, v_max=2.0, noise_V=sigma)
        layer = _layer(TileConfig(dac=spec), backend, seed=5)
        y = layer.forward(u, train=False)
        spreads[sigma] = y.std(axis=0)
        # independent noise of std sigma on every signed input: std_k = sigma * |J_k|
        np.testing.assert_allclose(spreads[sigma], sigma * np.linalg.norm(jac, axis=1),
                                   rtol=0.12)
    # linear in sigma for small sigma (the same seeded draws, scaled)
    np.testing.assert_allclose(spreads[2e-3] / spreads[1e-3], 2.0, rtol=0.01)


def test_noise_is_seeded_and_held_through_the_nudged_phases(numpy_backend):
    spec = ConverterParams(bits=8, noise_V=5e-3)
    x = np.random.default_rng(2).uniform(-1, 1, (5, SIZES[0]))
    outs = []
    for _ in range(2):
        model = FFEBM(_layer(TileConfig(dac=spec, adc=spec), numpy_backend, gradient="ep"))
        outs.append(model.forward(x))
        model.backward(np.ones((5, SIZES[-1])))
        layer = model.layers[0]
        # the nudged phases re-applied exactly the free phase's (noisy) input voltages
        np.testing.assert_array_equal(layer.last_inputs_V,
                                      layer.dac.forward(x) + layer.last_dac_noise_V)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("side", ["dac", "adc"])
def test_straight_through_backward_matches_finite_differences(side, numpy_backend):
    """Ideal resolution, finite range: the forward pass is the block composed with a
    clip, so finite differences give the true derivative: the block's inside the range,
    0 where the value is clipped."""
    x = np.array([[0.3, -0.9, 0.1, 0.7], [-0.2, 0.45, -0.6, 0.05]])
    raw = ResistiveBlock(SIZES, seed=5).free(x, backend=numpy_backend).outputs
    v = 0.5 if side == "dac" else float(np.median(np.abs(raw)))  # ADC: clips some outputs
    spec = ConverterParams(bits=None, v_min=-v, v_max=v)
    layer = _layer(TileConfig(**{side: spec}), numpy_backend)
    w = np.random.default_rng(3).normal(size=(2, SIZES[-1]))
    y = layer.forward(x)
    dx = layer.backward(w)
    h = 1e-5
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd[idx] = ((layer.forward(xp, train=False) - layer.forward(xm, train=False)) * w
                   ).sum() / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=1e-5, atol=1e-9 * np.abs(fd).max())
    if side == "dac":
        outside = np.abs(x) > 0.5
        assert outside.any() and (dx[outside] == 0).all()
        assert (np.abs(fd[outside]) < 1e-12).all()
    else:
        clipped = np.abs(raw) > v
        assert clipped.any() and not clipped.all()
        np.testing.assert_array_equal(y[clipped], np.sign(raw[clipped]) * v)
        assert (np.abs(fd[clipped.any(axis=1)]) > 0).all()  # other outputs still pass


def test_tile_converters_equal_separate_converter_layers(numpy_backend):
    """Without noise, a tile DAC/ADC computes exactly what DAC/ADC layers around the
    block compute (the digits_realistic config relies on it)."""
    dac = ConverterParams(bits=6, v_min=-1.0, v_max=1.0)
    adc = ConverterParams(bits=5, v_min=-0.05, v_max=0.05)
    tile = TileConfig(rows=5, cols=4)
    x = np.random.default_rng(4).uniform(-1.3, 1.3, (7, SIZES[0]))
    t = np.random.default_rng(5).normal(size=(7, SIZES[-1]))
    results = []
    for layers in (
        [DAC(dac), _layer(tile, numpy_backend, gradient="ep"), ADC(adc)],
        [_layer(TileConfig(rows=5, cols=4, dac=dac, adc=adc), numpy_backend, gradient="ep")],
    ):
        model = FFEBM(*layers)
        y = model.forward(x)
        dx = model.backward(mse_loss(y, t)[1])
        results.append((y, dx, *model.analog_layers[0].grads.values()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


# -- the buffer in the training path ----------------------------------------------------


def test_conversions_and_occupancy_follow_the_tile_mapping(numpy_backend):
    # block (5, 6, 3) on 3 x 3 tiles. R0: rows in0p, in0n, ..., in4n, bias_p, bias_n
    # (12) -> row blocks 0:3 (inputs 0,1), 3:6 (1,2), 6:9 (3,4), 9:12 (4 + rails): 7 DACs
    # per column block, 2 column blocks (6 hidden): 14 DACs. R1: rows 6 hidden + 2 rails
    # -> last row block 6:8; columns out0p ... out2n -> 0:3 (outputs 0,1), 3:6 (1,2):
    # 4 ADCs (output 1's column pair is cut by the tile boundary).
    tile = TileConfig(rows=3, cols=3, dac=ConverterParams(bits=6), adc=ConverterParams(bits=7))
    block = ResistiveBlock((5, 6, 3), seed=0, tile=tile)
    assert sum(d for d, _ in block.tile_converters().values()) == 14
    assert sum(a for _, a in block.tile_converters().values()) == 4
    assert block.tile_converters()["R0_t1_0"] == (2, 0)
    assert block.tile_converters()["R1_t2_1"] == (0, 2)
    text = block.describe_mapping()
    assert "converters: 14 DAC(s), 4 ADC(s)" in text and "6 bits, -1..1 V" in text
    batch = 9
    model = FFEBM(AnalogLayer(block, backend=numpy_backend), value_bits=16)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 5))
    model.forward(x)
    held = batch * (14 * 6 + 4 * 7)
    assert model.buffer.occupancy_bits == held
    model.backward(np.ones((batch, 3)))
    s = model.buffer.stats()
    assert s["dac_conversions"] == batch * 14 and s["adc_conversions"] == batch * 4
    assert s["peak_bits"] == held + batch * 3 * 16  # + the error of the nudge, 16 bits
    assert s["occupancy_bits"] == 0 and s["entries"] == {}
    assert model.step_buffer_bits(batch) == s["peak_bits"]
    model.forward(x[:4], train=False)  # evaluation stores nothing
    assert model.buffer.stats()["dac_conversions"] == batch * 14


def test_capacity_smaller_than_a_step_raises_naming_the_layer(numpy_backend):
    block = ResistiveBlock((5, 6, 3), seed=0, name="blk", tile=TileConfig(rows=3, cols=3))
    need_fwd = 4 * (14 * 32 + 4 * 32)
    x = np.zeros((4, 5))
    model = FFEBM(AnalogLayer(block, backend=numpy_backend), buffer_bits=need_fwd - 1)
    with pytest.raises(BufferOverflowError, match=r"'blk' \(5, 6, 3\)") as info:
        model.forward(x)
    assert f"{need_fwd - 1} bits" in str(info.value)
    # room for the forward pass but not for the error the backward pass nudges with
    model = FFEBM(AnalogLayer(block, backend=numpy_backend), buffer_bits=need_fwd)
    model.forward(x)
    with pytest.raises(BufferOverflowError, match="'blk'.*'blk.delta'"):
        model.backward(np.ones((4, 3)))
    assert model.buffer.occupancy_bits == 0  # the failed step's entries were freed


def test_buffer_path_is_bit_identical_to_the_direct_block_computation(numpy_backend):
    """A model without converters: what the layer computes through the buffer equals
    the block's own free phase and EP gradients on the same arrays, bit for bit."""
    rng = np.random.default_rng(6)
    lin = dl.Linear(3, 4, rng=rng)
    block = ResistiveBlock((4, 5, 2), seed=1, tile=TileConfig(rows=4, cols=3,
                                                              wire_resistance_ohm=1.0))
    model = FFEBM(lin, dl.Activation("tanh"), AnalogLayer(block, backend=numpy_backend))
    x = rng.normal(size=(6, 3))
    y = model.forward(x)
    dy = rng.normal(size=(6, 2))
    model.backward(dy)
    u = np.tanh(lin.forward(x, train=False))
    free = block.free(u, backend=numpy_backend)
    ep = block.ep_gradients(u, dy, backend=numpy_backend, free_state=free)
    np.testing.assert_array_equal(y, free.outputs)
    for k, g in enumerate(ep.conductances):
        np.testing.assert_array_equal(model.layers[2].grads[f"g{k}"], g)
    # R0: 8 input rows + 2 rails on 4-row tiles -> inputs {0, 1}, {2, 3}, rails; 5 hidden
    # columns on 3-column tiles -> 2 column blocks: 8 DACs per sample
    assert model.buffer.stats()["dac_conversions"] == 6 * 8


# -- configuration ---------------------------------------------------------------------


def _cfg(**resistive):
    return resolve_config({"model": {"layers": [
        {"type": "linear", "out": 4},
        {"type": "resistive", "hidden": [3], "out": 2, **resistive}]},
        "train": {"batch_size": 5, "backend": "numpy"}})


def test_config_keys_build_tile_converters():
    cfg = _cfg(dac_bits=6, dac_v_min=-0.5, dac_v_max=0.5, adc_bits=7, adc_calibrate=True,
               adc_noise_V=1e-3)
    model = build_model(cfg, (3,))
    tile = model.analog_layers[0].block.tile
    assert (tile.rows, tile.cols, tile.wire_resistance_ohm) == (64, 64, 0.0)
    assert tile.dac == ConverterParams(bits=6, v_min=-0.5, v_max=0.5)
    assert tile.adc == ConverterParams(bits=7, calibrate=True, noise_V=1e-3)
    # the automatic capacity covers a training step of the configured batch
    assert model.buffer.capacity_bits >= model.step_buffer_bits(5)
    assert build_model(_cfg(), (3,)).analog_layers[0].block.tile is None
    hw = resolve_config({**{"model": cfg["model"]}, "hardware": {"buffer_bits": 1234}})
    assert build_model(hw, (3,)).buffer.capacity_bits == 1234


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"dac_bits": 0}, "dac_bits"),
        ({"adc_bits": 2.5}, "adc_bits"),
        ({"dac_v_min": "low"}, "dac_v_min"),
        ({"adc_v_min": 0.3, "adc_v_max": 0.1}, "adc_v_max"),
        ({"dac_noise_V": -1e-3}, "dac_noise_V"),
        ({"adc_calibrate": True, "adc_v_max": 0.2}, "adc_calibrate"),
        ({"dac_calibrate": "yes"}, "dac_calibrate"),
        ({"adc_gain": 2}, "adc_gain"),
    ],
)
def test_config_errors_name_the_converter_key(keys, named):
    with pytest.raises(ConfigError, match=named):
        _cfg(**keys)


def test_config_rejects_bad_buffer_settings():
    layers = _cfg()["model"]
    with pytest.raises(ConfigError, match="hardware.buffer_bits"):
        resolve_config({"model": layers, "hardware": {"buffer_bits": -1}})
    with pytest.raises(ConfigError, match="hardware.buffer_value_bits"):
        resolve_config({"model": layers, "hardware": {"buffer_value_bits": 0}})


def test_tile_config_rejects_a_converter_that_is_not_converter_params():
    from analogeq import InvalidValueError

    with pytest.raises(InvalidValueError, match="TileConfig.adc"):
        TileConfig(adc={"bits": 8})


def test_training_records_conversions_and_buffer_peak_and_report_shows_them(tmp_path):
    import csv

    from analogeq import report, train

    cfg = resolve_config({
        "name": "tileconv", "seed": 1,
        "data": {"dataset": "digits", "limit_train": 50, "limit_test": 20},
        "model": {"layers": [
            {"type": "linear", "out": 6},
            {"type": "activation", "name": "hardtanh"},
            {"type": "resistive", "hidden": [5], "out": 10, "tile_rows": 8, "tile_cols": 8,
             "dac_bits": 6, "adc_bits": 8, "adc_v_min": -0.25, "adc_v_max": 0.25},
            {"type": "gain_offset", "gain": 100.0},
        ]},
        "train": {"epochs": 2, "batch_size": 20, "backend": "numpy"},
    })
    train(cfg, tmp_path / "run", progress=False)
    with (tmp_path / "run" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # R0: 12 input rows + 2 rails on 8-row tiles -> inputs {0..3}, {4, 5}: 6 DACs (one
    # column block); outputs: 20 columns on 8-column tiles of the last row block -> 10 ADCs
    for r in rows:
        assert int(r["dac_conversions"]) == 50 * 6
        assert int(r["adc_conversions"]) == 50 * 10
        # peak: one step of 20 samples: codes at 6 bits, readings at 8, error at 32
        assert int(r["buffer_peak_bits"]) == 20 * (6 * 6 + 10 * 8 + 10 * 32)
    # run folder: the block's netlist and one per tile (R0: 14 rows x 5 columns on 8 x 8
    # tiles -> 2 x 1 tiles; R1: 5 + 2 rows x 20 columns -> 1 x 3 tiles)
    nets = tmp_path / "run" / "netlists"
    assert (nets / "b0.cir").is_file()
    assert sorted(f.name for f in (nets / "b0_tiles").glob("*.cir")) == [
        "R0_t0_0.cir", "R0_t1_0.cir", "R1_t0_0.cir", "R1_t0_1.cir", "R1_t0_2.cir"]
    text = report(tmp_path / "run", n_representative=2)
    assert "tile mapping of block b0" in text and "converters: 6 DAC(s), 10 ADC(s)" in text
    assert "6 bits, -1..1 V" in text and "8 bits, -0.25..0.25 V" in text
    assert "boundary buffer during training" in text and f"{20 * 436:,}" in text
    # inputs: one DAC conversion per channel per sample (held over the three phases),
    # plus the 2 x 2 n_out nudge sources of the two nudged phases
    assert f"{20 * (6 + 4 * 10):,} @6b" in text


def test_resume_with_noisy_calibrated_tile_converters_is_exact(tmp_path):
    from analogeq import read_checkpoint, train

    cfg = resolve_config({
        "name": "noisy", "seed": 2,
        "data": {"dataset": "digits", "limit_train": 60, "limit_test": 20},
        "model": {"layers": [
            {"type": "linear", "out": 5},
            {"type": "activation", "name": "hardtanh"},
            {"type": "resistive", "hidden": [4], "out": 10, "dac_bits": 5,
             "dac_noise_V": 0.01, "adc_bits": 6, "adc_calibrate": True, "adc_noise_V": 1e-3},
            {"type": "gain_offset", "gain": 100.0},
        ]},
        "train": {"epochs": 2, "batch_size": 30, "backend": "numpy"},
    })
    train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after_epochs=1)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, _ = read_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = read_checkpoint(tmp_path / "split" / "checkpoint.npz")
    (cal,) = [k for k in a if k.endswith(".adc.calibrated")]  # the range is checkpointed
    assert bool(a[cal]) and a[cal.replace("calibrated", "v_max")] > 0
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
