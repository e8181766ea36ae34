"""Property test: random circuits (sizes, names, values across the accepted range, with
islands, voltage-source loops and case-colliding names injected) get the same verdict from
ngspice and the NumPy backend (the same error class, or both solve) and, when solvable,
node voltages that agree within the solver tolerances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from analogeq import (
    AnalogeqError,
    Circuit,
    Conductance,
    ConductanceMatrix,
    CurrentSource,
    Diode,
    DiodeModel,
    VoltageSource,
)

NAME = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@st.composite
def circuits(draw):
    names = draw(st.lists(NAME, min_size=3, max_size=9, unique_by=str.lower))
    nodes = [n for n in names if n.lower() not in ("gnd", "sweep_idx")]
    if len(nodes) < 2:
        nodes = ["na", "nb"]
    diodes = draw(st.booleans())
    decade = draw(st.integers(-15, 6))  # conductances 10^decade .. 10^(decade + 6) S
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def g() -> float:
        return float(10.0 ** (decade + gen.uniform(0, 6)))

    v_max = 2.0 if diodes else float(10.0 ** gen.uniform(-3, 6))
    els = []
    n_src = int(gen.integers(1, min(3, len(nodes) - 1) + 1))
    for k in range(n_src):
        els.append(VoltageSource(f"V{k}", nodes[k], "0", float(gen.uniform(-v_max, v_max))))
    # a spanning tree to ground, then extra conductances
    for k, n in enumerate(nodes):
        other = "0" if k == 0 else nodes[int(gen.integers(0, k))]
        els.append(Conductance(f"R{k}", n, other, g()))
    for k in range(int(gen.integers(0, 2 * len(nodes)))):
        a, b = gen.choice(len(nodes) + 1, 2, replace=False)
        ends = [*nodes, "0"]
        els.append(Conductance(f"Rx{k}", ends[a], ends[b], g()))
    free = nodes[n_src:]
    if free and gen.random() < 0.5:
        m = free[: max(1, len(free) // 2)]
        els.append(ConductanceMatrix("RM", tuple(nodes[:1]), tuple(m),
                                     10.0 ** (decade + gen.uniform(0, 6, (1, len(m))))))
    if free and gen.random() < 0.5:
        els.append(CurrentSource("I0", "0", free[-1], float(g() * gen.uniform(-v_max, v_max))))
    models = {}
    if diodes:
        models["dm"] = DiodeModel("dm", float(10.0 ** gen.uniform(-15, -9)),
                                  float(gen.uniform(1, 2)))
        for k in range(int(gen.integers(1, 3))):
            a, b = gen.choice(len(nodes) + 1, 2, replace=False)
            ends = [*nodes, "0"]
            els.append(Diode(f"D{k}", ends[a], ends[b], "dm"))
    hostile = draw(st.sampled_from(["none", "none", "island", "loop", "case"]))
    if hostile == "island":
        els.append(Conductance("Risl", "isla", "islb", g()))
    elif hostile == "loop":
        els.append(VoltageSource("Vloop", nodes[0], "0", 0.5))
    elif hostile == "case":
        els.append(Conductance("Rcase", nodes[-1].upper(), "0", g()))
    batch = draw(st.integers(1, 3))
    values = {"V0": gen.uniform(-v_max, v_max, batch)} if batch > 1 else None
    return Circuit("random", els, models), values


def _verdict(backend, circuit, values):
    try:
        return backend.solve(circuit, values)
    except AnalogeqError as exc:
        return exc


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=circuits())
def test_backends_give_the_same_verdict_and_agree(case, ngspice, numpy_backend):
    circuit, values = case
    a, b = _verdict(ngspice, circuit, values), _verdict(numpy_backend, circuit, values)
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b), f"ngspice: {a!r}\nnumpy: {b!r}"
        return
    assert a.node_names == b.node_names
    scale = np.abs(b.voltages_V).max()
    np.testing.assert_allclose(a.voltages_V, b.voltages_V, rtol=0, atol=1e-6 * scale + 1e-9)


def test_the_generator_covers_every_verdict(numpy_backend):
    """The strategy does produce solvable circuits and each injected failure."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate])
    @given(case=circuits())
    def collect(case):
        seen.add(type(_verdict(numpy_backend, *case)).__name__)

    collect()
    assert {"Solution", "FloatingNodeError", "VoltageSourceLoopError",
            "InvalidValueError"} <= seen, seen


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
