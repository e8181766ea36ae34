"""Checkpoints: arrays plus JSON metadata in one ``.npz``, written atomically."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..model import FFEBM

__all__ = ["write_checkpoint", "read_checkpoint", "load_model_state", "prefixed", "unprefixed"]


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write arrays and JSON metadata to ``path`` atomically (temp file + rename), so a
    process killed mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays by name, metadata: epoch, RNG states, resolved config) of a checkpoint."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    return arrays, meta


def load_model_state(model: FFEBM, arrays: dict[str, np.ndarray]) -> None:
    """Load the ``model/...`` arrays of a checkpoint into ``model``.

    Checkpoints written before batch norm tracked its batch count lack
    ``<layer>.batches_tracked``; their running statistics come from training, so the
    count is restored as 1 (the first-batch rule then no longer applies)."""
    state = unprefixed("model", arrays)
    for key in model.state_dict():
        if key.endswith(".batches_tracked") and key not in state:
            state[key] = np.array(1, dtype=np.int64)
    model.load_state_dict(state)


def prefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``d`` with every key as ``prefix/key`` (how a checkpoint namespaces its parts)."""
    return {f"{prefix}/{k}": np.asarray(v) for k, v in d.items()}


def unprefixed(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``prefix/...`` entries of ``d`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in d.items() if k.startswith(prefix + "/")}
