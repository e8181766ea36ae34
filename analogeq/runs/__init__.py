"""Runs: the run config (TOML -> model), training, checkpoints, evaluation, exports,
gradient checks, reports, diagnostics, sweeps, experiments, datasets and plots; the
bundled example configs are package data in ``configs/``."""

from .checkpoints import load_model_state, read_checkpoint, write_checkpoint
from .config import EXAMPLE_CONFIGS, build_model, load_config, resolve_config
from .datasets import Dataset, load_dataset
from .diagnose import Diagnosis, diagnose
from .evaluation import evaluate, evaluate_run
from .export import export_netlists, write_reference_netlists
from .gradcheck import GradcheckResult, gradcheck
from .report import report
from .sweep import run_sweep
from .training import TrainResult, train

__all__ = [
    "EXAMPLE_CONFIGS",
    "Dataset",
    "Diagnosis",
    "GradcheckResult",
    "TrainResult",
    "build_model",
    "diagnose",
    "evaluate",
    "evaluate_run",
    "export_netlists",
    "gradcheck",
    "load_config",
    "load_dataset",
    "load_model_state",
    "read_checkpoint",
    "report",
    "resolve_config",
    "run_sweep",
    "train",
    "write_checkpoint",
    "write_reference_netlists",
]
