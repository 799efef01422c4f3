"""serve: the REST API against a real uvicorn server on 127.0.0.1 (success, every error status, the limits).

The server runs in a thread of this process (``running_server``), except in the CLI test, which starts
``deepfake-detect serve --workers 2`` as a subprocess (marked slow).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import deepfake_detect as dd
from deepfake_detect.cli import app as cli_app
from deepfake_detect.core.checkpoint import DEFAULT_WEIGHTS, read_metadata, save_checkpoint
from deepfake_detect.core.runs import RunDir, write_json
from deepfake_detect.models import create_model
from deepfake_detect.serve import (
    ServeConfig,
    ServeError,
    bind_warning,
    create_app,
    model_card,
    running_server,
)
from deepfake_detect.serve.server import CONFIG_ENV, config_in_environment, listening_socket

KEY = "test-key"
# The keys of a `scan --json` row: every row of POST /v1/scan has exactly these (plus "note" when needed).
RESULT_KEYS = {"path", "error", "verdict", "p_fake", "faces", "model"}
AUTH = {"Authorization": f"Bearer {KEY}"}
# Main server's limits: 2 MiB a request, 3 files, 1000 x 1000 pixels.
LIMITS = dict(max_request_mb=2.0, max_files=3, max_pixels=1000 * 1000)


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def files(*items: tuple[str, bytes, str]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx's multipart ``files`` argument: every item in the ``files`` field."""
    return [("files", item) for item in items]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module (the 2 shared cores are busy), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def det(tmp_path_factory, one_thread, untrained_checkpoint):
    return dd.load_detector(
        untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", gain=1000)
    )


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def server(det, onnx_cache):
    app = create_app(ServeConfig(api_key=KEY, onnx_cache=onnx_cache, **LIMITS), detector=det)
    with running_server(app) as url:
        yield url


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, headers=AUTH, timeout=60) as c:
        yield c


def test_health_page_and_docs_are_open_but_the_api_needs_the_key(server, det):
    with httpx.Client(base_url=server, timeout=30) as anonymous:
        health = anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "model": det.name,
            "auth_required": True,
            "limits": {"max_request_bytes": 2 * 2**20, "max_files": 3, "max_pixels": 1_000_000},
        }
        page = anonymous.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert anonymous.get("/static/app.js").status_code == 200
        docs = anonymous.get("/docs")
        assert docs.status_code == 200 and "http" not in docs.text.split("<script")[1].split(">")[0]
        assert anonymous.get("/docs-assets/swagger-ui-bundle.js").status_code == 200  # docs work offline
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
            for answer in (
                anonymous.get("/v1/model", headers=headers),
                anonymous.post(
                    "/v1/scan", headers=headers, files=files(("a.png", encode(noise(8, 8)), "image/png"))
                ),
            ):
                assert answer.status_code == 401, headers
                assert answer.headers["www-authenticate"] == "Bearer"
                assert "API key" in answer.json()["detail"]


def test_model_card(client, det):
    card = client.get("/v1/model").json()
    assert card["name"] == det.name and card["sha256"] == det.metadata["tensor_sha256"]
    assert card["backend"] == det.backend != "torch"  # ONNX Runtime runs the network
    assert card["threshold"]["logit"] == det.threshold_logit
    assert card["threshold"]["p_fake"] == pytest.approx(0.5)  # logit 0, temperature 1, base rate 0.5
    assert card["calibration"]["temperature"] == det.temperature
    for key in ("training_data_fingerprint", "validation_metrics", "test_metrics", "version"):
        assert key in card


