"""The FastAPI application: the endpoints, and :func:`create_app`, which puts them together over one detector.

Endpoints (OpenAPI docs at ``/docs``):

* ``POST /v1/scan`` -- multipart upload of images in the field ``files``; answers
  ``{"model": {...}, "results": [...]}`` with one ``scan --json`` row a file, in upload order (``path`` is
  the upload's file name). Query: ``detect`` (default true, the whole image is scored when no face is found),
  ``explain`` (Grad-CAM overlays as PNG data URLs), ``threshold`` (a two-way cut: no "uncertain"), ``prior``,
  ``provenance`` (default true: each file's metadata, read offline, is reported, and a declaration of
  generative AI makes its verdict "fake").
  Each ``verdict`` is "real", "fake", or "uncertain" inside the model's abstention band (unless the service was
  started with ``--no-abstain``).
* ``GET /v1/model`` -- name, hash, threshold, the "uncertain" band, calibration, training data fingerprint and
  metrics.
* ``GET /healthz`` -- liveness, whether a key is needed, and the limits.
* ``GET /`` -- the page (``static/``): drop photos, see each face's verdict, ``p_fake`` and heatmap.

Errors are JSON ``{"detail": "<one clear message>"}``: 401 missing or wrong key (``/v1/*`` only; the page,
``/healthz`` and the docs stay open, so a browser can load the page and then ask for the key), 413 request,
file count or image pixels over a limit, 415 not an image, 422 bad parameters.

The endpoints get the detector and the config as dependencies (:func:`get_detector`, :func:`get_config`),
from the state of the app :func:`create_app` made: each app serves its own detector. Scans run in a worker
thread, at most ``concurrency`` at a time, so concurrent requests queue instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import hmac
from importlib import resources
from typing import Annotated

import swagger_ui_bundle
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from deepfake_detect.core.exceptions import BackendError, FaceModelError, ServeError
from deepfake_detect.core.version import __version__
from deepfake_detect.faces.framing import check_framing
from deepfake_detect.scan.detector import Detector, load_detector
from deepfake_detect.serve.config import ServeConfig
from deepfake_detect.serve.errors import api_error, install_error_handlers
from deepfake_detect.serve.model_card import model_card
from deepfake_detect.serve.scanning import ScanOptions, refusal_detail, scan_uploads
from deepfake_detect.serve.schemas import ErrorResponse, Health, ModelCard, ScanResponse
from deepfake_detect.serve.uploads import UPLOAD_FIELD, BodyLimit, read_uploads

__all__ = ["create_app", "get_detector", "get_config", "api", "public"]

STATIC = resources.files("deepfake_detect") / "static"
# Only this server may be contacted: the page works offline and leaks nothing to third parties.
PAGE_CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"
DESCRIPTION = (
    "Tells real face photos from generated faces (the default model: StyleGAN-type GANs and Stable Diffusion "
    "2.1 faces); not face swaps. "
    'Each verdict is "real", "fake" or "uncertain": a model with an abstention band (chosen on validation, '
    "see `uncertain_band` in /v1/model) abstains where its score would be a coin toss. "
    "Send `Authorization: Bearer <key>` to /v1/* when the service was started with an API key."
)

# ------------------------------------------------------------------------------------------- dependencies


def get_detector(request: Request) -> Detector:
    """The detector of the app that received the request (loaded once, by :func:`create_app`)."""
    return request.app.state.detector


def get_config(request: Request) -> ServeConfig:
    """The config the app was created with."""
    return request.app.state.config


def get_scan_gate(request: Request) -> asyncio.Semaphore:
    """The app's gate of at most ``concurrency`` scans at once."""
    return request.app.state.scan_gate


DetectorDep = Annotated[Detector, Depends(get_detector)]
ConfigDep = Annotated[ServeConfig, Depends(get_config)]
ScanGateDep = Annotated[asyncio.Semaphore, Depends(get_scan_gate)]


def require_key(request: Request, config: ConfigDep) -> None:
    """401 unless the request carries ``Authorization: Bearer <api_key>`` (when a key is set)."""
    if config.api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guessed key was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.api_key.encode()):
        message = "missing or wrong API key: send 'Authorization: Bearer <key>'"
        raise api_error(401, message, headers={"WWW-Authenticate": "Bearer"})


# --------------------------------------------------------------------------------------------------- /v1/*


def _error(why: str) -> dict:
    return {"model": ErrorResponse, "description": why}


# The upload is parsed by hand (see uploads.read_uploads), so the docs are told its shape here.
UPLOAD_BODY = {
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
                            "description": "One or more images (at most the service's max_files, see "
                            "/healthz); the format is sniffed from the content.",
                        }
                    },
                }
            }
        },
    }
}

api = APIRouter(
    prefix="/v1", dependencies=[Depends(require_key)], responses={401: _error("Missing or wrong API key.")}
)


