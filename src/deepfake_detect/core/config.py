"""The one typed configuration that flows from the CLI down to training.

A run is fully described by a frozen :class:`TrainConfig`. Values come, in order of precedence, from the
dataclass defaults, ``DEEPFAKE_DATA`` in the environment the caller passes (the data set folder only), a JSON
or TOML file (``--config``), the common flags, then ``--set name=value`` pairs.
Unknown keys and values of the wrong type are rejected with a message that says what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import numbers
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_detect.core.augmentation import Augmentation
from deepfake_detect.core.exceptions import ConfigError
from deepfake_detect.core.sources import Source, parse_sources

__all__ = [
    "ConfigError",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_fields",
    "read_config_file",
    "parse_set_pairs",
    "DATA_ENV",
    "TRACKING_URI_ENV",
    "NEUTRAL_KEYS",
    "tracking_uri_from_env",
]

#: The environment variable :func:`load_config` takes the data set folder from when none is given.
DATA_ENV = "DEEPFAKE_DATA"
#: The environment variable :func:`load_config` takes ``tracking_uri`` from when none is given (MLflow's own).
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: Config keys that do not change the weights, so a resumed run may give them new values (``data`` is then
#: checked by its content fingerprint instead); experiment tracking logs them as tags, not params.
NEUTRAL_KEYS = (
    "data", "num_workers", "cache", "cache_dir", "runs_dir", "run_name", "tracking", "tracking_uri",
)  # fmt: skip
# Decoded images and the face crops of photo sources are kept here unless cache_dir says otherwise.
DEFAULT_CACHE_DIR = "~/.cache/deepfake-detect"
MISSING_DATA = f"no data set given: pass --data or set {DATA_ENV} (in Python: TrainConfig(data=...))"


def _normal_data(data: Any) -> str | tuple[str, ...] | None:
    """``data`` as stored: None, one spec as a string (one folder, as before mixes), or a tuple of specs."""
    if data is None:
        return None
    specs = (os.fspath(data),) if isinstance(data, str | os.PathLike) else tuple(os.fspath(d) for d in data)
    parse_sources(specs)  # a bad weight fails here, when the config is made
    return specs[0] if len(specs) == 1 else specs


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the outcome of one training run.

    Parameters
    ----------
    data : str, sequence of str, or None
        Data set folder holding ``train/``, ``valid/`` and ``test/`` (or the Kaggle nesting above them), or
        ``train.csv``/``valid.csv``/``test.csv`` manifests. ``None`` until given: :func:`load_config` takes
        ``DEEPFAKE_DATA`` from the ``env`` it is passed, and training refuses a config without one. A list of
        ``PATH[:WEIGHT]`` specs trains on a data mix (see :meth:`data_sources`); a source may hold one class
        only. A list of one spec is stored as that string, so it means what one folder always meant.
    manifest : bool
        Read the splits from the ``<split>.csv`` manifests even where split folders exist (they are read
        anyway when the folders are absent).
    model : str
        Registered model name; see ``deepfake-detect models``.
    pretrained : bool
        Start from the model's ImageNet weights when it has them.
    init : str or None
        Start from existing weights instead: ``default``, a run folder or a ``.safetensors`` file.
    epochs, batch_size, lr : int, int, float
        Training length, images per step and peak learning rate.
    optimizer : str
        ``adam``, ``adamw`` or ``sgd``.
    weight_decay : float
        Decoupled for ``adamw``, L2 for the others.
    schedule : str
        ``plateau`` (halve the learning rate when the monitored metric stalls), ``cosine`` or ``onecycle``.
    warmup_epochs : float
        Linear warm-up length for ``cosine``; ``onecycle`` uses its own warm-up share.
    image_size : int or None
        Network input size in pixels; ``None`` takes the model's default.
    resize_mode : str or None
        ``resize`` (resample the face to ``image_size``) or ``crop`` (native-resolution crop, no resampling);
        ``None`` takes the model's default.
    base_size : int
        Face framing, in pixels, that ``crop`` mode cuts from (the 140k images are 256 px).
    draft : bool
        Let Pillow decode JPEGs at a reduced scale when the target is smaller than the source.
    hflip : bool
        Random horizontal flips during training.
    aug_jpeg_p, aug_jpeg_quality, aug_blur_p, aug_blur_sigma, aug_rescale_p, aug_rescale : float or tuple
        The training augmentations, each the field of :class:`~deepfake_detect.core.augmentation.Augmentation`
        of the same name without ``aug_``, which says what it does, its range and its default. A probability
        (``_p``) of 0 turns a step off.
    aug_color_p, aug_brightness, aug_contrast, aug_saturation : float
        Colour jitter (see ``Augmentation``).
    aug_rotate_p, aug_rotate_degrees, aug_mask_p, aug_mask_ratio, aug_mask_patch : float or tuple
        Rotation and SAFE's patch masking (see ``Augmentation``).
    aug_zoom_p, aug_zoom_scale : float or tuple
        A random resized crop before the model's crop (see ``Augmentation``).
    aug_djpeg_p, aug_djpeg_quality, aug_resample_p, aug_resample_scale : float or tuple
        Double JPEG on aligned and shifted grids, and resampling with random kernels, against a source's
        compression and resizing fingerprints (see ``Augmentation``).
    source_adversary : float
        The weight of the source adversary (issue 21; :mod:`deepfake_detect.training.adversary`): when above
        0, a head on the model's pooled features learns which source of the data mix each training image came
        from, among the sources of its own class, behind a gradient reversal that pushes the backbone the
        other way with this weight, so that the features stop telling the sources of a class apart. The data
        mix needs two sources or more within a class. The head is part of the training state, never of the
        saved model; ``history.csv`` gains its loss and accuracy each epoch. 0 (the default) creates nothing
        and changes nothing.
    source_adversary_ramp : bool
        Raise that weight from 0 over training with DANN's ``2 / (1 + exp(-10 p)) - 1`` (``p`` the share of
        the training steps done), so the head learns the sources before the backbone is pushed from them.
    ema_decay : float
        Keep an exponential moving average of the weights with this decay (e.g. 0.999) and validate and
        save the average; 0 turns it off.
    tta_flip : bool
        Average the logits of each image and its mirror image at validation and inference.
    abstain_precision : float
        Target precision of the "uncertain" band fitted at the end of training on the validation split,
        clean and laundered: outside the band each decided verdict ("real" or "fake") reaches it there; in
        [0.5, 1], default 0.99. It decides nothing about the weights.
    threshold_max_fpr : float or None
        When set, the stored threshold is the lowest at which the validation false-positive rate of each
        source of reals, on its own, is at most this (so a small source of soft web photos is not outvoted by
        FFHQ); ``None`` (the default) keeps the F1-optimal threshold on the pooled validation split.
    seed : int
        Seeds Python, NumPy, torch, the data order and every augmentation.
    threads : int or None
        Torch intra-op threads. Results depend on it; ``None`` uses every core and records the number.
    num_workers : int
        DataLoader worker processes for decoding.
    monitor : str
        Validation metric that picks the best epoch, drives the plateau schedule and early stopping:
        ``roc_auc``, ``accuracy``, ``f1`` or ``loss``.
    patience : int
        Epochs without improvement before stopping early.
    lr_patience, lr_factor : int, float
        Plateau schedule: multiply the learning rate by ``lr_factor`` after ``lr_patience`` flat epochs.
    train_limit, val_limit : int or None
        Use at most this many images a class (a deterministic, spread-out subset; in a data mix, a class of
        each source); for quick runs.
    max_steps_per_epoch : int or None
        End each epoch after this many batches (the schedule is sized to match); ``None`` runs every batch.
    checkpoint_every_steps : int
        Besides the checkpoint at the end of every epoch, save one every this many batches (0: only at
        epoch ends), so ``--resume`` loses little work.
    cache : bool
        Keep decoded uint8 images in a memory-mapped file so later epochs skip JPEG decoding.
    cache_dir : str
        Where that cache lives; never inside the data folder, which may be read-only.
    strict : bool
        Fail on the first unreadable image instead of skipping it with a count.
    class_names : tuple of str
        Folder names of the real (label 0) and fake (label 1) classes.
    channels_last : bool
        NHWC memory format: 1.24x the training img/s of NCHW for notebook-cnn at 220 px on an idle 2-core
        CPU (see ``benchmarks/RESULTS.md``).
    device : str
        ``cpu`` or ``cuda``; resolved once and passed down.
    runs_dir : str
        Parent folder of run folders.
    run_name : str or None
        Run id; ``None`` makes one from the time, model and seed.
    tracking : str
        ``none``, or ``mlflow`` to mirror the run into MLflow (needs ``pip install 'deepfake-detect[mlflow]'``;
        see :mod:`deepfake_detect.training.tracking`). It never changes the weights.
    tracking_uri : str or None
        The MLflow tracking URI; ``None`` takes ``MLFLOW_TRACKING_URI`` from the ``env`` :func:`load_config` is
        passed (only with ``tracking="mlflow"``), else a local ``sqlite:///<runs_dir>/mlflow.db``. Kept as given
        (in ``config.json`` too): put credentials in ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, not in the URI.
    """

    data: str | tuple[str, ...] | None = None
    manifest: bool = False
    model: str = "notebook-cnn"
    pretrained: bool = True
    init: str | None = None
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "plateau"
    warmup_epochs: float = 0.0
    image_size: int | None = None
    resize_mode: str | None = None
    base_size: int = 256
    draft: bool = True
    hflip: bool = True
    # The augmentations: Augmentation's fields with an aug_ prefix, their defaults taken from there.
    aug_jpeg_p: float = Augmentation.jpeg_p
    aug_blur_p: float = Augmentation.blur_p
    aug_rescale_p: float = Augmentation.rescale_p
    aug_color_p: float = Augmentation.color_p
    aug_jpeg_quality: tuple[int, int] = Augmentation.jpeg_quality
    aug_blur_sigma: tuple[float, float] = Augmentation.blur_sigma
    aug_rescale: tuple[float, float] = Augmentation.rescale
    aug_brightness: float = Augmentation.brightness
    aug_contrast: float = Augmentation.contrast
    aug_saturation: float = Augmentation.saturation
    aug_rotate_p: float = Augmentation.rotate_p
    aug_rotate_degrees: tuple[float, float] = Augmentation.rotate_degrees
    aug_mask_p: float = Augmentation.mask_p
    aug_mask_ratio: tuple[float, float] = Augmentation.mask_ratio
    aug_mask_patch: float = Augmentation.mask_patch
    aug_zoom_p: float = Augmentation.zoom_p
    aug_zoom_scale: tuple[float, float] = Augmentation.zoom_scale
    aug_djpeg_p: float = Augmentation.djpeg_p
    aug_djpeg_quality: tuple[int, int] = Augmentation.djpeg_quality
    aug_resample_p: float = Augmentation.resample_p
    aug_resample_scale: tuple[float, float] = Augmentation.resample_scale
    source_adversary: float = 0.0
    source_adversary_ramp: bool = True
    ema_decay: float = 0.0
    tta_flip: bool = False
    abstain_precision: float = 0.99
    threshold_max_fpr: float | None = None
    seed: int = 42
    threads: int | None = None
    num_workers: int = 0
    monitor: str = "roc_auc"
    patience: int = 5
    lr_patience: int = 2
    lr_factor: float = 0.5
    train_limit: int | None = None
    val_limit: int | None = None
    max_steps_per_epoch: int | None = None
    checkpoint_every_steps: int = 0
    cache: bool = False
    cache_dir: str = DEFAULT_CACHE_DIR
    strict: bool = False
    class_names: tuple[str, str] = field(default=("real", "fake"))
    channels_last: bool = True
    device: str = "cpu"
    runs_dir: str = "runs"
    run_name: str | None = None
    tracking: str = "none"
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _normal_data(self.data))  # frozen: normalised once, here
        _check_types(self)
        _check_choice("optimizer", self.optimizer, ("adam", "adamw", "sgd"))
        _check_choice("schedule", self.schedule, ("plateau", "cosine", "onecycle"))
        _check_choice("monitor", self.monitor, ("roc_auc", "accuracy", "f1", "loss"))
        _check_choice("tracking", self.tracking, ("none", "mlflow"))
        if self.resize_mode is not None:
            _check_choice("resize_mode", self.resize_mode, ("resize", "crop"))
        for name in ("epochs", "batch_size", "patience", "base_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(
                f"max_steps_per_epoch must be at least 1 or None, got {self.max_steps_per_epoch}"
            )
        if self.checkpoint_every_steps < 0:
            raise ConfigError(
                f"checkpoint_every_steps must be 0 (off) or more, got {self.checkpoint_every_steps}"
            )
        if not 0.0 <= self.source_adversary < math.inf:
            raise ConfigError(
                "source_adversary is the weight of the reversed source gradient: 0 (off) or a positive "
                f"number such as 0.3; got {self.source_adversary}"
            )
        if self.source_adversary and isinstance(self.data, str):
            # Said now, not after minutes of fingerprinting: one folder has one source a class.
            raise ConfigError(
                "source_adversary tells apart the sources of a data mix, so it needs two --data sources or "
                "more; train with source_adversary=0 or add a source"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.5 <= self.abstain_precision <= 1.0:
            raise ConfigError(f"abstain_precision must be in [0.5, 1], got {self.abstain_precision}")
        if self.threshold_max_fpr is not None and not 0.0 < self.threshold_max_fpr < 1.0:
            raise ConfigError(f"threshold_max_fpr must be in (0, 1) or unset, got {self.threshold_max_fpr}")
        _check_augmentation(self)
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if len(self.class_names) != 2 or self.class_names[0] == self.class_names[1]:
            raise ConfigError(f"class_names must be two different folder names, got {self.class_names}")

    def data_folder(self) -> str:
        """The data set folder of a one-folder config, refusing a config that names none or a mix.

        Raises
        ------
        ConfigError
            When ``data`` is None, or names several sources (use :meth:`data_sources`).

        Examples
        --------
        >>> TrainConfig(data="faces").data_folder()
        'faces'
        >>> TrainConfig().data_folder()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        deepfake_detect.core.exceptions.ConfigError: no data set given: pass --data or set DEEPFAKE_DATA ...
        """
        sources = self.data_sources()
        if len(sources) > 1:
            names = ", ".join(s.name for s in sources)
            raise ConfigError(
                f"data names a mix of {len(sources)} sources ({names}), not one data set folder"
            )
        return sources[0].root

    def data_sources(self) -> list[Source]:
        """The data mix: every source folder with its weight and name (one source for a one-folder config).

        Raises
        ------
        ConfigError
            When ``data`` is None.

        Examples
        --------
        >>> [(s.name, s.weight) for s in TrainConfig(data=["d/faces140k", "d/sd21-sdfd:2"]).data_sources()]
        [('faces140k', 1.0), ('sd21-sdfd', 2.0)]
        >>> TrainConfig(data=["faces"]).data
        'faces'
        """
        if self.data is None:
            raise ConfigError(MISSING_DATA)
        return parse_sources(self.data)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied and type-checked."""
        return _build({**self.to_dict(), **changes})


# The augmentation fields that are (low, high) ranges and the closed interval each end must lie in.
_AUG_RANGES = {
    "aug_jpeg_quality": (1, 100),
    "aug_blur_sigma": (0.0, float("inf")),
    "aug_rescale": (0.0, float("inf")),
    "aug_rotate_degrees": (-180.0, 180.0),
    "aug_mask_ratio": (0.0, 1.0),
    "aug_zoom_scale": (0.0, 1.0),
    "aug_djpeg_quality": (1, 100),
    "aug_resample_scale": (0.0, float("inf")),
}
# Ranges whose low end must be strictly above the interval's bottom: a zero factor or crop is no image.
_AUG_POSITIVE = ("aug_rescale", "aug_zoom_scale", "aug_resample_scale")


def _check_augmentation(cfg: TrainConfig) -> None:
    """Refuse augmentation settings that cannot be drawn from, with the field's name and value."""
    for name in (f.name for f in dataclasses.fields(cfg) if f.name.startswith("aug_")):
        value = getattr(cfg, name)
        if name.endswith("_p") and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} is a probability in [0, 1], got {value}")
    for name in ("aug_brightness", "aug_contrast", "aug_saturation"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(f"{name} is a jitter strength in [0, 1], got {getattr(cfg, name)}")
    if not 0.0 < cfg.aug_mask_patch <= 1.0:
        raise ConfigError(f"aug_mask_patch is a share of the image side in (0, 1], got {cfg.aug_mask_patch}")
    for name, (bottom, top) in _AUG_RANGES.items():
        _check_range(name, getattr(cfg, name), bottom, top, open_bottom=name in _AUG_POSITIVE)


def _check_range(name: str, value: tuple, bottom: float, top: float, *, open_bottom: bool) -> None:
    if len(value) != 2:
        raise ConfigError(f"{name} expects two values low,high; got {value}")
    low, high = value
    if low > high:
        raise ConfigError(f"{name} must be ordered low <= high, got {low},{high}")
    if low < bottom or (open_bottom and low == bottom) or high > top:
        lowest = f"above {bottom:g}" if open_bottom else f"at least {bottom:g}"
        limits = lowest if top == float("inf") else f"{lowest} and at most {top:g}"
        raise ConfigError(f"{name} must be {limits}, got {low},{high}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def config_fields() -> dict[str, Any]:
    """Map each config field name to its resolved type annotation."""
    return dict(_field_types())


@functools.cache
def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _check_types(cfg: TrainConfig) -> None:
    """Refuse a field whose value is not of its annotated type (Python callers pass values unparsed); keep a
    list as a tuple, a path as a string and a NumPy number as a Python one."""
    for name, annotation in _field_types().items():
        value = getattr(cfg, name)
        checked = _checked(name, value, annotation)
        if checked is not value:
            object.__setattr__(cfg, name, checked)  # frozen: normalised once, here


def _type_name(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return " or ".join("None" if a is type(None) else _type_name(a) for a in args)
    return (
        "true or false (a bool)" if annotation is bool else getattr(annotation, "__name__", str(annotation))
    )


def _checked(name: str, value: Any, annotation: Any) -> Any:
    """``value`` if it is of type ``annotation`` (normalised as :func:`_check_types` says), else ConfigError.

    Unlike :func:`_coerce` nothing is parsed: ``"3"`` is not an int here.
    """
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        for kind in (a for a in typing.get_args(annotation) if a is not type(None)):
            with contextlib.suppress(ConfigError):
                return _checked(name, value, kind)
    elif origin is tuple:
        return _checked_tuple(name, value, typing.get_args(annotation))
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation in (int, float) and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):  # an int is a float too, as in JSON
            return value if type(value) is int else int(value)
        if annotation is float:
            return value if isinstance(value, float) else float(value)
    elif annotation is str and isinstance(value, str | os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"{name} expects {_type_name(annotation)}; got {value!r} ({type(value).__name__})")


def _checked_tuple(name: str, value: Any, kinds: tuple) -> tuple:
    if not isinstance(value, list | tuple):
        count = "any number of" if kinds[-1:] == (Ellipsis,) else str(len(kinds))
        raise ConfigError(f"{name} expects {count} values; got {value!r}")
    if kinds[-1:] == (Ellipsis,):
        kinds = (kinds[0],) * len(value)
    if len(value) != len(kinds):
        raise ConfigError(f"{name} expects {len(kinds)} values; got {value!r}")
    try:
        items = tuple(_checked(name, v, k) for v, k in zip(value, kinds, strict=True))
    except ConfigError:
        raise ConfigError(f"{name} expects {_type_name(kinds[0])} values; got {value!r}") from None
    return items


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` (from JSON, TOML or a ``--set`` string) to ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        sequences = [a for a in args if typing.get_origin(a) is tuple]
        if isinstance(value, list | tuple) and sequences:  # e.g. data: one folder or a list of them
            return _coerce(name, value, sequences[0])
        return _coerce(name, value, args[0])
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{name} expects a list like a,b; got {value!r}")
        kinds = typing.get_args(annotation)
        if kinds[-1:] == (Ellipsis,):  # tuple[str, ...]: any number of items of one type
            return tuple(_coerce(name, v, kinds[0]) for v in items)
        if Ellipsis not in kinds and len(items) != len(kinds):
            raise ConfigError(f"{name} expects {len(kinds)} values separated by commas; got {value!r}")
        return tuple(_coerce(name, v, t) for v, t in zip(items, kinds, strict=False))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{name} expects true or false; got {value!r}")
    try:
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if annotation in (int, float) and isinstance(value, bool):
            raise ValueError
        return annotation(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} expects {annotation.__name__}; got {value!r}") from None


def _build(values: dict[str, Any]) -> TrainConfig:
    fields = config_fields()
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}")
    return TrainConfig(**{k: _coerce(k, v, fields[k]) for k, v in values.items()})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The key = value pairs of a ``.json`` or ``.toml`` config file, not yet checked against the fields.

    Raises
    ------
    ConfigError
        When the file is missing, does not parse, or does not hold an object.

    Examples
    --------
    >>> read_config_file("/no/such.toml")
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.ConfigError: config file not found: /no/such.toml
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot parse config file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object of key = value pairs")
    return data


def parse_set_pairs(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["lr=0.01", "hflip=false"]`` into a dict, rejecting malformed items.

    ``data=a,b:2`` gives a data mix: the list ``["a", "b:2"]``.

    Examples
    --------
    >>> parse_set_pairs(["lr=0.01", "data=faces140k,sources/sd21-sdfd:2"])
    {'lr': '0.01', 'data': ['faces140k', 'sources/sd21-sdfd:2']}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects name=value; got {pair!r}")
        key, text = name.strip().replace("-", "_"), value.strip()
        out[key] = (
            [v.strip() for v in text.split(",") if v.strip()] if key == "data" and "," in text else text
        )
    return out


def load_config(
    file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> TrainConfig:
    """Resolve a config from defaults, then the environment, a file, flags, then ``--set`` pairs.

    Parameters
    ----------
    file : path, optional
        A ``.json`` or ``.toml`` file of config keys.
    flags : dict, optional
        Values from explicit CLI flags; ``None`` values mean "not given" and are ignored.
    sets : list of str, optional
        ``name=value`` strings; any config field may be set this way.
    env : mapping, optional
        Environment variables to read (the command line passes ``os.environ``); only :data:`DATA_ENV`
        (``DEEPFAKE_DATA``) is used, as the data set folder when the file, flags and sets give none, and
        :data:`TRACKING_URI_ENV` (``MLFLOW_TRACKING_URI``), as ``tracking_uri`` likewise when ``tracking`` is
        ``mlflow`` (:func:`tracking_uri_from_env`). Nothing is read from
        the environment unless it is passed here.

    Returns
    -------
    TrainConfig

    Examples
    --------
    >>> load_config(flags={"epochs": 3}, sets=["lr=0.01"]).lr
    0.01
    >>> load_config(env={"DEEPFAKE_DATA": "/data/faces"}).data
    '/data/faces'
    >>> load_config(flags={"data": "here"}, env={"DEEPFAKE_DATA": "/data/faces"}).data
    'here'
    >>> load_config(sets=["tracking=mlflow"], env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}).tracking_uri
    'http://127.0.0.1:5000'
    """
    values: dict[str, Any] = TrainConfig().to_dict()
    if env is not None and env.get(DATA_ENV):
        values["data"] = env[DATA_ENV]
    if file is not None:
        values.update(read_config_file(file))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    values.update(parse_set_pairs(sets))
    return tracking_uri_from_env(_build(values), env)


def tracking_uri_from_env(cfg: TrainConfig, env: Mapping[str, str] | None) -> TrainConfig:
    """``cfg`` with ``tracking_uri`` from :data:`TRACKING_URI_ENV` in ``env`` when it tracks into MLflow and
    gives no URI of its own; else ``cfg`` unchanged (an untracked run records no URI).

    Examples
    --------
    >>> env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    >>> tracking_uri_from_env(TrainConfig(tracking="mlflow"), env).tracking_uri
    'http://127.0.0.1:5000'
    >>> tracking_uri_from_env(TrainConfig(), env).tracking_uri is None
    True
    """
    if env is None or cfg.tracking != "mlflow" or cfg.tracking_uri or not env.get(TRACKING_URI_ENV):
        return cfg
    return cfg.replace(tracking_uri=env[TRACKING_URI_ENV])


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by :meth:`TrainConfig.to_dict` (unknown keys are rejected)."""
    return _build({**TrainConfig().to_dict(), **values})
