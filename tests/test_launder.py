"""Laundering, checked on the files it writes: decoded sizes, JPEG quantisation tables and chroma subsampling,
seeding by (seed, index); the dataset hook; and `evaluate --launder` beside a clean evaluation."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin
from typer.testing import CliRunner

from deepfake_detect.cli import app
from deepfake_detect.data.dataset import DecodedCache, FaceDataset
from deepfake_detect.data.launder import launder_bytes, launder_rng
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Preprocess, normalize

INDICES = range(40)


def _protocol(seed: int, index: int) -> tuple[int, int]:
    """The protocol, written out independently: a generator seeded by (seed, index) draws the long side from
    [128, 1024], then the JPEG quality from [30, 95], both integers, both ends included."""
    rng = np.random.default_rng([seed, index])
    return int(rng.integers(128, 1025)), int(rng.integers(30, 96))


def _photo(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width * height)
    ramp = np.linspace(0, 255, width * height * 3).reshape(height, width, 3)
    pixels = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def _tables_pillow_writes(quality: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    return Image.open(buffer).quantization


@pytest.fixture(scope="module")
def laundered() -> dict[tuple[str, int], bytes]:
    photos = {"square": _photo(256, 256), "wide": _photo(300, 200)}
    return {
        (name, i): launder_bytes(data, launder_rng(0, i))[0] for name, data in photos.items() for i in INDICES
    }


@pytest.mark.parametrize("name, aspect", [("square", 1.0), ("wide", 2 / 3)])
def test_decoded_size_has_the_drawn_long_side_and_keeps_the_aspect(laundered, name, aspect):
    sides = []
    for i in INDICES:
        with Image.open(io.BytesIO(laundered[name, i])) as image:
            width, height = image.size
            assert image.format == "JPEG"
        long_side, _ = _protocol(0, i)
        assert width == long_side and 128 <= width <= 1024
        assert abs(height - width * aspect) <= 1
        sides.append(width)
    # The range reaches below the 256 px training frame and well above it.
    assert min(sides) < 256 and max(sides) > 768


@pytest.mark.parametrize("name", ["square", "wide"])
def test_quantisation_tables_are_those_of_the_drawn_quality(laundered, name):
    qualities = []
    for i in INDICES:
        _, quality = _protocol(0, i)
        with Image.open(io.BytesIO(laundered[name, i])) as image:
            assert image.quantization == _tables_pillow_writes(quality), (i, quality)
            assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0
        qualities.append(quality)
    assert min(qualities) < 45 and max(qualities) > 80 and len(set(qualities)) > 20


def test_same_seed_gives_identical_bytes_other_index_or_seed_other_bytes():
    photo = _photo(256, 256)
    first = launder_bytes(photo, launder_rng(7, 3))[0]
    assert launder_bytes(photo, launder_rng(7, 3))[0] == first
    assert launder_bytes(photo, launder_rng(7, 4))[0] != first
    assert launder_bytes(photo, launder_rng(8, 3))[0] != first
    draws = {_protocol(7, i) for i in INDICES}
    assert len(draws) == len(INDICES)  # each index its own draw


def test_dataset_launders_each_image_by_its_position(tmp_path):
    path = tmp_path / "face.jpg"
    path.write_bytes(_photo(256, 256))
    pre = Preprocess(size=32, base_size=40)
    samples = [Sample(path, 1), Sample(path, 1)]  # one file at two positions: two different launderings
    dataset = FaceDataset(samples, pre, launder_seed=5)
    for i in (0, 1):
        data, _ = launder_bytes(path.read_bytes(), launder_rng(5, i))
        expected = normalize(pre.finish(pre.load(data)), pre.mean, pre.std)[0]
        np.testing.assert_array_equal(dataset[i][0].numpy(), expected)
    assert not np.array_equal(dataset[0][0].numpy(), dataset[1][0].numpy())
    clean = FaceDataset(samples, pre)
    assert not np.array_equal(dataset[0][0].numpy(), clean[0][0].numpy())
    with pytest.raises(ValueError, match="cache"):
        FaceDataset(samples, pre, launder_seed=5, cache=DecodedCache(samples, pre, tmp_path, "k"))


def _logits(path) -> np.ndarray:
    with open(path, newline="") as handle:
        return np.array([float(r["logit"]) for r in csv.DictReader(handle)])


@pytest.mark.slow  # conftest's tiny_run trains a model
def test_evaluate_launder_writes_its_own_files_and_leaves_the_clean_ones(tiny_run):
    from deepfake_detect.evaluation.evaluate import evaluate

    clean = evaluate(tiny_run, split="test", n_resamples=20, progress=False)
    before = {
        name: (tiny_run / name).read_bytes() for name in ("eval_test.json", "eval_test.md", "scores_test.csv")
    }
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", str(tiny_run), "--launder", "--launder-seed", "3", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for name, data in before.items():
        assert (tiny_run / name).read_bytes() == data, f"{name} was overwritten"
    for name in ("eval_test_laundered.json", "eval_test_laundered.md", "scores_test_laundered.csv"):
        assert (tiny_run / name).is_file(), name
    assert out["laundering"]["seed"] == 3 and out["n"] == clean["n"] == 12
    assert out["threshold"] == clean["threshold"]  # the one chosen on clean validation
    moved = np.abs(_logits(tiny_run / "scores_test_laundered.csv") - _logits(tiny_run / "scores_test.csv"))
    assert np.mean(moved > 1e-4) > 0.5  # the laundered images really reached the model
    assert "laundered (seed 3)" in (tiny_run / "eval_test_laundered.md").read_text()
    first = (tiny_run / "eval_test_laundered.json").read_bytes()
    again = runner.invoke(app, ["evaluate", str(tiny_run), "--launder", "--seed", "3", "--json", "-q"])
    assert again.exit_code == 0 and (tiny_run / "eval_test_laundered.json").read_bytes() == first
