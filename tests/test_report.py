"""report: a self-contained HTML report with every figure, rendered by a real browser; runs compare --plot."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect import metrics
from deepfake_detect.cli import app
from deepfake_detect.core.runs import read_json, write_json
from deepfake_detect.metrics import calibration_effect as calibration_summary
from deepfake_detect.metrics import expected_cost_curve as cost_by_threshold
from deepfake_detect.reporting.report import read_scores, report

FIGURES = (
    "sample_faces",
    "learning_curves",
    "roc_pr",
    "confusion_matrix",
    "score_histograms",
    "reliability",
    "cost_curve",
)
SECTIONS = (*FIGURES, "metrics", "config", "environment")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@pytest.fixture(scope="module")
def reported(tiny_run) -> Path:
    assert not (tiny_run / "eval_test.json").exists()  # so the report has to run the evaluation itself
    return report(tiny_run)


@pytest.mark.slow
def test_report_writes_html_and_every_figure_as_png(reported, tiny_run):
    assert reported == tiny_run / "report.html" and reported.is_file()
    assert (tiny_run / "eval_test.json").is_file() and (tiny_run / "scores_test.csv").is_file()
    written = {p.stem for p in (tiny_run / "plots").glob("*.png")}
    assert written == set(FIGURES)
    for name in FIGURES:
        with Image.open(tiny_run / "plots" / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) >= 200


@pytest.mark.slow
def test_html_is_self_contained_and_has_every_section(reported, tiny_run):
    text = reported.read_text()
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "@import" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for name in SECTIONS:
        assert f'id="{name}"' in text, name
    assert 'id="robustness"' not in text  # no robustness.json in this run
    # The embedded images are exactly the PNGs saved beside the report.
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {(tiny_run / "plots" / f"{n}.png").read_bytes() for n in FIGURES}


@pytest.mark.slow
def test_report_states_calibration_before_and_after_honestly(reported, tiny_run):
    text = reported.read_text()
    scores = read_scores(tiny_run / "scores_test.csv")
    cal = calibration_summary(
        scores.labels, scores.logits, read_json(tiny_run / "metrics.json")["temperature"]
    )
    ev = read_json(tiny_run / "eval_test.json")["calibration"]
    # The report's numbers are those evaluate computed on the same split.
    assert cal["ece_before"] == pytest.approx(ev["ece_raw"], abs=1e-5)
    assert cal["ece_after"] == pytest.approx(ev["ece_calibrated"], abs=1e-5)
    assert f"ECE {cal['ece_before']:.4f} before, {cal['ece_after']:.4f} after" in text
    assert f"Brier {cal['brier_before']:.4f} before, {cal['brier_after']:.4f} after" in text
    did_not = "Calibration did not lower ECE on this split" in text
    assert did_not == (cal["ece_after"] >= cal["ece_before"])


def test_cost_curve_matches_expected_cost():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    z = rng.normal(size=200) + y
    thresholds = np.r_[rng.normal(size=20), z[:5]]  # include thresholds equal to a score (the >= rule)
    for prior in (None, 0.1):
        curve = cost_by_threshold(y, z, thresholds, cost_fp=1.0, cost_fn=5.0, prior=prior)
        expected = [metrics.expected_cost(y, z, t, cost_fp=1.0, cost_fn=5.0, prior=prior) for t in thresholds]
        np.testing.assert_allclose(curve, expected)


@pytest.mark.slow
def test_robustness_section_appears_when_its_file_exists(reported, tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "copy"))
    rows = [
        {"condition": "clean", "roc_auc": 0.9, "accuracy": 0.8, "recall_at_1pct_fpr": 0.5},
        {
            "condition": "jpeg q30",
            "roc_auc": 0.7,
            "accuracy": 0.6,
            "recall_at_1pct_fpr": 0.2,
            "family": "jpeg",
        },
    ]
    write_json(run / "robustness.json", {"rows": rows})
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(buffer, "PNG")
    (run / "plots" / "robustness.png").write_bytes(buffer.getvalue())
    text = report(run).read_text()
    section = text[text.index('id="robustness"') :]
    assert "jpeg q30" in section and "recall_at_1pct_fpr" in section and "family" in section
    assert base64.b64encode(buffer.getvalue()).decode() in section


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(reported, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium binary found (run scripts/ensure-chromium.sh to install Debian's chromium)")
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            reported.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1200, 1600)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # Not blank: a real page has text and figures, so many pixels are far from the white background.
    assert pixels.std() > 10 and np.mean(pixels < 200) > 0.02


@pytest.mark.slow
def test_runs_compare_plot_overlays_roc_curves(reported, tiny_run, tmp_path):
    other = shutil.copytree(tiny_run, tiny_run.parent / f"{tiny_run.name}-copy")
    plot = tmp_path / "roc.png"
    args = [
        "runs",
        "compare",
        tiny_run.name,
        other.name,
        "--plot",
        str(plot),
        "--runs-dir",
        str(tiny_run.parent),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert tiny_run.name in result.stdout and other.name in result.stdout
    with Image.open(plot) as image:
        assert image.format == "PNG" and min(image.size) >= 300
