"""Tests for deepfake_detect.data on tiny data sets generated in tmp_path."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from deepfake_detect.data import (
    IMAGE_EXTENSIONS,
    SPLITS,
    DataError,
    Sample,
    check_dataset,
    data_fingerprint,
    fingerprint_dataset,
    hash_files,
    list_split,
    resolve_data_root,
)

CLASSES = ("real", "fake")


def jpeg_bytes(seed: int, size: int = 16) -> bytes:
    """A JPEG of random noise; each seed gives different content."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_dataset(root: Path, per_class: int = 3) -> Path:
    """Write ``root/{split}/{class}/img{i}.jpg`` with distinct content everywhere."""
    seed = 0
    for split in SPLITS:
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"img{i}.jpg").write_bytes(jpeg_bytes(seed))
                seed += 1
    return root


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def check(root: Path):
    return check_dataset(root, progress=False, workers=2)


def test_list_split_labels_and_order(data_root: Path) -> None:
    samples = list_split(data_root, "train")
    assert [s.label for s in samples] == [0, 0, 0, 1, 1, 1]
    rels = [s.path.relative_to(data_root).as_posix() for s in samples]
    assert rels == [f"train/{c}/img{i}.jpg" for c in CLASSES for i in range(3)]
    assert isinstance(samples[0], Sample)


def test_list_split_finds_nested_and_upper_case_images_only(data_root: Path) -> None:
    nested = data_root / "train" / "real" / "sub"
    nested.mkdir()
    (nested / "deep.JPG").write_bytes(jpeg_bytes(100))
    (nested / "notes.txt").write_text("not an image")
    (nested / "._deep.jpg").write_bytes(b"macOS resource fork")
    rels = {s.path.relative_to(data_root).as_posix() for s in list_split(data_root, "train")}
    assert "train/real/sub/deep.JPG" in rels
    assert len(rels) == 7
    assert ".png" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS


def test_check_counts_on_clean_dataset(data_root: Path) -> None:
    report = check(data_root)
    assert report.counts == {s: {"real": 3, "fake": 3} for s in SPLITS}
    assert report.balance == {s: 0.5 for s in SPLITS}
    assert report.sizes == {"16x16": 18} and report.modes == {"RGB": 18}
    assert report.bad_files == [] and report.unexpected_files == [] and report.missing == []
    assert report.leakage == [] and report.duplicates_within == {s: [] for s in SPLITS}
    assert report.is_usable and not report.has_leakage
    json.dumps(report.to_dict())
    text = report.format_text()
    assert "train" in text and "50.0%" in text and "Leakage: none" in text


@pytest.mark.parametrize("nesting", [("real_vs_fake", "real-vs-fake"), ("real-vs-fake",)])
def test_kaggle_nesting_is_resolved(tmp_path: Path, nesting: tuple[str, ...]) -> None:
    inner = make_dataset(tmp_path.joinpath(*nesting), per_class=1)
    assert resolve_data_root(tmp_path) == inner
    assert resolve_data_root(inner) == inner
    assert list_split(tmp_path, "valid")[0].path == inner / "valid" / "real" / "img0.jpg"
    assert check(tmp_path).root == inner


def test_wrong_path_and_folder_without_splits(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        resolve_data_root(tmp_path / "nope")
    expected = r"expected folders train/, valid/, test/ \(each with real/ and fake/\) under"
    with pytest.raises(DataError, match=expected):
        list_split(tmp_path, "train")


def test_missing_split(data_root: Path) -> None:
    shutil.rmtree(data_root / "valid")
    with pytest.raises(DataError, match=r"missing split folder valid/: expected folders train/, valid/"):
        list_split(data_root, "valid")
    report = check(data_root)
    assert report.missing == ["valid"] and not report.is_usable
    assert "valid" not in report.counts


def test_missing_and_empty_class(data_root: Path) -> None:
    shutil.rmtree(data_root / "test" / "real")
    for f in (data_root / "train" / "fake").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="missing class folder"):
        list_split(data_root, "test")
    with pytest.raises(DataError, match=r"no images in .*train/fake"):
        list_split(data_root, "train")
    report = check(data_root)
    assert report.missing == ["test/real"]
    assert report.counts["train"] == {"real": 3, "fake": 0} and report.balance["train"] == 0.0
    assert not report.is_usable


