"""Standalone netlist text of a resistive block: ``ngspice -b FILE`` prints its outputs.
The text itself is written by :func:`analogeq.spice.to_spice`; this module chooses what a
block's file holds (its free phase at given inputs) and explains it in a header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from numpy.typing import ArrayLike

from ..circuit import Circuit, VoltageSource
from ..spice import to_spice

if TYPE_CHECKING:
    from .resistive import ResistiveBlock

__all__ = ["block_netlist", "output_vectors", "netlist_header"]


def block_netlist(
    block: ResistiveBlock, u: ArrayLike | None = None, *, print_outputs: bool = True
) -> str:
    """A standalone netlist (``ngspice -b FILE`` prints the output node voltages) with
    the inputs ``u`` (n_in,) in volts applied as DC values (0 V if None)."""
    circuit = block.circuit()
    if u is not None:
        u = block.check_inputs(u)
        if u.shape[0] != 1:
            raise ValueError("netlist() takes a single input vector")
        vals = {k: float(v[0]) for k, v in block.input_source_values(u).items()}
        circuit = Circuit(
            circuit.title,
            [
                VoltageSource(e.name, e.plus, e.minus, vals[e.name])
                if isinstance(e, VoltageSource) and e.name in vals
                else e
                for e in circuit.elements
            ],
            dict(circuit.models),
        )
    return to_spice(
        circuit,
        options=block.options,
        header=netlist_header(block, u),
        print_vectors=output_vectors(block) if print_outputs else None,
    )


def output_vectors(block: ResistiveBlock) -> list[str]:
    """ngspice expressions of the outputs: ``v(out<k>p,out<k>n)``, in volts."""
    p = block.output_nodes
    return [f"v({p[2 * k]},{p[2 * k + 1]})" for k in range(block.n_out)]


def netlist_header(block: ResistiveBlock, u: ArrayLike | None = None) -> str:
    """Comment block of a standalone netlist: what it is, naming, units, phases."""
    p = block.name
    n_h = ", ".join(str(h) for h in block.layer_sizes[1:-1])
    applied = "the input vector listed in the V sources below" if u is not None else "0 V"
    return (
        f"Resistive energy block '{p}' (analogeq): {block.n_in} signed inputs, hidden "
        f"layers of {n_h} units, {block.n_out} signed outputs; free phase.\n"
        "Units: volts, ohms (R = 1/g), amperes. Conductances in "
        f"[{block.params.g_min_S:g}, {block.params.g_max_S:g}] S.\n"
        f"Inputs: u_i drives {p}_in<i>p at +u_i and {p}_in<i>n at -u_i (sources "
        f"V{p}_in<i>p / V{p}_in<i>n); applied here: {applied}.\n"
        f"Hidden units: {p}_h<l>_<j>; even j clamped to V >~ 0 by a diode from the layer's "
        f"positive rail, odd j to V <~ 0 by a diode into its negative rail.\n"
        f"{block.describe_diode_rails()}.\n"
        f"Biases: conductances to rails {p}_bias_p (+{block.params.bias_V:g} V) and "
        f"{p}_bias_n (-{block.params.bias_V:g} V).\n"
        f"{_amplifier_text(block)}"
        f"Outputs: o_k = v({p}_out<k>p, {p}_out<k>n), printed below.\n"
        "EP nudged phases (not in this file) add current sources "
        f"I{p}_nudge<k>p injecting -beta*delta_k into {p}_out<k>p and "
        f"I{p}_nudge<k>n injecting +beta*delta_k into {p}_out<k>n.\n"
        "Run: ngspice -b FILE"
    )


def _amplifier_text(block: ResistiveBlock) -> str:
    """Header lines on the block's bidirectional amplifiers (empty without them)."""
    if not block.amplified:
        return ""
    p = block.name
    gains = ", ".join(f"A={a:g} c={c:g}" for a, c in
                      zip(block.amplifier_gains, block.amplifier_back_gains, strict=True))
    return (
        f"Amplifiers after hidden layers ({gains}, per layer): E{p}_amp<l>_<j> drives "
        f"{p}_a<l>_<j> at A*v({p}_h<l>_<j>) through the 0 V sense source "
        f"V{p}_amp<l>_<j>_sense;\n"
        f"F{p}_amp<l>_<j> draws c times the sense current from {p}_h<l>_<j>. The next "
        f"crossbar's rows are the {p}_a<l>_<j> nodes.\n"
    )
