"""Diode clamps of the hidden units: where the clamp knee sits (measured on solved sweeps,
ngspice and NumPy), the auto rail rule, and the rails in netlists."""

from __future__ import annotations

import numpy as np
import pytest

from analogeq import ResistiveBlock, ResistiveBlockParams
from analogeq.circuit import Circuit, Diode

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
