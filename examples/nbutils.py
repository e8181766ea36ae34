"""Small helpers shared by the example notebooks (not part of the analogeq package).

* ``BUDGET``: ``"full"`` (default) or ``"small"``, from the environment variable
  ``ANALOGEQ_NB_BUDGET``. CI runs the notebooks with ``ANALOGEQ_NB_BUDGET=small`` (tiny
  datasets, 1-2 epochs, small blocks, NumPy training) so each finishes in well under a
  minute; the saved outputs come from full-budget runs.
* ``pick(small, full)``: the value for the current budget.
* ``CONFIGS``: the folder of the bundled example configs.
* ``scratch()``: a temporary directory for run folders (never inside the repository),
  removed when the kernel exits.
* ``show(fig)``: display a matplotlib figure as an embedded PNG and close it. Training
  (``analogeq.train``) switches matplotlib to the Agg backend to write its own
  learning-curve file, after which ``plt.show()`` no longer displays inline; ``show``
  works with any backend.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

BUDGET = os.environ.get("ANALOGEQ_NB_BUDGET", "full").strip().lower()
if BUDGET not in ("small", "full"):
    raise ValueError(f"ANALOGEQ_NB_BUDGET must be 'small' or 'full', got {BUDGET!r}")
SMALL = BUDGET == "small"

#: the bundled example configs (examples/configs/*.toml)
CONFIGS = Path(__file__).resolve().parent / "configs"

_SCRATCH: Path | None = None


def pick(small, full):
    """``small`` in the small (CI) budget, ``full`` otherwise."""
    return small if SMALL else full


def scratch() -> Path:
    """A per-kernel temporary directory for run folders, deleted at exit."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="analogeq-nb-"))
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return _SCRATCH


def show(fig, dpi: int = 100) -> None:
    """Display ``fig`` as a PNG in the notebook output and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))


class Timer:
    """``with Timer("label"):`` prints the wall time of the block."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        print(f"[{self.label}: {self.seconds:.1f} s wall]")


def banner() -> None:
    """Print the budget and versions (first cell of every notebook)."""
    import numpy as np

    import analogeq

    print(f"budget: {BUDGET} (set ANALOGEQ_NB_BUDGET=small for the quick CI run); "
          f"analogeq {getattr(analogeq, '__version__', '?')}, numpy {np.__version__}")


def cleanup() -> None:
    """Delete the scratch directory now (the last cell of every notebook calls this; a
    kernel shut down by nbclient/nbmake does not always run ``atexit`` handlers)."""
    global _SCRATCH
    if _SCRATCH is not None:
        shutil.rmtree(_SCRATCH, ignore_errors=True)
        _SCRATCH = None
