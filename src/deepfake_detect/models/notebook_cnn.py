"""The baseline CNN of the original Keras notebook, layer for layer.

Keras original::

    Rescaling(1/255)
    Conv2D(32, 3, padding="same", activation="relu"); MaxPooling2D(2)
    Conv2D(64, 3, padding="same", activation="relu"); MaxPooling2D(2)
    Conv2D(128, 3, padding="same", activation="relu"); MaxPooling2D(2)
    Conv2D(256, 3, padding="same", activation="relu")
    GlobalAveragePooling2D(); Dense(128, "relu"); Dense(1, "sigmoid")

Here the final sigmoid is left to the loss (``BCEWithLogitsLoss``), so the model returns logits.
421,441 parameters, ~0.70 GMAC at 220x220. A plain VGG-style stack (Simonyan & Zisserman,
"Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015).
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import ModelCfg, register_model

__all__ = ["NotebookCNN"]

default_cfgs = {
    "notebook-cnn": ModelCfg(
        name="notebook-cnn",
        input_size=220,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),  # Keras Rescaling(1/255): pixels in [0, 1], nothing else
        resize_mode="resize",
        description="Baseline 4-conv CNN of the original Keras notebook (421k params)",
        pretrained_source=None,
    ),
}


class NotebookCNN(nn.Module):
    """Four 3x3 conv + ReLU blocks (max-pool after the first three), GAP, MLP head.

    Parameters
    ----------
    widths : tuple of int
        Output channels of the four conv layers.
    hidden : int
        Width of the hidden dense layer.

    Examples
    --------
    >>> NotebookCNN()(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2])
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(widths):
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:  # the notebook has no pooling after the last conv
                layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(in_ch, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one logit per image, shape ``(B,)``."""
        x = self.pool(self.features(x)).flatten(1)
        return self.fc2(self.act(self.fc1(x))).squeeze(-1)


def _create_notebook_cnn(pretrained: bool, **kwargs) -> NotebookCNN:
    if pretrained:
        raise ValueError("notebook-cnn has no pretrained weights; train it from scratch")
    return NotebookCNN(**kwargs)


@register_model
def notebook_cnn(pretrained: bool = False, **kwargs) -> NotebookCNN:
    """Baseline CNN of the original notebook (421,441 parameters)."""
    return _create_notebook_cnn(pretrained, **kwargs)
