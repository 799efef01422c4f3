"""Provenance through every way in: ``Detector.scan``, the ``scan`` command (JSON, CSV, Parquet, the HTML report)
and ``POST /v1/scan`` on a real server, for the five fixture kinds of tests/provenance_files.py.

A declaration of generative AI gives verdict "fake" with a ``reason``, face or no face, with the pixel scores
unchanged beside it; a plain file keeps its pixels' verdict; ``provenance=False`` reads nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import provenance_files as pf
from deepfake_detect.cli import app
from deepfake_detect.provenance import Provenance
from deepfake_detect.serve import ServeConfig, create_app, running_server

pytestmark = pytest.mark.usefixtures("scan_runtime")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("provenance")
    pf.write_files(root)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory, untrained_checkpoint) -> str:
    return str(untrained_checkpoint(tmp_path_factory.mktemp("m") / "m.safetensors", gain=1000))


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(row["path"]).name: row for row in rows}


def check_kinds(rows: dict[str, dict], pixels: dict[str, dict]) -> None:
    """Each kind's verdict and reason; the pixel scores are those of a scan without provenance."""
    for name, expected in pf.KINDS.items():
        row, plain = rows[name], pixels[name]
        assert row["error"] is None and row["provenance"]["format"] in ("JPEG", "PNG")
        assert row["p_fake"] == plain["p_fake"] and row["faces"] == plain["faces"], name
        if expected == "fake":
            assert row["verdict"] == "fake" and row["reason"].startswith("declared by"), name
            assert row["provenance"]["declares_ai"]
        else:
            assert row["verdict"] == plain["verdict"] and "reason" not in row, name
            assert not row["provenance"]["declares_ai"]
    assert rows["tampered.jpg"]["provenance"]["c2pa"]["state"] == "invalid"
    assert "invalid: assertion.dataHash.mismatch" in rows["tampered.jpg"]["reason"]
    assert rows["signed.jpg"]["provenance"]["c2pa"]["state"] == "untrusted"
    assert f"signed by {pf.SIGNER} ({pf.SIGNER_ORG}), untrusted" in rows["signed.jpg"]["reason"]


# ---------------------------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("detect", [True, False])
def test_the_python_api_gives_each_kind_its_verdict(det, folder, detect):
    det = det.with_backend("torch")
    paths = sorted(folder.iterdir())
    rows = by_name(det.scan(paths, detect=detect, framing="box", workers=0))
    pixels = by_name(det.scan(paths, detect=detect, framing="box", workers=0, provenance=False))
    assert all("provenance" not in row and "reason" not in row for row in pixels.values())
    check_kinds(rows, pixels)
    if detect:  # no face in these smooth pictures: a declaration decides without one
        assert all(row["faces"] == [] for row in rows.values())
    for row in rows.values():
        json.dumps(row, allow_nan=False)


def test_bytes_and_paths_give_the_same_provenance(det, folder):
    det = det.with_backend("torch")
    path = folder / "signed.jpg"
    from_path, from_bytes = det.scan([path, path.read_bytes()], detect=False, workers=0)
    assert from_path["provenance"] == from_bytes["provenance"] and from_bytes["verdict"] == "fake"


@pytest.mark.slow  # starts decoding processes
def test_worker_processes_read_provenance_too(det, folder):
    det = det.with_backend("torch")
    paths = sorted(folder.iterdir()) * 4  # 20 inputs: more than one decoding chunk, so workers start
    rows = det.scan(paths, detect=False, workers=2)
    assert [r["verdict"] == "fake" for r in rows] == [pf.KINDS[p.name] == "fake" for p in paths]


# --------------------------------------------------------------------------------------------- the command


def quiet_scan_of(folder: Path, weights: str) -> tuple[str, ...]:
    """scan's words for the fixture folder: the torch backend, the Haar framing, no worker processes."""
    return (str(folder), "--model", weights, "--backend", "torch", "--framing", "box", "--workers", "0", "-q")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["scan", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def test_the_command_gives_each_kind_its_verdict_in_json_and_csv(weights, folder, tmp_path):
    common = quiet_scan_of(folder, weights)
    code, out = run(*common, "--json")
    rows = by_name([json.loads(line) for line in out.splitlines()])
    code_off, out_off = run(*common, "--json", "--no-provenance")
    pixels = by_name([json.loads(line) for line in out_off.splitlines()])
    assert code == code_off == 0
    check_kinds(rows, pixels)
    code, out = run(*common, "--csv")
    table = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and table["webui.png"]["reason"] == rows["webui.png"]["reason"]
    assert json.loads(table["signed.jpg"]["provenance"]) == rows["signed.jpg"]["provenance"]
    assert table["plain.jpg"]["reason"] == "" and table["plain.jpg"]["verdict"] == (
        pixels["plain.jpg"]["verdict"] or ""
    )
    code, out = run(*common)  # the table names the evidence
    assert code == 0 and any("fake" in line and "declared by XMP" in line for line in out.splitlines())


def test_the_command_writes_provenance_to_parquet_and_round_trips(weights, folder, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow ('deepfake-detect[parquet]')")
    from deepfake_detect.scan.parquet import read_results

    common = (*quiet_scan_of(folder, weights), "--no-detect")
    code, out = run(*common, "--json")
    rows = by_name([json.loads(line) for line in out.splitlines()])
    assert run(*common, "--output", str(tmp_path / "scan.parquet"))[0] == 0
    assert by_name(read_results(tmp_path / "scan.parquet")) == rows


def test_the_report_shows_the_provenance_panel(weights, folder, tmp_path):
    report = tmp_path / "scan.html"
    code, _ = run(
        str(folder),
        "--model",
        weights,
        "--backend",
        "torch",
        "--framing",
        "box",
        "--workers",
        "0",
        "-q",
        "--report",
        str(report),
    )
    text = report.read_text()
    assert code == 0 and text.count('class="provenance"') == len(pf.KINDS)
    assert "Verdict fake: declared by C2PA (trainedAlgorithmicMedia" in text
    assert "absence proves nothing" in text  # the plain file's panel


# ------------------------------------------------------------------------------------------------ the API


@pytest.fixture(scope="module")
def client(det):
    config = ServeConfig(backend="torch", framing="box")
    with (
        running_server(create_app(config, detector=det.with_backend("torch"))) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        yield c


def upload(client, folder: Path, **params) -> dict[str, dict]:
    files = [
        ("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir())
    ]
    answer = client.post("/v1/scan", params=params, files=files)
    assert answer.status_code == 200, answer.text[:500]
    return by_name(answer.json()["results"])


def test_the_service_gives_each_kind_its_verdict(client, folder):
    rows = upload(client, folder)
    pixels = upload(client, folder, provenance="false")
    assert all("provenance" not in row for row in pixels.values())
    check_kinds(rows, pixels)
    rows = upload(client, folder, detect="false")
    assert {name: row["verdict"] == "fake" for name, row in rows.items()} == {
        name: expected == "fake" for name, expected in pf.KINDS.items()
    }


def test_the_openapi_schema_has_every_field_of_the_record(client):
    spec = client.get("/openapi.json").json()["components"]["schemas"]
    record = {**Provenance().to_dict(), "declares_ai": False, "findings": []}
    assert set(spec["ProvenanceResult"]["properties"]) == set(record)
    for name, schema in (("c2pa", "C2paResult"), ("xmp", "XmpResult"), ("exif", "ExifResult")):
        assert set(spec[schema]["properties"]) == set(record[name]), name
    assert set(spec["PngTextResult"]["properties"]) == set(record["png_text"])
    assert {"provenance", "reason"} <= set(spec["ScanResult"]["properties"])
