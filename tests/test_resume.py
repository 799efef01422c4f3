"""Resuming: SIGKILL a real training process at chosen points, resume it, and get bit-identical results.

A run with ``checkpoint_every_steps=2`` on 48 training images in batches of 8 has 6 batches an epoch and saves
after batches 2 and 4 and at the end of each epoch. The subprocess runs the CLI through a small runner that
freezes itself (SIGSTOP) right after its n-th checkpoint, so the test knows exactly where the SIGKILL lands.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_detect.core.checkpoint import CheckpointError
from deepfake_detect.core.config import ConfigError, TrainConfig
from deepfake_detect.core.runs import RunError
from deepfake_detect.training.state import (
    LAST,
    PREV,
    find_run_to_resume,
    read_state,
    resume_config,
    write_state,
)
from deepfake_detect.training.train import train
from killing import train_until

TIMING_METRICS = {"train_seconds"}
TIMING_COLUMNS = {"train_img_per_s", "epoch_seconds"}
BASE = dict(epochs=3, batch_size=8, image_size=32, base_size=40, threads=1, checkpoint_every_steps=2)

RUNNER = """
import os, signal, sys
from deepfake_detect.cli import main
from deepfake_detect.training.state import Checkpointer

stop_after, saves, original = int(os.environ["STOP_AFTER_SAVES"]), [0], Checkpointer.save

def save(self, state):
    original(self, state)
    saves[0] += 1
    if saves[0] == stop_after:
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen here until the test kills it

Checkpointer.save = save
sys.argv[0] = "deepfake-detect"
main()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_face_dataset) -> Path:
    return make_face_dataset(tmp_path_factory.mktemp("resume") / "faces", per_class=(24, 6, 6))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted run of the same config."""
    runs = tmp_path_factory.mktemp("reference")
    return train(TrainConfig(data=str(data), runs_dir=str(runs), **BASE), progress=False).run_dir


def _cli_args(data: Path, runs: Path) -> list[str]:
    sets = [f"--set={k}={v}" for k, v in BASE.items() if k not in ("epochs", "batch_size", "image_size")]
    return [
        "train",
        f"--data={data}",
        "--epochs=3",
        "--batch-size=8",
        "--image-size=32",
        f"--runs-dir={runs}",
        "--set=run_name=killed",
        *sets,
        "-q",
    ]


def _state_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def _wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _resume_cli(run: Path) -> Path:
    cmd = [sys.executable, "-m", "deepfake_detect", "train", f"--resume={run}", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def _metrics(run: Path) -> dict:
    values = json.loads((run / "metrics.json").read_text())
    return {k: v for k, v in values.items() if k not in TIMING_METRICS}


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]


def _assert_same_run(run: Path, reference: Path) -> None:
    assert _metrics(run)["tensor_sha256"] == _metrics(reference)["tensor_sha256"]
    assert _metrics(run) == _metrics(reference)
    assert _history(run) == _history(reference)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the process stop")
@pytest.mark.parametrize(
    ("saves", "position"),
    [(4, {"epoch": 1, "batch": 2}), (3, {"epoch": 1, "batch": 0})],
    ids=["mid-epoch", "between-epochs"],
)
def test_sigkill_then_resume_is_bit_identical(data, reference, tmp_path, saves, position):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "STOP_AFTER_SAVES": str(saves)}
    cmd = [sys.executable, str(runner), *_cli_args(data, tmp_path / "runs")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_until(lambda: _state_of(proc.pid) == "T", proc, f"checkpoint {saves}")
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    proc.communicate(timeout=30)
    run = tmp_path / "runs" / "killed"
    assert not (run / "model.safetensors").exists()
    assert read_state(run / "checkpoints" / LAST)[1]["position"] == position
    _assert_same_run(_resume_cli(run), reference)


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume(data, reference, tmp_path):
    """The plain command, killed as soon as its first checkpoint exists, wherever it has got to."""
    cmd = [sys.executable, "-m", "deepfake_detect", *_cli_args(data, tmp_path / "runs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "runs" / "killed" / "checkpoints" / LAST
    _wait_until(last.exists, proc, "the first checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    if (last.parent.parent / "metrics.json").exists():
        pytest.skip("the run finished before the kill landed")
    _assert_same_run(_resume_cli(last.parent.parent), reference)


@pytest.mark.slow
def test_corrupt_checkpoint_falls_back_to_the_previous_one(data, reference, tmp_path, caplog):
    cfg = TrainConfig(data=str(data), runs_dir=str(tmp_path), run_name="r", **BASE)
    run = train_until(cfg, 5)
    last = run / "checkpoints" / LAST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING):
        result = train(cfg, progress=False, resume=run)
    assert "unreadable" in caplog.text and "falling back to prev.safetensors" in caplog.text
    _assert_same_run(result.run_dir, reference)


def test_flipped_byte_fails_the_checksum(tmp_path):
    import torch

    write_state(tmp_path, {"w": torch.arange(64, dtype=torch.float32)}, {"a": 1})
    write_state(tmp_path, {"w": torch.ones(64)}, {"a": 2})
    assert read_state(tmp_path / PREV)[1] == {"a": 1} and read_state(tmp_path / LAST)[1] == {"a": 2}
    assert not list(tmp_path.glob("*.tmp"))
    raw = bytearray((tmp_path / LAST).read_bytes())
    raw[-5] ^= 0x01  # one bit of tensor data
    (tmp_path / LAST).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        read_state(tmp_path / LAST)


@pytest.mark.slow
def test_no_usable_checkpoint_is_a_clear_error(data, tmp_path):
    cfg = TrainConfig(data=str(data), runs_dir=str(tmp_path), run_name="r", **BASE)
    run = train_until(cfg, 2)
    for name in (LAST, PREV):
        (run / "checkpoints" / name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable training checkpoint.*last.*prev"):
        train(cfg, progress=False, resume=run)


@pytest.mark.slow
def test_resume_refuses_a_different_config(data, tmp_path):
    cfg = TrainConfig(data=str(data), runs_dir=str(tmp_path), run_name="r", **BASE)
    run = train_until(cfg, 1)
    with pytest.raises(ConfigError, match=r"these differ: lr: 0.001 -> 0.01"):
        resume_config(run, flags={"lr": 0.01})
    with pytest.raises(ConfigError, match="seed"):
        resume_config(run, sets=["seed=7"])
    _, same = resume_config(run, flags={"num_workers": 2})  # changes nothing in the weights: allowed
    assert same.num_workers == 2 and same.lr == cfg.lr
    with pytest.raises(ConfigError, match="different config: epochs"):
        train(cfg.replace(epochs=4), progress=False, resume=run)


@pytest.mark.slow
def test_finished_run_is_not_resumed(data, reference):
    assert not (reference / "checkpoints").exists()  # deleted once model.safetensors holds the result
    with pytest.raises(RunError, match="already finished"):
        find_run_to_resume(reference)
    with pytest.raises(RunError, match="no run folder"):
        find_run_to_resume(reference.parent / "nope")
