"""Standalone netlists of a model's analog blocks, for inspection and for plain ngspice.

``export_netlists`` writes one ``<block>.cir`` per analog block plus a ``README``. Each
netlist carries the block's conductances (initial, or trained when a checkpoint is given)
and, as its DC inputs, what the block sees for one test sample (the sample is pushed
through the digital front-end and the DAC). ``ngspice -b <block>.cir`` prints the block's
outputs ``v(out<k>p,out<k>n)`` with 15 digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import build_model, load_config
from .datasets import load_dataset
from .model import AnalogLayer

__all__ = ["ExportedNetlist", "export_netlists", "REFERENCE_CONFIGS", "write_reference_netlists"]

#: Example configs whose netlists are kept in ``netlists/`` (small, bundled data only).
REFERENCE_CONFIGS = ("digits_ffebm", "splitting")


@dataclass(frozen=True)
class ExportedNetlist:
    """One written netlist: its path, the block's inputs (volts) and the outputs the
    in-process solver computed for them (volts)."""

    block: str
    path: Path
    inputs_V: np.ndarray
    outputs_V: np.ndarray


def _block_inputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Forward one batch in eval mode, recording each analog block's input vector."""
    seen: dict[str, np.ndarray] = {}
    h = x
    for layer in model.layers:
        if isinstance(layer, AnalogLayer):
            seen[layer.block.name] = np.array(h, dtype=np.float64)
        h = layer.forward(h, train=False)
    return seen


def export_netlists(
    cfg: dict[str, Any],
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    sample_index: int = 0,
    backend: str = "numpy",
    source: str = "",
) -> list[ExportedNetlist]:
    """Write the netlist of every analog block of ``cfg``'s model into ``out_dir``.

    Args:
        checkpoint: a run folder (or its ``checkpoint.npz``) whose trained state to use.
        sample_index: which test sample provides the block inputs.
        backend: solver used to push the sample through the model in-process.
        source: text naming where the config came from (written in the README).
    """
    from .training import load_model_state, read_checkpoint

    data = load_dataset(
        cfg["data"]["dataset"], cfg["data"]["data_dir"] or None,
        limit_train=1, limit_test=max(sample_index + 1, 1),
    )
    model = build_model(cfg, data.x_test.shape[1:], backend=backend)
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            path = path / "checkpoint.npz"
        arrays, _ = read_checkpoint(path)
        load_model_state(model, arrays)
    x = data.x_test[sample_index : sample_index + 1]
    inputs = _block_inputs(model, x)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for layer in model.analog_layers:
        block = layer.block
        u = inputs[block.name]
        path = out / f"{block.name}.cir"
        path.write_text(block.netlist(u[0]))
        outputs = block.free(u, backend=backend).outputs[0]
        written.append(ExportedNetlist(block.name, path, u[0], outputs))
    lines = [
        f"Netlists of the analog blocks of '{cfg['name']}'"
        + (f" ({source})" if source else ""),
        "",
        f"Conductances: {'trained, from ' + str(checkpoint) if checkpoint else 'initial (seed ' + str(cfg['seed']) + ')'}.",  # noqa: E501
        f"Inputs: test sample {sample_index} of '{cfg['data']['dataset']}', pushed through "
        "the digital layers and DACs in front of each block.",
        "Units: volts, ohms, amperes. Each file's header explains its node names, how inputs",
        "are driven (+u/-u source pairs) and how EP nudges are applied (output current sources).",
        "",
        "Run one with:   ngspice -b FILE.cir",
        "It prints the block outputs v(<block>_out<k>p,<block>_out<k>n) in volts.",
        "",
        "| file | block | layer sizes | devices |",
        "|---|---|---|---|",
    ]
    for layer, w in zip(model.analog_layers, written, strict=True):
        lines.append(f"| {w.path.name} | {w.block} | {layer.block.layer_sizes} | "
                     f"{layer.block.num_devices()} conductances |")
    (out / "README").write_text("\n".join(lines) + "\n")
    return written


def write_reference_netlists(root: str | Path) -> list[Path]:
    """(Re)generate ``root/<config>/`` for every config in :data:`REFERENCE_CONFIGS`."""
    from .cli import EXAMPLES

    paths: list[Path] = []
    for name in REFERENCE_CONFIGS:
        cfg = load_config(EXAMPLES / f"{name}.toml")
        written = export_netlists(cfg, Path(root) / name,
                                  source=f"examples/configs/{name}.toml")
        paths += [w.path for w in written] + [Path(root) / name / "README"]
    return paths
