"""robustness: the perturbations do what they say, and the report is complete, in range and reproducible."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from deepfake_detect.data import list_split
from deepfake_detect.evaluation import robustness as rb
from deepfake_detect.metrics import threshold_at_fpr
from deepfake_detect.scan.detector import load_detector

CLI = [sys.executable, "-m", "deepfake_detect"]

# Written out rather than read from CONDITIONS, so a condition dropped from the module fails here.
EXPECTED = [
    "clean",
    "jpeg_q95",
    "jpeg_q75",
    "jpeg_q50",
    "jpeg_q30",
    "downscale_0.75",
    "downscale_0.5",
    "downscale_0.25",
    "blur_s0.5",
    "blur_s1",
    "blur_s2",
    "noise_s5",
    "noise_s10",
    "crop_0.9",
    "crop_0.75",
    "brightness_0.7",
    "brightness_1.3",
    "contrast_0.7",
    "contrast_1.3",
]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A smooth face-sized test card with sharp edges and fine texture, so every perturbation shows."""
    y, x = np.mgrid[0:96, 0:96]
    base = np.stack([x * 2.0, y * 2.0, 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    base[30:66, 30:66] = (230, 40, 40)  # a sharp-edged block in the middle
    texture = np.random.default_rng(0).normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def _laplacian_var(image: Image.Image) -> float:
    return float(ndimage.laplace(np.asarray(image.convert("L"), float)).var())


def test_condition_names_and_parameters_are_the_documented_ones():
    assert [c.name for c in rb.CONDITIONS] == EXPECTED
    params = {c.name: c.param for c in rb.CONDITIONS}
    assert params["jpeg_q30"] == 30 and params["downscale_0.25"] == 0.25 and params["noise_s10"] == 10


def test_jpeg_lower_quality_changes_pixels_more(photo):
    q95, q30 = _diff(photo, rb.jpeg(photo, 95)), _diff(photo, rb.jpeg(photo, 30))
    assert 0 < q95 < q30
    assert rb.jpeg(photo, 30).size == photo.size


def test_blur_lowers_laplacian_variance_and_has_the_stated_sigma(photo):
    sharp = _laplacian_var(photo)
    variances = [_laplacian_var(rb.gaussian_blur(photo, s)) for s in (0.5, 1, 2)]
    assert sharp > variances[0] > variances[1] > variances[2]
    # The impulse response's spread is sigma: Pillow's box approximation must stay close to a Gaussian.
    impulse = np.zeros((61, 61, 3), np.uint8)
    impulse[30, 30] = 255
    for sigma in (1, 2):
        out = np.asarray(rb.gaussian_blur(Image.fromarray(impulse), sigma), float)[..., 0].sum(0)
        offsets = np.arange(61) - 30
        assert np.sqrt((out * offsets**2).sum() / out.sum()) == pytest.approx(sigma, abs=0.1)


def test_downscale_and_back_keeps_the_size_and_loses_detail(photo):
    for factor in (0.75, 0.5, 0.25):
        assert rb.rescale(photo, factor).size == photo.size
    detail = [_laplacian_var(rb.rescale(photo, f)) for f in (0.75, 0.25)]
    assert _laplacian_var(photo) > detail[0] > detail[1]


def test_centre_crop_keeps_the_centre(photo):
    crop = rb.centre_crop(photo, 0.75)
    assert crop.size == (72, 72)
    # 96 * 0.75 = 72 px kept, 12 px cut from each side: pixel (12, 12) of the photo is the crop's origin.
    assert np.array_equal(np.asarray(crop), np.asarray(photo)[12:84, 12:84])


def test_noise_has_the_stated_sigma_and_is_seeded():
    grey = Image.new("RGB", (128, 128), (128, 128, 128))
    one = rb.gaussian_noise(grey, 10, np.random.default_rng(5))
    again = rb.gaussian_noise(grey, 10, np.random.default_rng(5))
    other = rb.gaussian_noise(grey, 10, np.random.default_rng(6))
    assert np.asarray(one, float).std() == pytest.approx(10, rel=0.05)
    assert np.array_equal(np.asarray(one), np.asarray(again))
    assert not np.array_equal(np.asarray(one), np.asarray(other))


def test_brightness_and_contrast_scale_as_stated():
    grey = Image.fromarray(np.tile(np.array([[100, 200]], np.uint8), (4, 2))[..., None].repeat(3, -1))
    assert np.asarray(rb.brightness(grey, 0.7))[0, :2, 0].tolist() == [70, 140]
    stretched = np.asarray(rb.contrast(grey, 1.3), float)[0, :2, 0]
    assert stretched[1] - stretched[0] == pytest.approx(130, abs=2)


# The tests below score conftest's tiny_run, a trained model: they are slow.


@pytest.fixture(scope="module")
def result(tiny_run) -> dict:
    return rb.robustness(tiny_run, batch_size=8, workers=2, progress=False)


@pytest.mark.slow
def test_every_condition_is_reported_in_range(result, tiny_run):
    saved = json.loads((tiny_run / "robustness.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert [r["condition"] for r in saved["rows"]] == EXPECTED
    for row in saved["rows"]:
        assert {"condition", "family", "param", "roc_auc", "accuracy", "recall_at_1pct_fpr", "n"} <= set(row)
        assert row["n"] == saved["n"] == 12
        for key in ("roc_auc", "accuracy", "recall_at_1pct_fpr", "fpr_at_1pct_threshold"):
            assert 0.0 <= row[key] <= 1.0, (row["condition"], key)
    clean = saved["rows"][0]
    assert clean["roc_auc_drop"] == 0.0 and clean["recall_at_1pct_fpr_drop"] == 0.0
    jpeg = next(r for r in saved["rows"] if r["condition"] == "jpeg_q30")
    assert jpeg["accuracy_drop"] == pytest.approx(clean["accuracy"] - jpeg["accuracy"])


@pytest.mark.slow
def test_every_perturbation_reaches_the_model(result):
    clean = result["rows"][0]
    for row in result["rows"][1:]:
        shifted = (row["mean_logit_real"], row["mean_logit_fake"])
        assert shifted != (clean["mean_logit_real"], clean["mean_logit_fake"]), row["condition"]


@pytest.mark.slow
def test_markdown_table_has_a_line_per_condition(result):
    lines = [line for line in rb.format_markdown(result, "tiny").splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[1:]] == EXPECTED


@pytest.mark.slow
def test_plot_is_written(result, tiny_run):
    png = tiny_run / "plots" / "robustness.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 400


@pytest.mark.slow
def test_recall_threshold_comes_from_clean_validation(result, tiny_run, tiny_dataset):
    det = load_detector(tiny_run)
    val = det.predict_samples(list_split(tiny_dataset, "valid"))
    test = det.predict_samples(list_split(tiny_dataset, "test"))
    expected = threshold_at_fpr(val.labels, val.logits, 0.01)
    assert result["threshold_1pct_fpr_logit"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert result["threshold_logit"] == det.threshold_logit
    # The clean row is the normal evaluation path: same recall as scoring the test split directly.
    fakes = test.logits[test.labels == 1]
    assert result["rows"][0]["recall_at_1pct_fpr"] == pytest.approx(np.mean(fakes >= expected))


@pytest.mark.slow
def test_results_are_reproducible(result, tiny_run, tmp_path):
    again = rb.robustness(_copy_run(tiny_run, tmp_path), batch_size=8, workers=1, progress=False)
    assert again["rows"] == result["rows"]
    assert again["threshold_1pct_fpr_logit"] == result["threshold_1pct_fpr_logit"]


@pytest.mark.slow
def test_threads_option_leaves_torch_as_it_was(tiny_run, tmp_path):
    before = torch.get_num_threads()
    rb.robustness(_copy_run(tiny_run, tmp_path), threads=before + 1, limit_per_class=2, progress=False)
    assert torch.get_num_threads() == before


def _copy_run(run: Path, tmp_path: Path) -> Path:
    """A private copy of the run, so a test writing robustness.json leaves the shared run's alone."""
    return Path(shutil.copytree(run, tmp_path / run.name))


@pytest.mark.slow
def test_unreadable_images_are_skipped_with_a_count(tiny_dataset, tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path)
    data = tmp_path / "faces"
    for split in ("valid", "test"):
        for cls in ("real", "fake"):
            (data / split / cls).mkdir(parents=True)
            for src in sorted((tiny_dataset / split / cls).iterdir())[:3]:
                (data / split / cls / src.name).write_bytes(src.read_bytes())
    (data / "test" / "fake" / "broken.png").write_bytes(b"not an image")
    out = rb.robustness(run, data, progress=False)
    assert out["n"] == 6 and out["n_unreadable"] == 1 and out["valid_n"] == 6


@pytest.mark.slow
def test_cli_prints_one_json_object(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path)
    proc = subprocess.run(
        [*CLI, "robustness", str(run), "--json", "--limit-per-class", "2", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n"] == 4 and out["valid_n"] == 4 and len(out["rows"]) == len(EXPECTED)
    assert (run / "robustness.json").is_file() and (run / "plots" / "robustness.png").is_file()