def test_model_card_reads_the_test_metrics_of_the_weights_run(tmp_path, one_thread, untrained_checkpoint):
    scores = {"n": 10, "roc_auc": 0.75, "accuracy": 0.7, "confusion_matrix": [[3, 2], [1, 4]]}
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    beside = untrained_checkpoint(run.model)
    write_json(run.eval_json("test"), {**scores, "split": "test"})
    card = model_card(dd.load_detector(beside), runs_dir=tmp_path / "none")
    assert card["test_metrics"] == scores and card["test_metrics_source"] == str(run.eval_json("test"))

    # Weights copied out of their run, found through their run id, only with the same tensor hash.
    meta = {**read_metadata(beside), "run_id": "run"}
    torch.manual_seed(0)
    net = create_model("notebook-cnn")
    save_checkpoint(run.model, net, meta)
    save_checkpoint(tmp_path / "shipped.safetensors", net, meta)
    assert (
        model_card(dd.load_detector(tmp_path / "shipped.safetensors"), runs_dir=tmp_path)["test_metrics"]
        == scores
    )
    torch.manual_seed(1)
    save_checkpoint(run.model, create_model("notebook-cnn"), meta)  # retrained
    card = model_card(dd.load_detector(tmp_path / "shipped.safetensors"), runs_dir=tmp_path)
    assert card["test_metrics"] is None and card["test_metrics_source"] is None


