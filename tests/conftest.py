"""Shared fixtures: small image data sets made in code, and the shared sample when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def make_face_dataset(root: Path, *, per_class=(12, 6, 6), size=40, seed=0, fmt="png") -> Path:
    """Write a tiny train/valid/test x real/fake data set; fakes carry a periodic trace a CNN can learn."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "valid", "test"), per_class, strict=True):
        for label, cls in enumerate(("real", "fake")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                if label:
                    pixels[::2, ::2] = np.clip(pixels[::2, ::2].astype(int) + 80, 0, 255)
                Image.fromarray(pixels).save(folder / f"{split}_{cls}_{i:03d}.{fmt}")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A read-only-in-spirit tiny data set shared by the tests of one session."""
    return make_face_dataset(tmp_path_factory.mktemp("tiny") / "faces")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared 140k sample (``$DEEPFAKE_DATA``), or skip with the reason."""
    path = Path(os.environ.get("DEEPFAKE_DATA", REPO.parent / "shared" / "data" / "faces140k"))
    if not (path / "train").is_dir():
        pytest.skip(
            f"shared data set not found at {path}; set DEEPFAKE_DATA to a folder with train/valid/test"
        )
    return path


@pytest.fixture
def scan_runtime(tmp_path_factory, monkeypatch):
    """One torch thread (the 2 shared cores are busy: more threads only contend) and a temporary ONNX cache."""
    import torch

    monkeypatch.setattr(
        "deepfake_detect.inference.network.ONNX_CACHE_DIR", tmp_path_factory.getbasetemp() / "onnx"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
