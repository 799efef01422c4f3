"""Grad-CAM explanations: which parts of a face drove its verdict.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, https://arxiv.org/abs/1610.02391) weights the last convolution's feature maps by
the mean gradient of the output and keeps the positive part. Here captum's ``LayerGradCam`` computes it for
the logit of the face's own verdict (``+logit`` for "fake", ``-logit`` for "real"), on the layer that
:func:`gradcam_layer` picks. The coarse map is upsampled to the face crop the model saw and laid over it as
a heatmap (red = strongest evidence).

It needs the torch weights: a detector loaded from an ``.onnx`` file cannot be explained.
"""

from __future__ import annotations

import base64
import copy
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .transforms import normalize

__all__ = ["ExplainError", "Explainer", "gradcam_layer", "gradcam", "overlay_heatmap"]

# Weight of the heatmap colour in the overlay (the face stays readable under it).
HEATMAP_ALPHA = 0.45


class ExplainError(ValueError):
    """An explanation was asked for that this model cannot give."""


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: the model's ``gradcam_layer`` attribute, else its last ``nn.Conv2d``.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 1))
    >>> gradcam_layer(net) is net[2]
    True
    """
    chosen = getattr(model, "gradcam_layer", None)
    if isinstance(chosen, str):
        chosen = model.get_submodule(chosen)
    if isinstance(chosen, nn.Module):
        return chosen
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ExplainError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def _explainable(model: nn.Module) -> nn.Module:
    """A CPU, eval-mode copy whose activations are not in-place (captum's hooks need the layer output)."""
    clone = copy.deepcopy(model).float().eval().to("cpu", memory_format=torch.contiguous_format)
    for module in clone.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return clone


def gradcam(
    model: nn.Module, x: torch.Tensor, signs: torch.Tensor, layer: nn.Module | None = None
) -> np.ndarray:
    """Grad-CAM maps of a batch, upsampled to the input size and scaled to [0, 1] per image.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, 3, H, W)`` to ``(B,)`` logits.
    x : Tensor of shape (B, 3, H, W)
        Normalised inputs.
    signs : Tensor of shape (B,)
        +1 to explain "fake", -1 to explain "real".
    layer : nn.Module, optional
        Default: :func:`gradcam_layer`.

    Returns
    -------
    ndarray of shape (B, H, W), float32
        All zeros where the layer shows no positive evidence.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    layer = gradcam_layer(model) if layer is None else layer
    explainer = LayerGradCam(lambda inputs: model(inputs) * signs, layer)
    with torch.enable_grad():
        attr = explainer.attribute(x, target=None, relu_attributions=True)
    maps = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), "bilinear")[:, 0]
    maps = maps.clamp_min(0)
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (maps / peak).numpy().astype(np.float32)


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """Lay a [0, 1] map over an RGB uint8 image with the "jet" colour map.

    Examples
    --------
    >>> overlay_heatmap(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4))).shape
    (4, 4, 3)
    """
    from matplotlib import colormaps

    colour = colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255.0
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """PNG encoding of an RGB image."""
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, "PNG")
    return buffer.getvalue()


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
        self.model = _explainable(det.model)
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

    def explain(self, item, faces: list[dict[str, Any]], result: dict[str, Any]) -> None:
        """Add a ``heatmap`` (path or data URL) to the faces of one scanned input (a video: its top faces only)."""
        from .scan import output_key

        prefix = f"{_safe_stem(item.path)}-{output_key(item.path)}"
        chosen = range(len(faces))
        if item.video is not None:
            top = {id(f) for f in result["faces"]}
            chosen = [i for i, f in enumerate(faces) if id(f) in top]
            from .video import timeline_png

            result["timeline"] = self._store(f"{prefix}-timeline.png", timeline_png(result))
        pre = self.det.preprocess
        for start in range(0, len(chosen), 16):  # bounded memory for the backward pass
            part = list(chosen)[start : start + 16]
            views = np.stack([item.faces[i].view for i in part])
            x = torch.from_numpy(normalize(views, pre.mean, pre.std))
            signs = torch.tensor([1.0 if faces[i]["verdict"] == "fake" else -1.0 for i in part])
            cams = gradcam(self.model, x, signs, self.layer)
            for i, view, cam in zip(part, views, cams, strict=True):
                png = png_bytes(overlay_heatmap(view, cam))
                faces[i]["heatmap"] = self._store(f"{prefix}-face{i}.png", png)
