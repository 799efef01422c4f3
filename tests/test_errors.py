"""errors: galleries and a bucket table of the error rate by image attribute, with honest flags."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect.cli import app
from deepfake_detect.reporting.error_analysis import (
    bucket_table,
    error_analysis,
    estimate_jpeg_quality,
    image_attributes,
    wilson_interval,
)


def _smooth_photo(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise: enough structure for every quantisation table entry to matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_quality_estimate_is_within_5(tmp_path, quality):
    path = tmp_path / f"q{quality}.jpg"
    Image.fromarray(_smooth_photo()).save(path, "JPEG", quality=quality)
    assert abs(estimate_jpeg_quality(path) - quality) <= 5
    assert image_attributes(path)["jpeg_quality"] == estimate_jpeg_quality(path)


def test_png_is_lossless_and_attributes_are_measured(tmp_path):
    flat, sharp = tmp_path / "flat.png", tmp_path / "sharp.png"
    Image.new("RGB", (40, 30), (128, 128, 128)).save(flat)
    Image.fromarray(_smooth_photo(40)).save(sharp)
    a, b = image_attributes(flat), image_attributes(sharp)
    assert estimate_jpeg_quality(flat) is None and a["jpeg_quality"] == "lossless"
    assert a["size"] == "40x30" and a["brightness"] == pytest.approx(128, abs=0.5)
    assert a["contrast"] == 0 and a["sharpness"] == 0 and a["saturation"] == 0
    assert b["contrast"] > 10 and b["sharpness"] > 1 and b["saturation"] > 10


def test_wilson_interval_contains_the_rate_and_narrows_with_n():
    for k, n in [(0, 5), (1, 5), (5, 5), (30, 100), (300, 1000)]:
        low, high = wilson_interval(k, n)
        assert 0 <= low <= k / n <= high <= 1
    assert np.diff(wilson_interval(30, 100)) > np.diff(wilson_interval(300, 1000))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_bucket_built_to_be_bad_is_flagged_worse():
    rng = np.random.default_rng(0)
    n = 800
    brightness = rng.uniform(0, 255, n)
    dark = brightness < np.quantile(brightness, 0.25)
    # Dark images: 40% errors; the rest: 5%. Contrast is unrelated to the errors.
    wrong = rng.random(n) < np.where(dark, 0.40, 0.05)
    rows = bucket_table({"brightness": brightness, "contrast": rng.uniform(0, 80, n)}, wrong, n_bins=4)
    by_attr = defaultdict(list)
    for r in rows:
        by_attr[r["attribute"]].append(r)
    assert all(sum(r["count"] for r in group) == n for group in by_attr.values())
    darkest = by_attr["brightness"][0]
    assert darkest["bucket"].startswith("[") and darkest["flag"] == "worse"
    assert darkest["ci_low"] > wrong.mean()
    assert [r["flag"] for r in by_attr["brightness"][1:]] == ["", "", ""]
    assert not any(r["flag"] == "worse" for r in by_attr["contrast"])


def test_a_small_bad_bucket_is_only_maybe_worse():
    # 1 error in 4 images (25%) against an overall 10%: the rate is higher, but its interval reaches below 10%.
    values = ["small"] * 4 + ["big"] * 96
    wrong = np.r_[[True, False, False, False], np.arange(96) < 9]
    rows = {r["bucket"]: r for r in bucket_table({"size": values}, wrong)}
    assert wrong.mean() == 0.1
    assert (
        rows["small"]["flag"] == "maybe worse" and rows["small"]["ci_low"] < 0.1 < rows["small"]["error_rate"]
    )
    assert rows["big"]["flag"] == ""


def test_discrete_attributes_with_many_values_are_grouped():
    qualities = [*range(60, 100)] * 3 + ["lossless"] * 10
    rows = bucket_table({"jpeg_quality": qualities}, np.zeros(len(qualities), bool), n_bins=4)
    assert sum(r["count"] for r in rows) == len(qualities)
    assert len(rows) == 5 and rows[-1]["bucket"] == "lossless"


@pytest.mark.slow  # scores conftest's tiny_run, a trained model
def test_error_analysis_writes_galleries_and_buckets(tiny_run):
    result = error_analysis(tiny_run, top_k=3)
    out = tiny_run / "errors"
    for name in ("false_positives.png", "false_negatives.png", "errors.html", "buckets.csv", "buckets.md"):
        assert (out / name).is_file(), name
    for name in ("false_positives.png", "false_negatives.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
    assert result.n == 12 and 0 <= result.n_errors <= 12
    assert len(result.false_positives) <= 3 and len(result.false_negatives) <= 3
    assert all(e["label"] == 0 for e in result.false_positives)
    assert all(e["label"] == 1 for e in result.false_negatives)
    p_fp = [e["p_fake"] for e in result.false_positives]
    assert p_fp == sorted(p_fp, reverse=True)  # most confident first
    with open(out / "buckets.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    totals = defaultdict(int)
    for r in rows:
        totals[r["attribute"]] += int(r["count"])
    expected = {"brightness", "contrast", "saturation", "sharpness", "jpeg_quality", "size"}
    assert set(totals) == expected and set(totals.values()) == {result.n}
    assert "http://" not in (out / "errors.html").read_text()


@pytest.mark.slow
def test_errors_cli_prints_the_bucket_table(tiny_run):
    result = CliRunner().invoke(app, ["errors", str(tiny_run), "--top-k", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "| attribute | bucket |" in result.stdout and "| jpeg_quality | lossless | 12 |" in result.stdout
