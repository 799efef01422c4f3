"""Inference: ``load_detector()`` rebuilds a trained detector from one checkpoint file and scores images.

>>> import deepfake_detect as dd                                   # doctest: +SKIP
>>> det = dd.load_detector("runs/20261125-120000-notebook-cnn-s42")  # doctest: +SKIP
>>> det.p_fake(det.predict_samples(samples).logits)                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import calibrate
from .checkpoint import CheckpointError, load_checkpoint, resolve_weights
from .data import Sample
from .dataset import FaceDataset, make_loader
from .models import create_model
from .runtime import predict_logits, resolve_device
from .transforms import Preprocess

__all__ = ["Detector", "Predictions", "load_detector"]


@dataclass
class Predictions:
    """Raw logits of the samples that decoded, with their labels and positions in the input list."""

    logits: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    n_unreadable: int


class Detector:
    """A trained model plus everything needed to use it: preprocessing, threshold and calibration.

    Parameters
    ----------
    model : torch.nn.Module
    metadata : dict
        The checkpoint's metadata (see :mod:`deepfake_detect.checkpoint`).
    path : Path, optional
        Where the weights came from.
    device : str
    """

    def __init__(
        self, model: torch.nn.Module, metadata: dict[str, Any], path: Path | None = None, device="cpu"
    ):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.metadata = metadata
        self.path = path
        self.preprocess = Preprocess.from_dict(metadata["preprocess"])

    @property
    def name(self) -> str:
        return str(self.metadata["model"])

    @property
    def threshold_logit(self) -> float:
        return float(self.metadata["threshold_logit"])

    @property
    def temperature(self) -> float:
        return float(self.metadata["temperature"])

    def p_fake(self, logits: np.ndarray, prior: float | None = None) -> np.ndarray:
        """Calibrated probability of "fake" for raw logits.

        ``prior`` is the share of fakes expected where the detector is used; ``None`` keeps the share of the
        validation split the calibration was fitted on (50% for the 140k data set).
        """
        base_rate = float(self.metadata.get("base_rate", 0.5))
        prior = base_rate if prior is None else prior
        return calibrate.calibrated_p_fake(
            np.asarray(logits), self.temperature, prior=prior, base_rate=base_rate
        )

    def verdicts(self, logits: np.ndarray, threshold_logit: float | None = None) -> list[str]:
        """ "fake" where ``logit >= threshold`` (the stored one by default), else "real"."""
        threshold = self.threshold_logit if threshold_logit is None else threshold_logit
        return ["fake" if v >= threshold else "real" for v in np.asarray(logits)]

    def predict_samples(
        self, samples: list[Sample], *, batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> Predictions:
        """Logits for face images already framed like the training data (the 140k crops)."""
        dataset = FaceDataset(samples, self.preprocess, train=False)
        loader, _ = make_loader(
            dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers
        )
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc="score", unit="batch", leave=False)
        logits, labels, indices, n_bad = predict_logits(self.model, loader, self.device)
        return Predictions(logits, labels, indices, n_bad)

    def model_info(self) -> dict[str, Any]:
        """Name, hash, threshold and temperature, as reported beside every result."""
        return {
            "name": self.name,
            "sha256": self.metadata["tensor_sha256"],
            "threshold_logit": self.threshold_logit,
            "temperature": self.temperature,
        }


def load_detector(
    name_or_path: str | Path = "default", *, device: str = "cpu", runs_dir: str | Path = "runs"
):
    """Load a detector from ``default``, a run folder, a run id or a ``.safetensors`` file.

    Parameters
    ----------
    name_or_path : str or Path
        What to load.
    device : str
        ``cpu`` (default) or ``cuda``.
    runs_dir : str or Path
        Where run ids are looked up.

    Returns
    -------
    Detector

    Raises
    ------
    CheckpointError
        When nothing loadable is found or the file fails validation.
    """
    path = resolve_weights(name_or_path, runs_dir)
    state, meta = load_checkpoint(path)
    model = create_model(meta["model"], pretrained=False, **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit model {meta['model']!r}: {err}") from None
    return Detector(model, meta, path=path, device=device)
