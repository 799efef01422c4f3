"""Resumable training: the whole state of a run, saved atomically as safetensors plus JSON, never pickle.

A training checkpoint holds everything that decides what happens next: the weights, the optimiser's moments,
the step schedule and the plateau schedule, the EMA weights, the best weights so far, early-stopping counters,
the history rows, every random generator (Python, NumPy, torch, CUDA, the DataLoaders'), and the data-order
position (epoch and batch within it) with the running totals of a half-done epoch. The data order is a pure
function of ``(seed, epoch)`` and augmentation of ``(seed, epoch, index)``, so resuming mid-epoch skips the
epoch's first batches without drawing anything, and a resumed run ends bit-identical to an uninterrupted one.

Layout, in the run's checkpoint folder (``RunDir(run).checkpoints``)::

    last.safetensors   the newest checkpoint
    prev.safetensors   the one before, kept in case ``last`` is damaged

The folder is deleted when the run finishes without interruption (the run's weights then hold the result);
an interrupted run keeps it for ``--resume``.

Each file holds the tensors (named ``model/...``, ``optimizer/<param>/<key>``, ``ema/...``, ``best/...``,
``adversary/...`` (the source head, when the run has one), ``progress/...``) and, in its header, the JSON state and a SHA-256 over the tensors and that JSON. A write goes
to a temporary file that is fsynced, then ``last`` becomes ``prev`` and the temporary file becomes ``last``
(both atomic renames), so a kill at any instant leaves at least one complete, verifiable checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from deepfake_detect.core.checkpoint import CheckpointError, tensor_hash
from deepfake_detect.core.config import (
    NEUTRAL_KEYS,
    ConfigError,
    TrainConfig,
    config_from_dict,
    parse_set_pairs,
    read_config_file,
    tracking_uri_from_env,
)
from deepfake_detect.core.runs import RunDir

__all__ = [
    "FORMAT",
    "NEUTRAL_KEYS",
    "EpochProgress",
    "TrainState",
    "Checkpointer",
    "write_state",
    "read_state",
    "find_run_to_resume",
    "resume_config",
    "config_differences",
]

log = logging.getLogger(__name__)

FORMAT = "deepfake-detect-train-state/1"
LAST, PREV = "last.safetensors", "prev.safetensors"


@dataclass
class EpochProgress:
    """Running totals of one training epoch, so it can stop and restart between batches.

    Attributes
    ----------
    lr : float
        Learning rate at the start of the epoch (what the run's history reports).
    batches : int
        Batches consumed from this epoch's order, including all-unreadable ones.
    seen, n_bad : int
        Images trained on and images skipped as unreadable.
    seconds : float
        Training time spent in this epoch so far.
    losses : list of float
        ``loss * batch size`` of each step.
    logits, labels : list of Tensor
        Training logits and labels of each step, for the epoch's accuracy and AUC.
    source_loss, source_hits, source_counted, source_weight : float, int, int, float
        The source adversary's running totals (see :class:`~deepfake_detect.training.adversary.SourceBatch`):
        summed cross-entropy, right guesses, samples counted, and the reversal weight of the last step; zero
        without one.
    source_counts : list of list of int
        The samples counted by class and source (``[]`` until the first step with the adversary).
    """

    lr: float
    batches: int = 0
    seen: int = 0
    n_bad: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    source_loss: float = 0.0
    source_hits: int = 0
    source_counted: int = 0
    source_weight: float = 0.0
    source_counts: list[list[int]] = field(default_factory=list)


@dataclass
class TrainState:
    """Everything in a training run that changes as it trains.

    ``stopper`` is an ``EarlyStopping`` and ``ema`` a ``WeightAverage`` (see :mod:`deepfake_detect.training.parts`);
    ``generators`` are the DataLoaders' generators by name, and ``epoch_rng`` is the train loader's generator
    state at the start of the current epoch (the loader draws from it once an epoch, when iteration starts).
    ``adversary`` is the run's :class:`~deepfake_detect.training.adversary.SourceAdversary`, or None: its head
    is saved with the state (never with the model).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    plateau: Any
    stopper: Any
    ema: Any
    generators: dict[str, torch.Generator]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    epoch: int = 0
    progress: EpochProgress | None = None
    elapsed: float = 0.0
    epoch_rng: torch.Tensor | None = None
    adversary: Any = None

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, batches done in it)``: where training goes on from."""
        return self.epoch, self.progress.batches if self.progress is not None else 0


# --------------------------------------------------------------------------- random generators


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _rng_state(state: TrainState) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    generators = {name: _b64(g.get_state()) for name, g in state.generators.items()}
    if state.progress is not None and state.epoch_rng is not None:
        generators["train"] = _b64(state.epoch_rng)  # mid-epoch: replay the epoch's iterator from its start
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            **numpy_state,
            "state": {**numpy_state["state"], "key": numpy_state["state"]["key"].tolist()},
        },
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_initialized() else [],
        "generators": generators,
    }


def _set_rng_state(state: TrainState, rng: dict[str, Any]) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = rng["numpy"]
    key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    torch.set_rng_state(_unb64(rng["torch"]))
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in rng["cuda"]])
    for name, text in rng["generators"].items():
        if name in state.generators:
            state.generators[name].set_state(_unb64(text))


# --------------------------------------------------------------------------- state <-> tensors + JSON


def _clone(tensor: torch.Tensor) -> torch.Tensor:
    # Contiguous CPU copies: safetensors refuses shared storage, and channels_last must not leak into files.
    return tensor.detach().cpu().contiguous().clone()


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": _clone(v) for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into named tensors and a JSON part."""
    full = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in full["state"].items():
        scalars[str(index)] = {}
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = _clone(value)
            else:
                scalars[str(index)][key] = value
    return tensors, {"param_groups": full["param_groups"], "state": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], doc: dict) -> None:
    per_param: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in doc["state"].items()}
    for name, tensor in _unprefixed("optimizer", tensors).items():
        index, key = name.split("/", 1)
        per_param.setdefault(int(index), {})[key] = tensor
    # JSON turned tuples (Adam's betas) into lists; give them back their type.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in doc["param_groups"]
    ]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for param in params:
        moments = optimizer.state.get(param, {})
        for key, value in moments.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.dim() > 0:
                # The same memory format as the parameter (channels_last), as when the moments were created.
                moments[key] = torch.empty_like(param).copy_(value)


