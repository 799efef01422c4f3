"""``deepfake-detect serve``: a REST API and a web page over :meth:`Detector.scan`, with FastAPI and uvicorn.

>>> from deepfake_detect.serve.app import ServeConfig, serve        # doctest: +SKIP
>>> serve(ServeConfig(port=8000, api_key="s3cret"))             # doctest: +SKIP

Endpoints (OpenAPI docs at ``/docs``):

* ``POST /v1/scan`` -- multipart upload of images in the field ``files``; answers
  ``{"model": {...}, "results": [...]}`` with one ``scan --json`` row a file, in upload order (``path`` is
  the upload's file name). Query: ``detect`` (default true, the whole image is scored when no face is found),
  ``explain`` (Grad-CAM overlays as PNG data URLs), ``threshold``, ``prior``.
* ``GET /v1/model`` -- name, hash, threshold, calibration, training data fingerprint and metrics.
* ``GET /healthz`` -- liveness, whether a key is needed, and the limits.
* ``GET /`` -- the page (``static/``): drop photos, see each face's verdict, ``p_fake`` and heatmap.

Errors are JSON ``{"detail": "<one clear message>"}``: 401 missing or wrong key (``/v1/*`` only; the page,
``/healthz`` and the docs stay open, so a browser can load the page and then ask for the key), 413 request,
file count or image pixels over a limit, 415 not an image, 422 bad parameters. A bad file among good ones is
an error row in a 200 answer; when every file is bad the answer is 413 (all too large) or 415, with the rows
under ``results``. Content is sniffed with Pillow, never trusted to the file name or content type. Uploads
stay in memory (the multipart body is parsed here, not spooled to temporary files) and are written to disk
only with ``keep_uploads``.

The detector is loaded once a process and runs on ONNX Runtime when it works. Scans run in a worker thread,
at most ``concurrency`` at a time, so concurrent requests queue instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepfake_detect.core.exceptions import BackendError, ServeError
from deepfake_detect.inference.network import BACKENDS, load_network
from deepfake_detect.scan.detector import load_detector

__all__ = ["ServeConfig", "ServeError", "create_app", "serve", "running_server", "bind_warning"]

log = logging.getLogger(__name__)

API_KEY_ENV = "DEEPFAKE_API_KEY"
# The config of `serve --workers N`: uvicorn starts each worker process from an import string, not an object.
CONFIG_ENV = "DEEPFAKE_SERVE_CONFIG"
UPLOAD_FIELD = "files"
# Formats Pillow may sniff in an upload; anything else is refused as "not an image" (415).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
# A body announced larger than the limit is still read (and dropped) up to this many bytes, so the client,
# which may still be sending, gets the 413 instead of a connection reset; larger ones are cut off.
DRAIN_BYTES = 64 * 2**20
MIB = 2**20


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs; each field is a ``deepfake-detect serve`` flag of the same name.

    Parameters
    ----------
    host, port : str, int
        Address to listen on. Anything but loopback without ``api_key`` prints a warning.
    model : str
        ``default``, a run folder or id (under ``runs_dir``), a ``.safetensors`` or an ``.onnx`` file.
    workers : int
        uvicorn worker processes, each with its own copy of the model.
    concurrency : int
        Scans one process runs at the same time; more requests wait their turn.
    threads : int, optional
        Compute threads a process; default: the cores divided by ``workers``.
    max_request_mb : float
        Largest request body (all files plus multipart overhead), in MiB.
    max_files : int
        Most files a request.
    max_pixels : int
        Largest image, in pixels (width x height), checked from the header before decoding.
    api_key : str, optional
        Require ``Authorization: Bearer <key>`` on ``/v1/*``.
    keep_uploads : str, optional
        Folder to save every uploaded file in (named by content hash); default: nothing is written.
    onnx_cache : str, optional
        Folder of exported ONNX graphs; default ``~/.cache/deepfake-detect/onnx``.
    backend : {"auto", "onnx-int8", "onnx", "torch"}
        As for ``scan``: ``auto`` gives evaluate's exact scores; ``onnx-int8`` is about twice as fast.
    runs_dir : str
        Where run ids are looked up.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "default"
    workers: int = 1
    concurrency: int = 1
    threads: int | None = None
    max_request_mb: float = 32.0
    max_files: int = 16
    max_pixels: int = 50_000_000
    api_key: str | None = field(default=None, repr=False)
    keep_uploads: str | None = None
    onnx_cache: str | None = None
    backend: str = "auto"
    runs_dir: str = "runs"

    def __post_init__(self):
        positive = ("workers", "concurrency", "max_request_mb", "max_files", "max_pixels")
        for name in positive + (("threads",) if self.threads is not None else ()):
            if getattr(self, name) <= 0:
                raise ServeError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"port must be in 0..65535 (0: any free port), got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise ServeError("api-key is empty")
        if self.backend not in BACKENDS:
            raise ServeError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MIB)

    def limits(self) -> dict[str, int]:
        """The limits as the API reports them."""
        return {
            "max_request_bytes": self.max_request_bytes,
            "max_files": self.max_files,
            "max_pixels": self.max_pixels,
        }


# ------------------------------------------------------------------------------------------ response models


class FaceResult(BaseModel):
    box: list[int] = Field(description="Face box [x, y, width, height] in pixels of the upright image.")
    p_fake: float = Field(description="Calibrated probability that the face is GAN-generated.")
    logit: float = Field(description="Raw network output; the verdict is fake when logit >= threshold.")
    verdict: Literal["real", "fake"] = Field(description="Decision at the model's (or given) threshold.")
    heatmap: str | None = Field(
        None, description="With explain=true: Grad-CAM overlay of the face crop, a PNG data URL."
    )


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")  # whatever else Detector.model_info() reports is passed on

    name: str = Field(description="Architecture name (see `deepfake-detect models`).")
    sha256: str = Field(description="SHA-256 over the weights' tensor names and bytes: the model's identity.")
    threshold_logit: float = Field(description="Decision threshold on the raw logit, chosen on validation.")
    temperature: float = Field(description="Temperature of the calibration: p_fake = sigmoid(logit / T).")
    backend: str | None = Field(None, description="What ran the network: onnx, onnx-int8 or torch.")


class ScanResult(BaseModel):
    path: str = Field(description="The uploaded file's name.")
    error: str | None = Field(description="Why the file could not be judged; null when it was.")
    verdict: Literal["real", "fake"] | None = Field(
        description="The verdict of the face with the highest p_fake; null without a face or on error."
    )
    p_fake: float | None = Field(description="p_fake of the face with the highest p_fake; null likewise.")
    faces: list[FaceResult] = Field(description="Every face found (the whole image when none is).")
    model: ModelInfo = Field(description="The model that judged the file.")
    note: str | None = Field(None, description="Why a result needs care: no face found, tiny image.")


class ScanResponse(BaseModel):
    model: ModelInfo = Field(description="The model that judged the files.")
    results: list[ScanResult] = Field(description="One result a file, in upload order.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.")
    results: list[ScanResult] | None = Field(
        None, description="When every uploaded file was refused: each file's error row."
    )


class Limits(BaseModel):
    max_request_bytes: int = Field(description="Largest request body, files and multipart overhead.")
    max_files: int = Field(description="Most files a request.")
    max_pixels: int = Field(description="Largest image in pixels (width x height).")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always ok when the service answers.")
    model: str = Field(description="Architecture name of the loaded model.")
    auth_required: bool = Field(description="Whether /v1/* needs `Authorization: Bearer <key>`.")
    limits: Limits = Field(description="The upload limits of this service.")


class Threshold(BaseModel):
    logit: float = Field(description="Threshold on the raw logit (verdict fake when logit >= it).")
    p_fake: float = Field(description="The same threshold as a p_fake at the calibration base rate.")
    rule: str | None = Field(description="How it was chosen on validation (f1, cost, target FPR).")


class Calibration(BaseModel):
    method: str = Field(description="Temperature scaling, fitted on the validation split.")
    temperature: float = Field(description="T in p_fake = sigmoid(logit / T).")
    base_rate: float = Field(description="Share of fakes p_fake assumes (the validation split's).")


class ModelCard(BaseModel):
    name: str = Field(description="Architecture name.")
    version: str = Field(description="Model version: the run id and the first 12 hex digits of sha256.")
    sha256: str = Field(description="SHA-256 over tensor names and bytes.")
    run_id: str | None = Field(description="Training run that produced the weights.")
    created: str | None = Field(description="When the weights were saved (ISO 8601).")
    code_version: str | None = Field(description="deepfake-detect version and commit that trained it.")
    backend: str = Field(description="What runs the network here: onnx, onnx-int8 or torch.")
    input_size: int = Field(description="Side of the square face crop the network sees, in pixels.")
    resize_mode: str = Field(description="crop: native-resolution centre crop; resize: resampled.")
    explain_available: bool = Field(description="Whether explain=true works (needs torch weights).")
    threshold: Threshold = Field(description="The decision threshold.")
    calibration: Calibration = Field(description="How logits become p_fake.")
    training_data_fingerprint: str | None = Field(
        description="SHA-256 over the training data's (relative path, content hash) pairs."
    )
    validation_metrics: dict[str, Any] | None = Field(
        description="Metrics on the validation split at the stored threshold (from the checkpoint)."
    )
    test_metrics: dict[str, Any] | None = Field(
        description="Metrics on the test split: from the checkpoint's metadata (test_metrics), else "
        "eval_test.json beside the weights; null when neither exists (the shipped default model: "
        "its test figures are in MODEL_CARD.md)."
    )
    test_metrics_source: str | None = Field(description="Where test_metrics came from.")


# ------------------------------------------------------------------------------------------------- errors


def _api_error(status: int, detail: str, results: list | None = None, headers: dict | None = None):
    """An HTTPException whose JSON body is ``{"detail": ..., "results": ...}``."""
    err = HTTPException(status_code=status, detail=detail, headers=headers)
    err.results = results
    return err


def _error_response(status: int, detail: str, results: list | None = None, headers=None):
    body: dict[str, Any] = {"detail": detail}
    if results is not None:
        body["results"] = results
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence out of FastAPI's validation errors: ``query parameter 'explain': <why>``."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app) -> None:
    async def http_error(request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error_response(exc.status_code, detail, getattr(exc, "results", None), exc.headers)

    async def validation_error(request, exc: RequestValidationError):
        return _error_response(422, _validation_message(exc.errors()))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with a JSON 413.

    A body announced too large (Content-Length) is refused before the app runs. Unless the client waits for
    ``100 Continue`` (and so has sent nothing), the body is read and dropped first, up to
    :data:`DRAIN_BYTES`: closing a socket with unread data resets it, and the client would lose the answer.
    A body that grows past the limit while streaming (chunked, or a lying Content-Length) is cut off there.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        announced = headers.get(b"content-length", b"").decode() or None
        if announced is not None and announced.isdigit() and int(announced) > self.limit:
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await self._drain(receive, min(int(announced), DRAIN_BYTES))
            return await self._refuse(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _api_error(413, self.message)
            return message

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"request body is larger than the limit of {self.limit / MIB:g} MiB (--max-request-mb)"

    @staticmethod
    async def _drain(receive, budget: int) -> None:
        while budget > 0:
            message = await receive()
            budget -= len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    async def _refuse(self, scope, receive, send):
        headers = {"Connection": "close"}
        await _error_response(413, self.message, headers=headers)(scope, receive, send)


# -------------------------------------------------------------------------------------------------- uploads


@dataclass
class Upload:
    """One uploaded file, in memory."""

    filename: str
    data: bytes


async def read_uploads(request, max_files: int) -> list[Upload]:
    """The files of a ``multipart/form-data`` request's ``files`` field, parsed in memory.

    Starlette's own form parser spools files over 1 MiB to temporary files; this one keeps every byte in
    memory (the body limit bounds it), so nothing uploaded reaches the disk.

    Parameters
    ----------
    request : starlette.requests.Request
    max_files : int
        More files than this is a 413 (after the whole body is read, so the client gets the answer).

    Returns
    -------
    list of Upload
        In upload order; other form fields are ignored.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise _api_error(422, f"send the images as multipart/form-data in the field '{UPLOAD_FIELD}'")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_header_end():
        parts[-1]["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    callbacks = {
        "on_part_begin": lambda: parts.append({"headers": {}, "data": bytearray()}),
        "on_part_data": lambda data, start, end: parts[-1]["data"].extend(data[start:end]),
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": on_header_end,
    }
    parser = MultipartParser(params[b"boundary"], callbacks)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ValueError as err:  # python-multipart's parse errors are ValueErrors
        raise _api_error(422, f"malformed multipart body: {err}") from None
    uploads = [_upload(part) for part in parts]
    uploads = [u for u in uploads if u is not None]
    if not uploads:
        raise _api_error(422, f"no files: send one or more images in the multipart field '{UPLOAD_FIELD}'")
    if len(uploads) > max_files:
        raise _api_error(413, f"{len(uploads)} files sent; at most {max_files} a request (--max-files)")
    return uploads