def test_bad_files_are_reported_not_raised(data_root: Path) -> None:
    folder = data_root / "train" / "fake"
    (folder / "empty.jpg").write_bytes(b"")
    whole = jpeg_bytes(7, size=64)
    (folder / "half.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "text.jpg").write_text("hello, I am not a JPEG")
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    (folder / "png_inside.jpg").write_bytes(buf.getvalue())  # wrong extension but decodes: fine
    report = check(data_root)
    bad = dict(report.bad_files)
    assert set(bad) == {"train/fake/empty.jpg", "train/fake/half.jpg", "train/fake/text.jpg"}
    assert "empty" in bad["train/fake/empty.jpg"] and "truncated" in bad["train/fake/half.jpg"]
    assert report.counts["train"]["fake"] == 7 and report.modes["L"] == 1
    assert "Bad files (do not decode) (3)" in report.format_text()


def test_truncated_detected_even_if_pillow_told_to_accept_it(data_root: Path, monkeypatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    whole = jpeg_bytes(8, size=64)
    (data_root / "test" / "real" / "half.jpg").write_bytes(whole[: len(whole) // 2])
    assert [p for p, _ in check(data_root).bad_files] == ["test/real/half.jpg"]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_unexpected_files(data_root: Path) -> None:
    (data_root / "README.txt").write_text("root file")
    (data_root / "stray.jpg").write_bytes(jpeg_bytes(50))
    (data_root / "train" / "other").mkdir()
    (data_root / "train" / "other" / "x.jpg").write_bytes(jpeg_bytes(51))
    (data_root / "train" / "real" / "labels.csv").write_text("a,b")
    (data_root / "train" / "real" / ".DS_Store").write_bytes(b"\0")
    report = check(data_root)
    assert report.unexpected_files == [
        "README.txt",
        "stray.jpg",
        "train/other/x.jpg",
        "train/real/.DS_Store",
        "train/real/labels.csv",
    ]
    assert report.counts["train"] == {"real": 3, "fake": 3} and report.is_usable


def test_leakage_across_splits(data_root: Path) -> None:
    shutil.copy(data_root / "train" / "real" / "img0.jpg", data_root / "test" / "fake" / "leak.jpg")
    report = check(data_root)
    assert report.has_leakage
    assert report.leakage == [["test/fake/leak.jpg", "train/real/img0.jpg"]]
    assert report.duplicates_within == {s: [] for s in SPLITS}
    assert "LEAKAGE: 1 group" in report.format_text()
    assert report.to_dict()["has_leakage"] is True


def test_duplicate_within_split_is_not_leakage(data_root: Path) -> None:
    shutil.copy(data_root / "train" / "real" / "img1.jpg", data_root / "train" / "fake" / "dup.jpg")
    report = check(data_root)
    assert report.duplicates_within["train"] == [["train/fake/dup.jpg", "train/real/img1.jpg"]]
    assert report.leakage == [] and not report.has_leakage


def test_hash_files_matches_hashlib(data_root: Path) -> None:
    paths = [s.path for s in list_split(data_root, "train")]
    hashes = hash_files(paths, workers=2, progress=False)
    assert list(hashes) == paths
    assert hashes[paths[0]] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    with pytest.raises(DataError, match="cannot read"):
        hash_files([data_root / "missing.jpg"], progress=False)


def test_fingerprint_tracks_content_and_names(data_root: Path, tmp_path: Path) -> None:
    first = fingerprint_dataset(data_root, progress=False)
    assert first == check(data_root).fingerprint
    copy = shutil.copytree(data_root, tmp_path / "elsewhere")
    assert fingerprint_dataset(copy, progress=False) == first  # location does not matter
    target = data_root / "valid" / "fake" / "img2.jpg"
    target.write_bytes(jpeg_bytes(999))
    edited = fingerprint_dataset(data_root, progress=False)
    assert edited != first
    target.rename(target.with_name("renamed.jpg"))
    assert fingerprint_dataset(data_root, progress=False) not in (first, edited)


def test_fingerprint_ignores_hashing_order(data_root: Path) -> None:
    paths = [s.path for split in SPLITS for s in list_split(data_root, split)]
    hashes = hash_files(paths, progress=False)
    reordered = dict(reversed(list(hashes.items())))
    assert data_fingerprint(data_root, reordered) == data_fingerprint(data_root, hashes)
    with pytest.raises(DataError, match="not inside the data root"):
        data_fingerprint(data_root / "train", hashes)


def test_limit_per_class_is_deterministic_and_balanced(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", per_class=10)
    picked = list_split(root, "train", limit_per_class=4)
    assert picked == list_split(root, "train", limit_per_class=4)
    assert [s.label for s in picked] == [0] * 4 + [1] * 4
    full = list_split(root, "train")
    assert set(picked) <= set(full)
    for label in (0, 1):
        rels = [s.path.relative_to(root).as_posix() for s in full if s.label == label]
        expected = sorted(sorted(rels, key=lambda r: hashlib.sha1(r.encode()).hexdigest())[:4])
        assert [s.path.relative_to(root).as_posix() for s in picked if s.label == label] == expected
    assert list_split(root, "train", limit_per_class=100) == full
    with pytest.raises(DataError, match="limit_per_class"):
        list_split(root, "train", limit_per_class=0)


def test_progress_goes_to_stderr_only(data_root: Path, capsys) -> None:
    check_dataset(data_root, progress=True)
    fingerprint_dataset(data_root, progress=True)
    assert capsys.readouterr().out == ""


def test_bad_class_names(data_root: Path) -> None:
    with pytest.raises(DataError, match="two distinct class folder names"):
        list_split(data_root, "train", class_names=("real", "real"))
