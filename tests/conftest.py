"""Shared fixtures: small image data sets made in code, and the shared sample when it is present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def write_face_dataset(root: Path, *, per_class=(12, 6, 6), size=40, seed=0, fmt="png") -> Path:
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
def make_face_dataset():
    """:func:`write_face_dataset`, to call as ``make_face_dataset(root, per_class=(12, 6, 6), size=40)``."""
    return write_face_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A read-only-in-spirit tiny data set shared by the tests of one session."""
    return write_face_dataset(tmp_path_factory.mktemp("tiny") / "faces")


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


# ------------------------------------------------------------------- a model and a photo for scan and serve tests


def write_untrained_checkpoint(
    path: Path, *, size: int = 32, resize_mode: str = "resize", base_size: int = 40, gain: float = 1.0, seed=0
) -> Path:
    """An untrained notebook-cnn checkpoint at ``path``; ``gain`` scales its last layer so scores vary."""
    import torch

    from deepfake_detect.core.checkpoint import save_checkpoint
    from deepfake_detect.data.transforms import Preprocess
    from deepfake_detect.models import create_model

    torch.manual_seed(seed)
    net = create_model("notebook-cnn")
    with torch.no_grad():
        net.fc2.weight.mul_(gain)
    meta = {
        "model": "notebook-cnn",
        "preprocess": Preprocess(
            size=size, resize_mode=resize_mode, base_size=max(size, base_size)
        ).to_dict(),
        "class_names": ["real", "fake"],
        "threshold_logit": 0.0,
        "temperature": 1.0,
        "base_rate": 0.5,
    }
    save_checkpoint(path, net, meta)
    return path


@pytest.fixture(scope="session")
def untrained_checkpoint():
    """:func:`write_untrained_checkpoint`, to call as ``untrained_checkpoint(path, gain=1000)``."""
    return write_untrained_checkpoint


@pytest.fixture(scope="session")
def face_models() -> None:
    """Skip, saying why, when the package the default face finder's models are converted from is absent."""
    import importlib.util

    from deepfake_detect.faces.model_files import PACKAGE, install_hint

    if importlib.util.find_spec(PACKAGE) is None:
        pytest.skip(f"the face models' source package is not installed: {install_hint()} (make setup does)")


@pytest.fixture(scope="session")
def face_photo() -> np.ndarray:
    """A real photo with one frontal face (scikit-image's astronaut, 512 x 512, RGB)."""
    from skimage import data

    return data.astronaut()


def write_video(path: Path, frames: list[np.ndarray], rate: int = 5) -> Path:
    """Encode RGB frames into a video with PyAV (MPEG-4 part 2: always built in)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def make_video():
    """:func:`write_video`, to call as ``make_video(path, frames, rate=5)``."""
    return write_video


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    """A detector over an untrained notebook-cnn whose last layer is amplified, so scores spread across faces."""
    import deepfake_detect as dd

    weights = write_untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", gain=1000)
    return dd.load_detector(weights)


# ------------------------------------------------------------------------------------- a trained run (slow)


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    """A run trained for one epoch on ``tiny_dataset`` (notebook-cnn, 32 px, one thread); one a test module,
    which may write into it. Tests that use it train a model: mark them slow."""
    from deepfake_detect.core.config import TrainConfig
    from deepfake_detect.training.train import train

    cfg = TrainConfig(
        data=str(tiny_dataset),
        runs_dir=str(tmp_path_factory.mktemp("runs")),
        model="notebook-cnn",
        epochs=1,
        image_size=32,
        base_size=40,
        threads=1,
    )
    return train(cfg, progress=False).run_dir


# A Python prelude that makes one package unimportable, as if its optional extra were not installed.
BLOCK_IMPORT = """
import sys

class BlockImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockImport())
"""
RUN_CLI = "from deepfake_detect.cli import main\nsys.argv[0] = 'deepfake-detect'\nmain()\n"


@pytest.fixture
def run_without():
    """``run_without(module, *args, code=RUN_CLI, cwd=None, env=None)``: run ``code`` (default: the command
    line with ``args``) in a subprocess where ``module`` cannot be imported."""

    def run(module: str, *args: str, code: str = RUN_CLI, cwd=None, env=None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", BLOCK_IMPORT.format(module=module) + code, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)

    return run