def _upload(part: dict[str, Any]) -> Upload | None:
    """The part as an Upload when it is a file of the ``files`` field."""
    _, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
    if options.get(b"name") != UPLOAD_FIELD.encode():
        return None
    name = options.get(b"filename", b"").decode("utf-8", "replace")
    # Only the base name: a client's folder names mean nothing here (and some send full Windows paths).
    name = name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    return Upload(name, bytes(part["data"]))


def sniff_upload(data: bytes, max_pixels: int) -> tuple[int, str] | None:
    """Why an upload cannot be scanned, from its content only, as ``(HTTP status, message)``; None if it can.

    Examples
    --------
    >>> sniff_upload(b"GIF89a not really", 100)[0]
    415
    >>> buf = io.BytesIO(); Image.new("RGB", (20, 10)).save(buf, "PNG")
    >>> sniff_upload(buf.getvalue(), 100)
    (413, 'image is 20x10 = 200 pixels, over the limit of 100 (--max-pixels)')
    """
    if not data:
        return 415, "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only: no pixels yet
            fmt, (width, height) = image.format, image.size
    except Image.DecompressionBombError as err:
        return 413, f"refused as a possible decompression bomb: {err}"
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the bytes are not an image it knows
        return 415, "not an image: the content is not a format Pillow recognises"
    if fmt not in IMAGE_FORMATS:
        return 415, f"not a supported image format ({fmt}); send JPEG, PNG, WebP, BMP, GIF or TIFF"
    if width * height > max_pixels:
        return (
            413,
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} (--max-pixels)",
        )
    return None


