"""Training at scale: capped epochs, and a decoded cache that refuses to start on a full disk."""

from __future__ import annotations

import pytest

from deepfake_detect.core.config import TrainConfig
from deepfake_detect.data import dataset as dataset_module
from deepfake_detect.data import list_split
from deepfake_detect.data.dataset import DecodedCache, check_free_space
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.training.train import train

GIB = 2**30


def test_free_space_check_with_numbers():
    check_free_space(10 * GIB, 11 * GIB, "/cache")  # 10% head-room is enough
    with pytest.raises(OSError, match=r"needs 10.0 GiB but /cache has 10.2 GiB free; .*--cache-dir"):
        check_free_space(10 * GIB, int(10.2 * GIB), "/cache")  # under the 5% margin
    with pytest.raises(OSError, match="train without --cache"):
        check_free_space(3 * GIB, 0, "/cache")


def test_cache_build_stops_before_writing_when_the_disk_is_full(tmp_path, monkeypatch, make_face_dataset):
    samples = list_split(make_face_dataset(tmp_path / "d", per_class=(2, 1, 1)), "train")
    cache = DecodedCache(samples, Preprocess(size=32), tmp_path / "cache", key="k")
    usage = type("Usage", (), {"free": 1024, "total": 2048, "used": 1024})
    monkeypatch.setattr(dataset_module.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(OSError, match=r"has 0.0 GiB free"):
        cache.build(progress=False)
    assert not cache.path.exists() and not cache.ready


@pytest.mark.slow
def test_max_steps_per_epoch_caps_each_epoch(tiny_dataset, tmp_path):
    common = dict(data=str(tiny_dataset), epochs=2, batch_size=4, image_size=32, base_size=40, threads=1)
    capped = train(TrainConfig(runs_dir=str(tmp_path / "a"), max_steps_per_epoch=2, **common), progress=False)
    assert capped.metrics["epochs_run"] == 2
    rows = (capped.run_dir / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 2
    whole = train(TrainConfig(runs_dir=str(tmp_path / "b"), **common), progress=False)
    assert capped.metrics["tensor_sha256"] != whole.metrics["tensor_sha256"]
