"""``scan --output X.parquet``: a folder of Parquet part files, each complete or absent, and its resume.

The rows are real scans of image files made here (the default model's int8 graph, framed crops with
``detect=False``, for speed), a real face photo, a real video and unreadable files.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import deepfake_detect as dd
from deepfake_detect.cli import app
from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.scan import parquet
from deepfake_detect.scan.output import scan_paths
from deepfake_detect.scan.parquet import (
    PartWriter,
    done_paths,
    part_files,
    part_name,
    prepare_output,
    read_results,
    results_to_table,
    table_to_results,
    write_part,
)

pytestmark = pytest.mark.usefixtures("scan_runtime")

BACKEND = "onnx-int8"  # ships beside the default weights: no ONNX export in the test
SCAN = {"model": "default", "backend": BACKEND, "detect": False, "progress": False, "workers": 0}


def write_crops(folder: Path, n: int, *, seed: int = 0, side: int = 48) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"crop{i:04d}.png" for i in range(n)]
    for i, path in enumerate(paths):
        size = side if i % 3 else 2 * side  # some crops too small for the model's frame: rows with a note
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return paths


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """Framed crops, an image file that is not an image, in one folder."""
    root = tmp_path_factory.mktemp("crops")
    write_crops(root, 14)
    (root / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


@pytest.fixture(scope="module")
def default_det():
    return dd.load_detector("default", backend=BACKEND)


def as_json(rows: list[dict]) -> list[dict]:
    return json.loads(json.dumps(rows))


def by_path(rows: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in rows}


def json_scan(inputs: list[str], out: Path) -> list[dict]:
    scan_paths(inputs, output=out, **SCAN)
    return [json.loads(line) for line in out.read_text().splitlines()]


# ------------------------------------------------------------------------------------------ the format


def test_rows_of_photos_videos_and_errors_round_trip_exactly(
    default_det, crops, face_photo, make_video, tmp_path
):
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    video = make_video(tmp_path / "clip.mp4", [face_photo] * 10, rate=5)
    rows = default_det.scan([crops, tmp_path / "gone.png"], detect=False)
    (ffhq,) = default_det.scan([face_photo])
    rows += [ffhq] + default_det.scan([face_photo], framing="box")
    rows += default_det.scan([video, bad_video], detect=False)
    # What this model's rows never hold, on a copy: a band, a heatmap, a face too small to judge.
    extra = copy.deepcopy(ffhq)
    extra["path"] = "banded.jpg"
    extra["model"]["uncertain_band"] = {"lower_logit": None, "upper_logit": 1.5, "target_precision": 0.99}
    extra["faces"][0].update(heatmap="heat/face0.png", verdict=None, note="face too small to judge (80 px)")
    rows.append(extra)
    expected = as_json(rows)

    kinds = {
        "error": any(r["error"] and r.get("kind") is None for r in expected),
        "note": any("note" in r and r["faces"] for r in expected),
        "ffhq": any("quad" in f for r in expected for f in r["faces"]),
        "box": any(r["faces"] and "quad" not in r["faces"][0] for r in expected),
        "video": any(r.get("kind") == "video" and r["frames"] for r in expected),
        "video error": any(r.get("kind") == "video" and r["duration"] is None for r in expected),
    }
    assert all(kinds.values()), kinds  # every kind of row is in the round trip
    assert table_to_results(results_to_table(rows)) == expected

    folder = tmp_path / "results.parquet"
    write_part(folder, rows)
    assert sorted(read_results(folder), key=lambda r: r["path"]) == sorted(expected, key=lambda r: r["path"])
    import pandas

    frame = pandas.read_parquet(folder)
    assert sorted(frame["path"]) == sorted(r["path"] for r in expected)


def test_a_field_without_a_column_is_refused_and_writes_nothing(default_det, crops, tmp_path):
    row = default_det.scan([crops / "crop0001.png"], detect=False)[0]
    bad = dict(row, mood="sunny")
    with pytest.raises(ScanError, match="without a Parquet column: mood"):
        write_part(tmp_path / "r.parquet", [row, bad])
    bad = dict(row, faces=[dict(row["faces"][0], colour="red")])
    with pytest.raises(ScanError, match="faces.colour"):
        results_to_table([bad])
    assert not (tmp_path / "r.parquet").exists() or not any((tmp_path / "r.parquet").iterdir())


def test_part_names_depend_on_the_rows_paths_only(default_det, crops, tmp_path):
    rows = default_det.scan([crops], detect=False)
    assert part_name(rows) == part_name(list(reversed(rows))) == part_name([r["path"] for r in rows])
    assert part_name(rows[:3]) != part_name(rows[:4]) and part_name(rows).startswith("part-")
    assert len(part_name(rows)) == len("part-") + 16
    folder = tmp_path / "r.parquet"
    first = write_part(folder, rows)
    again = write_part(folder, list(reversed(rows)))  # a retried writer: the same part again
    assert first == again and part_files(folder) == [first]
    assert len(read_results(folder)) == len(rows)


def test_temporary_files_are_never_read_and_resume_clears_them(default_det, crops, tmp_path):
    rows = default_det.scan([crops], detect=False)
    folder = tmp_path / "r.parquet"
    whole = write_part(folder, rows[:5])
    # A writer killed mid-part leaves its temporary file: half of a part, and even a whole one.
    torn = folder / f".{part_name(rows[5:])}.1a2b3c4d.tmp"
    torn.write_bytes(write_part(tmp_path / "other.parquet", rows[5:]).read_bytes()[:300])
    finished = folder / f".{part_name(rows[5:])}.5e6f7a8b.tmp"
    finished.write_bytes((tmp_path / "other.parquet" / f"{part_name(rows[5:])}.parquet").read_bytes())
    assert part_files(folder) == [whole]
    assert done_paths(folder) == {r["path"] for r in rows[:5]}
    assert [r["path"] for r in read_results(folder)] == [r["path"] for r in rows[:5]]
    import pandas

    assert len(pandas.read_parquet(folder)) == 5  # pandas and pyarrow skip dot files too
    with pytest.raises(ScanError, match="pass --resume"):
        prepare_output(folder, resume=False)
    prepare_output(folder, resume=True)
    assert sorted(p.name for p in folder.iterdir()) == [whole.name]


def test_part_writer_writes_a_part_every_n_rows_and_the_rest_on_close(default_det, crops, tmp_path):
    rows = default_det.scan([crops], detect=False)  # 15 rows
    writer = PartWriter(tmp_path / "r.parquet", rows_per_part=4)
    for k, row in enumerate(rows):
        writer.write(row)
        assert len(part_files(tmp_path / "r.parquet")) == (k + 1) // 4  # each part as soon as it is full
    writer.close()
    assert [len(read_results_of(p)) for p in writer.parts] == [4, 4, 4, 3]
    assert len(part_files(tmp_path / "r.parquet")) == 4
    with pytest.raises(ScanError, match="at least 1"):
        PartWriter(tmp_path / "x.parquet", rows_per_part=0)


def read_results_of(part: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return table_to_results(pq.read_table(part))


# ---------------------------------------------------------------------------------------- the local scan


def test_parquet_scan_equals_the_json_scan_row_for_row(crops, tmp_path):
    inputs = [str(crops), str(tmp_path / "gone.png")]
    expected = json_scan(inputs, tmp_path / "r.jsonl")
    summary = scan_paths(inputs, output=tmp_path / "r.parquet", report=tmp_path / "r.html", **SCAN)
    got = read_results(tmp_path / "r.parquet")
    assert len(got) == len(expected) == 16 and by_path(got) == by_path(expected)  # p_fake exact
    errors = {Path(r["path"]).name: r["error"] for r in got if r["error"]}
    assert set(errors) == {"zz_corrupt.png", "gone.png"} and "No such file" in errors["gone.png"]
    assert summary.n_scanned == 16 and summary.n_failed == 2
    assert (tmp_path / "r.html").read_text().count('class="card') == 16


def test_resume_after_an_interruption_finishes_without_duplicates(crops, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(parquet, "ROWS_PER_PART", 4)  # several parts from a few files
    everything = sorted(str(p) for p in crops.iterdir())
    expected = by_path(json_scan(everything, tmp_path / "r.jsonl"))
    out = tmp_path / "r.parquet"
    # The first scan stopped after 6 files: 2 parts; and a part written by a crash-free write but then
    # damaged on disk (half its bytes): it is set aside, and its files are scanned again.
    scan_paths(everything[:6], output=out, **SCAN)
    kept, damaged = part_files(out)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    kept_paths = {r["path"] for r in read_results_of(kept)}
    with pytest.raises(ScanError, match="already holds scan results: pass --resume"):
        scan_paths(everything, output=out, **SCAN)
    summary = scan_paths(everything, output=out, resume=True, **SCAN)
    assert "not a readable Parquet part" in caplog.text and (out / f".{damaged.name}.corrupt").is_file()
    assert summary.n_skipped == len(kept_paths) and summary.n_scanned == len(everything) - len(kept_paths)
    got = read_results(out)
    paths = [r["path"] for r in got]
    assert len(paths) == len(set(paths)) == len(everything) and set(paths) == set(expected)
    for path, row in by_path(got).items():  # resumed batches are grouped differently: p_fake to 1e-6
        want = expected[path]
        assert row["p_fake"] == pytest.approx(want["p_fake"], abs=1e-6)
        assert {k: v for k, v in row.items() if k not in ("p_fake", "faces")} == {
            k: v for k, v in want.items() if k not in ("p_fake", "faces")
        }
        assert [f["box"] for f in row["faces"]] == [f["box"] for f in want["faces"]]
        assert [f["verdict"] for f in row["faces"]] == [f["verdict"] for f in want["faces"]]
    assert kept in part_files(out) and {r["path"] for r in read_results_of(kept)} == kept_paths


def test_parquet_output_options_are_checked_before_the_scan(crops, tmp_path):
    out = tmp_path / "r.parquet"
    for flag in ("--json", "--csv"):
        result = CliRunner().invoke(app, ["scan", str(crops), "--output", str(out), flag])
        assert result.exit_code == 2 and "is a folder of Parquet part files" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(ScanError, match="needs --output NAME.parquet"):
        scan_paths([str(crops)], fmt="parquet", output=tmp_path / "r.jsonl", **SCAN)
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    with pytest.raises(ScanError, match="is a file"):
        scan_paths([str(crops)], output=tmp_path / "file.parquet", **SCAN)
    assert not out.exists()
    result = CliRunner().invoke(app, ["scan", "--help"])
    assert "NAME.parquet" in result.stdout


# ------------------------------------------------------------------------------ the command, in processes


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job would otherwise inherit SIG_IGN


def _scan_command(folder: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "deepfake_detect", "scan", str(folder), "--no-detect", "--workers", "0"]
    return cmd + ["--backend", BACKEND, "--output", str(out), "-q", *extra]


SCAN_ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def _start_scan(folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        _scan_command(folder, out, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=SCAN_ENV,
        preexec_fn=_default_sigint,
    )


def _stop_after_parts(proc: subprocess.Popen, out: Path, n_parts: int, sig: int) -> str:
    """Send ``sig`` as soon as ``out`` holds ``n_parts`` parts; the process's stderr."""
    deadline = time.time() + 120
    while time.time() < deadline and len(part_files(out)) < n_parts and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, f"the scan ended before it was stopped: {proc.communicate()[1]}"
    os.kill(proc.pid, sig)
    return proc.communicate(timeout=120)[1]


