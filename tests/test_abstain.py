"""The "uncertain" verdict: the band is chosen on validation only (clean and laundered) and stored with the
weights; scan (JSON, CSV, Python, videos), serve and the command line say "uncertain" inside it and "real" or
"fake" outside; ``--no-abstain``, an explicit threshold and a model without a band give the two-way verdict.

The scan and serve tests use an untrained network whose last layer is amplified (scores spread) and a band set
by hand between its scores on a few noise crops, so each crop's verdict is known beforehand.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import deepfake_detect as dd
from deepfake_detect.cli import app
from deepfake_detect.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from deepfake_detect.data import Sample, list_split
from deepfake_detect.data.launder import launder_bytes, launder_rng
from deepfake_detect.metrics.calibration import abstention_band
from deepfake_detect.serve import ServeConfig, create_app, running_server

pytestmark = pytest.mark.usefixtures("scan_runtime")

N_CROPS = 9


def with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of the checkpoint ``source`` with its metadata changed (same tensors, same hash)."""
    state, meta = load_checkpoint(source)
    save_checkpoint(target, state, {**meta, **changes})
    return target


def band_keys(lower, upper, precision=0.99) -> dict:
    return {
        "abstain_lower_logit": lower,
        "abstain_upper_logit": upper,
        "abstain_target_precision": precision,
        "abstain_coverage": 0.5,
    }


def expected(logit: float, lower: float, upper: float) -> str:
    return "fake" if logit >= upper else "real" if logit < lower else "uncertain"


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crops")
    for i in range(N_CROPS):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"crop{i}.png")
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, untrained_checkpoint, crops) -> dict:
    """Two checkpoints of the same tensors and threshold (the median crop logit): ``plain`` without a band,
    ``banded`` with one holding the middle three crops."""
    folder = tmp_path_factory.mktemp("models")
    raw = untrained_checkpoint(folder / "raw.safetensors", gain=1000)
    rows = dd.load_detector(raw, backend="torch").scan(sorted(crops.iterdir()), detect=False, workers=0)
    logits = {Path(r["path"]).name: r["faces"][0]["logit"] for r in rows}
    z = np.sort(list(logits.values()))
    assert np.all(np.diff(z) > 1e-3), "the crops were meant to score apart"
    lower, upper = float((z[2] + z[3]) / 2), float((z[5] + z[6]) / 2)
    threshold = float(z[4])
    plain = with_metadata(raw, folder / "plain.safetensors", threshold_logit=threshold)
    banded = with_metadata(
        raw, folder / "banded.safetensors", threshold_logit=threshold, **band_keys(lower, upper)
    )
    return {
        "plain": plain,
        "banded": banded,
        "logits": logits,
        "band": (lower, upper),
        "threshold": threshold,
    }


