"""The one typed configuration that flows from the CLI down to training.

A run is fully described by a frozen :class:`TrainConfig`. Values come, in order of precedence, from the
dataclass defaults, ``DEEPFAKE_DATA`` in the environment the caller passes (the data set folder only), a JSON
or TOML file (``--config``), the common flags, then ``--set name=value`` pairs.
Unknown keys and values of the wrong type are rejected with a message that says what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_detect.core.exceptions import ConfigError

__all__ = [
    "ConfigError",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_fields",
    "read_config_file",
    "parse_set_pairs",
    "DATA_ENV",
]

#: The environment variable :func:`load_config` takes the data set folder from when none is given.
DATA_ENV = "DEEPFAKE_DATA"
MISSING_DATA = f"no data set given: pass --data or set {DATA_ENV} (in Python: TrainConfig(data=...))"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the outcome of one training run.

    Parameters
    ----------
    data : str or None
        Data set folder holding ``train/``, ``valid/`` and ``test/`` (or the Kaggle nesting above them), or
        ``train.csv``/``valid.csv``/``test.csv`` manifests. ``None`` until given: :func:`load_config` takes
        ``DEEPFAKE_DATA`` from the ``env`` it is passed, and training refuses a config without one.
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
    aug_jpeg_p, aug_blur_p, aug_rescale_p, aug_color_p : float
        Probabilities of seeded JPEG re-compression (quality 30-95), Gaussian blur (sigma 0.2-1.5 px),
        down- and up-scaling (x0.5-0.9) and colour jitter during training; 0 turns a step off.
    ema_decay : float
        Keep an exponential moving average of the weights with this decay (e.g. 0.999) and validate and
        save the average; 0 turns it off.
    tta_flip : bool
        Average the logits of each image and its mirror image at validation and inference.
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
        Use at most this many images a class (a deterministic, spread-out subset); for quick runs.
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
    """

    data: str | None = None
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
    aug_jpeg_p: float = 0.0
    aug_blur_p: float = 0.0
    aug_rescale_p: float = 0.0
    aug_color_p: float = 0.0
    ema_decay: float = 0.0
    tta_flip: bool = False
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
    cache_dir: str = "~/.cache/deepfake-detect"
    strict: bool = False
    class_names: tuple[str, str] = field(default=("real", "fake"))
    channels_last: bool = True
    device: str = "cpu"
    runs_dir: str = "runs"
    run_name: str | None = None

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, ("adam", "adamw", "sgd"))
        _check_choice("schedule", self.schedule, ("plateau", "cosine", "onecycle"))
        _check_choice("monitor", self.monitor, ("roc_auc", "accuracy", "f1", "loss"))
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
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("aug_jpeg_p", "aug_blur_p", "aug_rescale_p", "aug_color_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if len(self.class_names) != 2 or self.class_names[0] == self.class_names[1]:
            raise ConfigError(f"class_names must be two different folder names, got {self.class_names}")

    def data_folder(self) -> str:
        """The data set folder, refusing a config that names none.

        Raises
        ------
        ConfigError
            When ``data`` is None.

        Examples
        --------
        >>> TrainConfig(data="faces").data_folder()
        'faces'
        >>> TrainConfig().data_folder()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        deepfake_detect.core.exceptions.ConfigError: no data set given: pass --data or set DEEPFAKE_DATA ...
        """
        if self.data is None:
            raise ConfigError(MISSING_DATA)
        return self.data

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied and type-checked."""
        return _build({**self.to_dict(), **changes})


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def config_fields() -> dict[str, Any]:
    """Map each config field name to its resolved type annotation."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` (from JSON, TOML or a ``--set`` string) to ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(name, value, args[0])
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{name} expects a list like a,b; got {value!r}")
        return tuple(_coerce(name, v, t) for v, t in zip(items, typing.get_args(annotation), strict=False))
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


def parse_set_pairs(pairs: list[str] | None) -> dict[str, str]:
    """Turn ``["lr=0.01", "hflip=false"]`` into a dict, rejecting malformed items."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects name=value; got {pair!r}")
        out[name.strip().replace("-", "_")] = value.strip()
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
        (``DEEPFAKE_DATA``) is used, as the data set folder when the file, flags and sets give none. Nothing
        is read from the environment unless it is passed here.

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
    """
    values: dict[str, Any] = TrainConfig().to_dict()
    if env is not None and env.get(DATA_ENV):
        values["data"] = env[DATA_ENV]
    if file is not None:
        values.update(read_config_file(file))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    values.update(parse_set_pairs(sets))
    return _build(values)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by :meth:`TrainConfig.to_dict` (unknown keys are rejected)."""
    return _build({**TrainConfig().to_dict(), **values})