def keep_upload(folder: Path, data: bytes) -> Path:
    """Save one upload as ``<folder>/<sha256 prefix>.<sniffed format>`` (the client's name is not trusted)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            suffix = (image.format or "bin").lower()
    except Exception:  # noqa: BLE001 - an unreadable upload is kept too, as raw bytes
        suffix = "bin"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}.{suffix}"
    if not path.exists():
        path.write_bytes(data)
    return path


# -------------------------------------------------------------------------------------------------- scanning


@dataclass
class ScanOptions:
    """What one request asks of the scan."""

    detect: bool = True
    explain: bool = False
    threshold: float | None = None
    prior: float | None = None


def _error_row(det, filename: str, message: str) -> dict[str, Any]:
    """An error row of the scan result schema, for a file refused before scanning."""
    return {
        "path": filename,
        "error": message,
        "verdict": None,
        "p_fake": None,
        "faces": [],
        "model": det.model_info(),
    }


def scan_uploads(det, uploads: list[Upload], config: ServeConfig, options: ScanOptions):
    """Sniff, check and scan uploaded files in this thread; one ``scan --json`` row each, in upload order.

    Returns
    -------
    results : list of dict
    status : int
        200 when at least one file could be judged; else 413 when every file was too large, otherwise 415.
    """
    if config.keep_uploads:
        for upload in uploads:
            keep_upload(Path(config.keep_uploads), upload.data)
    refused = {i: sniff_upload(u.data, config.max_pixels) for i, u in enumerate(uploads)}
    good = [i for i, why in refused.items() if why is None]
    rows = det.scan(
        [uploads[i].data for i in good],
        detect=options.detect,
        fallback_whole_image=True,  # a photo without a detectable face still gets a verdict, with a note
        threshold=options.threshold,
        prior=options.prior,
        workers=0,  # decode here: starting processes costs more than one request's images
        explain_inline=options.explain,
    )
    by_index = dict(zip(good, rows, strict=True))
    results = []
    for i, upload in enumerate(uploads):
        row = by_index.get(i) or _error_row(det, upload.filename, refused[i][1])
        row["path"] = upload.filename
        results.append(row)
    if any(r["error"] is None for r in results):
        return results, 200
    too_large = all(why is not None and why[0] == 413 for why in refused.values())
    return results, 413 if too_large else 415


# ------------------------------------------------------------------------------------------------ model card


def _run_folders(det, runs_dir: str | Path) -> list[Path]:
    """Folders whose ``eval_test.json`` scores exactly these weights: the weights' own, and their run's."""
    folders = [Path(det.path).parent] if det.path is not None else []
    run_id = det.metadata.get("run_id")
    if run_id:
        run = Path(runs_dir).expanduser() / str(run_id)
        from deepfake_detect.core.checkpoint import read_metadata

        try:  # the run's weights must be these weights: a retrained run of the same name is not
            if read_metadata(run / "model.safetensors").get("tensor_sha256") == det.metadata["tensor_sha256"]:
                folders.append(run)
        except Exception:  # noqa: BLE001 - no such run here, or an unreadable one: no metrics from it
            pass
    return folders


def _test_metrics(det, runs_dir: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Test-split metrics: the checkpoint's ``test_metrics``, else the ``eval_test.json`` of its run."""
    if isinstance(det.metadata.get("test_metrics"), dict):
        return det.metadata["test_metrics"], "checkpoint metadata (test_metrics)"
    for folder in _run_folders(det, runs_dir):
        if (folder / "eval_test.json").is_file():
            report = json.loads((folder / "eval_test.json").read_text())
            keys = ("n", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "ci95")
            metrics = {k: report[k] for k in (*keys, "confusion_matrix") if k in report}
            return metrics, str(folder / "eval_test.json")
    return None, None


