"""Training end to end on tiny data made in code: run folder, determinism, bad images, Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepfake_detect.core.checkpoint import read_metadata, tensor_hash
from deepfake_detect.core.config import TrainConfig
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.dataset import BadImageError
from deepfake_detect.training.train import train

pytestmark = pytest.mark.slow  # every test trains a model


def tiny_config(data: Path, runs: Path, **changes) -> TrainConfig:
    base = dict(
        data=str(data),
        runs_dir=str(runs),
        model="notebook-cnn",
        epochs=2,
        batch_size=8,
        image_size=32,
        base_size=40,
        threads=1,
        lr=1e-3,
    )
    return TrainConfig(**{**base, **changes})


def test_run_folder_holds_everything(tiny_dataset, tmp_path):
    result = train(tiny_config(tiny_dataset, tmp_path), progress=False)
    run = result.run_dir
    for name in ("config.json", "environment.json", "history.csv", "metrics.json", "model.safetensors"):
        assert (run / name).is_file(), name
    meta = read_metadata(run / "model.safetensors")
    for key in (
        "model",
        "input_size",
        "preprocess",
        "class_names",
        "threshold_logit",
        "temperature",
        "config",
        "data_fingerprint",
        "code_version",
        "tensor_sha256",
    ):
        assert key in meta, key
    assert meta["preprocess"]["size"] == 32 and meta["temperature"] > 0
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"val_accuracy", "val_precision", "val_recall", "val_f1", "val_roc_auc", "val_loss"} <= set(
        rows[0]
    )
    env = json.loads((run / "environment.json").read_text())
    assert env["torch_threads"] == 1 and env["cpu"] and env["packages"]["torch"].startswith("2.13.0")
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert index[-1]["id"] == run.name and index[-1]["data_fingerprint"] == meta["data_fingerprint"]


def test_two_runs_are_bit_identical(tiny_dataset, tmp_path):
    """Same config on the same machine: same tensor hash, same metrics; worker count does not matter."""
    runs = [
        train(tiny_config(tiny_dataset, tmp_path / "a", num_workers=0), progress=False),
        train(tiny_config(tiny_dataset, tmp_path / "b", num_workers=0), progress=False),
        train(tiny_config(tiny_dataset, tmp_path / "c", num_workers=2), progress=False),
    ]
    hashes = {tensor_hash(load_file(r.run_dir / "model.safetensors")) for r in runs}
    assert len(hashes) == 1
    assert runs[0].metrics["val"] == runs[1].metrics["val"] == runs[2].metrics["val"]
    assert runs[0].metrics["threshold_logit"] == runs[1].metrics["threshold_logit"]
    different = train(tiny_config(tiny_dataset, tmp_path / "d", seed=7), progress=False)
    assert tensor_hash(load_file(different.run_dir / "model.safetensors")) not in hashes


def _process_settings() -> dict:
    """What training changes while it runs, as the caller had it."""
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "python_rng": random.getstate(),
        "numpy_rng": [part.tolist() if hasattr(part, "tolist") else part for part in np.random.get_state()],
        "torch_rng": torch.get_rng_state().tolist(),
    }


def test_training_leaves_the_callers_settings_and_generators_as_they_were(
    tiny_dataset, tmp_path, monkeypatch
):
    """Threads, deterministic kernels, cudnn.benchmark, the cuBLAS variable and the global seeds are the
    caller's again after train() returns, and after it fails."""
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        torch.set_num_threads(2)  # the run uses 1
        torch.backends.cudnn.benchmark = True  # the run turns it off
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # the run sets it
        random.seed(11)
        np.random.seed(11)
        torch.manual_seed(11)
        before = _process_settings()
        result = train(tiny_config(tiny_dataset, tmp_path, epochs=1), progress=False)
        assert result.metrics["threads"] == 1
        assert _process_settings() == before
        with pytest.raises(DataError):
            train(tiny_config(tmp_path / "no data here", tmp_path), progress=False)
        assert _process_settings() == before
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark


