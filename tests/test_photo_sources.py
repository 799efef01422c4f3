"""Whole photos as a data source (``photos:PATH``): faces framed as scan frames them, cached, faceless ones counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_detect.core.sources import parse_sources
from deepfake_detect.data import check_dataset
from deepfake_detect.data.fingerprint import fingerprint_dataset, fingerprint_sources
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.data.photos import check_photos, crops_dir, list_photo_split
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.scan.decode import DecodeOptions, decode_image, network_view


@pytest.fixture
def photos(tmp_path, face_photo) -> Path:
    """A photo source: the astronaut at two sizes, in a frame and mirrored, and one plain photo with no face."""
    root = tmp_path / "studio"
    big = np.full((700, 900, 3), 120, np.uint8)
    big[100:612, 300:812] = face_photo
    files = {
        "train/real/a.jpg": big,
        "train/real/plain.jpg": np.full((300, 400, 3), 90, np.uint8),
        "train/fake/b.png": face_photo[:, ::-1],
        "valid/real/c.jpg": np.asarray(Image.fromarray(face_photo).resize((400, 400))),
        "valid/fake/d.jpg": face_photo,
        "test/real/e.jpg": face_photo[::2, ::2],
    }
    for rel, pixels in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / rel, quality=92)
    return root


def test_photos_prefix_names_a_photo_source(photos):
    (source,) = parse_sources([f"photos:{photos}:2"])
    assert (source.kind, source.root, source.weight, source.name) == ("photos", str(photos), 2.0, "studio")
    assert parse_sources([str(photos)])[0].kind == "faces"


def test_a_photo_source_lists_scans_crops_and_counts_the_photos_without_a_face(photos, tmp_path, caplog):
    (source,) = parse_sources([f"photos:{photos}"])
    with caplog.at_level(logging.WARNING):
        listing = list_photo_split(source, "train", cache_dir=tmp_path / "cache")
    assert listing.photos == 3 and listing.no_face == ["train/real/plain.jpg"]
    assert "no face found in 1 of 3 photos" in caplog.text and "train/real/plain.jpg" in caplog.text
    assert [s.label for s in listing.samples] == [0, 1] and {s.source for s in listing.samples} == {"studio"}
    # The crop a sample stands for is exactly the face scan scores: the same network view, pixel for pixel.
    pre = Preprocess(size=224)
    for sample, photo in zip(listing.samples, ("train/real/a.jpg", "train/fake/b.png"), strict=True):
        assert sample.path.parent.parent == crops_dir(tmp_path / "cache")
        scanned = decode_image(0, str(photos / photo), DecodeOptions(pre)).faces[0].view
        assert np.array_equal(network_view(pre.load(sample.path), pre), scanned)


def test_crops_are_cached_by_the_photos_content_and_framed_once(photos, tmp_path):
    (source,) = parse_sources([f"photos:{photos}"])
    first = list_photo_split(source, "valid", cache_dir=tmp_path / "cache")
    stamps = {s.path: s.path.stat().st_mtime_ns for s in first.samples}
    again = list_photo_split(source, "valid", cache_dir=tmp_path / "cache")
    assert [s.path for s in again.samples] == [s.path for s in first.samples]
    assert {s.path: s.path.stat().st_mtime_ns for s in again.samples} == stamps  # read, not framed again
    Image.fromarray(np.asarray(Image.open(photos / "valid/real/c.jpg"))[:, ::-1]).save(
        photos / "valid/real/c.jpg"
    )
    edited = list_photo_split(source, "valid", cache_dir=tmp_path / "cache")
    assert edited.samples[0].path != first.samples[0].path and edited.samples[1].path == first.samples[1].path


def test_a_mix_with_a_photo_source_lists_crops_beside_face_crops(photos, tmp_path, shared_data):
    sources = parse_sources([str(shared_data), f"photos:{photos}"])
    samples = list_mix_split(sources, "valid", limit_per_class=3, cache_dir=str(tmp_path / "cache"))
    studio = [s for s in samples if s.source == "studio"]
    assert len(samples) == 6 + 2 and len(studio) == 2 and all(s.path.suffix == ".png" for s in studio)


def test_data_check_reports_the_photo_source_and_its_fingerprint_covers_the_framing(photos, tmp_path):
    (source,) = parse_sources([f"photos:{photos}"])
    report = check_dataset(photos, near_distance=None, classes_present="any", progress=False)
    plain = report.fingerprint
    check_photos(source, report, cache_dir=tmp_path / "cache")
    assert report.photos["splits"]["train"] == {"photos": 3, "faces": 2, "no_face": ["train/real/plain.jpg"]}
    assert report.photos["splits"]["valid"]["faces"] == 2
    text = report.format_text()
    assert (
        "Whole photos (photos: source)" in text and "No face found" in text and "train/real/plain.jpg" in text
    )
    assert json.loads(json.dumps(report.to_dict()))["photos"]["framing"].startswith("ffhq-")
    assert plain == fingerprint_dataset(photos, classes_present="any", progress=False)
    (recorded,) = fingerprint_sources([source], progress=False).values()
    assert report.fingerprint == recorded != plain  # what training records for the source


@pytest.mark.slow
def test_a_run_trains_and_evaluates_on_a_photo_source_with_the_same_crops(photos, tmp_path, monkeypatch):
    from deepfake_detect.core.config import TrainConfig
    from deepfake_detect.evaluation.evaluate import evaluate
    from deepfake_detect.training.train import train

    monkeypatch.setenv(
        "HOME", str(tmp_path / "home")
    )  # the default cache_dir (~/.cache/...) lies in tmp_path
    cfg = TrainConfig(
        data=[f"photos:{photos}"], runs_dir=str(tmp_path / "runs"), model="notebook-cnn", epochs=1,
        batch_size=4, image_size=32, base_size=40, threads=1,
    )  # fmt: skip
    run = train(cfg, progress=False).run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["data_sources"] == [
        {"name": "studio", "root": str(photos), "weight": 1.0, "kind": "photos"}
    ]
    result = evaluate(run, split="valid", n_resamples=10)  # the recorded source: a photo source again
    assert result["n"] == 2
    scores = (run / "scores_valid.csv").read_text().splitlines()[1:]
    crops = crops_dir(tmp_path / "home" / ".cache" / "deepfake-detect")
    assert all((crops / line.split(",")[0]).is_file() for line in scores)  # each row's crop, under the crops
