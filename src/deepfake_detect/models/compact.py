"""Compact from-scratch detector with a fixed neighbouring-pixel-residual (NPR) front end.

Paper: Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection", CVPR 2024 (https://arxiv.org/abs/2312.10461). GAN generators
up-sample by 2x, which correlates pixels inside each 2x2 cell; NPR exposes this by subtracting
from the image its nearest-neighbour down-then-up-sampled copy, which removes image content and
keeps the local up-sampling trace. The residual then feeds a small MobileNet-style stack
(Howard et al., "MobileNets", 2017, https://arxiv.org/abs/1704.04861): a stride-2 stem and
depthwise-separable blocks with BN + ReLU. ~0.2M parameters, ~0.07 GMAC at 224 px (about a tenth
of ``notebook-cnn``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ModelCfg, register_model

__all__ = ["CompactNPR", "DepthwiseSeparable", "NPR"]


class NPR(nn.Module):
    """Neighbouring pixel residual: ``x - up2(down2(x))`` with nearest sampling (no parameters).

    Each 2x2 cell loses its top-left value, which is what nearest 2x down-sampling keeps.
    Works for odd sizes (the replicated map is cropped back).

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> NPR()(x)[0, 0, :2, :2]
    tensor([[0., 1.],
            [4., 5.]])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the residual, same shape as ``x``."""
        h, w = x.shape[-2:]
        # Nearest 0.5x keeps the top-left pixel of each 2x2 cell; nearest 2x copies it back.
        up = F.interpolate(x[..., ::2, ::2], scale_factor=2.0, mode="nearest")
        return x - up[..., :h, :w]


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU, residual when shapes match.

    Parameters
    ----------
    in_ch, out_ch : int
        Input / output channels.
    stride : int
        Stride of the depthwise conv.

    Examples
    --------
    >>> DepthwiseSeparable(8, 16, 2)(torch.zeros(1, 8, 32, 32)).shape
    torch.Size([1, 16, 16, 16])
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.act(self.bn1(self.conv_dw(x)))
        y = self.bn2(self.conv_pw(y))
        # Residual before the final ReLU (ResNet-style) keeps gradients flowing from scratch.
        return self.act(y + x) if self.has_skip else self.act(y)


class CompactNPR(nn.Module):
    """NPR front end, stride-2 stem, depthwise-separable stages, global pooling, one logit.

    Parameters
    ----------
    widths : tuple of int
        Channels of the stem followed by each stage.
    depths : tuple of int
        Blocks per stage (the first block of each stage has stride 2).
    drop_rate : float
        Dropout before the classifier.

    Examples
    --------
    >>> CompactNPR()(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (2, 2, 3),
        drop_rate: float = 0.1,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) + 1:
            raise ValueError("widths needs one entry for the stem plus one per stage")
        self.npr = NPR()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        self.stages = _build_stages(widths, depths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(widths[-1], 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one logit per image, shape ``(B,)``."""
        x = self.stages(self.stem(self.npr(x)))
        x = self.dropout(self.pool(x).flatten(1))
        return self.classifier(x).squeeze(-1)


def _build_stages(widths: tuple[int, ...], depths: tuple[int, ...]) -> nn.Sequential:
    stages = []
    for in_ch, out_ch, depth in zip(widths[:-1], widths[1:], depths, strict=True):
        blocks = [DepthwiseSeparable(in_ch, out_ch, stride=2)]
        blocks += [DepthwiseSeparable(out_ch, out_ch) for _ in range(depth - 1)]
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages)


def _create_compact(pretrained: bool, **kwargs) -> CompactNPR:
    if pretrained:
        raise ValueError("compact-npr has no pretrained weights; it is trained from scratch")
    return CompactNPR(**kwargs)


default_cfgs = {
    "compact-npr": ModelCfg(
        name="compact-npr",
        input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        resize_mode="crop",  # resampling would blur the 2x2 up-sampling trace NPR looks for
        description="NPR residual + depthwise-separable CNN from scratch (~0.2M params, ~0.07 GMAC)",
        pretrained_source=None,
    ),
}


@register_model
def compact_npr(pretrained: bool = False, **kwargs) -> CompactNPR:
    """Compact NPR network, about 1/10 of notebook-cnn's multiply-adds."""
    return _create_compact(pretrained, **kwargs)