@pytest.mark.slow
def test_a_killed_command_resumes_with_every_file_once(tmp_path):
    n = 1200  # ~1.5 s of scanning after the first part: room to stop it in the middle
    write_crops(tmp_path / "many", n, seed=3, side=32)
    out = tmp_path / "many.parquet"
    err = _stop_after_parts(_start_scan(tmp_path / "many", out), out, 1, signal.SIGKILL)
    after_kill = done_paths(out)
    assert 0 < len(after_kill) < n and len(after_kill) % parquet.ROWS_PER_PART == 0, err  # whole parts only

    proc = _start_scan(tmp_path / "many", out, "--resume")
    err = _stop_after_parts(proc, out, len(part_files(out)) + 1, signal.SIGINT)
    assert proc.returncode == 130 and "Traceback" not in err, err
    after_ctrl_c = [r["path"] for r in read_results(out)]
    assert len(after_ctrl_c) == len(set(after_ctrl_c)) and len(after_ctrl_c) > len(after_kill)

    cmd = _scan_command(tmp_path / "many", out, "--resume")
    done = subprocess.run(cmd, capture_output=True, text=True, env=SCAN_ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_results(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == n and all(r["error"] is None for r in rows)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.slow
def test_without_pyarrow_parquet_output_is_one_line_saying_what_to_install(crops, tmp_path, run_without):
    done = run_without("pyarrow", "scan", str(crops), "--output", str(tmp_path / "o.parquet"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: Parquet output needs the optional 'parquet' dependencies: pip install 'deepfake-detect[parquet]'"
    ]
    assert not (tmp_path / "o.parquet").exists()
