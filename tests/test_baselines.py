"""baselines: chance stays at chance, and a Fourier spectrum finds a periodic generator trace."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect.cli import app
from deepfake_detect.evaluation.baselines import (
    BASELINES,
    baselines,
    colour_features,
    format_table,
    fourier_features,
)

METRIC_KEYS = {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "ci95", "threshold"}


def test_fourier_features_see_a_checkerboard_at_the_highest_frequencies():
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 30, (64, 64))
    board = noise + 40 * (np.indices((64, 64)).sum(axis=0) % 2)
    plain, traced = fourier_features(noise), fourier_features(board)
    assert plain.shape == traced.shape == (128,)
    assert traced[-1] - plain[-1] > 2.0  # the corner ring (Nyquist on both axes) lights up
    assert abs(traced[10] - plain[10]) < 0.5  # low frequencies are untouched
    # Comparable features whatever the image size.
    assert fourier_features(rng.normal(size=(40, 40))).shape == (128,)


def test_colour_features_have_a_fixed_length_and_see_colour():
    grey = Image.new("RGB", (128, 128), (128, 128, 128))
    red = Image.new("RGB", (128, 128), (200, 30, 30))
    a, b = colour_features(grey), colour_features(red)
    assert a.shape == b.shape == (36,) and np.all(np.isfinite(a))
    assert b[0] > a[0] and b[1] < a[1]  # mean R up, mean G down


def test_fourier_baseline_beats_chance_on_a_periodic_trace(tmp_path, make_face_dataset):
    root = make_face_dataset(tmp_path / "faces", per_class=(30, 15, 15), size=32)
    result = baselines(root, methods=["chance", "fourier_logreg"], n_resamples=100, workers=1)
    fourier, chance = result["baselines"]["fourier_logreg"], result["baselines"]["chance"]
    assert set(fourier) >= METRIC_KEYS
    assert fourier["roc_auc"] >= 0.9 and fourier["roc_auc"] - chance["roc_auc"] >= 0.25
    assert fourier["ci95"]["roc_auc"][0] > 0.5
    assert result["n"] == {"train": 60, "valid": 30, "test": 30}


def test_chance_is_near_one_half_on_larger_data(tmp_path, make_face_dataset):
    root = make_face_dataset(tmp_path / "faces", per_class=(10, 10, 300), size=8, seed=1)
    result = baselines(root, methods=["chance", "majority"], n_resamples=200)
    chance, majority = result["baselines"]["chance"], result["baselines"]["majority"]
    assert abs(chance["roc_auc"] - 0.5) < 0.1
    assert chance["ci95"]["roc_auc"][0] < 0.5 < chance["ci95"]["roc_auc"][1] + 0.02
    # A constant score ranks nothing: AUC exactly 0.5, and every image gets the (tied) train majority.
    assert majority["roc_auc"] == 0.5 and majority["accuracy"] == 0.5
    table = format_table(result)
    assert "| chance |" in table and "| majority |" in table


def test_unknown_method_is_rejected(tmp_path, make_face_dataset):
    root = make_face_dataset(tmp_path / "faces", per_class=(2, 2, 2), size=8)
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines(root, methods=["nearest_neighbour"])


def test_cli_json_is_one_object_with_every_baseline(tmp_path, make_face_dataset):
    root = make_face_dataset(tmp_path / "faces", per_class=(12, 6, 6), size=16)
    result = CliRunner().invoke(app, ["baselines", "--data", str(root), "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert set(parsed["baselines"]) == set(BASELINES)
    for r in parsed["baselines"].values():
        assert set(r) >= METRIC_KEYS and 0 <= r["roc_auc"] <= 1
