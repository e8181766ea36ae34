"""Circuit IR validation: bad input is refused with a message naming the culprit."""

from __future__ import annotations

import numpy as np
import pytest

from analogeq import (
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    DiodeModel,
    FloatingNodeError,
    InvalidValueError,
    VoltageSource,
    VoltageSourceLoopError,
    to_spice,
    validate,
)


def divider() -> Circuit:
    return Circuit("divider").add(
        VoltageSource("V1", "a", "0", 1.0),
        Conductance("R1", "a", "b", 1e-3),
        Conductance("R2", "b", "0", 5e-4),
    )


def test_valid_circuit_passes_and_names_are_deterministic():
    c = divider()
    validate(c)
    assert c.nodes == ["a", "b"]
    assert to_spice(c) == to_spice(divider())


@pytest.mark.parametrize("g", [0.0, -1e-6, float("nan"), float("inf"), 1e-320])
def test_bad_conductance_names_element(g):
    c = divider().with_elements(Conductance("Rbad", "b", "0", g))
    with pytest.raises(InvalidValueError, match="Rbad"):
        validate(c)


def test_bad_cell_of_conductance_matrix_names_cell():
    g = np.full((2, 3), 1e-6)
    g[1, 2] = -1.0
    c = divider().with_elements(ConductanceMatrix("R_x", ("a", "b"), ("c", "d", "e"), g))
    with pytest.raises(InvalidValueError, match="R_x_b_e"):
        validate(c)


def test_floating_island_names_nodes():
    c = divider().with_elements(Conductance("R3", "x", "y", 1e-3))
    with pytest.raises(FloatingNodeError, match=r"'x'.*'y'|R3"):
        validate(c)


def test_current_source_into_island_is_floating():
    c = divider().with_elements(
        Conductance("R3", "x", "y", 1e-3), CurrentSource("I1", "0", "x", 1e-3)
    )
    with pytest.raises(FloatingNodeError, match="I1|R3"):
        validate(c)


def test_node_reached_only_through_current_source_is_floating():
    c = divider().with_elements(CurrentSource("I1", "0", "z", 1e-6))
    with pytest.raises(FloatingNodeError, match="'z'"):
        validate(c)


def test_voltage_source_loop():
    c = divider().with_elements(VoltageSource("V2", "a", "0", 2.0))
    with pytest.raises(VoltageSourceLoopError, match="V2"):
        validate(c)


def test_voltage_source_loop_through_three_sources():
    c = divider().with_elements(
        VoltageSource("V2", "a", "m", 0.5), VoltageSource("V3", "m", "0", 0.5)
    )
    with pytest.raises(VoltageSourceLoopError, match="V3"):
        validate(c)


def test_nan_source_and_undefined_model_and_bad_names():
    with pytest.raises(InvalidValueError, match="V9"):
        validate(divider().with_elements(VoltageSource("V9", "q", "0", float("nan"))))
    with pytest.raises(InvalidValueError, match="nomodel"):
        validate(divider().with_elements(Diode("D1", "b", "0", "nomodel")))
    with pytest.raises(InvalidValueError, match="SPICE letter"):
        validate(divider().with_elements(Conductance("X1", "b", "0", 1e-3)))
    with pytest.raises(InvalidValueError, match="not legal"):
        validate(divider().with_elements(Conductance("R9", "b c", "0", 1e-3)))
    with pytest.raises(InvalidValueError, match="duplicate"):
        validate(divider().with_elements(Conductance("R1", "b", "0", 1e-3)))
    with pytest.raises(InvalidValueError, match="itself"):
        validate(divider().with_elements(Conductance("R9", "b", "b", 1e-3)))


def test_bad_diode_model():
    c = divider().add_model(DiodeModel("dm", is_A=-1.0)).add(Diode("D1", "b", "0", "dm"))
    with pytest.raises(InvalidValueError, match="dm"):
        validate(c)


def test_source_values_are_checked():
    c = divider()
    with pytest.raises(InvalidValueError, match="R1"):
        to_spice(c, source_values={"R1": [1.0]})
    with pytest.raises(InvalidValueError, match="sample 1"):
        to_spice(c, source_values={"V1": [1.0, float("nan")]})


def test_emitted_values_round_trip_full_precision():
    g = 1.0 / 3.0 * 1e-6
    text = to_spice(divider().with_elements(Conductance("R7", "b", "0", g)))
    line = next(ln for ln in text.splitlines() if ln.startswith("R7 "))
    assert float(line.split()[-1]) == 1.0 / g
