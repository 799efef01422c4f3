"""Heatmaps in scan results: a Grad-CAM overlay for each judged face, and a timeline for each video.

The Grad-CAM itself is :mod:`deepfake_detect.inference.gradcam`; this module attaches its pictures to results.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_detect.core.exceptions import ExplainError
from deepfake_detect.data.transforms import normalize
from deepfake_detect.inference.gradcam import (
    explainable_copy,
    gradcam,
    gradcam_layer,
    overlay_heatmap,
    png_bytes,
)
from deepfake_detect.metrics.classification import is_fake
from deepfake_detect.scan.inputs import output_key
from deepfake_detect.scan.video import timeline_png

__all__ = ["Explainer"]


def _safe_stem(path: str) -> str:
    stem = Path(path).stem if not path.startswith("<") else path.strip("<>")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "image"


class Explainer:
    """Writes a Grad-CAM overlay PNG for each face a scan judges, and a timeline PNG for each video.

    Parameters
    ----------
    det : Detector
        Must have torch weights.
    out_dir : path, optional
        Created if missing. Files are ``<stem>-<path hash>-face<k>.png`` and ``<stem>-<hash>-timeline.png``.
        None keeps everything in memory: ``heatmap`` (and ``timeline``) are then PNG data URLs, and nothing
        is written to disk (what the web service needs for uploads).
    """

    def __init__(self, det, out_dir: str | Path | None):
        if det.model is None:
            raise ExplainError(
                f"--explain needs the model's torch weights, but {det.path} is an ONNX file; "
                "pass the run folder or its .safetensors file instead"
            )
        self.det = det
        self.model = explainable_copy(det.model)
        self.layer = gradcam_layer(self.model)
        self.out_dir = None if out_dir is None else Path(out_dir)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def _store(self, name: str, png: bytes) -> str:
        """Write one PNG into ``out_dir`` and return its path, or return it as a data URL (no ``out_dir``)."""
        if self.out_dir is None:
            return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        path = self.out_dir / name
        path.write_bytes(png)
        return str(path)

    def _sign(self, face: dict[str, Any]) -> float:
        """+1 to explain the "fake" evidence, -1 the "real"; an "uncertain" face: the side of the stored
        threshold it leans to."""
        if face["verdict"] == "uncertain":
            return 1.0 if is_fake(face["logit"], self.det.threshold_logit) else -1.0
        return 1.0 if face["verdict"] == "fake" else -1.0

    def explain(self, item, faces: list[dict[str, Any]], result: dict[str, Any]) -> None:
        """Add a ``heatmap`` (path or data URL) to the faces of one scanned input (a video: its top faces only)."""
        prefix = f"{_safe_stem(item.path)}-{output_key(item.path)}"
        chosen = range(len(faces))
        if item.video is not None:
            top = {id(f) for f in result["faces"]}
            chosen = [i for i, f in enumerate(faces) if id(f) in top]
            result["timeline"] = self._store(f"{prefix}-timeline.png", timeline_png(result))
        pre = self.det.preprocess
        for start in range(0, len(chosen), 16):  # bounded memory for the backward pass
            part = list(chosen)[start : start + 16]
            views = np.stack([item.faces[i].view for i in part])
            x = torch.from_numpy(normalize(views, pre.mean, pre.std))
            signs = torch.tensor([self._sign(faces[i]) for i in part])
            cams = gradcam(self.model, x, signs, self.layer)
            for i, view, cam in zip(part, views, cams, strict=True):
                png = png_bytes(overlay_heatmap(view, cam))
                faces[i]["heatmap"] = self._store(f"{prefix}-face{i}.png", png)
