"""Model zoo: a registry of small CNNs mapping ``(B, 3, H, W)`` images to ``(B,)`` fake-logits.

Examples
--------
>>> from deepfake_detect.models import create_model, get_model_cfg, list_models
>>> list_models("efficientnet*")
['efficientnet-lite0', 'efficientnet-lite0-s4', 'efficientnet-lite0-s5']
>>> get_model_cfg("compact-npr").resize_mode
'crop'
"""

# Importing the model modules registers their factories.
from . import compact, efficientnet_lite, notebook_cnn  # noqa: F401
from ._registry import (
    ModelCfg,
    UnknownModelError,
    count_macs,
    count_parameters,
    create_model,
    get_model_cfg,
    is_model,
    list_models,
    register_model,
)

__all__ = [
    "ModelCfg",
    "UnknownModelError",
    "count_macs",
    "count_parameters",
    "create_model",
    "get_model_cfg",
    "is_model",
    "list_models",
    "register_model",
]
