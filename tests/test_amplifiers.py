"""Bidirectional amplifiers: the element against hand-solved circuits on both backends,
ngspice against NumPy, and EP / implicit differentiation of amplified blocks against
central finite differences of the loss."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

import analogeq as aq
from analogeq import InvalidValueError, ResistiveBlock, resolve_config
from analogeq.backends.numpy_backend import NumpyBackend
from analogeq.circuit import (
    BidirectionalAmplifier,
    Circuit,
    Conductance,
    CurrentSource,
    VoltageSource,
    validate,
)
from analogeq.errors import CircuitError, VoltageSourceLoopError
from analogeq.spice import to_spice
from digital.gradcheck import numerical_gradient

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

G1, G2, A, C, VS = 1e-3, 2e-4, 4.0, 0.25, 1.0


def _hand_circuit(a=A, c=C) -> Circuit:
    """source -> R1 -> h -> amplifier -> n -> R2 -> ground."""
    return Circuit("hand amp").add(
        VoltageSource("Vs", "s", "0", VS),
        Conductance("R1", "s", "h", G1),
        BidirectionalAmplifier("Eamp", "h", "n", a, c),
        Conductance("R2", "n", "0", G2),
    )


@pytest.mark.parametrize("a, c", [(A, C), (4.0, 1.0), (0.5, 3.0)])
def test_hand_solved_circuit_both_backends(ngspice, a, c):
    # KCL at h: G1 (V_h - V_s) + c I_n = 0 with I_n = G2 A V_h (current into R2)
    v_h = G1 * VS / (G1 + c * a * G2)
    i_n = G2 * a * v_h
    for backend in (NumpyBackend(), ngspice):
        sol = backend.solve(_hand_circuit(a, c))
        assert sol.v("h")[0] == pytest.approx(v_h, rel=1e-9)
        assert sol.v("n")[0] == pytest.approx(a * v_h, rel=1e-9)
        assert sol.i("Vamp_sense")[0] == pytest.approx(i_n, rel=1e-9)
        # the source delivers through R1 exactly the current the F source draws from h
        assert -sol.i("Vs")[0] == pytest.approx(c * i_n, rel=1e-9)
        assert G1 * (VS - sol.v("h")[0]) == pytest.approx(c * i_n, rel=1e-9)
        assert "eamp_x" not in sol.node_names  # the internal node stays in the netlist


def test_chained_amplifiers_and_current_source(ngspice):
    # two stages in a row and a current source at the last node: both backends agree
    # with the hand solution of the 3x3 linear system
    circ = Circuit("chain").add(
        VoltageSource("Vs", "s", "0", 0.7),
        Conductance("R1", "s", "h", 1e-4),
        Conductance("Rh", "h", "0", 3e-5),
        BidirectionalAmplifier("E1", "h", "m", 3.0, 0.5),
        Conductance("R2", "m", "k", 2e-5),
        Conductance("Rk", "k", "0", 1e-5),
        BidirectionalAmplifier("E2", "k", "n", 2.0, 0.25),
        Conductance("R3", "n", "0", 5e-5),
        CurrentSource("I1", "0", "n", 1e-6),
    )
    # unknowns V_h, V_k; V_m = 3 V_h, V_n = 2 V_k
    # I_n = 5e-5 V_n - 1e-6; KCL k: 2e-5 (V_k - V_m) + 1e-5 V_k + 0.25 I_n = 0
    # I_m = 2e-5 (V_m - V_k); KCL h: 1e-4 (V_h - 0.7) + 3e-5 V_h + 0.5 I_m = 0
    m = np.array([[1e-4 + 3e-5 + 0.5 * 2e-5 * 3.0, -0.5 * 2e-5],
                  [-2e-5 * 3.0, 2e-5 + 1e-5 + 0.25 * 5e-5 * 2.0]])
    v_h, v_k = np.linalg.solve(m, [1e-4 * 0.7, 0.25 * 1e-6])
    for backend in (NumpyBackend(), ngspice):
        sol = backend.solve(circ)
        np.testing.assert_allclose(
            sol.voltages(["h", "m", "k", "n"])[0], [v_h, 3 * v_h, v_k, 2 * v_k], rtol=1e-9
        )
        assert sol.i("V2_sense")[0] == pytest.approx(5e-5 * 2 * v_k - 1e-6, rel=1e-8)


def test_netlist_lines():
    text = to_spice(_hand_circuit())
    assert "Eamp eamp_x 0 h 0 4.0" in text
    assert "Vamp_sense eamp_x n DC 0" in text
    assert "Famp h 0 Vamp_sense 0.25" in text


@pytest.mark.parametrize(
    "element, match",
    [
        (BidirectionalAmplifier("Eamp", "h", "n", 0.0, 0.25), "gain"),
        (BidirectionalAmplifier("Eamp", "h", "n", 4.0, -1.0), "back_gain"),
        (BidirectionalAmplifier("Eamp", "h", "n", math.nan, 0.25), "gain"),
        (BidirectionalAmplifier("Eamp", "h", "n", 4.0, math.inf), "back_gain"),
        (BidirectionalAmplifier("Eamp", "h", "n", True, 0.25), "gain"),
        (BidirectionalAmplifier("Eamp", "h", "h", 4.0, 0.25), "itself"),
        (BidirectionalAmplifier("Eamp", "h", "0", 4.0, 0.25), "ground"),
        (BidirectionalAmplifier("Xamp", "h", "n", 4.0, 0.25), "SPICE letter 'E'"),
        (BidirectionalAmplifier("Eamp", "h-1", "n", 4.0, 0.25), "not legal"),
        (BidirectionalAmplifier("Eamp", "h", "sweep_idx", 4.0, 0.25), "reserved"),
    ],
)
def test_invalid_amplifiers(element, match):
    circ = Circuit("bad").add(
        element, VoltageSource("Vs", "s", "0", 1.0), Conductance("R1", "s", "h", G1),
        Conductance("R2", "n", "0", G2),
    )
    with pytest.raises(CircuitError, match=match):
        validate(circ)


def test_amplifier_output_counts_as_driven():
    # n has no other path to ground: the amplifier drives it, so the circuit is valid
    circ = Circuit("driven").add(
        VoltageSource("Vs", "s", "0", 1.0), Conductance("R1", "s", "h", G1),
        BidirectionalAmplifier("Eamp", "h", "n", A, C), Conductance("R2", "n", "m", G2),
        Conductance("R3", "m", "s", G2),
    )
    validate(circ)
    # two sources fixing the same node are a loop of voltage sources
    loop = _hand_circuit().with_elements(VoltageSource("Vn", "n", "0", 1.0))
    with pytest.raises(VoltageSourceLoopError, match="Vn|Eamp"):
        validate(loop)
    clash = _hand_circuit().with_elements(VoltageSource("Vamp_sense", "q", "0", 1.0),
                                          Conductance("Rq", "q", "0", 1e-3))
    with pytest.raises(CircuitError, match="Vamp_sense"):
        validate(clash)


# -- blocks -------------------------------------------------------------------------


def _loss_fd(block: ResistiveBlock, u, delta, h=1e-9):
    """Central finite differences of sum <delta, o> on the NumPy backend (tight Newton):
    every conductance, and the inputs."""
    numpy = NumpyBackend(block.options)

    def loss():
        return float((block.free(u, numpy).outputs * delta).sum())

    grads = [numerical_gradient(loss, g, h=h) for g in block.conductances]
    d_in = np.zeros_like(u)
    for b in range(u.shape[0]):
        row = u[b : b + 1].copy()

        def loss_b(row=row, b=b):
            return float((block.free(row, numpy).outputs * delta[b]).sum())

        d_in[b] = numerical_gradient(loss_b, row[0], h=1e-6)
    return grads, d_in


def _cos_rel(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), float(
        np.linalg.norm(a - b) / np.linalg.norm(b))


def _data(block, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, block.n_in)), rng.normal(size=(batch, block.n_out))


@pytest.fixture(scope="module")
def block_a4():
    blk = ResistiveBlock((4, 6, 6, 3), seed=3, amplifier_gain=4.0)
    u, delta = _data(blk)
    return blk, u, delta, _loss_fd(blk, u, delta)


def test_free_phase_ngspice_vs_numpy(ngspice):
    for gain in (4.0, (3.0, 10.0), (2.0, 0.5, 8.0)):
        hidden = (6,) * (len(gain) if isinstance(gain, tuple) else 2)
        blk = ResistiveBlock((5, *hidden, 3), seed=1, amplifier_gain=gain)
        u, _ = _data(blk, batch=4)
        a = blk.free(u, ngspice).solution
        b = blk.free(u, NumpyBackend(blk.options)).solution
        assert a.node_names == b.node_names
        assert np.abs(a.voltages_V - b.voltages_V).max() <= 1e-9
        # the amplifier outputs follow the gain law on both
        h = a.voltages(blk.hidden_nodes[0])
        np.testing.assert_allclose(a.voltages(blk.amplifier_nodes[0]), blk.amplifier_gains[0] * h,
                                   rtol=1e-9, atol=1e-12)


def test_ep_ngspice_vs_finite_differences_a4(ngspice, block_a4):
    blk, u, delta, (fd, fd_in) = block_a4
    ep = blk.ep_gradients(u, delta, backend=ngspice)
    for k, (e, f) in enumerate(zip(ep.conductances, fd, strict=True)):
        cos, rel = _cos_rel(e, f)
        assert cos >= 0.9999 and rel <= 1e-3, (k, cos, rel)
    cos, rel = _cos_rel(ep.inputs, fd_in)
    assert cos >= 0.9999 and rel <= 1e-3, (cos, rel)


def test_exact_gradients_vs_finite_differences(block_a4):
    blk, u, delta, (fd, fd_in) = block_a4
    ex = blk.exact_gradients(u, delta)
    for e, f in zip(ex.conductances, fd, strict=True):
        assert _cos_rel(e, f)[1] <= 1e-5
    assert _cos_rel(ex.inputs, fd_in)[1] <= 1e-5


@pytest.mark.parametrize("gain, back", [((3.0, 10.0), None), ((2.0, 5.0), (1.0, 5.0))])
def test_ep_mixed_gains_factor_per_section(ngspice, gain, back):
    blk = ResistiveBlock((4, 6, 6, 3), seed=5, amplifier_gain=gain, amplifier_back_gain=back)
    u, delta = _data(blk, seed=2)
    fd, fd_in = _loss_fd(blk, u, delta)
    ep = blk.ep_gradients(u, delta, backend=ngspice)
    per, at_inputs = blk.gain_factors()
    c = back or tuple(1 / a for a in gain)
    ratio = [a / b for a, b in zip(gain, c, strict=True)]
    # by hand: crossbar k has the stages l > k downstream (R0: both, R1: the second, R2: none)
    expected = [ratio[0] * ratio[1], ratio[1], 1.0]
    np.testing.assert_allclose(per, expected, rtol=1e-12)
    assert at_inputs == pytest.approx(ratio[0] * ratio[1])
    for k, (e, f) in enumerate(zip(ep.conductances, fd, strict=True)):
        cos, rel = _cos_rel(e, f)
        assert cos >= 0.9999 and rel <= 1e-3, (k, cos, rel)
        raw = e / per[k]  # the plain EP formula: its fitted factor to FD is the section's
        fitted = float((raw * f).sum() / (raw * raw).sum())
        assert fitted == pytest.approx(expected[k], rel=1e-3)
    cos, rel = _cos_rel(ep.inputs, fd_in)
    assert cos >= 0.9999 and rel <= 1e-3


def test_amplified_block_structure():
    blk = ResistiveBlock((3, 4, 2, 2), amplifier_gain=(2.0, 8.0), name="b1")
    circ = blk.circuit()
    amps = circ.amplifiers
    assert [a.name for a in amps][:2] == ["Eb1_amp1_000", "Eb1_amp1_001"]
    assert len(amps) == 6 and amps[-1].gain == 8.0 and amps[-1].back_gain == 1 / 8.0
    assert blk.crossbar_rows(1)[:4] == tuple(blk.amplifier_nodes[0])
    assert blk.crossbar_rows(0)[:6] == tuple(blk.input_nodes)
    assert all(d.cathode in blk.hidden_nodes[0] + blk.hidden_nodes[1] or
               d.anode in blk.hidden_nodes[0] + blk.hidden_nodes[1]
               for d in circ.elements if type(d).__name__ == "Diode")
    assert "Eb1_amp<l>_<j>" in blk.netlist()
    passive = ResistiveBlock((3, 4, 2))
    assert passive.gain_factors() == ([1.0, 1.0], 1.0) and not passive.circuit().amplifiers


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"amplifier_gain": 0.0}, "amplifier_gain"),
        ({"amplifier_gain": -2.0}, "amplifier_gain"),
        ({"amplifier_gain": math.nan}, "amplifier_gain"),
        ({"amplifier_gain": math.inf}, "amplifier_gain"),
        ({"amplifier_gain": True}, "amplifier_gain"),
        ({"amplifier_gain": (2.0, 3.0, 4.0)}, r"amplifier_gain has 3 values"),
        ({"amplifier_gain": (2.0, False)}, r"amplifier_gain\[1\]"),
        ({"amplifier_gain": "4"}, "amplifier_gain"),
        ({"amplifier_gain": 2.0, "amplifier_back_gain": 0.0}, "amplifier_back_gain"),
        ({"amplifier_gain": 2.0, "amplifier_back_gain": (1.0,)}, "amplifier_back_gain"),
        ({"amplifier_back_gain": 0.5}, "amplifier_back_gain"),
    ],
)
def test_bad_block_gains(kwargs, match):
    with pytest.raises(InvalidValueError, match=match):
        ResistiveBlock((3, 4, 4, 2), **kwargs)


# ------------------------------------------------------------------------------------
# run configs, split blocks, netlists, tile mapping and run folders show the amplifiers


_AMP_LAYER = ("{ type = \"resistive\", hidden = [4, 3], out = 10, amplifier_gain = [4.0, 2.0], "
              "amplifier_back_gain = 0.5, tile_rows = 8, tile_cols = 8 }")
AMP_CONFIG = """
name = "amped"
seed = 2
[data]
dataset = "digits"
limit_train = 40
limit_test = 10
[model]
layers = [
  { type = "linear", out = 6 },
  { type = "activation", name = "hardtanh" },
  { type = "dac", bits = 8 },
  AMP_LAYER,
  { type = "adc", bits = 8, calibrate = true },
  { type = "gain_offset", gain = 100.0 },
]
[train]
epochs = 1
batch_size = 20
backend = "numpy"
""".replace("AMP_LAYER", _AMP_LAYER)


def _amp_lines(text: str, block: str = "b0") -> dict[str, list[list[str]]]:
    """The E, sense V and F lines of the amplifiers of ``block`` in a netlist, split."""
    out: dict[str, list[list[str]]] = {"E": [], "V": [], "F": []}
    for line in text.splitlines():
        f = line.split()
        if f and re.fullmatch(rf"[EVF]{block}_amp\d+_\d+(_sense)?", f[0]):
            out[f[0][0]].append(f)
    return out


def test_config_amplifier_keys_build_the_amplified_block():
    from analogeq import build_model

    cfg = tomllib.loads(AMP_CONFIG)
    block = build_model(resolve_config(cfg), (1, 8, 8), backend="numpy").analog_layers[0].block
    assert block.amplifier_gains == (4.0, 2.0) and block.amplifier_back_gains == (0.5, 0.5)
    spec = cfg["model"]["layers"][3]
    del spec["amplifier_back_gain"]
    spec["amplifier_gain"] = 5.0  # one number: every hidden layer; back gain 1/A
    block = build_model(resolve_config(cfg), (1, 8, 8), backend="numpy").analog_layers[0].block
    assert block.amplifier_gains == (5.0, 5.0) and block.amplifier_back_gains == (0.2, 0.2)
    assert len(block.circuit().amplifiers) == 4 + 3  # a stage after every hidden layer
    del spec["amplifier_gain"]
    assert not build_model(resolve_config(cfg), (1, 8, 8),
                           backend="numpy").analog_layers[0].block.amplified


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("amplifier_gain", "4", "must be a number"),
        ("amplifier_gain", True, "must be a number"),
        ("amplifier_gain", 0.0, "> 0"),
        ("amplifier_gain", -2.0, "> 0"),
        ("amplifier_gain", math.nan, "finite"),
        ("amplifier_gain", math.inf, "finite"),
        ("amplifier_gain", [4.0], "has 1 value.*2 hidden layer"),
        ("amplifier_gain", [4.0, 2.0, 1.0], "has 3 value.*2 hidden layer"),
        ("amplifier_gain", [4.0, "2"], r"amplifier_gain\[1\] must be a number"),
        ("amplifier_gain", [4.0, False], r"amplifier_gain\[1\] must be a number"),
        ("amplifier_gain", {"a": 1}, "must be a number"),
        ("amplifier_back_gain", [0.5], "has 1 value"),
        ("amplifier_back_gain", 0, "> 0"),
        ("amplifier_back_gain", "0.5", "must be a number"),
    ],
)
def test_config_amplifier_keys_are_checked_not_coerced(key, value, says):
    from analogeq import ConfigError

    cfg = tomllib.loads(AMP_CONFIG)
    cfg["model"]["layers"][3][key] = value
    with pytest.raises(ConfigError, match=rf"model.layers\[3\].{key}") as info:
        resolve_config(cfg)
    assert info.match(says)


def test_config_back_gain_needs_a_gain():
    from analogeq import ConfigError

    cfg = tomllib.loads(AMP_CONFIG)
    del cfg["model"]["layers"][3]["amplifier_gain"]
    with pytest.raises(ConfigError, match=r"model.layers\[3\].amplifier_back_gain needs "
                                          r"model.layers\[3\].amplifier_gain"):
        resolve_config(cfg)


def test_split_layers_splits_per_layer_gains_with_the_hidden_layers():
    from analogeq import build_model
    from analogeq.runs.experiments import split_layers

    deep = {"type": "resistive", "hidden": [5, 4, 3, 2], "out": 10,
            "amplifier_gain": [4.0, 3.0, 2.0, 1.5], "amplifier_back_gain": 0.5}
    layers = split_layers([{"type": "dac"}, deep, {"type": "adc"}], 2)
    blocks = [s for s in layers if s["type"] == "resistive"]
    assert [b["hidden"] for b in blocks] == [[5, 4], [3, 2]]
    assert [b["amplifier_gain"] for b in blocks] == [[4.0, 3.0], [2.0, 1.5]]
    assert [b["amplifier_back_gain"] for b in blocks] == [0.5, 0.5]  # a scalar stays
    assert deep["amplifier_gain"] == [4.0, 3.0, 2.0, 1.5]  # the input is not modified
    model = build_model(resolve_config({"model": {"layers": layers}}), (64,), backend="numpy")
    got = [(lay.block.amplifier_gains, lay.block.amplifier_back_gains)
           for lay in model.analog_layers]
    assert got == [((4.0, 3.0), (0.5, 0.5)), ((2.0, 1.5), (0.5, 0.5))]
    # as many stages and amplifiers as the deep block (a stage after every hidden layer)
    assert sum(len(lay.block.circuit().amplifiers) for lay in model.analog_layers) == 14
    four = [s for s in split_layers([deep], 4) if s["type"] == "resistive"]
    assert [b["amplifier_gain"] for b in four] == [[4.0], [3.0], [2.0], [1.5]]
    with pytest.raises(ValueError, match="amplifier_gain has 3 values for 4 hidden"):
        split_layers([{**deep, "amplifier_gain": [1.0, 2.0, 3.0]}], 2)


def test_netlist_cli_writes_the_amplifiers_and_plain_ngspice_agrees(tmp_path, capsys, ngspice):
    from analogeq.cli import main
    from analogeq.runs.export import export_netlists

    cfg_path = tmp_path / "amped.toml"
    cfg_path.write_text(AMP_CONFIG)
    out = tmp_path / "nets"
    assert main(["netlist", str(cfg_path), "--out", str(out), "--backend", "ngspice"]) == 0
    capsys.readouterr()
    text = (out / "b0.cir").read_text()
    lines = _amp_lines(text)
    hidden = [f"b0_h{l}_{j:03d}" for l, n in ((1, 4), (2, 3)) for j in range(n)]
    gains = [4.0] * 4 + [2.0] * 3
    # one E, one sense V and one F per hidden unit, wired as spice.netlist emits them
    assert [e[3] for e in lines["E"]] == hidden
    assert [float(e[5]) for e in lines["E"]] == gains
    assert [v[2] for v in lines["V"]] == [h.replace("_h", "_a") for h in hidden]
    assert [(f[1], f[2], f[3], float(f[4])) for f in lines["F"]] == [
        (h, "0", v[0], 0.5) for h, v in zip(hidden, lines["V"], strict=True)]
    readme = (out / "README").read_text()
    assert "## Amplifiers of block b0" in readme and "amplifier stages: 2 (7 " in readme
    # the file is the amplified block: plain ngspice prints the in-process outputs
    from analogeq import load_config

    (w,) = export_netlists(load_config(cfg_path), tmp_path / "again", backend="ngspice")
    assert w.path.read_text() == text
    out_v = subprocess.run(["ngspice", "-b", str(w.path)], capture_output=True, text=True,
                           timeout=120)
    got = [float(v) for v in re.findall(r"^v\(\S+\) = (\S+)$", out_v.stdout, flags=re.M)]
    np.testing.assert_allclose(got, w.outputs_V, rtol=0, atol=1e-6)
    assert any(abs(v) > 1e-3 for v in got)  # not a dead block
    # its tile netlists: the tiles of R1 and R2 have the amplifier outputs as row ports
    r1 = [t for t in w.tiles if t.matrix == "R1"]
    assert r1 and {f"b0_a1_{j:03d}" for j in range(4)} <= set(r1[0].ports)
    assert "amplifiers, input and rail sources" in r1[0].path.read_text()


def test_describe_mapping_lists_the_amplifier_stages():
    from analogeq.params import TileConfig

    blk = ResistiveBlock((3, 4, 3, 2), amplifier_gain=(4.0, 2.0), amplifier_back_gain=0.5,
                         tile=TileConfig(rows=8, cols=8))
    text = blk.describe_mapping()
    assert "amplifier stages: 2 (7 bidirectional amplifiers" in text
    stages = [ln for ln in text.splitlines() if ln.strip().startswith("stage ")]
    assert len(stages) == 2
    assert "after hidden layer 1 (4 units), drives rows 0:4 of crossbar R1" in stages[0]
    assert "gain A = 4, back gain c = 0.5 (4 amplifiers)" in stages[0]
    assert "drives rows 0:3 of the output crossbar R2" in stages[1]
    assert "gain A = 2, back gain c = 0.5 (3 amplifiers)" in stages[1]
    # the counts are those of the circuit and of the rows the crossbars take from them
    amps = blk.circuit().amplifiers
    assert sum(int(re.search(r"\((\d+) amplifiers\)", s).group(1)) for s in stages) == len(amps)
    assert blk.crossbar(2).rows[:3] == tuple(a.output for a in amps[4:])
    passive = ResistiveBlock((3, 4, 2), tile=TileConfig(rows=8, cols=8))
    assert "amplifier" not in passive.describe_mapping()
    assert passive.describe_amplifiers() == ""


def test_run_folder_netlists_hold_the_amplifiers(tmp_path):
    from analogeq import load_config, train

    cfg_path = tmp_path / "amped.toml"
    cfg_path.write_text(AMP_CONFIG)
    run = tmp_path / "run"
    train(load_config(cfg_path), run, progress=False)
    text = (run / "netlists" / "b0.cir").read_text()
    lines = _amp_lines(text)
    assert len(lines["E"]) == len(lines["V"]) == len(lines["F"]) == 7
    assert "Amplifiers after hidden layers (A=4 c=0.5, A=2 c=0.5" in text
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["model"]["layers"][3]["amplifier_gain"] == [4.0, 2.0]
    tiles = sorted((run / "netlists" / "b0_tiles").glob("R1_*.cir"))
    assert tiles and "Vport_b0_a1_000" in tiles[0].read_text()


def test_layer_signal_measures_spread_and_nudge_per_layer():
    """layer_signal: the spread per layer is the free voltages' std (zero for identical
    samples), the nudge grows linearly with beta, and gain restores the deep layers'
    spread that a passive block loses."""
    rng = np.random.default_rng(3)
    u = rng.uniform(-1, 1, (8, 6))
    delta = rng.standard_normal((8, 3))
    passive = aq.ResistiveBlock((6, 8, 8, 3), seed=1)
    amplified = aq.ResistiveBlock((6, 8, 8, 3), seed=1, amplifier_gain=4.0)
    s_p = aq.layer_signal(passive, u, delta, beta=1e-8, backend="numpy")
    s_2 = aq.layer_signal(passive, u, delta, beta=2e-8, backend="numpy")
    assert s_p.layers == ("h1", "h2", "out")
    np.testing.assert_allclose(s_2.nudge_V, 2 * s_p.nudge_V, rtol=1e-3)
    free = passive.free(u, backend="numpy").solution
    np.testing.assert_allclose(s_p.spread_V[1],
                               free.voltages(passive.hidden_nodes[1]).std(0).mean())
    same = aq.layer_signal(passive, np.repeat(u[:1], 4, axis=0), backend="numpy")
    assert same.nudge_V is None and np.all(same.spread_V < 1e-12)
    s_a = aq.layer_signal(amplified, u, delta, backend="numpy")
    assert s_a.spread_V[-1] > 3 * s_p.spread_V[-1]
    assert "| h2 |" in s_a.table()


@pytest.mark.parametrize("sizes, gain", [((12, 9, 4), 4.0), ((5, 6, 6, 6, 3), (3.0, 10.0, 0.5)),
                                         ((6, 7, 5, 2), (8.0, 2.0))])
def test_block_elimination_solve_equals_a_dense_solve(sizes, gain):
    """The Newton and adjoint systems solved by eliminating the diagonal block (every other
    layer) give the dense solution, and the eliminated set is a true independent set."""
    from analogeq.backends.amplifiers import _system
    from analogeq.backends.linalg import solve_batched

    blk = ResistiveBlock(sizes, seed=2, amplifier_gain=gain)
    cc = NumpyBackend(blk.options).compile(blk.circuit())
    sysm = _system(cc)
    n_hidden_nodes = sum(len(n) for n in blk.hidden_nodes)
    assert sysm.elim.size >= n_hidden_nodes // 2 and sysm.rest.size > 0
    rng = np.random.default_rng(0)
    batch = 5  # diodes anywhere from off to well on
    full = sysm.full(rng.uniform(-0.6, 0.6, (batch, sysm.free.size)),
                     rng.uniform(-1, 1, (batch, sysm.d.shape[1])))
    jac = sysm.jacobian(cc, full)
    e = sysm.elim
    off = jac[:, e[:, None], e[None, :]] * ~np.eye(e.size, dtype=bool)
    assert not off.any()  # the E-E block is diagonal
    rhs = rng.normal(size=(batch, sysm.free.size))
    for transpose in (False, True):
        a = np.swapaxes(jac, 1, 2) if transpose else jac
        np.testing.assert_allclose(sysm.solve(jac, rhs, transpose=transpose),
                                   solve_batched(a, rhs), rtol=1e-9, atol=1e-12)