def test_openapi_describes_every_field_and_parameter(server):
    spec = httpx.get(f"{server}/openapi.json").json()
    undocumented = [
        f"{name}.{prop}"
        for name, schema in spec["components"]["schemas"].items()
        for prop, body in schema.get("properties", {}).items()
        if not body.get("description")
    ]
    assert not undocumented
    scan = spec["paths"]["/v1/scan"]["post"]
    assert {p["name"] for p in scan["parameters"]} == {
        "detect",
        "explain",
        "threshold",
        "prior",
        "provenance",
    }
    assert all(p.get("description") for p in scan["parameters"])
    assert "files" in scan["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"200", "401", "413", "415", "422"} <= set(scan["responses"])


def test_scan_rows_equal_in_process_scan_rows(client, det):
    uploads = [
        ("a.png", encode(noise(48, 40, 1)), "image/png"),
        ("b.jpg", encode(noise(64, 64, 2), "JPEG"), "image/jpeg"),
    ]
    answer = client.post("/v1/scan", params={"detect": "false"}, files=files(*uploads))
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == det.model_info()
    expected = det.with_backend(det.backend).scan([data for _, data, _ in uploads], detect=False, workers=0)
    assert [r["path"] for r in body["results"]] == ["a.png", "b.jpg"]
    for row, want in zip(body["results"], expected, strict=True):
        assert set(row) == RESULT_KEYS | {"provenance"} == set(want)  # exactly a `scan --json` row's keys
        assert row["faces"][0]["box"] == want["faces"][0]["box"]
        assert row["p_fake"] == pytest.approx(want["p_fake"], abs=1e-6)
        assert row["verdict"] == want["verdict"] and row["error"] is None


def test_in_memory_bytes_scan_like_their_files(det, tmp_path):
    data = encode(noise(40, 40, 3))
    (tmp_path / "x.png").write_bytes(data)
    from_bytes, from_file = det.with_backend("torch").scan(
        [data, tmp_path / "x.png"], detect=False, workers=0
    )
    assert from_bytes["path"] == "<bytes 0>" and from_bytes["error"] is None
    assert from_bytes["faces"][0]["logit"] == from_file["faces"][0]["logit"]


def test_face_photo_is_found_and_explained_in_memory(client, det, face_photo):
    answer = client.post(
        "/v1/scan",
        params={"explain": "true"},
        files=files(("astronaut.jpg", encode(face_photo, "JPEG"), "image/jpeg")),
    )
    assert answer.status_code == 200
    row = answer.json()["results"][0]
    assert row["error"] is None and row["faces"] and "note" not in row  # a face was found, not the fallback
    x, y, w, h = row["faces"][0]["box"]
    assert 100 < x < 300 and 0 < y < 200 and 50 < w < 200  # the astronaut's face, upper middle
    for face in row["faces"]:
        prefix, encoded = face["heatmap"].split(",", 1)
        assert prefix == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as heatmap:
            assert heatmap.format == "PNG" and heatmap.size == (det.preprocess.size,) * 2


def test_no_face_falls_back_to_the_whole_image_with_a_note(client):
    row = client.post(
        "/v1/scan", files=files(("flat.png", encode(np.full((80, 80, 3), 90, np.uint8)), "image/png"))
    ).json()["results"][0]
    assert row["verdict"] in ("real", "fake") and row["faces"][0]["box"] == [0, 0, 80, 80]
    assert "no face found" in row["note"]


def test_content_is_sniffed_not_trusted(client):
    uploads = [
        ("photo.txt", encode(noise(32, 32)), "text/plain"),  # a PNG under a text name and type: scanned
        ("photo.jpg", b"<html>not a photo</html>", "image/jpeg"),  # text under an image name: refused
    ]
    rows = client.post("/v1/scan", params={"detect": "false"}, files=files(*uploads)).json()["results"]
    assert rows[0]["error"] is None and rows[0]["verdict"] in ("real", "fake")
    assert rows[1]["error"].startswith("not an image") and rows[1]["verdict"] is None


def test_mixed_good_and_bad_files_give_200_with_error_rows(client, det):
    uploads = [
        ("good.png", encode(noise(40, 40)), "image/png"),
        ("notes.jpg", b"plain text", "image/jpeg"),
        ("huge.png", encode(np.zeros((1001, 1000, 3), np.uint8)), "image/png"),  # small file, too many pixels
    ]
    answer = client.post("/v1/scan", params={"detect": "false"}, files=files(*uploads))
    assert answer.status_code == 200
    good, text, huge = answer.json()["results"]
    assert good["error"] is None and good["p_fake"] is not None
    assert "not an image" in text["error"]
    assert "1000x1001 = 1001000 pixels, over the limit of 1000000" in huge["error"]
    for row in (text, huge):
        assert set(row) == RESULT_KEYS and row["faces"] == [] and row["model"]["name"] == det.name


@pytest.mark.parametrize(
    ("uploads", "status", "message"),
    [
        ([("a.jpg", b"GIF89a but not really", "image/gif")], 415, "not an image"),
        ([("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")], 415, "not an image"),
        ([("empty.png", b"", "image/png")], 415, "empty file"),
        (
            [("cut.png", encode(noise(40, 40))[:200], "image/png")],
            415,
            "truncated",
        ),  # header fine, pixels cut
        ([("big.png", encode(np.zeros((1001, 1000, 3), np.uint8)), "image/png")], 413, "--max-pixels"),
        (
            [
                ("big.png", encode(np.zeros((1001, 1000, 3), np.uint8)), "image/png"),
                ("t.png", b"text", "image/png"),
            ],
            415,
            "none of the 2",
        ),
    ],
)
def test_every_file_bad_is_415_or_413_with_the_rows(client, uploads, status, message):
    answer = client.post("/v1/scan", files=files(*uploads))
    assert answer.status_code == status
    body = answer.json()
    assert message in body["detail"]
    assert len(body["results"]) == len(uploads) and all(r["error"] for r in body["results"])


def test_request_over_the_size_limit_is_413(client):
    big = noise(1000, 800)  # about 2.3 MB as PNG: over the 2 MiB limit, under the pixel limit
    answer = client.post("/v1/scan", files=files(("big.png", encode(big), "image/png")))
    assert answer.status_code == 413
    assert answer.json()["detail"] == "request body is larger than the limit of 2 MiB (--max-request-mb)"

    def chunked():  # no Content-Length: the limit is enforced while the body streams in
        yield b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 100_000

    answer = client.post(
        "/v1/scan", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert answer.status_code == 413 and "--max-request-mb" in answer.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the server is fine afterwards


def test_too_many_files_is_413(client):
    small = ("a.png", encode(noise(8, 8)), "image/png")
    answer = client.post("/v1/scan", files=files(*[small] * 4))
    assert answer.status_code == 413
    assert answer.json()["detail"] == "4 files sent; at most 3 a request (--max-files)"
    assert client.post("/v1/scan", files=files(*[small] * 3)).status_code == 200  # the limit itself is fine


@pytest.mark.parametrize(
    ("params", "kwargs", "message"),
    [
        ({"explain": "maybe"}, {}, "query parameter 'explain': Input should be a valid boolean"),
        ({"threshold": "2"}, {}, "query parameter 'threshold': Input should be less than 1"),
        ({"prior": "0"}, {}, "query parameter 'prior': Input should be greater than 0"),
        ({}, {"json": {"files": []}}, "send the images as multipart/form-data in the field 'files'"),
        ({}, {"files": [("image", ("a.png", b"x", "image/png"))]}, "no files"),
        (
            {},
            {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=q"}},
            "malformed multipart",
        ),
    ],
)
def test_bad_parameters_are_422_with_a_clear_message(client, params, kwargs, message):
    kwargs.setdefault(
        "files",
        files(("a.png", encode(noise(8, 8)), "image/png"))
        if "json" not in kwargs and "content" not in kwargs
        else None,
    )
    answer = client.post("/v1/scan", params=params, **{k: v for k, v in kwargs.items() if v is not None})
    assert answer.status_code == 422
    assert message in answer.json()["detail"]


def test_concurrent_requests_all_succeed_with_the_same_answer(client):
    upload = files(("a.png", encode(noise(40, 40, 5)), "image/png"))
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: client.post("/v1/scan", params={"detect": "false"}, files=upload), range(12))
        )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["results"][0]["p_fake"] for a in answers}) == 1


