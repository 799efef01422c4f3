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


@pytest.mark.parametrize(("base", "size"), [(256, 128), (259, 128), (224, 160)])
def test_the_centre_view_is_the_crop_evaluation_scores(bench, base, size):
    prep = Preprocess(size=size, resize_mode="crop", base_size=base)
    face = np.random.default_rng(0).integers(0, 256, (base, base, 3), dtype=np.uint8)
    assert np.array_equal(bench.views(face, prep.size)[bench.CENTRE], prep.finish(face))
    assert np.array_equal(bench.views(face, prep.size, centre_only=True)[0], prep.finish(face))


def test_an_unreadable_face_is_reported_and_left_out(bench, tmp_path, capsys):
    from PIL import Image

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    Image.new("RGB", (256, 256), (90, 120, 150)).save(good)
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    samples = [bench.Sample(bad, 1, "sdxl-sfhq"), bench.Sample(good, 0, "faces140k")]
    faces, kept = bench.load_views(samples, Preprocess(size=128, resize_mode="crop"), centre_only=False)
    assert [s.path for s in kept] == [good] and faces[0].shape == (bench.MIRROR + 1, 128, 128, 3)
    err = capsys.readouterr().err
    assert "skipped" in err and "bad.jpg" in err


def test_the_grid_covers_every_pixel_of_the_face(bench):
    seen = np.zeros((256, 256), bool)
    for top, left in bench.grid_origins(256, 128, bench.GRID):
        seen[top : top + 128, left : left + 128] = True
    assert seen.all()


def test_an_unknown_lever_is_refused_by_name(bench):
    with pytest.raises(ValueError, match="unknown lever 'grid-median'"):
        bench.pool(np.zeros((2, bench.MIRROR + 1)), "grid-median")


def made_up_scores(rng):
    """Two real sources and two fake ones; web's reals score high, as an unseen real source's might. (A held-out
    fake source cannot move the threshold at all: the rule reads only the reals.)"""
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


def test_an_ensemble_of_runs_that_read_different_faces_is_refused(bench):
    scored = {"paths": ["a.jpg", "b.jpg"], "logits": np.zeros((2, bench.MIRROR + 1))}
    partner = {"paths": ["b.jpg", "a.jpg"], "logits": np.ones((2, 1))}  # same faces, other order
    with pytest.raises(SystemExit, match="read different faces"):
        bench.ensemble_logits(scored, partner)
    partner["paths"] = scored["paths"]
    assert bench.ensemble_logits(scored, partner).tolist() == [0.5, 0.5]


def test_the_centre_check_compares_with_the_runs_own_trained_row(bench, tmp_path):
    run = tmp_path / "loo-default-mix-without-sdxl-sfhq-e5"
    rows = [
        {"run": run.name, "held_out": "sdxl-sfhq", "valid": {"roc_auc": 0.8}},
        {"run": run.name, "held_out": "sdxl-sfhq", "lever": "flip", "valid": {"roc_auc": 0.9}},
        {"run": "another-run", "held_out": "sdxl-sfhq", "valid": {"roc_auc": 0.7}},
    ]
    assert bench.trained_row(rows, run, "sdxl-sfhq")["valid"]["roc_auc"] == 0.8
    assert bench.trained_row(rows, run, "sd21-sdfd") is None
