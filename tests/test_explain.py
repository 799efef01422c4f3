"""Grad-CAM: layer choice, maps for every registered model, overlays, and the ONNX-only refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_detect.core.exceptions import ExplainError
from deepfake_detect.inference.gradcam import gradcam, gradcam_layer, overlay_heatmap
from deepfake_detect.models import create_model, list_models
from deepfake_detect.scan.explain import Explainer


def test_layer_is_the_last_conv_or_the_named_one():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 1), nn.Flatten())
    assert gradcam_layer(net) is net[2]
    net.gradcam_layer = "0"
    assert gradcam_layer(net) is net[0]
    with pytest.raises(ExplainError, match="no Conv2d"):
        gradcam_layer(nn.Sequential(nn.Linear(2, 1)))


@pytest.mark.parametrize("name", list_models())
def test_gradcam_maps_for_every_model(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    for module in model.modules():  # captum needs the layer output untouched by in-place activations
        if hasattr(module, "inplace"):
            module.inplace = False
    x = torch.randn(2, 3, 64, 64)
    maps = gradcam(model, x, torch.tensor([1.0, -1.0]))
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_overlay_keeps_size_and_tints_hot_areas_red():
    face = np.full((8, 8, 3), 128, np.uint8)
    cam = np.zeros((8, 8), np.float32)
    cam[:4] = 1.0
    out = overlay_heatmap(face, cam)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2] and out[7, 7, 2] > out[7, 7, 0]  # red where hot, blue where cold


def test_onnx_only_detector_cannot_explain(tmp_path):
    class OnnxOnly:
        model = None
        path = tmp_path / "m.onnx"

    with pytest.raises(ExplainError, match="torch weights"):
        Explainer(OnnxOnly(), tmp_path / "out")