@api.post(
    "/scan",
    response_model=ScanResponse,
    response_model_exclude_unset=True,  # the rows keep exactly the keys of a `scan --json` row
    responses={
        413: _error("Request, file count or every image over a limit."),
        415: _error("No uploaded file is an image."),
        422: _error("Bad parameters or no files."),
    },
    openapi_extra=UPLOAD_BODY,
    summary="Judge the faces in uploaded images",
)
async def scan(
    request: Request,
    det: DetectorDep,
    config: ConfigDep,
    gate: ScanGateDep,
    detect: Annotated[
        bool, Query(description="Find faces; false: each image is already a face crop.")
    ] = True,
    explain: Annotated[
        bool, Query(description="Add each face's Grad-CAM heatmap as a PNG data URL.")
    ] = False,
    threshold: Annotated[
        float | None,
        Query(
            gt=0,
            lt=1,
            description='Decision threshold as a p_fake, a two-way cut (no "uncertain"); default: the '
            "model's threshold and band.",
        ),
    ] = None,
    prior: Annotated[
        float | None,
        Query(gt=0, lt=1, description="Expected share of fakes, for p_fake; default: validation's."),
    ] = None,
    provenance: Annotated[
        bool,
        Query(
            description="Read each file's metadata (C2PA, offline; XMP, EXIF, PNG text) into `provenance`: a "
            'declaration of generative AI makes the verdict "fake". false: pixels only, `provenance` null.'
        ),
    ] = True,
):
    if explain and det.model is None:
        raise api_error(422, "explain=true needs the model's torch weights; this model is an ONNX file")
    uploads = await read_uploads(request, config.max_files)
    options = ScanOptions(detect, explain, threshold, prior, provenance)
    async with gate:  # queue here, not in threads: only `concurrency` scans use the cores at once
        results, status = await run_in_threadpool(scan_uploads, det, uploads, config, options)
    if status != 200:
        raise api_error(status, refusal_detail(results), results)
    return ScanResponse.model_validate({"model": det.model_info(), "results": results})


@api.get("/model", response_model=ModelCard, summary="Describe the loaded model")
async def model(det: DetectorDep, config: ConfigDep):
    return model_card(det, config.runs_dir)


# ------------------------------------------------------------------------------- open: health, page, docs

public = APIRouter()


@public.get("/healthz", response_model=Health, summary="Liveness, authentication and limits")
async def healthz(det: DetectorDep, config: ConfigDep):
    return {
        "status": "ok",
        "model": det.name,
        "auth_required": config.api_key is not None,
        "limits": config.limits(),
    }


@public.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page():
    return HTMLResponse((STATIC / "index.html").read_text(), headers={"Content-Security-Policy": PAGE_CSP})


@public.get("/docs", include_in_schema=False)
async def docs(request: Request):
    """Swagger UI from local files (mounted at ``/docs-assets``): FastAPI's own page needs a CDN."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon-32x32.png",
    )


# ------------------------------------------------------------------------------------------------- the app


def _service_detector(config: ServeConfig, detector: Detector | None) -> Detector:
    """The detector the service runs: loaded, or a copy of the given one, on ``config.backend`` and with
    ``config.abstain``."""
    try:
        check_framing(config.framing)  # fail at start, not with a 500 on every upload
        if detector is None:
            return load_detector(
                config.model, runs_dir=config.runs_dir, backend=config.backend, onnx_cache=config.onnx_cache,
                abstain=config.abstain,
            )  # fmt: skip
        return detector.with_backend(config.backend, onnx_cache=config.onnx_cache).with_abstain(
            config.abstain
        )
    except (BackendError, FaceModelError) as err:  # no int8 graph, a failed ONNX export, no landmark model
        raise ServeError(str(err)) from None


def _limits_text(config: ServeConfig) -> str:
    return (
        f"\n\nLimits of this service: {config.max_request_mb:g} MiB a request, {config.max_files} files, "
        f"{config.max_pixels} pixels an image."
    )


def create_app(config: ServeConfig, detector: Detector | None = None) -> FastAPI:
    """The FastAPI application: the API, the page and the docs, over one loaded detector.

    Parameters
    ----------
    config : ServeConfig
    detector : Detector, optional
        Already loaded (tests); default: ``load_detector(config.model)``. Either way the service runs
        ``config.backend`` and ``config.abstain``, chosen here once (a failed ONNX export is not retried on
        every request).

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    ServeError
        When the detector cannot run on ``config.backend``.
    """
    app = FastAPI(
        title="deepfake-detect",
        version=__version__,
        description=DESCRIPTION + _limits_text(config),
        docs_url=None,  # the offline page of `public` replaces FastAPI's, which loads from a CDN
    )
    app.state.detector = _service_detector(config, detector)
    app.state.config = config
    # Safe outside the server's event loop: an asyncio semaphore binds to a loop only when a request waits.
    app.state.scan_gate = asyncio.Semaphore(config.concurrency)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    app.include_router(api)
    app.include_router(public)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    return app
