"""The scan and export commands: formats, exit codes 0/1/2, --resume, --report, --explain, ONNX models."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect.cli import app
from deepfake_detect.core.checkpoint import DEFAULT_WEIGHTS
from deepfake_detect.scan.output import CSV_COLUMNS

pytestmark = pytest.mark.usefixtures("scan_runtime")


@pytest.fixture(scope="module")
def model(tmp_path_factory, untrained_checkpoint) -> str:
    return str(untrained_checkpoint(tmp_path_factory.mktemp("m") / "m.safetensors", gain=1000))


@pytest.fixture(scope="module")
def photos(tmp_path_factory, face_photo) -> Path:
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(face_photo).save(root / "astronaut.jpg", quality=92)
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(root / "blank.png")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"crop{i}.png")
    return root


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["scan", *args], input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_json_lines_one_object_per_file_in_order(model, photos):
    code, out, err = run(str(photos), "--model", model, "--json", "--workers", "0")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [Path(r["path"]).name for r in rows] == [
        "astronaut.jpg", "blank.png", "crop0.png", "crop1.png", "crop2.png"
    ]  # fmt: skip
    astronaut, blank = rows[0], rows[1]
    assert len(astronaut["faces"]) == 1 and astronaut["verdict"] in ("real", "fake")
    assert blank["faces"] == [] and blank["verdict"] is None and "no face" in blank["note"]
    assert "scanned 5 file(s)" in err


def test_table_and_csv(model, photos):
    code, out, _ = run(str(photos / "crop0.png"), str(photos / "blank.png"), "--model", model, "--no-detect")
    assert code == 0 and out.splitlines()[0].split() == ["verdict", "p_fake", "faces", "path"]
    assert len(out.splitlines()) == 3
    code, out, _ = run(str(photos), "--model", model, "--csv", "-q")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and tuple(rows[0]) == CSV_COLUMNS and len(rows) == 5  # a row a face, or a file with none
    assert rows[0]["x"] and rows[1]["x"] == "" and rows[1]["note"] == "no face found"


def test_exit_codes(model, photos, tmp_path):
    assert run(str(photos / "blank.png"), "--model", model)[0] == 0  # no face is not a failure
    code, out, _ = run(str(photos / "crop0.png"), str(tmp_path / "gone.jpg"), "--model", model, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and rows[0]["error"] is None and "No such file" in rows[1]["error"]
    assert rows[1]["faces"] == []
    for bad in (["--json", "--csv"], ["--threshold", "1.5"], ["--fps", "0"], ["--resume"]):
        code, _, err = run(str(photos), "--model", model, *bad)
        assert code == 2 and err.startswith("error:"), bad
    (tmp_path / "empty").mkdir()
    assert run(str(tmp_path / "empty"), "--model", model)[0] == 2  # nothing to scan
    assert run("--model", model)[0] == 2
    assert CliRunner().invoke(app, ["scan", "--no-such-flag"]).exit_code == 2


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the console entry point in-process (it maps user errors to exit 2)."""
    from deepfake_detect.cli import main

    monkeypatch.setattr(sys, "argv", ["deepfake-detect", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr().err


def test_missing_model_is_a_clear_usage_error(photos, tmp_path, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, "scan", str(photos), "--model", str(tmp_path / "x"))
    assert code == 2 and "no model at" in err and "Traceback" not in err
    if not DEFAULT_WEIGHTS.is_file():
        code, err = _main(monkeypatch, capsys, "scan", str(photos))
        assert code == 2 and "no default model" in err


@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_resume_skips_paths_already_written(model, photos, tmp_path, fmt):
    out = tmp_path / ("scan.jsonl" if fmt == "--json" else "scan.csv")
    first = [str(photos / "crop0.png"), str(photos / "crop1.png")]
    assert run(*first, "--model", model, fmt, "--output", str(out), "--no-detect")[0] == 0
    with open(out, "a") as handle:  # a scan killed while writing leaves a torn last line
        handle.write('{"path": "torn' if fmt == "--json" else "")
    code, _, err = run(str(photos), "--model", model, fmt, "--output", str(out), "--resume", "--no-detect")
    assert code == 0 and "2 skipped" in err
    if fmt == "--json":
        paths = [json.loads(line)["path"] for line in out.read_text().splitlines() if line.endswith("}")]
    else:
        paths = [row["path"] for row in csv.DictReader(out.open())]
    assert sorted(Path(p).name for p in paths) == [
        "astronaut.jpg",
        "blank.png",
        "crop0.png",
        "crop1.png",
        "crop2.png",
    ]


def test_paths_from_and_stdin(model, photos, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{photos / 'crop0.png'},0\n{photos / 'crop2.png'},1\n")
    code, out, _ = run("--paths-from", str(listing), "--model", model, "--json", "--no-detect")
    assert code == 0 and [Path(json.loads(x)["path"]).name for x in out.splitlines()] == [
        "crop0.png",
        "crop2.png",
    ]
    code, out, _ = run("-", "--model", model, "--json", "--no-detect", input=f"{photos / 'crop1.png'}\n")
    assert code == 0 and Path(json.loads(out)["path"]).name == "crop1.png"


def test_report_and_explain(model, photos, tmp_path, face_photo, make_video):
    video = make_video(tmp_path / "clip.mp4", [face_photo] * 6)
    report, cams = tmp_path / "scan.html", tmp_path / "cams"
    args = [
        str(photos),
        str(video),
        "--model",
        model,
        "--json",
        "--report",
        str(report),
        "--explain",
        str(cams),
    ]
    code, out, _ = run(*args)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rows[-1]["kind"] == "video"
    heatmaps = [f["heatmap"] for r in rows for f in r["faces"]]
    # The astronaut's face and the video's two sampled faces (the other photos have none).
    assert len(heatmaps) == 3 and all(Image.open(h).format == "PNG" for h in heatmaps)
    page = report.read_text()
    assert page.count('class="card') == 6 and "http://" not in page and "https://" not in page
    assert page.count("data:image/jpeg;base64,") == 5  # thumbnails
    assert page.count("data:image/png;base64,") == 3 + 1  # heatmaps, video timeline
    assert "not face swaps" in page


def test_export_command_and_onnx_scan(model, photos, tmp_path):
    runner = CliRunner()
    onnx = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", model, "--format", "onnx", "--output", str(onnx)])
    assert result.exit_code == 0 and "max |onnx - torch| logit difference" in result.stdout
    assert (tmp_path / "model.onnx.json").is_file()
    assert runner.invoke(app, ["export", model, "--format", "tflite"]).exit_code == 2
    code, out, _ = run(str(photos / "crop0.png"), "--model", str(onnx), "--json", "--no-detect")
    code_t, out_t, _ = run(
        str(photos / "crop0.png"), "--model", model, "--json", "--no-detect", "--backend", "torch"
    )
    assert code == code_t == 0
    assert abs(json.loads(out)["faces"][0]["logit"] - json.loads(out_t)["faces"][0]["logit"]) <= 1e-4
    code, _, err = run(str(photos), "--model", str(onnx), "--explain", str(tmp_path / "c"))
    assert code == 2 and "torch weights" in err


def test_help_says_gan_faces_not_swaps():
    text = CliRunner().invoke(app, ["scan", "--help"], terminal_width=200).stdout
    assert "not face swaps" in text and "highest p_fake" in text


def _small_face_row(model: str, photo: Path, side: int) -> dict:
    """The row of a photo whose one face's frame is ``side`` px: the pipeline's own rule gives no verdict."""
    from deepfake_detect.scan.decode import Decoded, Face
    from deepfake_detect.scan.detector import load_detector
    from deepfake_detect.scan.pipeline import _Scorer

    quad = np.array([[20, 20], [20, 20 + side], [20 + side, 20 + side], [20 + side, 20]], np.float64)
    face = Face(
        (20, 20, side, side), np.zeros((32, 32, 3), np.uint8), landmarks=quad[:1].repeat(5, 0), quad=quad
    )
    scorer = _Scorer(load_detector(model, backend="torch"), 32, None, None)
    return scorer.result(Decoded(0, str(photo), faces=[face]), np.array([3.0], np.float32))


def test_no_face_and_a_face_too_small_read_alike_in_table_and_report(model, photos, tmp_path):
    """No verdict in either case; the same words ("no face", "not judged", the note) in the table and the
    report, no "None", and the small face's frame drawn grey, not in a verdict's colour."""
    from deepfake_detect.scan.output import _TableWriter, write_report

    photo = tmp_path / "white.png"
    Image.new("RGB", (200, 200), "white").save(photo)
    small = _small_face_row(model, photo, 86)
    code, out, _ = run(str(photos / "blank.png"), "--model", model, "--json")
    blank = json.loads(out)
    assert code == 0 and small["verdict"] is None and blank["verdict"] is None
    assert small["note"] == "face too small to judge (86 px)" and blank["note"] == "no face found"

    table = io.StringIO()
    writer = _TableWriter(table, header=True)
    writer.write(small)
    writer.write(blank)
    lines = table.getvalue().splitlines()
    assert lines[1].split()[0:2] == ["not", "judged"] and lines[1].endswith(
        "(face too small to judge (86 px))"
    )
    assert lines[2].split()[0:2] == ["no", "face"] and lines[2].endswith("(no face found)")

    page = write_report([small, blank], tmp_path / "r.html").read_text()
    assert "<h3>not judged" in page and "<h3>no face" in page and "None" not in page
    assert "face 0: not judged (face too small to judge (86 px))" in page
    assert "1 without a face, 1 with faces too small to judge" in page
    thumb = page.split('src="data:image/jpeg;base64,', 1)[1].split('"', 1)[0]
    with Image.open(io.BytesIO(__import__("base64").b64decode(thumb))) as image:
        r, g, b = image.convert("RGB").getpixel((20, 60))  # on the frame's left edge
    assert abs(r - g) < 30 and abs(g - b) < 30 and r < 200  # grey: drawn as found, not as judged


def test_report_of_many_files_is_capped_small_and_says_so(model, tmp_path):
    from deepfake_detect.scan.output import write_report

    rng = np.random.default_rng(0)
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    code, out, _ = run(str(folder), "--model", model, "--json", "--no-detect", "-q")
    rows = [json.loads(line) for line in out.splitlines()]
    page = write_report(rows, tmp_path / "r.html", max_cards=5).read_text()
    assert code == 0 and page.count('<div class="card') == 5
    assert "scanned 12 file(s)" in page and "Shown here: the first 5" in page
    # Noise is JPEG's worst case; a face's thumbnail is a few times smaller still.
    assert len(page) < 5 * 200_000
