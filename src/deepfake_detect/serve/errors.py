"""Error answers: every error is JSON ``{"detail": "<one clear message>"}``, plus ``results`` when every file
of a scan was refused (each file's error row)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["api_error", "error_response", "validation_message", "install_error_handlers"]


def api_error(
    status: int, detail: str, results: list | None = None, headers: dict | None = None
) -> HTTPException:
    """An HTTPException to raise whose JSON body is ``{"detail": ..., "results": ...}``.

    Examples
    --------
    >>> err = api_error(415, "not an image", results=[])
    >>> err.status_code, err.detail, err.results
    (415, 'not an image', [])
    """
    err = HTTPException(status_code=status, detail=detail, headers=headers)
    err.results = results  # read back by the handler below; FastAPI's exception has no place for it
    return err


def error_response(
    status: int, detail: str, results: list | None = None, headers: dict | None = None
) -> JSONResponse:
    """The JSON answer of an error: ``detail``, and ``results`` only when given."""
    body: dict[str, Any] = {"detail": detail}
    if results is not None:
        body["results"] = results
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence out of FastAPI's validation errors: ``query parameter 'explain': <why>``.

    Examples
    --------
    >>> validation_message([{"loc": ("query", "prior"), "msg": "Input should be greater than 0"}])
    "query parameter 'prior': Input should be greater than 0"
    """
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _http_error(request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return error_response(exc.status_code, detail, getattr(exc, "results", None), exc.headers)


async def _validation_error(request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, validation_message(exc.errors()))


def install_error_handlers(app: FastAPI) -> None:
    """Answer HTTP and validation errors (FastAPI's 422 included) in the one JSON shape above."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
