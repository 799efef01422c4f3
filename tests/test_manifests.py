"""CSV split manifests (the Kaggle 140k ``train.csv``/``valid.csv``/``test.csv``), made in code."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from deepfake_detect.core.config import TrainConfig
from deepfake_detect.data import (
    DataError,
    fingerprint_dataset,
    list_split,
    read_manifest,
    resolve_data_root,
)
from deepfake_detect.training.train import train

KAGGLE_COLUMNS = ["", "original_path", "id", "label", "label_str", "path"]


def write_manifest(path: Path, rels: list[str]) -> None:
    """A CSV as Kaggle ships it: label 1 = real, 0 = fake, label_str names the class, path is relative."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(KAGGLE_COLUMNS)
        for i, rel in enumerate(rels):
            cls = rel.split("/")[-2]
            writer.writerow([i, f"/kaggle/input/x/{i}.png", i, 1 if cls == "real" else 0, cls, rel])


def kaggle_download(write_dataset, top: Path, **kwargs) -> Path:
    """The Kaggle download's layout: images (by ``write_dataset``) under real_vs_fake/real-vs-fake/, CSVs at
    the top."""
    root = write_dataset(top / "real_vs_fake" / "real-vs-fake", **kwargs)
    for split in ("train", "valid", "test"):
        rels = sorted(p.relative_to(root).as_posix() for p in (root / split).rglob("*.png"))
        write_manifest(top / f"{split}.csv", rels[::-1])  # file order must not matter
    return top


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory, make_face_dataset) -> Path:
    return kaggle_download(
        make_face_dataset, tmp_path_factory.mktemp("kaggle") / "140k", per_class=(12, 6, 6)
    )


def test_manifest_lists_the_same_samples_as_the_folders(kaggle):
    for split in ("train", "valid", "test"):
        from_folders = list_split(kaggle, split)
        from_csv = list_split(kaggle, split, manifest=True)
        assert from_csv == from_folders
    assert list_split(kaggle, "train", manifest=True, limit_per_class=3) == list_split(
        kaggle, "train", limit_per_class=3
    )
    nested = resolve_data_root(kaggle)  # the CSVs are found above the nesting too
    assert list_split(nested, "valid", manifest=True) == list_split(nested, "valid")


def test_labels_come_from_label_str_not_the_number(kaggle):
    rows = read_manifest(kaggle / "train.csv")
    assert {label for rel, label in rows if "/real/" in rel} == {0}
    assert {label for rel, label in rows if "/fake/" in rel} == {1}
    # The Kaggle numbers are the reverse of ours: a reader trusting them would swap every label.
    with open(kaggle / "train.csv") as handle:
        kaggle_numbers = {row["label_str"]: row["label"] for row in csv.DictReader(handle)}
    assert kaggle_numbers == {"real": "1", "fake": "0"}


def test_folders_absent_reads_the_manifest(tmp_path, make_face_dataset):
    flat = tmp_path / "flat"
    source = make_face_dataset(tmp_path / "src", per_class=(4, 2, 2))
    for split in ("train", "valid", "test"):
        rels = []
        for image in sorted((source / split).rglob("*.png")):
            cls = image.parent.name
            (flat / "images" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, flat / "images" / cls / image.name)
            rels.append(f"images/{cls}/{image.name}")
        write_manifest(flat / f"{split}.csv", rels)
    assert resolve_data_root(flat) == flat
    samples = list_split(flat, "train")
    assert len(samples) == 8 and all(s.path.is_file() for s in samples)
    assert [s.label for s in samples] == [0] * 4 + [1] * 4
    assert all(("/real/" in str(s.path)) == (s.label == 0) for s in samples)
    assert len(fingerprint_dataset(flat, progress=False)) == 64


@pytest.mark.slow
def test_training_from_manifests_matches_folders(kaggle, tmp_path):
    common = dict(epochs=1, batch_size=8, image_size=32, base_size=40, threads=1, model="notebook-cnn")
    by_folder = train(TrainConfig(data=str(kaggle), runs_dir=str(tmp_path / "a"), **common), progress=False)
    by_csv = train(
        TrainConfig(data=str(kaggle), runs_dir=str(tmp_path / "b"), manifest=True, **common), progress=False
    )
    assert by_csv.metrics["tensor_sha256"] == by_folder.metrics["tensor_sha256"]


def test_malformed_manifests_say_what_is_wrong(tmp_path):
    (tmp_path / "train.csv").write_text("path,label\ntrain/real/a.png,1\n")
    with pytest.raises(DataError, match="lacks column.*label_str"):
        list_split(tmp_path, "train")
    (tmp_path / "train.csv").write_text(",path,label_str\n0,train/real/a.png,human\n")
    with pytest.raises(DataError, match=r"train.csv:2: label_str 'human' is not one of real, fake"):
        list_split(tmp_path, "train")
    (tmp_path / "train.csv").write_text(",path,label_str\n0,train/real/a.png,real\n")
    with pytest.raises(DataError, match="lists train/real/a.png, which is neither under"):
        list_split(tmp_path, "train")
    with pytest.raises(DataError, match="no valid.csv manifest"):
        list_split(tmp_path, "valid", manifest=True)


def test_manifest_missing_a_class(tmp_path, make_face_dataset):
    image = make_face_dataset(tmp_path / "d", per_class=(1, 1, 1)) / "train" / "real" / "train_real_000.png"
    (tmp_path / "train.csv").write_text(f",path,label_str\n0,{image.relative_to(tmp_path)},real\n")
    with pytest.raises(DataError, match="lists no fake images"):
        list_split(tmp_path, "train", manifest=True)