def _with_bad_files(write_dataset, tmp_path: Path) -> Path:
    data = write_dataset(tmp_path / "bad", per_class=(6, 4, 4))
    (data / "train" / "fake" / "zero.png").write_bytes(b"")
    (data / "train" / "real" / "text.jpg").write_text("not an image")
    good = (data / "train" / "real" / "train_real_000.png").read_bytes()
    (data / "train" / "real" / "truncated.png").write_bytes(good[: len(good) // 2])
    return data


def test_unreadable_images_are_skipped_and_counted(tmp_path, make_face_dataset):
    data = _with_bad_files(make_face_dataset, tmp_path)
    result = train(tiny_config(data, tmp_path / "runs", epochs=1), progress=False)
    assert result.metrics["bad_images"] == 3


def test_strict_fails_on_unreadable_image(tmp_path, make_face_dataset):
    data = _with_bad_files(make_face_dataset, tmp_path)
    with pytest.raises(BadImageError, match="cannot read image"):
        train(tiny_config(data, tmp_path / "runs", epochs=1, strict=True), progress=False)


def test_cache_gives_the_same_weights(tiny_dataset, tmp_path):
    plain = train(tiny_config(tiny_dataset, tmp_path / "a", epochs=1), progress=False)
    cached = train(
        tiny_config(tiny_dataset, tmp_path / "b", epochs=1, cache=True, cache_dir=str(tmp_path / "c")),
        progress=False,
    )
    assert list((tmp_path / "c").glob("decoded-*"))
    assert plain.metrics["tensor_sha256"] == cached.metrics["tensor_sha256"]


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, make_face_dataset):
    data = make_face_dataset(tmp_path / "d", per_class=(40, 8, 8))
    cmd = [
        sys.executable,
        "-m",
        "deepfake_detect",
        "train",
        "--data",
        str(data),
        "--epochs",
        "200",
        "--image-size",
        "32",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--set",
        "base_size=40",
        "--set",
        "threads=1",
        "--set",
        "patience=200",
        "-q",
    ]
    # A shell that starts a job in the background makes it ignore SIGINT, and Python keeps an inherited
    # SIG_IGN: give the child the default disposition so Ctrl-C reaches it as it would from a terminal.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/history.csv")):
        time.sleep(0.2)
    assert list((tmp_path / "runs").glob("*/history.csv")), "training never finished an epoch"
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run = Path(out.strip().splitlines()[-1])
    assert (run / "model.safetensors").is_file()
    assert json.loads((run / "metrics.json").read_text())["interrupted"] is True


def test_quality_options_train_and_are_recorded(tiny_dataset, tmp_path):
    """EMA, mirror test-time averaging, degradations and a cosine schedule with warm-up run together."""
    cfg = tiny_config(
        tiny_dataset,
        tmp_path,
        ema_decay=0.9,
        tta_flip=True,
        aug_jpeg_p=0.5,
        aug_blur_p=0.5,
        aug_rescale_p=0.5,
        aug_color_p=0.5,
        schedule="cosine",
        warmup_epochs=0.5,
        optimizer="adamw",
    )
    first = train(cfg, progress=False)
    meta = read_metadata(first.run_dir / "model.safetensors")
    assert meta["tta_flip"] is True and meta["config"]["ema_decay"] == 0.9
    again = train(cfg.replace(runs_dir=str(tmp_path / "again")), progress=False)
    assert again.metrics["tensor_sha256"] == first.metrics["tensor_sha256"]


def test_init_starts_from_existing_weights(tiny_dataset, tmp_path):
    base = train(tiny_config(tiny_dataset, tmp_path / "base", epochs=1), progress=False)
    tuned = train(
        tiny_config(tiny_dataset, tmp_path / "tuned", epochs=1, init=str(base.run_dir)), progress=False
    )
    fresh = train(tiny_config(tiny_dataset, tmp_path / "fresh", epochs=1, seed=42), progress=False)
    assert tuned.metrics["tensor_sha256"] not in (
        base.metrics["tensor_sha256"],
        fresh.metrics["tensor_sha256"],
    )
    with pytest.raises(ValueError, match="compact-npr"):
        train(
            tiny_config(tiny_dataset, tmp_path / "x", model="compact-npr", init=str(base.run_dir)),
            progress=False,
        )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
