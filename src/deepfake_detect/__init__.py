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

__version__ = "0.1.0"

from .config import TrainConfig, load_config  # noqa: E402
from .data import check_dataset  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .inference import Detector, load_detector  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .train import train  # noqa: E402

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
    "__version__",
]
