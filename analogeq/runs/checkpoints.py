"""Checkpoints: arrays plus JSON metadata in one ``.npz``, written atomically; and the
atomic write of any small run file (temp file with a unique name in the same folder,
then ``os.replace``, so neither a kill nor a second writer leaves a partial file)."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..model import FFEBM

__all__ = ["write_checkpoint", "read_checkpoint", "load_model_state", "prefixed", "unprefixed",
           "atomic_write", "checkpoint_config"]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file with a unique name in the same
    folder, flushed to disk, then renamed over ``path``; the temp file is removed if
    anything fails, so ``path`` is always either the old or the new content."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write arrays and JSON metadata to ``path`` atomically (:func:`atomic_write`), so a
    process killed mid-write leaves the previous checkpoint intact."""
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    atomic_write(Path(path), buf.getvalue())


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays by name, metadata: epoch, RNG states, resolved config) of a checkpoint.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a checkpoint, truncated or corrupted (the message
            names it).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:  # our handle: closed even when np.load fails
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} is not an analogeq checkpoint (a bare array)")
            with z:
                if "__meta__" not in z.files:
                    raise CheckpointError(f"{path} is not an analogeq checkpoint (no metadata)")
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
                meta = json.loads(str(z["__meta__"]))
    except (FileNotFoundError, CheckpointError):
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError,
            RuntimeError) as exc:
        raise CheckpointError(f"{path} is unreadable, truncated or corrupted "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not an analogeq checkpoint (metadata {meta!r})")
    return arrays, meta


def checkpoint_config(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The resolved config stored in a checkpoint's metadata (a CheckpointError naming
    ``path`` if there is none)."""
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} holds no run config (not a training checkpoint)")
    return cfg


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