def scan_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["scan", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_scan_json_says_uncertain_inside_the_band_and_decides_outside(models, crops):
    code, out, err = scan_cli(
        str(crops), "--model", str(models["banded"]), "--no-detect", "--json", "--backend", "torch"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == N_CROPS
    lower, upper = models["band"]
    for row in rows:
        face = row["faces"][0]
        assert face["logit"] == pytest.approx(models["logits"][Path(row["path"]).name], abs=1e-4)
        assert face["verdict"] == expected(face["logit"], lower, upper)
        assert row["verdict"] == face["verdict"]  # one face: the photo's verdict is its face's
        assert row["model"]["uncertain_band"] == {
            "lower_logit": lower,
            "upper_logit": upper,
            "target_precision": 0.99,
        }
    verdicts = [row["verdict"] for row in rows]
    assert verdicts.count("uncertain") == 3 and verdicts.count("real") == 3 and verdicts.count("fake") == 3
    assert "3 fake, 3 real, 3 uncertain" in err


def test_the_html_report_shows_uncertain_cards_apart(models, crops, tmp_path):
    report = tmp_path / "scan.html"
    code, _, _ = scan_cli(
        str(crops),
        "--model",
        str(models["banded"]),
        "--no-detect",
        "--backend",
        "torch",
        "--report",
        str(report),
        "-q",
    )
    page = report.read_text()
    assert code == 0 and page.count('<div class="card uncertain">') == 3 and "3 uncertain" in page
    assert ".card.uncertain{" in page  # styled apart (amber), not as real or fake


def test_scan_csv_says_uncertain_too(models, crops):
    code, out, _ = scan_cli(
        str(crops), "--model", str(models["banded"]), "--no-detect", "--csv", "--backend", "torch"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    lower, upper = models["band"]
    assert code == 0 and len(rows) == N_CROPS
    for row in rows:
        assert row["face_verdict"] == row["verdict"] == expected(float(row["face_logit"]), lower, upper)
    assert sum(row["verdict"] == "uncertain" for row in rows) == 3


def test_no_abstain_gives_the_verdicts_of_the_same_model_without_a_band(models, crops):
    args = (str(crops), "--no-detect", "--json", "--backend", "torch")
    _, two_way, err = scan_cli(*args, "--model", str(models["banded"]), "--no-abstain")
    _, plain, _ = scan_cli(*args, "--model", str(models["plain"]))
    rows = [json.loads(line) for line in two_way.splitlines()]
    assert {r["verdict"] for r in rows} == {"real", "fake"} and "uncertain" not in err
    assert all("uncertain_band" not in r["model"] for r in rows)
    # Same tensors, hence the same sha256: without the band, the rows are exactly the plain model's.
    assert [{**r, "path": Path(r["path"]).name} for r in rows] == [
        {**json.loads(line), "path": Path(json.loads(line)["path"]).name} for line in plain.splitlines()
    ]
    for row in rows:
        assert row["verdict"] == ("fake" if row["faces"][0]["logit"] >= models["threshold"] else "real")


def test_the_choice_is_made_once_when_the_detector_is_loaded(models, crops):
    paths = sorted(crops.iterdir())
    det = dd.load_detector(models["banded"], backend="torch")
    two_way = det.with_abstain(False)
    assert det.band == models["band"] and two_way.band is None and det.with_abstain(True) is det
    assert two_way.backend == det.backend == "torch"
    plain = dd.load_detector(models["plain"], backend="torch")
    assert two_way.scan(paths, detect=False) == plain.scan(paths, detect=False)
    assert dd.load_detector(models["banded"], backend="torch", abstain=False).scan(paths, detect=False) == (
        plain.scan(paths, detect=False)
    )
    # with_backend keeps the choice.
    assert det.with_backend("onnx").band == models["band"] and two_way.with_backend("onnx").band is None


def test_a_model_without_a_band_is_unchanged(models, crops):
    det = dd.load_detector(models["plain"], backend="torch")
    assert det.band is None and "uncertain_band" not in det.model_info()
    rows = det.scan(sorted(crops.iterdir()), detect=False)
    assert [r["verdict"] for r in rows] == [
        "fake" if r["faces"][0]["logit"] >= models["threshold"] else "real" for r in rows
    ]
    assert (
        dd.load_detector(models["plain"], backend="torch", abstain=False).scan(
            sorted(crops.iterdir()), detect=False
        )
        == rows
    )


def test_an_explicit_threshold_is_a_two_way_cut(models, crops):
    paths = sorted(crops.iterdir())
    banded = dd.load_detector(models["banded"], backend="torch").scan(paths, detect=False, threshold=0.5)
    plain = dd.load_detector(models["plain"], backend="torch").scan(paths, detect=False, threshold=0.5)
    assert [r["verdict"] for r in banded] == [r["verdict"] for r in plain]
    assert [r["verdict"] for r in banded] == ["fake" if r["p_fake"] >= 0.5 else "real" for r in banded]


def test_a_video_inside_the_band_is_uncertain(models, tmp_path, make_video):
    frames = [np.random.default_rng(10 + i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(4)]
    video = make_video(tmp_path / "clip.mp4", frames, rate=2)
    plain = dd.load_detector(models["plain"], backend="torch").scan([video], detect=False, fps=2)[0]
    assert plain["kind"] == "video" and plain["verdict"] in ("real", "fake")
    # A band around the video's score (a mean of face p_fake), in logits: T = 1 and a base rate of 1/2.
    centre = float(np.log(plain["p_fake"] / (1 - plain["p_fake"])))
    checkpoint = with_metadata(
        models["plain"],
        tmp_path / "video-band.safetensors",
        threshold_logit=centre,
        **band_keys(centre - 0.01, centre + 0.01),
    )
    banded = dd.load_detector(checkpoint, backend="torch")
    assert banded.scan([video], detect=False, fps=2)[0]["verdict"] == "uncertain"
    assert banded.with_abstain(False).scan([video], detect=False, fps=2)[0]["verdict"] in ("real", "fake")


def test_band_ends_stored_as_null_decide_nothing_and_the_band_always_holds_the_threshold(models):
    det = dd.load_detector(
        with_metadata(models["plain"], models["plain"].with_name("open.safetensors"), **band_keys(-1.0, None))
    )
    t = models["threshold"]
    assert det.band == (min(-1.0, t), np.inf)
    assert det.verdicts([t - 1e6, t + 1e6]) == ["real", "uncertain"]  # nothing is called fake
    assert det.model_info()["uncertain_band"]["upper_logit"] is None  # JSON has no infinity
    # A threshold moved outside the band (evaluate --save-threshold) widens it: no decided verdict contradicts it.
    moved = dd.load_detector(
        with_metadata(models["banded"], models["plain"].with_name("moved.safetensors"), threshold_logit=1e6)
    )
    assert moved.band == (models["band"][0], 1e6)
    assert moved.verdicts([1e6 - 1]) == ["uncertain"]


def test_serve_says_uncertain_and_documents_the_contract(models, crops, tmp_path):
    det = dd.load_detector(models["banded"], backend="torch")
    lower, upper = models["band"]
    uploads = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(crops.iterdir())[:3]]
    for abstain in (True, False):
        config = ServeConfig(backend="torch", abstain=abstain, onnx_cache=str(tmp_path), max_files=N_CROPS)
        with (
            running_server(create_app(config, detector=det)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            answer = client.post("/v1/scan", params={"detect": "false"}, files=uploads)
            card = client.get("/v1/model").json()
            schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert answer.status_code == 200
        for row in answer.json()["results"]:
            logit = models["logits"][row["path"]]
            want = (
                expected(logit, lower, upper)
                if abstain
                else ("fake" if logit >= models["threshold"] else "real")
            )
            assert row["verdict"] == row["faces"][0]["verdict"] == want
        if abstain:
            assert "uncertain" in {r["verdict"] for r in answer.json()["results"]}
            assert (
                card["uncertain_band"]["lower_logit"] == lower
                and card["uncertain_band"]["upper_logit"] == upper
            )
            assert card["uncertain_band"]["lower_p_fake"] == pytest.approx(det.p_fake([lower])[0])
            assert answer.json()["model"]["uncertain_band"]["lower_logit"] == lower
        else:
            assert card["uncertain_band"] is None and "uncertain_band" not in answer.json()["model"]
    for model in ("FaceResult", "ScanResult"):
        verdict = schema[model]["properties"]["verdict"]
        options = verdict.get("anyOf", [verdict])
        assert ["real", "fake", "uncertain"] in [o.get("enum") for o in options]
        assert "uncertain" in verdict["description"]


# ------------------------------------------------------------------------- the band is chosen on validation only


@pytest.fixture(scope="module")
def swapped(tiny_dataset, tmp_path_factory) -> Path:
    """The tiny data set with, for test, its validation images under the other label: any band read off the
    test scores lands elsewhere than the validation one."""
    root = tmp_path_factory.mktemp("swapped") / "faces"
    for split in ("train", "valid"):
        shutil.copytree(tiny_dataset / split, root / split)
    shutil.copytree(tiny_dataset / "valid" / "real", root / "test" / "fake")
    shutil.copytree(tiny_dataset / "valid" / "fake", root / "test" / "real")
    return root


@pytest.fixture(scope="module")
def run_dir(swapped, tmp_path_factory) -> Path:
    cfg = dd.TrainConfig(
        data=str(swapped), runs_dir=str(tmp_path_factory.mktemp("runs")), model="notebook-cnn", epochs=2,
        batch_size=8, image_size=32, base_size=40, seed=3, threads=1, abstain_precision=0.9,
    )  # fmt: skip
    return dd.train(cfg, progress=False).run_dir


def band_by_hand(det, root: Path, split: str, tmp_path: Path, precision: float) -> tuple:
    """The band of ``split``'s scores, clean and laundered (seed 0, the image at position i with
    launder_rng(0, i)), laundered here into files and scored as plain images."""
    samples = list_split(root, split)
    laundered = []
    for i, sample in enumerate(samples):
        data, _ = launder_bytes(sample.path.read_bytes(), launder_rng(0, i))
        path = tmp_path / f"{split}-{i:03d}.jpg"
        path.write_bytes(data)
        laundered.append(Sample(path, sample.label))
    clean, dirty = det.predict_samples(samples), det.predict_samples(laundered)
    y = np.concatenate([clean.labels, dirty.labels])
    z = np.concatenate([clean.logits, dirty.logits])
    band = abstention_band(y, z, det.threshold_logit, target_precision=precision)
    return band["lower_logit"], band["upper_logit"], band["coverage"]


def stored_band(path: Path) -> tuple:
    meta = read_metadata(path)
    ends = [np.inf if meta[k] is None else meta[k] for k in ("abstain_lower_logit", "abstain_upper_logit")]
    return ends[0], ends[1], meta["abstain_coverage"]


@pytest.mark.slow
def test_training_stores_the_band_of_the_validation_scores_clean_and_laundered(run_dir, swapped, tmp_path):
    det = dd.load_detector(run_dir / "model.safetensors", backend="torch")
    on_valid = band_by_hand(det, swapped, "valid", tmp_path, 0.9)
    on_test = band_by_hand(det, swapped, "test", tmp_path, 0.9)
    assert on_valid[:2] != pytest.approx(on_test[:2], abs=1e-4), (
        "the data set was meant to make the bands differ"
    )
    meta = read_metadata(run_dir / "model.safetensors")
    assert stored_band(run_dir / "model.safetensors") == pytest.approx(on_valid, abs=1e-5)
    assert meta["abstain_target_precision"] == 0.9
    assert meta["abstain_validation"]["n"] == 24 and meta["abstain_validation"]["n_laundered"] == 12
    assert det.band == pytest.approx(on_valid[:2], abs=1e-5)
    assert (
        json.loads((run_dir / "metrics.json").read_text())["abstain"]["abstain_coverage"]
        == meta["abstain_coverage"]
    )


@pytest.mark.slow
def test_calibrate_abstention_fits_the_same_band_on_an_existing_run_and_keeps_the_tensors(
    run_dir, swapped, tmp_path
):
    weights = run_dir / "model.safetensors"
    before = read_metadata(weights)
    copy = tmp_path / "copy.safetensors"
    result = CliRunner().invoke(
        app,
        ["calibrate-abstention", str(run_dir), "--output", str(copy), "--json", "-q"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    fitted = json.loads(result.stdout)
    assert stored_band(copy) == pytest.approx(stored_band(weights), abs=1e-5)  # the same as training chose
    assert fitted["tensor_sha256"] == read_metadata(copy)["tensor_sha256"] == before["tensor_sha256"]
    assert read_metadata(weights) == before  # --output leaves the run's weights alone

    # In place, with another precision: only the band's keys change, the tensors and their hash do not.
    dd_result = CliRunner().invoke(
        app, ["calibrate-abstention", str(run_dir), "--data", str(swapped), "--precision", "0.5", "-q"]
    )
    assert dd_result.exit_code == 0 and "uncertain" in dd_result.stdout
    after = read_metadata(weights)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= {
        "abstain_lower_logit",
        "abstain_upper_logit",
        "abstain_target_precision",
        "abstain_coverage",
        "abstain_validation",
    }
    assert after["abstain_target_precision"] == 0.5 and after["tensor_sha256"] == before["tensor_sha256"]
    det = dd.load_detector(weights, backend="torch")
    assert stored_band(weights) == pytest.approx(band_by_hand(det, swapped, "valid", tmp_path, 0.5), abs=1e-5)
    load_checkpoint(weights)  # the tensors still match their recorded hash


def test_calibrate_abstention_refuses_a_model_without_data_and_a_bad_precision(models):
    result = CliRunner().invoke(app, ["calibrate-abstention", str(models["plain"])])
    assert result.exit_code == 2 and "pass --data" in result.stderr
    result = CliRunner().invoke(app, ["calibrate-abstention", str(models["plain"]), "--precision", "0.3"])
    assert result.exit_code == 2 and "[0.5, 1]" in result.stderr


def test_the_old_import_path_of_the_band_still_works_with_a_deprecation_warning():
    from deepfake_detect.metrics import calibration

    with pytest.warns(DeprecationWarning, match="moved to deepfake_detect.metrics.calibration.band_verdicts"):
        from deepfake_detect.metrics.abstention import band_verdicts
    assert band_verdicts is calibration.band_verdicts
    with pytest.raises(ImportError):
        from deepfake_detect.metrics.abstention import no_such_name  # noqa: F401
