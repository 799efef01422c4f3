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

import copy
import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from deepfake_detect.core.exceptions import ExplainError

__all__ = ["ExplainError", "gradcam_layer", "gradcam", "overlay_heatmap", "png_bytes", "explainable_copy"]

# Weight of the heatmap colour in the overlay (the face stays readable under it).
HEATMAP_ALPHA = 0.45


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


def explainable_copy(model: nn.Module) -> nn.Module:
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
