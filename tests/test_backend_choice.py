"""The int8 graph as a model's default backend: chosen on validation, then used by both evaluate and scan."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import deepfake_detect as dd
from deepfake_detect import metrics
from deepfake_detect.core.checkpoint import read_metadata
from deepfake_detect.core.runs import RunDir
from deepfake_detect.evaluation.backend_choice import compare_int8, make_int8_default
from deepfake_detect.evaluation.evaluate import evaluate, run_sources, score_split
from deepfake_detect.export import export_run

pytestmark = pytest.mark.slow  # trains the tiny run


@pytest.fixture(scope="module")
def quantised_run(tiny_run) -> Path:
    export_run(RunDir(tiny_run).model, quantize=True)
    return tiny_run


def test_int8_is_not_the_default_when_its_validation_auc_drops_more_than_the_tolerance(
    quantised_run, tmp_path
):
    weights = RunDir(quantised_run).model
    before = read_metadata(weights)["tensor_sha256"]
    check = compare_int8(quantised_run, tolerance=-1.0)  # no AUC drop is below -1: it cannot pass
    assert check["split"] == "valid" and not check["passes"]
    assert set(check["gap"]) == {"clean", "laundered"} and set(check["float"]["clean"]) == {
        "pooled",
        "per_source",
    }
    gap = check["float"]["clean"]["pooled"] - check["int8"]["clean"]["pooled"]
    assert check["gap"]["clean"]["pooled"] == pytest.approx(gap)
    assert not make_int8_default(weights, check)
    meta = read_metadata(weights)
    assert meta.get("default_backend") is None and meta["int8_validation"]["passes"] is False
    assert "calibrated_with" not in meta  # nothing refitted
    assert meta["tensor_sha256"] == before
    det = dd.load_detector(quantised_run, onnx_cache=tmp_path)
    assert det.backend != "onnx-int8" and det.scoring_backend == "torch"


def test_int8_made_the_default_is_what_evaluate_and_a_default_scan_score_with(
    quantised_run, tiny_dataset, tmp_path
):
    weights = RunDir(quantised_run).model
    assert make_int8_default(weights, compare_int8(quantised_run, tolerance=1.0))
    meta = read_metadata(weights)
    assert meta["default_backend"] == "onnx-int8" and meta["calibrated_with"] == "onnx-int8"
    # The threshold is refitted by the run's rule (F1 here) on the int8 graph's validation scores.
    int8 = dd.load_detector(quantised_run, backend="onnx-int8", abstain=False)
    samples, valid = score_split(int8, run_sources(RunDir(quantised_run), None), "valid")
    assert meta["threshold_logit"] == pytest.approx(metrics.f1_optimal_threshold(valid.labels, valid.logits))
    assert meta["abstain_validation"]["n_laundered"] == len(samples)
    result = evaluate(quantised_run, split="test", n_resamples=10, progress=False)
    assert result["model"]["backend"] == "onnx-int8"
    with open(quantised_run / "scores_test.csv") as handle:
        expected = {row["path"]: row for row in csv.DictReader(handle)}
    det = dd.load_detector(quantised_run, onnx_cache=tmp_path, abstain=False)  # backend "auto"
    assert det.backend == "onnx-int8"
    results = det.scan([tiny_dataset / "test"], detect=False)
    assert len(results) == len(expected) == 12
    for r in results:
        row = expected[Path(r["path"]).relative_to(tiny_dataset).as_posix()]
        assert abs(r["faces"][0]["logit"] - float(row["logit"])) <= 5e-7  # the CSV's 6 decimals
        assert r["verdict"] == row["verdict"]
    assert dd.load_detector(quantised_run, backend="torch").backend == "torch"  # still asked for by name


def test_a_failed_check_refits_on_float_what_was_fitted_on_an_int8_graph(quantised_run, tmp_path):
    """A new int8 graph that fails the check, for weights whose earlier int8 graph was the default (the previous
    test made it so): threshold, temperature and band are fitted again on the float scores users now get."""
    weights = RunDir(quantised_run).model
    assert read_metadata(weights)["calibrated_with"] == "onnx-int8"
    assert not make_int8_default(weights, compare_int8(quantised_run, tolerance=-1.0))
    meta = read_metadata(weights)
    assert meta.get("default_backend") is None and meta["calibrated_with"] == "torch"
    torch_det = dd.load_detector(quantised_run, backend="torch", abstain=False)
    _, valid = score_split(torch_det, run_sources(RunDir(quantised_run), None), "valid")
    assert meta["threshold_logit"] == pytest.approx(metrics.f1_optimal_threshold(valid.labels, valid.logits))
    assert dd.load_detector(quantised_run, onnx_cache=tmp_path).scoring_backend == "torch"
