"""Checkpoints: safetensors weights with their metadata as JSON in the same file's header. Never pickle.

One ``.safetensors`` file is enough to rebuild a detector: it names the architecture and carries the
input size, preprocessing, class names, threshold, temperature, training config, data fingerprint, code
version and a hash of the tensors that loading verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from deepfake_detect.core.exceptions import CheckpointError, RunError
from deepfake_detect.core.runs import RunDir

__all__ = [
    "CheckpointError",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "read_metadata",
    "resolve_weights",
    "tensor_hash",
]

FORMAT = "deepfake-detect/1"
_META_KEY = "deepfake_detect"
REQUIRED_KEYS = (
    "format",
    "model",
    "preprocess",
    "class_names",
    "threshold_logit",
    "temperature",
    "tensor_sha256",
)


def tensor_hash(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' sorted names, dtypes, shapes and bytes (not over the file).

    The file also holds times and the code version, so two bit-identical trainings give different files but
    the same tensor hash.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _plain_state(model_or_state: torch.nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    # Clone so channels_last or shared storage never leaks into the file layout.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module | dict, metadata: dict[str, Any]) -> str:
    """Write weights plus metadata atomically (temporary file, fsync, rename); return the tensor hash.

    Parameters
    ----------
    path : path
        Destination ``.safetensors`` file.
    model : nn.Module or state dict
    metadata : dict
        JSON-serialisable; ``format`` and ``tensor_sha256`` are filled in here.
    """
    state = _plain_state(model)
    meta = {**metadata, "format": FORMAT, "tensor_sha256": tensor_hash(state)}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return meta["tensor_sha256"]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and validate only the metadata of a checkpoint (fast: the tensors are not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); is it truncated?"
        ) from None
    if raw is None:
        raise CheckpointError(f"{path} has no deepfake-detect metadata; it was not written by this tool")
    meta = json.loads(raw)
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path} metadata lacks {', '.join(missing)}; re-export it with this version")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {meta['format']!r}; this version reads {FORMAT!r}")
    return meta


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights and metadata, refusing a file whose tensors do not match their recorded hash.

    Returns
    -------
    state : dict of str to Tensor
    metadata : dict
    """
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"cannot read the tensors of {path} ({err}); the file may be truncated"
        ) from None
    if tensor_hash(state) != meta["tensor_sha256"]:
        raise CheckpointError(f"{path}: tensors do not match their recorded hash; the file is corrupt")
    return state, meta


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"


def resolve_weights(name_or_path: str | Path, runs_dir: str | Path = "runs") -> Path:
    """Find a checkpoint file from ``default``, a ``.safetensors`` path, a run folder or a run id.

    A run folder or id (or a unique prefix of one) is found as :meth:`RunDir.find` finds it.

    Raises
    ------
    CheckpointError
        When none of these is found.

    Examples
    --------
    >>> resolve_weights("no-such-thing", runs_dir="/no/such/runs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.CheckpointError: no model at 'no-such-thing': expected 'default', ...
    """
    if str(name_or_path) == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(
                "this installation ships no default model yet; pass a run folder or a .safetensors file"
            )
        return DEFAULT_WEIGHTS
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    try:
        return RunDir.find(name_or_path, runs_dir).model
    except RunError:
        raise CheckpointError(
            f"no model at {str(name_or_path)!r}: expected 'default', a .safetensors file, a run folder "
            f"or a run id under {runs_dir}/"
        ) from None
