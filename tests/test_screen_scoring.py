"""benchmarks/screen_scoring.py: the scoring-time levers of issue 21's transfer screen.

A lever's row is only comparable with the trained recipes' rows if its centre view is the crop ``evaluate``
scores and its threshold is fitted without the held-out source; both are checked here on made-up images and
scores, nothing is trained.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from benchmark_modules import benchmark_module
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.metrics.calibration.fit import calibrate_on_validation


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("screen_scoring") as module:
        yield module


def test_docstring_examples_hold(bench):
    failed, attempted = doctest.testmod(bench, optionflags=doctest.ELLIPSIS)[:2]
    assert attempted >= 4 and failed == 0


def test_the_centre_view_is_the_crop_evaluation_scores(bench):
    prep = Preprocess(size=128, resize_mode="crop", base_size=256)
    face = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert np.array_equal(bench.views(face, prep.size)[bench.CENTRE], prep.finish(face))
    assert np.array_equal(bench.views(face, prep.size, centre_only=True)[0], prep.finish(face))


def test_the_grid_covers_every_pixel_of_the_face(bench):
    seen = np.zeros((256, 256), bool)
    for top, left in bench.grid_origins(256, 128, bench.GRID):
        seen[top : top + 128, left : left + 128] = True
    assert seen.all()


def test_an_unknown_lever_is_refused_by_name(bench):
    with pytest.raises(ValueError, match="unknown lever 'grid-median'"):
        bench.pool(np.zeros((2, bench.MIRROR + 1)), "grid-median")


def made_up_scores(rng):
    """Two real sources and two fake ones; web's reals score high, as an unseen real source's might."""
    names = np.array(["ffhq"] * 40 + ["web"] * 20 + ["gan"] * 30 + ["sdxl"] * 30, dtype=object)
    labels = np.array([0] * 60 + [1] * 60)
    z = np.concatenate(
        [rng.normal(-2, 1, 40), rng.normal(1, 1, 20), rng.normal(2, 1, 30), rng.normal(0, 1, 30)]
    )
    return z, {"labels": labels, "names": names, "max_fpr": 0.05}


def test_a_held_out_real_source_never_sets_the_threshold(bench):
    z, scored = made_up_scores(np.random.default_rng(1))
    threshold, _ = bench.lever_figures(z, scored, "web")
    kept = scored["names"] != "web"
    fitted = calibrate_on_validation(z[kept], scored["labels"][kept], scored["names"][kept], 0.05)
    with_web = calibrate_on_validation(z, scored["labels"], scored["names"], 0.05)
    assert threshold == fitted["threshold_logit"] < with_web["threshold_logit"]


def test_moving_a_held_out_fake_source_moves_its_figures_only(bench):
    z, scored = made_up_scores(np.random.default_rng(2))
    threshold, rows = bench.lever_figures(z, scored, "sdxl")
    moved = z.copy()
    moved[scored["names"] == "sdxl"] += 10.0
    threshold_moved, rows_moved = bench.lever_figures(moved, scored, "sdxl")
    before, after = ({r["source"]: r for r in figures} for figures in (rows, rows_moved))
    assert threshold_moved == threshold
    assert before["sdxl"]["auc_against"] == "pooled reals"
    assert before["sdxl"]["roc_auc"] < after["sdxl"]["roc_auc"] == 1.0
    assert before["gan"]["roc_auc"] == after["gan"]["roc_auc"]
