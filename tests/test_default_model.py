"""The shipped default model: its int8 graph matches its weights, and its card's figures are what it scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import deepfake_detect as dd
from deepfake_detect.core.checkpoint import DEFAULT_WEIGHTS
from deepfake_detect.data.layout import list_split

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="this checkout ships no default model")


def test_default_ships_its_int8_graph_and_test_metrics():
    det = dd.load_detector("default")
    assert det.int8_path == DEFAULT_WEIGHTS.with_name("default.int8.onnx")  # made from these very weights
    metrics = det.metadata["test_metrics"]
    assert metrics["split"] == "test" and metrics["roc_auc"] >= 0.99 and metrics["accuracy"] >= 0.95
    int8 = json.loads(det.int8_path.with_name("default.int8.onnx.json").read_text())["test_metrics"]
    assert int8["backend"] == "onnx-int8" and int8["roc_auc"] >= 0.99 and int8["accuracy"] >= 0.95


@pytest.mark.usefixtures("scan_runtime")
def test_scanning_the_test_split_gives_the_card_figures(shared_data, tmp_path):
    det = dd.load_detector("default")
    samples = list_split(shared_data, "test")
    if len(samples) != det.metadata["test_metrics"]["n"]:
        pytest.skip(f"{shared_data} is not the test split the card was scored on")
    labels = np.array([s.label for s in samples])
    paths = [str(s.path) for s in samples]
    for backend, card in (
        ("onnx", det.metadata["test_metrics"]),
        (
            "onnx-int8",
            json.loads(det.int8_path.with_name("default.int8.onnx.json").read_text())["test_metrics"],
        ),
    ):
        results = det.with_backend(backend).scan(paths, detect=False, workers=0, onnx_cache=tmp_path)
        fake = np.array([r["verdict"] == "fake" for r in results])
        logits = np.array([r["faces"][0]["logit"] for r in results])
        assert np.mean(fake == labels) == pytest.approx(card["accuracy"], abs=1e-9), backend
        assert roc_auc_score(labels, logits) == pytest.approx(card["roc_auc"], abs=1e-4), backend
