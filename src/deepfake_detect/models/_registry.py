"""Model registry: name -> factory and default configuration, in the style of timm.

A model file defines ``default_cfgs`` (a ``dict[str, ModelCfg]``) and decorates each small
factory function with :func:`register_model`. The registered name is the function name with
underscores replaced by hyphens (``efficientnet_lite0_s4`` -> ``efficientnet-lite0-s4``).
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deepfake_detect.core.exceptions import UnknownModelError

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


@dataclass(frozen=True)
class ModelCfg:
    """Default pre-processing and provenance of a registered model.

    Parameters
    ----------
    name : str
        Registered model name.
    input_size : int
        Default square training input side, in pixels.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels scaled to [0, 1].
    resize_mode : str
        ``"resize"``: resample the whole image to ``input_size``; ``"crop"``: take a
        native-resolution crop of ``input_size`` (no resampling, keeps GAN traces intact).
    description : str
        One-line human description.
    pretrained_source : str or None
        Where ``pretrained=True`` weights come from; ``None`` if the model has none.
    """

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str
    description: str
    pretrained_source: str | None = None

    def __post_init__(self) -> None:
        if self.resize_mode not in ("resize", "crop"):
            raise ValueError(f"resize_mode must be 'resize' or 'crop', got {self.resize_mode!r}")


_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_cfgs: dict[str, ModelCfg] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model factory; its cfg is read from its module's ``default_cfgs``.

    Parameters
    ----------
    fn : callable
        Factory ``fn(pretrained: bool = False, **kwargs) -> nn.Module``.

    Returns
    -------
    callable
        ``fn`` unchanged, so this works as a decorator.

    Examples
    --------
    In a model module, beside the model class:

    >>> default_cfgs = {"tiny-net": ModelCfg("tiny-net", 64, (0.5,) * 3, (0.5,) * 3, "crop", "demo")}
    >>> @register_model  # doctest: +SKIP
    ... def tiny_net(pretrained: bool = False, **kwargs) -> nn.Module:
    ...     return TinyNet(**kwargs)
    """
    name = fn.__name__.replace("_", "-")
    cfgs = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    if name not in cfgs:
        raise RuntimeError(f"{fn.__module__}.default_cfgs has no entry for model {name!r}")
    previous = _model_entrypoints.get(name)
    if previous is not None and previous.__module__ != fn.__module__:  # a module reload is fine
        raise RuntimeError(f"model {name!r} registered by both {previous.__module__} and {fn.__module__}")
    _model_entrypoints[name] = fn
    _model_cfgs[name] = cfgs[name]
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """List registered model names matching a shell-style pattern.

    Parameters
    ----------
    pattern : str
        :mod:`fnmatch` pattern, e.g. ``"efficientnet*"``.

    Returns
    -------
    list of str
        Sorted matching names.

    Examples
    --------
    >>> "notebook-cnn" in list_models()
    True
    """
    return sorted(n for n in _model_entrypoints if fnmatch.fnmatchcase(n, pattern))


def is_model(name: str) -> bool:
    """Return whether ``name`` is a registered model.

    Parameters
    ----------
    name : str
        Model name.

    Returns
    -------
    bool
        ``True`` if registered.
    """
    return name in _model_entrypoints


def _check_name(name: str) -> None:
    if name not in _model_entrypoints:
        valid = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; valid names: {valid}")


def get_model_cfg(name: str) -> ModelCfg:
    """Return the default configuration of a registered model.

    Parameters
    ----------
    name : str
        Registered model name.

    Returns
    -------
    ModelCfg
        Frozen configuration (input size, normalisation, resize mode, ...).

    Examples
    --------
    >>> get_model_cfg("notebook-cnn").input_size
    220
    """
    _check_name(name)
    return _model_cfgs[name]


def create_model(name: str, *, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        Registered model name (see :func:`list_models`).
    pretrained : bool
        Load pretrained weights where the model has some (see ``ModelCfg.pretrained_source``).
    **kwargs
        Passed to the model's factory (e.g. ``drop_rate``).

    Returns
    -------
    torch.nn.Module
        Model whose ``forward`` maps ``(B, 3, H, W)`` floats to ``(B,)`` logits (positive = fake).

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message lists the valid names.

    Examples
    --------
    >>> model = create_model("notebook-cnn")
    >>> model(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2])
    """
    _check_name(name)
    return _model_entrypoints[name](pretrained=pretrained, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Count all parameters of a model (trainable or not).

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    int
        Number of scalar parameters.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters())


def _mac_hook(counter: list[int]) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = (module.in_channels // module.groups) * kh * kw
        else:
            per_output = module.in_features
        counter[0] += output.numel() * per_output

    return hook


def count_macs(model: nn.Module, input_size: int) -> int:
    """Count multiply-adds of ``Conv2d`` and ``Linear`` layers for one square image.

    Parameters
    ----------
    model : torch.nn.Module
        Model taking ``(1, 3, S, S)`` input.
    input_size : int
        Image side ``S``.

    Returns
    -------
    int
        Multiply-accumulate count (biases, BN, activations and pooling are ignored).

    Examples
    --------
    >>> count_macs(nn.Conv2d(3, 8, 1), 4)
    384
    """
    counter = [0]
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(_mac_hook(counter)) for m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counter[0]
