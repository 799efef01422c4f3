"""Checkpoints: safetensors + JSON metadata, verified on load, for every registered model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from deepfake_detect.core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
    tensor_hash,
)
from deepfake_detect.models import create_model, list_models

META = {
    "model": "x",
    "preprocess": {},
    "class_names": ["real", "fake"],
    "threshold_logit": 0.0,
    "temperature": 1.0,
}


@pytest.mark.parametrize("name", list_models())
def test_every_model_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    path = tmp_path / "m.safetensors"
    digest = save_checkpoint(path, model, {**META, "model": name})
    state, meta = load_checkpoint(path)
    assert meta["tensor_sha256"] == digest == tensor_hash(model.state_dict())
    fresh = create_model(name)
    fresh.load_state_dict(state)
    assert tensor_hash(fresh.state_dict()) == digest


def test_hash_sees_every_byte_and_name():
    state = {"a": torch.zeros(3), "n": torch.tensor(5)}
    base = tensor_hash(state)
    assert tensor_hash({"a": torch.zeros(3), "n": torch.tensor(6)}) != base
    assert tensor_hash({"b": torch.zeros(3), "n": torch.tensor(5)}) != base
    assert tensor_hash({"n": torch.tensor(5), "a": torch.zeros(3)}) == base


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.arange(10.0)}, META)
    data = bytearray(path.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # flip the last float's bytes
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "flipped.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not written by this tool"):
        read_metadata(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        read_metadata(tmp_path / "missing.safetensors")


def test_metadata_lacking_keys_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"deepfake_detect": json.dumps({"format": "x"})})
    with pytest.raises(CheckpointError, match="lacks"):
        read_metadata(path)