_PROGRESS_NUMBERS = ("lr", "batches", "seen", "n_bad", "seconds", "losses")
# A checkpoint written before the source adversary lacks these; EpochProgress's zeros then stand in.
_SOURCE_NUMBERS = ("source_loss", "source_hits", "source_counted", "source_weight", "source_counts")


def _progress_payload(progress: EpochProgress | None) -> tuple[dict[str, torch.Tensor], dict | None]:
    if progress is None:
        return {}, None
    tensors = {}
    if progress.logits:
        tensors["progress/logits"] = torch.cat(progress.logits)
        tensors["progress/labels"] = torch.cat(progress.labels)
    doc = {k: getattr(progress, k) for k in (*_PROGRESS_NUMBERS, *_SOURCE_NUMBERS)}
    return tensors, doc


def _load_progress(tensors: dict[str, torch.Tensor], doc: dict | None) -> EpochProgress | None:
    if doc is None:
        return None
    progress = EpochProgress(**doc)
    if "progress/logits" in tensors:
        progress.logits, progress.labels = [tensors["progress/logits"]], [tensors["progress/labels"]]
    return progress


def _payload(state: TrainState, meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and JSON document of a state; ``meta`` (config, data fingerprint, world size) goes in as is."""
    tensors = _prefixed("model", state.model.state_dict())
    optim_tensors, optim_doc = _optimizer_payload(state.optimizer)
    progress_tensors, progress_doc = _progress_payload(state.progress)
    tensors.update(optim_tensors | progress_tensors)
    if state.ema is not None:
        tensors.update(_prefixed("ema", state.ema.module.state_dict()))
    if state.best_state is not None:
        tensors.update(_prefixed("best", state.best_state))
    if state.adversary is not None:
        tensors.update(_prefixed("adversary", state.adversary.head.state_dict()))
    stopper = state.stopper
    doc = {
        **meta,
        "format": FORMAT,
        "position": {"epoch": state.position[0], "batch": state.position[1]},
        "optimizer": optim_doc,
        "schedule": state.schedule.state_dict() if state.schedule is not None else None,
        "plateau": state.plateau.state_dict() if state.plateau is not None else None,
        "stopper": {"best": stopper.best, "best_epoch": stopper.best_epoch, "bad_epochs": stopper.bad_epochs},
        "history": state.history,
        "progress": progress_doc,
        "elapsed": state.elapsed,
        "has_best": state.best_state is not None,
        "rng": _rng_state(state),
    }
    return tensors, doc


def restore(state: TrainState, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    """Put a checkpoint's tensors and JSON back into ``state``, random generators last."""
    state.model.load_state_dict(_unprefixed("model", tensors))
    _load_optimizer(state.optimizer, tensors, doc["optimizer"])
    if state.schedule is not None:
        state.schedule.load_state_dict(doc["schedule"])
    if state.plateau is not None:
        state.plateau.load_state_dict(doc["plateau"])
    if state.ema is not None:
        state.ema.module.load_state_dict(_unprefixed("ema", tensors))
    if state.adversary is not None:
        state.adversary.head.load_state_dict(_unprefixed("adversary", tensors))
    for key, value in doc["stopper"].items():
        setattr(state.stopper, key, value)
    state.best_state = _unprefixed("best", tensors) if doc["has_best"] else None
    state.history = doc["history"]
    state.epoch = doc["position"]["epoch"]
    state.progress = _load_progress(tensors, doc["progress"])
    state.elapsed = doc["elapsed"]
    _set_rng_state(state, doc["rng"])


# --------------------------------------------------------------------------- files


def _checksum(tensors: dict[str, torch.Tensor], text: str) -> str:
    return hashlib.sha256(f"{tensor_hash(tensors)}\n{text}".encode()).hexdigest()


def _fsync_folder(folder: Path) -> None:
    # The renames are only durable once the folder's entry table is on disk.
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_state(folder: str | Path, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> Path:
    """Write a checkpoint atomically into ``folder``: temporary file, fsync, ``last`` -> ``prev``, rename.

    Returns
    -------
    Path
        The new ``last.safetensors``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, sort_keys=True)
    tmp, last = folder / (LAST + ".tmp"), folder / LAST
    save_file(
        tensors, str(tmp), metadata={"format": FORMAT, "state": text, "sha256": _checksum(tensors, text)}
    )
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    if last.exists():
        os.replace(last, folder / PREV)
    os.replace(tmp, last)
    _fsync_folder(folder)
    return last


def read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify one checkpoint file.

    Raises
    ------
    CheckpointError
        When the file is missing, truncated, not a training checkpoint, or fails its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is unreadable ({err}); it may be truncated") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint of format {FORMAT!r}")
    if _checksum(tensors, header.get("state", "")) != header.get("sha256"):
        raise CheckpointError(f"{path} fails its SHA-256 checksum; the file is corrupt")
    return tensors, json.loads(header["state"])


class Checkpointer:
    """Saves training state into one run's ``checkpoints/`` folder and finds the newest good one.

    Parameters
    ----------
    folder : path
        The run's checkpoint folder, ``RunDir(run).checkpoints``.
    meta : dict
        JSON stored with every checkpoint and checked on resume: ``config``, ``data_fingerprint`` (a data
        mix's combined one), ``world_size``; ``data_fingerprints`` (one a source) names what changed.
    enabled : bool
        False on the ranks of a distributed run other than 0, which never write.
    """

    def __init__(self, folder: str | Path, meta: dict[str, Any], *, enabled: bool = True):
        self.folder = Path(folder)
        self.meta = meta
        self.enabled = enabled

    def save(self, state: TrainState) -> None:
        """Write ``state`` as the new ``last`` checkpoint (a no-op when disabled)."""
        if self.enabled:
            write_state(self.folder, *_payload(state, self.meta))

    def discard(self) -> None:
        """Delete the checkpoints once the run has finished: the run's weights then hold the result."""
        if self.enabled:
            shutil.rmtree(self.folder, ignore_errors=True)

    def load_latest(self) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
        """The newest checkpoint that verifies: ``last``, else ``prev`` (saying why ``last`` was passed over).

        Raises
        ------
        CheckpointError
            When neither verifies; the message gives each one's reason.
        """
        reasons = []
        for name in (LAST, PREV):
            try:
                tensors, doc = read_state(self.folder / name)
            except CheckpointError as err:
                reasons.append(str(err))
                if name == LAST and (self.folder / LAST).exists():
                    log.warning("%s; falling back to %s", err, PREV)
                continue
            return tensors, doc, self.folder / name
        raise CheckpointError(f"no usable training checkpoint in {self.folder}: " + "; ".join(reasons))

    def restore(self, state: TrainState) -> dict[str, Any]:
        """Load the newest good checkpoint into ``state`` after checking it belongs to this run.

        Returns
        -------
        dict
            The checkpoint's JSON document.
        """
        tensors, doc, path = self.load_latest()
        differences = config_differences(
            config_from_dict(doc["config"]), config_from_dict(self.meta["config"])
        )
        if differences:
            raise ConfigError(f"{path} was saved with a different config: {differences}")
        for key in ("data_fingerprint", "world_size"):
            if doc[key] != self.meta[key]:
                raise ConfigError(
                    f"{path} was saved with {key} {doc[key]!r}, this run has {self.meta[key]!r}"
                    f"{_changed_sources(doc, self.meta)}; "
                    "a resumed run must see the same data and the same number of processes"
                )
        restore(state, tensors, doc)
        log.info("resuming from %s at epoch %d, batch %d", path, *state.position)
        return doc


def _changed_sources(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """`` (changed sources: a, b)`` when both checkpoints name their data mix's sources, else ''.

    Examples
    --------
    >>> _changed_sources({"data_fingerprints": {"a": "1", "b": "2"}}, {"data_fingerprints": {"a": "1", "c": "3"}})
    ' (changed sources: b, c)'
    """
    before, after = saved.get("data_fingerprints"), now.get("data_fingerprints")
    if not before or not after:  # checkpoints from before data mixes record one fingerprint only
        return ""
    changed = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    return f" (changed sources: {', '.join(changed)})" if changed else ""


# --------------------------------------------------------------------------- which run, which config


def find_run_to_resume(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The folder of an unfinished run with checkpoints, from its path or its id (see :meth:`RunDir.find_resumable`).

    Raises
    ------
    RunError
        When no such folder exists, it has no checkpoints, or the run already finished.

    Examples
    --------
    >>> find_run_to_resume("no-such-run", runs_dir="/no/such/runs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.RunError: no run folder with a ...
    """
    return RunDir.find_resumable(run, runs_dir).path


def config_differences(saved: TrainConfig, wanted: TrainConfig) -> str:
    """Human-readable ``key: saved -> wanted`` list of the result-changing keys that differ ('' if none)."""
    a, b = saved.to_dict(), wanted.to_dict()
    keys = [k for k in a if a[k] != b[k] and k not in NEUTRAL_KEYS]
    return ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in keys)


def resume_config(
    run: str | Path,
    *,
    runs_dir: str | Path = "runs",
    file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Path, TrainConfig]:
    """The run folder to resume and the config it was started with, with any overrides checked.

    Overrides may only touch :data:`NEUTRAL_KEYS`; anything else would not give the run that was started.
    ``env`` (the command line passes ``os.environ``) gives ``tracking_uri`` as for a new run
    (:func:`~deepfake_detect.core.config.tracking_uri_from_env`) when the resumed config tracks into MLflow,
    neither it nor the overrides name a store, and the run folder records no MLflow run (one it does record,
    in the local store, is continued there).

    Raises
    ------
    ConfigError
        When an override changes a key that changes results.
    """
    run = RunDir.find_resumable(run, runs_dir)
    stored = run.read_config()
    recorded = ("data_root", "data_sources", "preprocess")  # written beside the config, not config keys
    saved = config_from_dict({k: v for k, v in stored.items() if k not in recorded})
    overrides: dict[str, Any] = dict(read_config_file(file)) if file is not None else {}
    overrides.update({k: v for k, v in (flags or {}).items() if v is not None})
    overrides.update(parse_set_pairs(sets))
    wanted = saved.replace(**overrides)
    differences = config_differences(saved, wanted)
    if differences:
        raise ConfigError(
            f"--resume continues {run.name} with the config it was started with; these differ: "
            f"{differences}. Start a new run to change them (only {', '.join(NEUTRAL_KEYS)} may change)"
        )
    if not run.mlflow_run.is_file():
        wanted = tracking_uri_from_env(wanted, env)
    return run.path, wanted
