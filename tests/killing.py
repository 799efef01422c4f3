"""A training killed in-process after its N-th checkpoint: what the resume tests of every trainer start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_detect.core.config import TrainConfig
from deepfake_detect.training.state import Checkpointer
from deepfake_detect.training.train import train


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing in train() catches it."""


def train_until(cfg: TrainConfig, saves: int) -> Path:
    """Train ``cfg`` until its ``saves``-th checkpoint is written, then die; return the run folder."""
    original, count = Checkpointer.save, [0]

    def save(self, state):
        original(self, state)
        count[0] += 1
        if count[0] == saves:
            raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpointer, "save", save)
        with pytest.raises(Killed):
            train(cfg, progress=False)
    return Path(cfg.runs_dir) / cfg.run_name
