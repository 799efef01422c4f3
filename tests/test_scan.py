"""scan's Python API: result schema, agreement with evaluate, face finding, ONNX, streaming, videos.

The detector (``det``), the trained run (``tiny_run``), the face photo and the video writer come from
conftest.py.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.export import export_run
from deepfake_detect.faces.haar import face_frame
from deepfake_detect.inference.gradcam import ExplainError
from deepfake_detect.scan.inputs import iter_inputs, read_path_list
from deepfake_detect.scan.pipeline import iter_scan
from deepfake_detect.scan.video import VIDEO_TOP_K

RESULT_KEYS = {"path", "error", "verdict", "p_fake", "faces", "model"}
FACE_KEYS = {"box", "p_fake", "logit", "verdict"}  # and "landmarks", "quad" in ffhq framing
# Pasted faces: |logit(found in the canvas) - logit(crop alone)| seen at most 0.28 (median 0.08) over 19
# shared faces with the amplified untrained model of ``det``, whose logits spread with a std of 1.1 across faces.
PASTE_LOGIT_TOL = 0.35

pytestmark = pytest.mark.usefixtures("scan_runtime")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(5):
        sub = root / ("b" if i % 2 else "a")
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(sub / f"img{i}.png")
    (root / "a" / "notes.txt").write_text("not an image, skipped in folders")
    return root


def test_result_schema_without_detection(det, images):
    det = det.with_backend("torch")
    results = det.scan([images], detect=False)
    assert [Path(r["path"]).name for r in results] == [
        "img0.png",
        "img2.png",
        "img4.png",
        "img1.png",
        "img3.png",
    ]
    for r in results:
        assert set(r) == RESULT_KEYS | {"provenance"} and r["error"] is None
        assert len(r["faces"]) == 1 and set(r["faces"][0]) == FACE_KEYS
        face = r["faces"][0]
        assert face["box"] == [0, 0, 40, 48]  # the whole image, width x height
        assert r["p_fake"] == face["p_fake"] and r["verdict"] == face["verdict"]
        assert face["verdict"] == ("fake" if face["logit"] >= det.threshold_logit else "real")
        assert r["model"] == det.model_info()
        json.dumps(r)  # serialisable as is


@pytest.fixture(scope="module")
def evaluated_run(tiny_run) -> Path:
    evaluate(tiny_run, split="test", n_resamples=10, progress=False)
    return tiny_run


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "tol"), [("torch", 1e-5), ("onnx", 1e-4)])
def test_scan_equals_evaluate_scores(evaluated_run, tiny_dataset, backend, tol, tmp_path):
    with open(evaluated_run / "scores_test.csv") as handle:
        expected = {row["path"]: row for row in csv.DictReader(handle)}
    # abstain=False: evaluate's verdicts are two-way (the run's "uncertain" band is tested in test_abstain.py).
    det = dd.load_detector(evaluated_run, backend=backend, onnx_cache=tmp_path, abstain=False)
    results = det.scan([tiny_dataset / "test"], detect=False)
    assert det.backend == backend and len(results) == len(expected) == 12
    for r in results:
        row = expected[Path(r["path"]).relative_to(tiny_dataset).as_posix()]
        # The CSV keeps 6 decimals, hence the rounding allowance on top of the tolerance.
        assert abs(r["faces"][0]["logit"] - float(row["logit"])) <= tol + 5e-7
        assert abs(r["p_fake"] - float(row["p_fake"])) <= tol + 5e-7
        assert r["verdict"] == row["verdict"]


def _canvas(face: np.ndarray, top: int, left: int, shape=(600, 700)) -> np.ndarray:
    rng = np.random.default_rng(0)
    canvas = rng.integers(90, 170, (*shape, 3), dtype=np.uint8)
    canvas[top : top + face.shape[0], left : left + face.shape[1]] = face
    return canvas


def _pasted_matches_crop(det, crop: np.ndarray, top=150, left=300, framing="box") -> None:
    own = det.with_backend("torch").scan([crop], detect=False)[0]["faces"][0]
    found = det.with_backend("torch").scan([_canvas(crop, top, left)], framing=framing)[0]
    assert len(found["faces"]) == 1, found
    face = found["faces"][0]
    if framing == "box":
        x0, y0, side = face_frame(face["box"])
        assert "quad" not in face and "landmarks" not in face
    else:  # FFHQ's square, from the landmarks: the pasted (FFHQ-aligned) crop itself
        quad = np.array(face["quad"])
        assert len(face["landmarks"]) == 5 and quad.shape == (4, 2)
        (x0, y0), side = quad.min(axis=0), np.ptp(quad[:, 0])
        assert np.abs(
            quad - [[left, top], [left, top + 256], [left + 256, top + 256], [left + 256, top]]
        ).max() < (0.05 * crop.shape[0])
    inter = max(0, min(x0 + side, left + crop.shape[1]) - max(x0, left)) * max(
        0, min(y0 + side, top + crop.shape[0]) - max(y0, top)
    )
    assert inter / (side * side + crop.shape[0] * crop.shape[1] - inter) > 0.75  # framing recovered
    assert abs(face["logit"] - own["logit"]) <= PASTE_LOGIT_TOL


def test_pasted_astronaut_face_is_found_and_scored_like_its_crop(det, face_photo):
    from deepfake_detect.faces.haar import crop_face, detect_faces

    photo = face_photo
    crop = crop_face(photo, detect_faces(photo)[0])  # the face framed like the training data
    _pasted_matches_crop(det, np.asarray(Image.fromarray(crop).resize((256, 256))), framing="box")


@pytest.mark.parametrize("framing", ["ffhq", "box"])
def test_pasted_shared_face_is_found_and_scored_like_its_crop(det, shared_data, framing):
    face = np.asarray(Image.open(sorted((shared_data / "test" / "real").glob("*.jpg"))[0]).convert("RGB"))
    _pasted_matches_crop(det, face, framing=framing)


def test_no_face_gives_a_note_not_an_error_and_fallback_scores_the_image(det):
    blank = np.full((120, 160, 3), 200, np.uint8)
    plain = det.scan([blank])[0]
    assert plain["faces"] == [] and plain["verdict"] is None and plain["p_fake"] is None
    assert plain["error"] is None and "no face" in plain["note"]
    whole = det.scan([blank], fallback_whole_image=True)[0]
    assert whole["faces"][0]["box"] == [0, 0, 160, 120] and whole["verdict"] in ("real", "fake")
    assert "whole image" in whole["note"]


def test_threshold_in_p_units_and_prior(det, images):
    base = det.with_backend("torch").scan([images], detect=False)
    ps = sorted(r["p_fake"] for r in base)
    cut = (ps[1] + ps[2]) / 2
    custom = det.with_backend("torch").scan([images], detect=False, threshold=cut)
    assert [r["verdict"] for r in custom] == ["fake" if r["p_fake"] >= cut else "real" for r in base]
    rare = det.with_backend("torch").scan([images], detect=False, prior=0.01)
    assert all(r["p_fake"] <= b["p_fake"] for r, b in zip(rare, base, strict=True))


@pytest.mark.slow  # starts a pool of worker processes
def test_workers_keep_input_order_and_results(det, tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i:02d}.png")
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(paths[-1])
    paths.insert(17, tmp_path / "missing.png")
    serial = det.with_backend("torch").scan(paths, detect=False, workers=0, batch_size=7)
    parallel = det.with_backend("torch").scan(paths, detect=False, workers=2, batch_size=7)
    assert [r["path"] for r in parallel] == [str(p) for p in paths]
    assert parallel == serial and parallel[17]["error"]


def test_input_expansion(images, tmp_path):
    stdin = io.StringIO(f"{images}/a/img0.png\n\n{images}/b/img1.png\n")
    assert list(iter_inputs(["-"], stdin=stdin)) == [f"{images}/a/img0.png", f"{images}/b/img1.png"]
    assert [Path(p).name for p in iter_inputs([f"{images}/*/img[01].png"])] == ["img0.png", "img1.png"]
    assert list(iter_inputs([f"{images}/nothing*.png"])) == [f"{images}/nothing*.png"]  # reported as missing
    (tmp_path / "l.txt").write_text("# a comment\na.jpg\n\nb.jpg\n")
    (tmp_path / "l.csv").write_text("x.jpg,1\ny.jpg,0\n")
    (tmp_path / "h.csv").write_text("label,path\n1,p.jpg\n")
    assert read_path_list(tmp_path / "l.txt") == ["a.jpg", "b.jpg"]
    assert read_path_list(tmp_path / "l.csv") == ["x.jpg", "y.jpg"]
    assert read_path_list(tmp_path / "h.csv") == ["p.jpg"]


@pytest.mark.slow
def test_onnx_export_parity_and_onnx_model_scan(tiny_run, tiny_dataset, tmp_path):
    result = export_run(tiny_run, output=tmp_path / "model.onnx")
    assert result["max_abs_diff"] <= 1e-4 and "valid images" in result["parity_images"]
    onnx_det = dd.load_detector(tmp_path / "model.onnx")
    torch_det = dd.load_detector(tiny_run)
    a = onnx_det.scan([tiny_dataset / "valid"], detect=False)
    b = torch_det.with_backend("torch").scan([tiny_dataset / "valid"], detect=False)
    assert onnx_det.backend == "onnx" and a[0]["model"]["backend"] == "onnx"
    assert {**a[0]["model"], "backend": "torch"} == b[0]["model"]
    assert (
        max(abs(x["faces"][0]["logit"] - y["faces"][0]["logit"]) for x, y in zip(a, b, strict=True)) <= 1e-4
    )
    with pytest.raises(ExplainError, match="torch weights"):
        onnx_det.scan([tiny_dataset / "valid"], explain=tmp_path / "x")
    with pytest.raises(dd.DeepfakeDetectError, match="metadata"):
        (tmp_path / "model.onnx.json").unlink()
        dd.load_detector(tmp_path / "model.onnx")


@pytest.mark.slow
def test_quantized_export(tiny_run, tmp_path):
    result = export_run(tiny_run, output=tmp_path / "model.onnx", quantize=True)
    q = result["int8"]
    assert Path(q["onnx"]).name == "model.int8.onnx" and Path(q["onnx"] + ".json").is_file()
    assert 0.0 <= q["verdict_agreement"] <= 1.0 and "train images" in q["calibration_images"]
    assert dd.load_detector(q["onnx"]).scan([np.zeros((40, 40, 3), np.uint8)], detect=False)[0]["verdict"]


def test_video_timeline_and_top3_rule(det, tmp_path, face_photo, make_video):
    photo = face_photo
    frames = [photo] * 10 + [np.full_like(photo, 128)] * 5  # 3 s at 5 fps: a face for 2 s, then none
    video = make_video(tmp_path / "clip.mp4", frames)
    r = det.with_backend("torch").scan([video], fps=1.0)[0]
    assert r["error"] is None and r["kind"] == "video" and r["rule"] == "mean of the top-3 face p_fake"
    assert [f["t"] for f in r["frames"]] == pytest.approx([0.0, 1.0, 2.0], abs=0.21)
    assert [len(f["faces"]) for f in r["frames"]] == [1, 1, 0] and r["frames"][2]["p_fake"] is None
    scores = sorted((f["p_fake"] for fr in r["frames"] for f in fr["faces"]), reverse=True)
    assert r["p_fake"] == pytest.approx(np.mean(scores[:VIDEO_TOP_K]))
    assert len(r["faces"]) == 2 and {"t", "frame"} <= set(r["faces"][0])
    explained = det.with_backend("torch").scan([video], explain=tmp_path / "cams")[0]
    assert Path(explained["timeline"]).read_bytes()[:4] == b"\x89PNG"
    assert all(Path(f["heatmap"]).is_file() for f in explained["faces"])


@pytest.mark.slow
def test_int8_graph_beside_the_weights_is_used_when_asked_and_ignored_when_stale(
    tiny_run, tiny_dataset, tmp_path
):
    det = dd.load_detector(tiny_run)
    with pytest.raises(ScanError, match="export RUN --quantize"):
        det.with_backend("onnx-int8").scan([tiny_dataset / "valid"], detect=False)
    export_run(tiny_run, output=tiny_run / "model.onnx", quantize=True)
    try:
        fresh = dd.load_detector(tiny_run, onnx_cache=tmp_path)
        assert fresh.int8_path == tiny_run / "model.int8.onnx"
        exact = fresh.scan([tiny_dataset / "valid"], detect=False)
        assert fresh.backend == "onnx"  # auto keeps evaluate's exact scores: int8 is asked for by name
        int8 = fresh.with_backend("onnx-int8")
        quick = int8.scan([tiny_dataset / "valid"], detect=False)
        assert int8.backend == "onnx-int8" and quick[0]["model"]["backend"] == "onnx-int8"
        assert fresh.backend == "onnx"  # with_backend made a new detector: this one is unchanged
        gaps = [
            abs(q["faces"][0]["logit"] - e["faces"][0]["logit"]) for q, e in zip(quick, exact, strict=True)
        ]
        assert 0 < max(gaps) < 1.0  # quantised: close to float, not equal
        sidecar = tiny_run / "model.int8.onnx.json"
        sidecar.write_text(sidecar.read_text().replace(fresh.metadata["tensor_sha256"], "0" * 64))
        stale = dd.load_detector(tiny_run)
        assert stale.int8_path is None
        with pytest.raises(ScanError, match="int8 graph"):
            stale.with_backend("onnx-int8", onnx_cache=tmp_path).scan([tiny_dataset / "valid"], detect=False)
    finally:
        for name in ("model.onnx", "model.onnx.json", "model.int8.onnx", "model.int8.onnx.json"):
            (tiny_run / name).unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("cores", "detect", "expected"), [(2, False, 0), (2, True, 2), (8, False, 4), (16, True, 4)]
)
def test_default_workers_decode_in_process_without_detection_on_two_cores(
    monkeypatch, cores, detect, expected
):
    from deepfake_detect.scan.pipeline import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert default_workers(detect) == expected


@pytest.mark.slow
def test_scan_backend_argument_is_deprecated_and_changes_no_later_call(tiny_run, tiny_dataset, tmp_path):
    det = dd.load_detector(tiny_run, backend="torch")
    valid = [tiny_dataset / "valid"]

    def warned_at(caught) -> list[str]:
        return [w.filename for w in caught if "with_backend" in str(w.message)]

    # Each entry point warns at the caller's line (here), which Python's default filters show users.
    with pytest.warns(DeprecationWarning, match="with_backend") as caught:
        once = det.scan(valid, detect=False, backend="onnx", onnx_cache=tmp_path)
    assert warned_at(caught) == [__file__] and once[0]["model"]["backend"] == "onnx"
    with pytest.warns(DeprecationWarning, match="with_backend") as caught:
        streamed = list(det.iter_scan(valid, detect=False, backend="onnx", onnx_cache=tmp_path))
    assert warned_at(caught) == [__file__] and streamed == once
    with pytest.warns(DeprecationWarning, match="with_backend") as caught:
        direct = list(iter_scan(det, valid, detect=False, backend="onnx", onnx_cache=tmp_path))
    assert warned_at(caught) == [__file__] and direct == once
    with pytest.warns(DeprecationWarning, match="onnx_cache") as caught:
        cache_only = det.scan(valid, detect=False, onnx_cache=tmp_path)  # deprecated with backend; no effect
    assert warned_at(caught) == [__file__] and cache_only[0]["model"]["backend"] == "torch"
    later = det.scan(valid, detect=False)
    assert det.backend == "torch" and later[0]["model"]["backend"] == "torch"
    with pytest.raises(ScanError, match="backend must be one of"):
        det.with_backend("fast")


def test_ffhq_rows_carry_five_landmarks_and_the_quad_and_box_rows_do_not(det, face_photo):
    (face,) = det.with_backend("torch").scan([face_photo])[0]["faces"]
    assert set(face) == FACE_KEYS | {"landmarks", "quad"}
    assert np.array(face["landmarks"]).shape == (5, 2) and np.array(face["quad"]).shape == (4, 2)
    assert all(round(v, 1) == v for point in face["landmarks"] + face["quad"] for v in point)
    left_eye, right_eye, nose, mouth_left, mouth_right = face["landmarks"]
    assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1] < mouth_left[1]  # upright order
    (boxed,) = det.with_backend("torch").scan([face_photo], framing="box")[0]["faces"]
    assert set(boxed) == FACE_KEYS
    with pytest.raises(ScanError, match="framing must be one of ffhq, dlib, box"):
        det.scan([face_photo], framing="haar")


def test_a_face_too_small_to_judge_keeps_p_fake_but_gets_no_verdict(det):
    from deepfake_detect.scan.decode import Decoded, Face
    from deepfake_detect.scan.pipeline import MIN_JUDGED_SIDE, _Scorer

    def face(side: float) -> Face:
        quad = np.array([[0, 0], [0, side], [side, side], [side, 0]], np.float64)
        return Face(
            (0, 0, int(side), int(side)),
            np.zeros((32, 32, 3), np.uint8),
            landmarks=quad[:1].repeat(5, 0),
            quad=quad,
        )

    scorer = _Scorer(det, 32, None, None)
    small, large = face(MIN_JUDGED_SIDE - 10), face(MIN_JUDGED_SIDE + 10)
    both = scorer.result(Decoded(0, "x", faces=[small, large]), np.array([5.0, -5.0], np.float32))
    tiny, judged = both["faces"]
    assert tiny["verdict"] is None and tiny["note"] == f"face too small to judge ({MIN_JUDGED_SIDE - 10} px)"
    assert tiny["p_fake"] > 0.99 and judged["verdict"] == "real"
    assert (
        both["verdict"] == "real" and both["p_fake"] == judged["p_fake"]
    )  # the small fake face does not decide
    alone = scorer.result(Decoded(0, "x", faces=[small]), np.array([5.0], np.float32))
    assert alone["verdict"] is None and alone["p_fake"] > 0.99 and "too small" in alone["note"]


def test_csv_rows_hold_landmarks_and_quad_as_json(tmp_path, face_photo, det):
    import csv
    import json

    from deepfake_detect.scan.output import CSV_COLUMNS, _CsvWriter

    rows = det.with_backend("torch").scan([face_photo, face_photo], framing="ffhq")
    rows[1] = det.with_backend("torch").scan([face_photo], framing="box")[0]
    with (tmp_path / "out.csv").open("w", newline="") as stream:
        writer = _CsvWriter(stream, True)
        for row in rows:
            writer.write(row)
    table = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert CSV_COLUMNS[-4:-2] == ("landmarks", "quad") and list(table[0]) == list(CSV_COLUMNS)
    assert json.loads(table[0]["quad"]) == rows[0]["faces"][0]["quad"]
    assert json.loads(table[0]["landmarks"]) == rows[0]["faces"][0]["landmarks"]
    assert table[1]["quad"] == table[1]["landmarks"] == ""  # box framing


def test_explain_dir_is_the_deprecated_old_name_of_explain(det, images, tmp_path):
    det = det.with_backend("torch")
    with pytest.warns(DeprecationWarning, match=r"explain_dir= is deprecated .* use explain="):
        old = det.scan([images / "a" / "img0.png"], detect=False, explain_dir=tmp_path / "old")
    new = det.scan([images / "a" / "img0.png"], detect=False, explain=tmp_path / "new")
    assert Path(old[0]["faces"][0]["heatmap"]).parent == tmp_path / "old"
    assert (
        Path(new[0]["faces"][0]["heatmap"]).read_bytes() == Path(old[0]["faces"][0]["heatmap"]).read_bytes()
    )
    with pytest.raises(dd.DeepfakeDetectError, match="give explain= only"):
        det.iter_scan([images], detect=False, explain=tmp_path / "a", explain_dir=tmp_path / "b")


def test_scan_paths_is_public_with_the_flags_keywords(images, tmp_path):
    import inspect

    assert dd.scan_paths is dd.scan.scan_paths
    keywords = set(inspect.signature(dd.scan_paths).parameters)
    flags = {"model", "detect", "framing", "fallback_whole_image", "threshold", "abstain", "output", "resume"}
    flags |= {
        "paths_from",
        "explain",
        "report",
        "fps",
        "batch_size",
        "workers",
        "prior",
        "backend",
        "runs_dir",
    }
    assert flags <= keywords
