"""deepfake-detect: tell real face photos from GAN-generated ones, fast on a laptop CPU.

The public API mirrors the command line::

    import deepfake_detect as dd
    cfg = dd.load_config(flags={"data": "faces140k", "model": "notebook-cnn", "epochs": 5})
    result = dd.train(cfg)
    dd.evaluate(result.run_dir, split="test")
    det = dd.load_detector(result.run_dir)

Importing the package changes no global state: no threads, seeds or devices are set until a function runs.
"""

from __future__ import annotations

from deepfake_detect.core.config import TrainConfig, load_config
from deepfake_detect.core.exceptions import DeepfakeDetectError
from deepfake_detect.core.version import __version__
from deepfake_detect.data import check_dataset
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.models import create_model, list_models
from deepfake_detect.scan.detector import Detector, load_detector
from deepfake_detect.training.train import train

__all__ = [
    "TrainConfig",
    "load_config",
    "check_dataset",
    "train",
    "evaluate",
    "load_detector",
    "Detector",
    "create_model",
    "list_models",
    "DeepfakeDetectError",
    "__version__",
]
