"""deepfake-detect: tell real face photos from generated ones, fast on a laptop CPU.

The public API mirrors the command line::

    import deepfake_detect as dd
    cfg = dd.load_config(flags={"data": "faces140k", "model": "notebook-cnn", "epochs": 5})
    result = dd.train(cfg)
    dd.evaluate(result.run_dir, split="test")
    det = dd.load_detector(result.run_dir)

Importing the package changes no global state and loads nothing heavy: each name below is imported from its
layer on first use (PEP 562), so ``deepfake-detect --help`` starts without torch. ``ARCHITECTURE.md`` maps the
layers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepfake_detect.core.version import __version__

if TYPE_CHECKING:
    from deepfake_detect.batch.ray_scan import scan_dataset
    from deepfake_detect.core.config import TrainConfig, load_config
    from deepfake_detect.core.exceptions import DeepfakeDetectError
    from deepfake_detect.data import check_dataset
    from deepfake_detect.evaluation.evaluate import evaluate
    from deepfake_detect.models import create_model, list_models
    from deepfake_detect.scan.detector import Detector, load_detector
    from deepfake_detect.scan.output import scan_paths
    from deepfake_detect.training.train import train

# Public name -> the module that owns it.
_OWNERS = {
    "TrainConfig": "deepfake_detect.core.config",
    "load_config": "deepfake_detect.core.config",
    "DeepfakeDetectError": "deepfake_detect.core.exceptions",
    "check_dataset": "deepfake_detect.data",
    "train": "deepfake_detect.training.train",
    "evaluate": "deepfake_detect.evaluation.evaluate",
    "load_detector": "deepfake_detect.scan.detector",
    "Detector": "deepfake_detect.scan.detector",
    "scan_paths": "deepfake_detect.scan.output",
    "scan_dataset": "deepfake_detect.batch.ray_scan",
    "create_model": "deepfake_detect.models",
    "list_models": "deepfake_detect.models",
}

__all__ = [
    "TrainConfig",
    "load_config",
    "DeepfakeDetectError",
    "check_dataset",
    "train",
    "evaluate",
    "load_detector",
    "Detector",
    "scan_paths",
    "scan_dataset",
    "create_model",
    "list_models",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its owner on first use."""
    if name not in _OWNERS:
        raise AttributeError(f"module 'deepfake_detect' has no attribute {name!r}")
    value = getattr(importlib.import_module(_OWNERS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
