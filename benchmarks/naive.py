"""Baseline: the naive per-sample high-level PySpice API for the same EP step.

For each sample and each of the three phases (free, +beta, -beta) the source values of a
``PySpice.Spice.Netlist.Circuit`` are set and ``circuit.simulator().operating_point()`` is
called; node voltages and input-source currents are read from the analysis and the same
centered-EP gradient formula is applied. The PySpice circuit is built once per block (its
build time is reported separately).

Runs as a subprocess of :mod:`benchmarks.run` (``python -m benchmarks.naive SPEC_JSON``)
because PySpice's own ``NgSpiceShared`` instance would re-register ngspice's callbacks
over those of analogeq's engine in the same process. Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback

import numpy as np

from analogeq import ConductanceMatrix, CurrentSource, Diode, ResistiveBlock, VoltageSource

from .common import inputs, median


def _pyspice_circuit(block: ResistiveBlock):
    """The block (with nudge sources) as a PySpice Circuit built with its element API."""
    from PySpice.Spice.Netlist import Circuit as PyCircuit

    ir = block.circuit(nudge=True)
    pc = PyCircuit(ir.title)
    for m in ir.models.values():
        pc.model(m.name, "D", IS=m.is_A, N=m.n)
    for e in ir.elements:
        if isinstance(e, ConductanceMatrix):
            r = 1.0 / np.asarray(e.g_S, dtype=np.float64)
            for i, row in enumerate(e.rows):
                for j, col in enumerate(e.cols):
                    pc.R(e.cell_name(i, j)[1:], row, col, float(r[i, j]))
        elif isinstance(e, Diode):
            pc.D(e.name[1:], e.anode, e.cathode, model=e.model)
        elif isinstance(e, VoltageSource):
            pc.V(e.name[1:], e.plus, e.minus, float(e.dc_V))
        elif isinstance(e, CurrentSource):
            pc.I(e.name[1:], e.plus, e.minus, float(e.dc_A))
        else:  # pragma: no cover - blocks use only these elements
            raise TypeError(type(e).__name__)
    return pc


def _grads(block: ResistiveBlock, nodes, v, i_in, beta):
    """Centered-EP gradients from (3, N) phase voltages and (3, 2 n_in) source currents."""
    idx = {n: k for k, n in enumerate(nodes)}
    vp, vm = v[1:2], v[2:3]
    d, s = vp - vm, vp + vm
    out = []
    for k in range(len(block.conductances)):
        rows = [idx[n] for n in (*block.layers[k], *block.rail_nodes)]
        cols = [idx[n] for n in block.layers[k + 1]]
        dr, dc, sr, sc = d[:, rows], d[:, cols], s[:, rows], s[:, cols]
        diff = (dr * sr).sum(0)[:, None] + (dc * sc).sum(0)[None, :] - dr.T @ sc - sr.T @ dc
        out.append(diff / (4.0 * beta))
    dj = (-i_in[1] + i_in[2]) / (2.0 * beta)
    return out, dj[0::2] - dj[1::2]


def run_block(spec: dict) -> dict:
    sizes = tuple(spec["sizes"])
    n_samples = int(spec["samples"])
    opts = spec["options"]
    block = ResistiveBlock(sizes, seed=0)
    u, delta = inputs(sizes[0], sizes[-1], n_samples)
    res: dict = {"sizes": sizes, "samples": n_samples, "errors": []}
    t0 = time.perf_counter()
    pc = _pyspice_circuit(block)
    res["build_s"] = time.perf_counter() - t0
    nodes = [n for n in block.circuit(nudge=True).nodes]
    src = {name: pc[name] for name in block.input_sources}
    nudge = {name: pc[name] for name in block.nudge_sources}
    per_sample, per_op, grads = [], [], []
    beta = block.default_beta(delta)  # one beta for the batch, as analogeq uses
    for b in range(n_samples):
        t_s = time.perf_counter()
        v = np.empty((3, len(nodes)))
        i_in = np.empty((3, len(block.input_sources)))
        try:
            for ph, sign in enumerate((0.0, 1.0, -1.0)):
                for i in range(block.n_in):
                    src[block.input_sources[2 * i]].dc_value = float(u[b, i])
                    src[block.input_sources[2 * i + 1]].dc_value = float(-u[b, i])
                inj = -beta * delta[b] * sign
                for k in range(block.n_out):
                    # PySpice I source from ground into the node: injects dc_value
                    nudge[block.nudge_sources[2 * k]].dc_value = float(inj[k])
                    nudge[block.nudge_sources[2 * k + 1]].dc_value = float(-inj[k])
                t_op = time.perf_counter()
                sim = pc.simulator(temperature=opts["temp_C"], nominal_temperature=opts["temp_C"])
                sim.options(
                    reltol=opts["reltol"], vntol=opts["vntol"], abstol=opts["abstol"],
                    gmin=opts["gmin"], itl1=opts["max_iterations"], itl2=opts["max_iterations"],
                )
                analysis = sim.operating_point()
                an_nodes = analysis.nodes
                an_br = analysis.branches
                for k, n in enumerate(nodes):
                    v[ph, k] = float(np.asarray(an_nodes[n.lower()])[0])
                for k, s in enumerate(block.input_sources):
                    i_in[ph, k] = float(np.asarray(an_br[s.lower()])[0])
                per_op.append(time.perf_counter() - t_op)
            g, _ = _grads(block, nodes, v, i_in, beta)
            grads.append(g)
            per_sample.append(time.perf_counter() - t_s)
        except Exception as exc:  # noqa: BLE001 - the baseline may trip on ngspice notes
            res["errors"].append(f"sample {b}: {type(exc).__name__}: {exc}"[:500])
    res["per_sample_s"] = per_sample
    res["per_op_s"] = per_op
    res["median_per_sample_s"] = median(per_sample)
    res["median_per_op_s"] = median(per_op)
    # summed gradients of the samples that ran, for the parent to compare with analogeq
    if grads and spec.get("grad_path"):
        np.savez(spec["grad_path"], *[sum(g[k] for g in grads) for k in range(len(grads[0]))])
    res["samples_ok"] = len(grads)
    return res


def main() -> None:
    logging.getLogger("PySpice").setLevel(logging.CRITICAL)
    logging.disable(logging.CRITICAL)
    spec = json.loads(sys.argv[1])
    out = []
    for blk in spec["blocks"]:
        try:
            r = run_block({**blk, "options": spec["options"]})
        except Exception:  # noqa: BLE001
            r = {"sizes": blk["sizes"], "errors": [traceback.format_exc()[-1500:]]}
        r["name"] = blk["name"]
        out.append(r)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
