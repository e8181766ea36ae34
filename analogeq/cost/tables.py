"""Text tables of training-step costs, in engineering notation."""

from __future__ import annotations

import math
import textwrap

from .step import StepCost

__all__ = ["format_cost_table", "si_format"]


_PREFIXES = ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""),
             (1e3, "k"), (1e6, "M"), (1e9, "G"))


def si_format(value: float, unit: str) -> str:
    """``12.3 pJ`` style engineering notation."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return f"{value:.3g} {unit}"
    scale, prefix = _PREFIXES[0]
    for s, p in _PREFIXES:
        if abs(value) >= s:
            scale, prefix = s, p
    return f"{value / scale:.3g} {prefix}{unit}"


def _count(n: int) -> str:
    return f"{int(n):,}"


def format_cost_table(cost: StepCost) -> str:
    """A per-training-step table: one column per analog block, one for the digital side
    and a total; rows are phases, conversions, MACs, powers (W), energies (J) and times (s);
    with amplifiers, their number and power (bias / delivered, included in the static
    power) per block."""
    heads = [f"{b.name} {'-'.join(map(str, b.layer_sizes))}" for b in cost.blocks]
    cols = [*heads, "digital", "total"]
    nb = len(cost.blocks)
    blank = [""]

    def row(label: str, per_block: list[str], digital: str, total: str) -> list[str]:
        return [label, *per_block, digital, total]

    rows = [
        row("phases (free, +beta, -beta)", [_count(b.phases) for b in cost.blocks], "",
            _count(cost.phases)),
        row("DAC conversions", [f"{_count(b.dac_conversions)} @{b.dac_bits}b"
                                for b in cost.blocks], "", _count(cost.dac_conversions)),
        row("ADC conversions", [f"{_count(b.adc_conversions)} @{b.adc_bits}b"
                                for b in cost.blocks], "", _count(cost.adc_conversions)),
        row("digital MACs (fwd + bwd)", blank * nb, _count(cost.digital_macs),
            _count(cost.digital_macs)),
        row("static power per phase", [si_format(b.power_W, "W") for b in cost.blocks], "", ""),
        row("settling free / nudged",
            [f"{si_format(b.settle_free_s, 's')} / {si_format(b.settle_nudge_s, 's')}"
             for b in cost.blocks], "", ""),
        row("analog energy", [si_format(b.analog_energy_J, "J") for b in cost.blocks], "",
            si_format(cost.analog_energy_J, "J")),
        row("converter energy (DAC + ADC)",
            [si_format(b.dac_energy_J + b.adc_energy_J, "J") for b in cost.blocks], "",
            si_format(cost.converter_energy_J, "J")),
        row("digital energy", blank * nb, si_format(cost.digital_energy_J, "J"),
            si_format(cost.digital_energy_J, "J")),
        row("total energy", [si_format(b.analog_energy_J + b.dac_energy_J + b.adc_energy_J, "J")
                             for b in cost.blocks], si_format(cost.digital_energy_J, "J"),
            si_format(cost.total_energy_J, "J")),
        row("time: analog settling", [si_format(b.analog_time_s, "s") for b in cost.blocks], "",
            si_format(cost.analog_time_s, "s")),
        row("time: conversions", [si_format(b.converter_time_s, "s") for b in cost.blocks], "",
            si_format(cost.converter_time_s, "s")),
        row("time: digital", blank * nb, si_format(cost.digital_time_s, "s"),
            si_format(cost.digital_time_s, "s")),
        row("time (serial total)", blank * nb, "", si_format(cost.time_s, "s")),
        row("EP buffer", [si_format(b.buffer_bits, "bit") for b in cost.blocks], "",
            si_format(cost.buffer_bits, "bit")),
    ]
    if any(b.dac_channels or b.adc_channels for b in cost.blocks):
        rows.insert(3, row(
            "  tile DACs / ADCs per sample",
            [f"{b.dac_channels} / {b.adc_channels} on {b.tiles} tiles"
             if b.dac_channels or b.adc_channels else "" for b in cost.blocks], "", ""))
    if any(b.amplifiers for b in cost.blocks):
        at = next(i for i, r in enumerate(rows) if r[0] == "static power per phase") + 1
        rows[at:at] = [
            row("amplifiers", [_count(b.amplifiers) for b in cost.blocks], "",
                _count(cost.amplifiers)),
            row("  amplifier power: bias / delivered",
                [f"{si_format(b.amplifier_static_W, 'W')} / "
                 f"{si_format(b.amplifier_delivered_W, 'W')}" if b.amplifiers else ""
                 for b in cost.blocks], "", ""),
        ]
    header = ["per training step", *cols]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(
            (r[c].ljust(widths[c]) if c == 0 else r[c].rjust(widths[c])) for c in range(len(r))
        ).rstrip()

    p = cost.params
    note = (
        f"assumptions: node capacitance {si_format(p.node_capacitance_F, 'F')}, settle tolerance "
        f"{p.settle_tolerance:g}, ADC FoM {si_format(p.adc_fom_J_per_step, 'J')}/step, DAC FoM "
        f"{si_format(p.dac_fom_J_per_step, 'J')}/step (E = FoM * 2**bits), "
        f"{si_format(p.digital_mac_energy_J, 'J')} and "
        f"{si_format(p.digital_mac_time_s, 's')} per MAC, "
        f"{si_format(p.adc_time_s, 's')} per ADC and "
        f"{si_format(p.dac_time_s, 's')} per DAC conversion "
        f"({p.adc_channels} ADC / {p.dac_channels} DAC channel(s))."
    )
    if cost.amplifiers:
        note += (f" Amplifiers: {si_format(p.amplifier_static_power_W, 'W')} bias each, plus "
                 "the power their sources deliver or absorb at the free operating point "
                 "(included in the static power).")
    lines = [
        f"training step cost, batch size {cost.batch_size}",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows),
        "",
        *textwrap.wrap(note, 100),
    ]
    return "\n".join(lines) + "\n"
