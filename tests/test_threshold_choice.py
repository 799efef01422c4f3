"""evaluate decides on the validation split only: the threshold it uses is the validation one, not the test one.

The evaluation data set is made so that the two differ on purpose: its test split holds the validation images
with their class folders swapped. Any threshold read off the test scores then lands far from the validation one.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfake_detect import TrainConfig, evaluate, load_detector, metrics, train
from deepfake_detect.data import list_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tiny_dataset, tmp_path_factory) -> Path:
    cfg = TrainConfig(
        data=str(tiny_dataset),
        runs_dir=str(tmp_path_factory.mktemp("runs")),
        model="notebook-cnn",
        epochs=2,
        batch_size=8,
        image_size=32,
        base_size=40,
        seed=3,
        threads=1,
    )
    return train(cfg, progress=False).run_dir


@pytest.fixture(scope="module")
def swapped_test(tiny_dataset, tmp_path_factory) -> Path:
    """The training data's train and valid splits, and for test the valid images under the other label."""
    root = tmp_path_factory.mktemp("swapped") / "faces"
    for split in ("train", "valid"):
        shutil.copytree(tiny_dataset / split, root / split)
    shutil.copytree(tiny_dataset / "valid" / "real", root / "test" / "fake")
    shutil.copytree(tiny_dataset / "valid" / "fake", root / "test" / "real")
    return root


@pytest.fixture(scope="module")
def scores(run_dir, swapped_test) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Labels and logits of each split, scored here with the run's weights."""
    det = load_detector(run_dir / "model.safetensors", backend="torch")
    found = {}
    for split in ("valid", "test"):
        preds = det.predict_samples(list_split(swapped_test, split))
        found[split] = (preds.labels, preds.logits)
    return found


RULES = {
    "f1": ({}, lambda y, s: metrics.f1_optimal_threshold(y, s)),
    "target_fpr": ({"target_fpr": 0.0}, lambda y, s: metrics.threshold_at_fpr(y, s, 0.0)),
    "min_cost": (
        {"cost_fp": 1.0, "cost_fn": 5.0},
        lambda y, s: metrics.min_cost_threshold(y, s, cost_fp=1.0, cost_fn=5.0),
    ),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_evaluate_uses_the_threshold_of_the_validation_scores(run_dir, swapped_test, scores, rule):
    options, threshold_on = RULES[rule]
    on_valid, on_test = threshold_on(*scores["valid"]), threshold_on(*scores["test"])
    assert abs(on_valid - on_test) > 0.05, "the data set was meant to make the two thresholds differ"

    result = evaluate(run_dir, swapped_test, split="test", n_resamples=10, progress=False, **options)

    assert result["threshold"]["rule"] == rule
    assert result["threshold"]["logit"] == pytest.approx(on_valid, abs=1e-4)
    assert result["threshold"]["logit"] != pytest.approx(on_test, abs=1e-4)
    # The verdicts written for the test images are taken at that same validation threshold.
    with open(run_dir / "scores_test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(scores["test"][0]) == result["n"]
    assert [r["verdict"] for r in rows] == ["fake" if float(r["logit"]) >= on_valid else "real" for r in rows]
