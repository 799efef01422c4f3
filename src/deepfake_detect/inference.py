"""Inference: ``load_detector()`` rebuilds a trained detector from one checkpoint file and scores images.

>>> import deepfake_detect as dd                                   # doctest: +SKIP
>>> det = dd.load_detector("runs/20261125-120000-notebook-cnn-s42")  # doctest: +SKIP
>>> det.p_fake(det.predict_samples(samples).logits)                 # doctest: +SKIP
>>> det.scan(["holiday.jpg", "photos/"])                            # doctest: +SKIP

A detector runs its network with torch, or with ONNX Runtime: loaded from an ``.onnx`` file (metadata from
the ``.onnx.json`` file beside it), or switched on with :meth:`Detector.use_onnx`, which exports the torch
model once to a cache keyed by its tensor hash.
"""

from __future__ import annotations

import json
import logging
import os
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

__all__ = ["Detector", "Predictions", "load_detector", "ONNX_CACHE_DIR"]

log = logging.getLogger(__name__)

# Exported graphs of safetensors models, one file per tensor hash and input size.
ONNX_CACHE_DIR = Path("~/.cache/deepfake-detect/onnx")


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
    session : onnxruntime.InferenceSession, optional
        Run the network with ONNX Runtime; ``model`` may then be None (an ``.onnx`` file without weights).
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        metadata: dict[str, Any],
        path: Path | None = None,
        device="cpu",
        session=None,
    ):
        self.device = resolve_device(device)
        if model is not None:
            model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.model = model
        self.session = session
        self.metadata = metadata
        self.path = path
        self.preprocess = Preprocess.from_dict(metadata["preprocess"])
        self._int8 = session is not None and path is not None and path.name.endswith(".int8.onnx")

    @property
    def backend(self) -> str:
        """``onnx-int8`` or ``onnx`` when ONNX Runtime runs the network (quantised or float), else ``torch``."""
        if self.session is None:
            return "torch"
        return "onnx-int8" if self._int8 else "onnx"

    @property
    def int8_path(self) -> Path | None:
        """The int8 graph beside the weights (``<stem>.int8.onnx``, written by ``export --quantize``), or None.

        Only a graph whose metadata carries these weights' tensor hash counts: a stale one is ignored.
        """
        if self.path is None or self.path.suffix != ".safetensors":
            return None
        graph = self.path.with_name(self.path.stem + ".int8.onnx")
        sidecar = graph.with_name(graph.name + ".json")
        if not (graph.is_file() and sidecar.is_file()):
            return None
        try:
            made_from = json.loads(sidecar.read_text()).get("tensor_sha256")
        except (OSError, ValueError):
            return None
        return graph if made_from == self.metadata.get("tensor_sha256") else None

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

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits of a normalised ``(B, 3, S, S)`` float32 batch, with the active backend.

        Returns
        -------
        ndarray of shape (B,), float32
        """
        if self.session is not None:
            from .export import onnx_logits

            return onnx_logits(self.session, batch)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
            return self.model(x.to(self.device, memory_format=torch.channels_last)).float().cpu().numpy()

    def use_int8(self) -> bool:
        """Run the network with the int8 graph beside the weights (:attr:`int8_path`) from now on.

        About 2x faster than the float graph on AVX-512 CPUs; its scores differ a little from the float
        weights' (the default model: test accuracy 0.974 against 0.980, see MODEL_CARD.md).

        Returns
        -------
        bool
            True when the int8 graph is in use; False (backend unchanged) when there is none or it fails.
        """
        if self.backend == "onnx-int8":
            return True
        path = self.int8_path
        if path is None:
            return False
        try:
            from .export import onnx_session

            self.session, self._int8 = onnx_session(path), True
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types; the float paths still work
            log.warning("int8 graph %s not used (%s: %s)", path, type(err).__name__, err)
            return False
        return True

    def use_onnx(self, cache_dir: str | Path | None = None) -> bool:
        """Run the network with ONNX Runtime from now on, exporting it once to ``cache_dir``.

        The file is ``<cache_dir>/<tensor sha256>-<input size>px.onnx`` (default cache
        :data:`ONNX_CACHE_DIR`); a second call, or a later process, reuses it.

        Returns
        -------
        bool
            True when ONNX Runtime is in use; False (torch stays) when it is missing or the export fails.
        """
        if self.backend == "onnx":
            return True
        try:
            from .export import export_onnx, onnx_session

            folder = Path(cache_dir or ONNX_CACHE_DIR).expanduser()
            target = folder / f"{self.metadata['tensor_sha256']}-{self.preprocess.size}px.onnx"
            if not target.is_file():
                # Export beside the target and rename, so a parallel scan never reads half a file.
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                export_onnx(self.model, tmp, self.preprocess.size)
                os.replace(tmp, target)
            self.session, self._int8 = onnx_session(target), False
        except Exception as err:  # noqa: BLE001 - any failure here only costs speed: torch still works
            log.warning("ONNX Runtime not used (%s: %s); running with torch", type(err).__name__, err)
            return False
        return True

    def scan(self, inputs, **kwargs) -> list[dict[str, Any]]:
        """Find and judge the faces in photos, folders or videos; one result dict per input.

        See :func:`deepfake_detect.scan.iter_scan` for the parameters and the result schema.
        """
        return list(self.iter_scan(inputs, **kwargs))

    def iter_scan(self, inputs, **kwargs):
        """Like :meth:`scan`, but yields results one by one in input order, in bounded memory."""
        from .scan import iter_scan

        return iter_scan(self, inputs, **kwargs)

    def predict_samples(
        self, samples: list[Sample], *, batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> Predictions:
        """Logits for face images already framed like the training data (the 140k crops)."""
        if self.model is None:
            raise CheckpointError("predict_samples needs the torch weights; this detector has only ONNX")
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
            "backend": self.backend,
        }


def load_detector(
    name_or_path: str | Path = "default", *, device: str = "cpu", runs_dir: str | Path = "runs"
):
    """Load a detector from ``default``, a run folder, a run id, a ``.safetensors`` or an ``.onnx`` file.

    An ``.onnx`` file needs the ``.onnx.json`` metadata file that ``deepfake-detect export`` writes beside
    it; such a detector scores images but cannot explain them (no torch weights).

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
    if str(name_or_path).lower().endswith(".onnx"):
        return _load_onnx(Path(name_or_path).expanduser(), device)
    path = resolve_weights(name_or_path, runs_dir)
    state, meta = load_checkpoint(path)
    model = create_model(meta["model"], pretrained=False, **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit model {meta['model']!r}: {err}") from None
    return Detector(model, meta, path=path, device=device)


def _load_onnx(path: Path, device: str) -> Detector:
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    if not sidecar.is_file():
        raise CheckpointError(
            f"{path} has no metadata file {sidecar.name} beside it (threshold, preprocessing); "
            "export it with `deepfake-detect export RUN --format onnx`"
        )
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {sidecar}: {err}") from None
    missing = [
        k for k in ("model", "preprocess", "threshold_logit", "temperature", "tensor_sha256") if k not in meta
    ]
    if missing:
        raise CheckpointError(f"{sidecar} lacks {', '.join(missing)}; re-export the model")
    from .export import onnx_session

    try:
        session = onnx_session(path)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path} is not a loadable ONNX model: {err}") from None
    return Detector(None, meta, path=path, device=device, session=session)