def model_card(det, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """What ``GET /v1/model`` answers: identity, threshold, calibration, data fingerprint and metrics.

    Parameters
    ----------
    det : Detector
    runs_dir : path
        Where the weights' training run may be found, for its test metrics (``eval_test.json``).

    Returns
    -------
    dict
        The :class:`ModelCard` fields.
    """
    meta = det.metadata
    test, source = _test_metrics(det, runs_dir)
    threshold_p = float(det.p_fake([det.threshold_logit])[0])
    return {
        "name": det.name,
        "version": f"{meta.get('run_id') or det.name}@{meta['tensor_sha256'][:12]}",
        "sha256": meta["tensor_sha256"],
        "run_id": meta.get("run_id"),
        "created": meta.get("created"),
        "code_version": meta.get("code_version"),
        "backend": det.backend,
        "input_size": det.preprocess.size,
        "resize_mode": det.preprocess.resize_mode,
        "explain_available": det.model is not None,
        "threshold": {
            "logit": det.threshold_logit,
            "p_fake": threshold_p,
            "rule": meta.get("threshold_rule"),
        },
        "calibration": {
            "method": "temperature scaling (fitted on validation)",
            "temperature": det.temperature,
            "base_rate": float(meta.get("base_rate", 0.5)),
        },
        "training_data_fingerprint": meta.get("data_fingerprint"),
        "validation_metrics": meta.get("val_metrics"),
        "test_metrics": test,
        "test_metrics_source": source,
    }


# ------------------------------------------------------------------------------------------------------ app


def _check_key(request, api_key: str | None) -> None:
    """401 unless the request carries ``Authorization: Bearer <api_key>`` (when a key is set)."""
    if api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guessed key was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        message = "missing or wrong API key: send 'Authorization: Bearer <key>'"
        raise _api_error(401, message, headers={"WWW-Authenticate": "Bearer"})


def create_app(config: ServeConfig, detector=None):
    """The FastAPI application: the API, the page and the docs, over one loaded detector.

    Parameters
    ----------
    config : ServeConfig
    detector : Detector, optional
        Already loaded (tests); default: ``load_detector(config.model)``. Either way the service runs
        ``config.backend``, chosen here once (a failed ONNX export is not retried on every request).

    Returns
    -------
    fastapi.FastAPI
    """

    from deepfake_detect.core.version import __version__

    try:
        if detector is None:
            det = load_detector(
                config.model, runs_dir=config.runs_dir, backend=config.backend, onnx_cache=config.onnx_cache
            )
        else:
            det = detector.with_backend(config.backend, onnx_cache=config.onnx_cache)
    except BackendError as err:  # an int8 graph the model does not have, an ONNX export that fails
        raise ServeError(str(err)) from None
    static = resources.files("deepfake_detect") / "static"
    app = FastAPI(
        docs_url=None,  # served below from the swagger-ui-bundle package: FastAPI's own page needs a CDN
        title="deepfake-detect",
        version=__version__,
        description="Tells real face photos from GAN-generated faces (StyleGAN-like); not face swaps. "
        "Send `Authorization: Bearer <key>` to /v1/* when the service was started with an API key.",
    )
    app.state.detector, app.state.config = det, config
    _install_error_handlers(app)
    app.add_middleware(_BodyLimit, limit=config.max_request_bytes)
    # Created here, in the server's event loop's thread, on first use by a request.
    slots: dict[str, asyncio.Semaphore] = {}

    def authorized(request: Request) -> None:
        _check_key(request, config.api_key)

    errors = {
        code: {"model": ErrorResponse, "description": why}
        for code, why in {
            401: "Missing or wrong API key.",
            413: "Request, file count or every image over a limit.",
            415: "No uploaded file is an image.",
            422: "Bad parameters or no files.",
        }.items()
    }
    upload_body = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [UPLOAD_FIELD],
                        "properties": {
                            UPLOAD_FIELD: {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": f"One or more images (at most {config.max_files}); "
                                "the format is sniffed from the content.",
                            }
                        },
                    }
                }
            },
        }
    }

    @app.post(
        "/v1/scan",
        response_model=ScanResponse,
        response_model_exclude_unset=True,  # the rows keep exactly the keys of a `scan --json` row
        responses=errors,
        dependencies=[Depends(authorized)],
        openapi_extra=upload_body,
        summary="Judge the faces in uploaded images",
    )
    async def scan(
        request: Request,
        detect: bool = Query(True, description="Find faces; false: each image is already a face crop."),
        explain: bool = Query(False, description="Add each face's Grad-CAM heatmap as a PNG data URL."),
        threshold: float | None = Query(
            None, gt=0, lt=1, description="Decision threshold as a p_fake; default: the model's."
        ),
        prior: float | None = Query(
            None, gt=0, lt=1, description="Expected share of fakes, for p_fake; default: validation's."
        ),
    ):
        if explain and det.model is None:
            raise _api_error(422, "explain=true needs the model's torch weights; this model is an ONNX file")
        uploads = await read_uploads(request, config.max_files)
        options = ScanOptions(detect, explain, threshold, prior)
        gate = slots.setdefault("scan", asyncio.Semaphore(config.concurrency))
        async with gate:  # queue here, not in threads: only `concurrency` scans use the cores at once
            results, status = await run_in_threadpool(scan_uploads, det, uploads, config, options)
        if status != 200:
            first = results[0]["error"]
            detail = (
                first
                if len(results) == 1
                else f"none of the {len(results)} files could be judged; first: {first}"
            )
            raise _api_error(status, detail, results)
        return ScanResponse.model_validate({"model": det.model_info(), "results": results})

    @app.get(
        "/v1/model",
        response_model=ModelCard,
        responses={401: errors[401]},
        dependencies=[Depends(authorized)],
        summary="Describe the loaded model",
    )
    async def model():
        return model_card(det, config.runs_dir)

    @app.get("/healthz", response_model=Health, summary="Liveness, authentication and limits")
    async def healthz():
        return {
            "status": "ok",
            "model": det.name,
            "auth_required": config.api_key is not None,
            "limits": config.limits(),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        # Only this server may be contacted: the page works offline and leaks nothing to third parties.
        csp = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"
        return HTMLResponse((static / "index.html").read_text(), headers={"Content-Security-Policy": csp})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_offline_docs(app)
    return app


def _install_offline_docs(app) -> None:
    """Swagger UI at ``/docs`` from local files, so the API docs work on a machine with no network."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


# ---------------------------------------------------------------------------------------------- running it


def bind_warning(host: str, api_key: str | None) -> str | None:
    """The warning printed when the service listens beyond this machine without a key; None otherwise.

    Examples
    --------
    >>> bind_warning("127.0.0.1", None) is None and bind_warning("0.0.0.0", "k") is None
    True
    >>> bind_warning("0.0.0.0", None)[:8]
    'warning:'
    """
    if api_key is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a host name other than localhost: it may resolve to anything
        pass
    return (
        f"warning: listening on {host} without an API key: anyone who can reach this port can use the "
        f"service; pass --api-key (or set {API_KEY_ENV}) or bind to 127.0.0.1"
    )


def _prepare_process(config: ServeConfig) -> None:
    """Compute threads for this process: the cores shared out between the workers."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(config.threads or max(1, cores // config.workers))


def app_from_environment():
    """App factory for ``serve --workers N``: each uvicorn worker builds its app from :data:`CONFIG_ENV`."""
    config = ServeConfig(**json.loads(os.environ[CONFIG_ENV]))
    _prepare_process(config)
    return create_app(config)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only when the proto
    # says TCP, and without it Nagle's algorithm and delayed ACKs add about 40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig) -> None:
    """Load the model and run the service until interrupted (Ctrl-C stops it cleanly).

    Parameters
    ----------
    config : ServeConfig

    Raises
    ------
    ServeError
        When the address cannot be bound.
    CheckpointError
        When the model cannot be loaded.
    """
    warning = bind_warning(config.host, config.api_key)
    if warning:
        sys.stderr.write(warning + "\n")
    sock = _listening_socket(config.host, config.port)  # fail early, before minutes of model loading
    if config.workers == 1:
        _prepare_process(config)
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        log.info("serving %s on http://%s:%d (Ctrl-C stops)", config.model, config.host, config.port)
        server.run(sockets=[sock])
        return
    sock.close()
    load_network(config.model, runs_dir=config.runs_dir)  # a bad model fails here, not in every worker
    os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
    uvicorn.run(
        "deepfake_detect.serve:app_from_environment",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level="info",
        timeout_graceful_shutdown=5,
    )


@contextmanager
def running_server(app, host: str = "127.0.0.1"):
    """Run ``app`` with uvicorn in a background thread on a free port; yields its base URL.

    For tests and benchmarks: the server is real (sockets, HTTP parsing), only the process is shared.
    """
    sock = _listening_socket(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