def test_uploads_never_touch_the_disk(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    # Over 1 MiB: Starlette's own form parser would spool this one to a temporary file.
    data = encode(noise(700, 700, 7))
    assert len(data) > 2**20
    answer = client.post(
        "/v1/scan", params={"detect": "false", "explain": "true"}, files=files(("a.png", data, "image/png"))
    )
    assert answer.status_code == 200 and answer.json()["results"][0]["error"] is None


def test_keep_uploads_saves_each_file_by_content_hash(det, onnx_cache, tmp_path):
    kept = tmp_path / "kept"
    config = ServeConfig(keep_uploads=str(kept), onnx_cache=onnx_cache)
    good, bad = encode(noise(30, 30)), b"not an image"
    with running_server(create_app(config, detector=det)) as url:
        answer = httpx.post(
            f"{url}/v1/scan",
            files=files(("../../etc/x.png", good, "image/png"), ("b.jpg", bad, "image/jpeg")),
            timeout=60,
        )
    assert answer.status_code == 200  # no key needed: none was set
    assert answer.json()["results"][0]["path"] == "x.png"  # only the base name of the client's file name
    saved = sorted(kept.iterdir())
    assert {p.suffix for p in saved} == {".png", ".bin"} and len(saved) == 2
    assert {p.read_bytes() for p in saved} == {good, bad}


def test_config_limits_are_checked():
    for bad in (
        dict(max_files=0),
        dict(max_pixels=-1),
        dict(max_request_mb=0),
        dict(port=70000),
        dict(api_key=" "),
        dict(backend="fast"),
    ):
        with pytest.raises(ServeError):
            ServeConfig(**bad)
    assert "api_key" not in repr(ServeConfig(api_key="secret")) and "secret" not in repr(
        ServeConfig(api_key="secret")
    )


def test_bind_warning_beyond_loopback_without_a_key():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert bind_warning(host, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert "without an API key" in bind_warning(host, None)
        assert bind_warning(host, "k") is None


def test_the_workers_config_variable_is_as_before_once_serving_returns(monkeypatch):
    """`serve --workers N` hands its config to the workers in CONFIG_ENV, and takes it back when it returns."""
    config = ServeConfig(port=8123, workers=2, api_key="k")
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with config_in_environment(config):
        assert ServeConfig(**json.loads(os.environ[CONFIG_ENV])) == config  # what each worker reads
    assert CONFIG_ENV not in os.environ
    monkeypatch.setenv(CONFIG_ENV, "the caller's")
    with pytest.raises(KeyboardInterrupt), config_in_environment(config):  # Ctrl-C ends uvicorn.run
        raise KeyboardInterrupt
    assert os.environ[CONFIG_ENV] == "the caller's"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_cli_serve_with_two_workers_and_the_key_from_the_environment(
    tmp_path, one_thread, untrained_checkpoint
):
    weights = untrained_checkpoint(tmp_path / "m.safetensors")
    port = free_port()
    # HOME in tmp_path: the ONNX cache (~/.cache/deepfake-detect) of the workers goes there.
    env = {**os.environ, "DEEPFAKE_API_KEY": KEY, "HOME": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "deepfake_detect",
        "serve",
        "--model",
        str(weights),
        "--port",
        str(port),
        "--workers",
        "2",
        "--threads",
        "1",
        "--max-files",
        "2",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                health = httpx.get(f"{url}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not come up in 90 s"
                time.sleep(0.3)
        assert health.json()["auth_required"] and health.json()["limits"]["max_files"] == 2
        upload = files(("a.png", encode(noise(40, 40)), "image/png"))
        assert httpx.post(f"{url}/v1/scan", files=upload, timeout=30).status_code == 401
        answer = httpx.post(f"{url}/v1/scan", files=upload, headers=AUTH, timeout=30)
        assert answer.status_code == 200 and answer.json()["results"][0]["error"] is None
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "warning" not in output.lower()  # loopback: no warning


def test_cli_serve_refuses_bad_flags_and_a_busy_port():
    result = CliRunner().invoke(cli_app, ["serve", "--max-pixels", "0"])
    assert result.exit_code == 2 and "max-pixels must be positive" in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(cli_app, ["serve", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output


def test_keep_alive_requests_are_not_delayed_by_nagle(server):
    # The listening socket says TCP, so asyncio turns on TCP_NODELAY for each connection; without it every
    # keep-alive request waited about 40 ms for a delayed ACK.
    with listening_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
    with httpx.Client(base_url=server, timeout=30) as c:
        c.get("/healthz")
        times = []
        for _ in range(9):
            start = time.perf_counter()
            c.get("/healthz")
            times.append(time.perf_counter() - start)
    assert sorted(times)[4] < 0.03, times


def test_backend_is_chosen_at_start_auto_is_the_models_default_others_on_request(onnx_cache, one_thread):
    default = dd.load_detector("default", onnx_cache=onnx_cache)
    assert default.backend == "onnx-int8"  # auto: what its metadata makes the default, evaluate's scores
    assert det_without_int8(onnx_cache).backend == "onnx"  # without its graph, auto falls back to float
    given = dd.load_detector("default", backend="torch")
    with running_server(create_app(ServeConfig(backend="onnx"), detector=given)) as url:
        card = httpx.get(f"{url}/v1/model", timeout=30).json()
    assert card["backend"] == "onnx"
    # The shipped model carries its test figures in its checkpoint metadata.
    assert (
        card["test_metrics"]["n"] > 0 and card["test_metrics_source"] == "checkpoint metadata (test_metrics)"
    )
    assert given.backend == "torch"  # the service runs its own copy: the caller's detector is unchanged
    with pytest.raises(ServeError, match="int8 graph"):
        create_app(
            ServeConfig(backend="onnx-int8", onnx_cache=onnx_cache), detector=det_without_int8(onnx_cache)
        )


def det_without_int8(tmp: str):
    """The default weights copied alone, without the int8 graph that ships beside them."""
    target = Path(tmp) / "alone" / "default.safetensors"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(DEFAULT_WEIGHTS, target)
    return dd.load_detector(target, onnx_cache=tmp)
