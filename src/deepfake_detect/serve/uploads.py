"""Uploads: the request body limit, the multipart body parsed in memory, and what the content is.

Content is sniffed with Pillow, never trusted to the file name or content type. Uploads stay in memory (the
multipart body is parsed here, not spooled to temporary files) and are written to disk only by
:func:`keep_upload`, when the service runs with ``keep_uploads``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from deepfake_detect.core.exceptions import describe_error
from deepfake_detect.data.transforms import open_image
from deepfake_detect.serve.config import MIB
from deepfake_detect.serve.errors import api_error, error_response

__all__ = ["UPLOAD_FIELD", "BodyLimit", "Upload", "read_uploads", "sniff_upload", "keep_upload"]

UPLOAD_FIELD = "files"
# Formats Pillow may sniff in an upload; anything else is refused as "not an image" (415).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
# A body announced larger than the limit is still read (and dropped) up to this many bytes, so the client,
# which may still be sending, gets the 413 instead of a connection reset; larger ones are cut off.
DRAIN_BYTES = 64 * MIB


# ------------------------------------------------------------------------------------------- body limit


class BodyLimit:
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
                raise api_error(413, self.message)
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
        await error_response(413, self.message, headers=headers)(scope, receive, send)


# -------------------------------------------------------------------------------------- multipart parsing


@dataclass
class Upload:
    """One uploaded file, in memory."""

    filename: str
    data: bytes


@dataclass
class _Part:
    """One part of a multipart body: its headers (names lower-cased) and its bytes."""

    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


class _PartCollector:
    """The callbacks of python-multipart's parser, collecting every part in memory."""

    def __init__(self):
        self.parts: list[_Part] = []
        self._field, self._value = bytearray(), bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": lambda: self.parts.append(_Part()),
            "on_part_data": lambda data, start, end: self.parts[-1].data.extend(data[start:end]),
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
        }

    def _header_end(self) -> None:
        self.parts[-1].headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()


async def _read_parts(request, boundary: bytes) -> list[_Part]:
    """Every part of the request's multipart body, streamed through the parser (422 when malformed)."""
    collector = _PartCollector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ValueError as err:  # python-multipart's parse errors are ValueErrors
        raise api_error(422, f"malformed multipart body: {err}") from None
    return collector.parts


def _upload(part: _Part) -> Upload | None:
    """The part as an Upload when it is a file of the ``files`` field."""
    _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
    if options.get(b"name") != UPLOAD_FIELD.encode():
        return None
    name = options.get(b"filename", b"").decode("utf-8", "replace")
    # Only the base name: a client's folder names mean nothing here (and some send full Windows paths).
    name = name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    return Upload(name, bytes(part.data))


async def read_uploads(request, max_files: int) -> list[Upload]:
    """The files of a ``multipart/form-data`` request's ``files`` field, parsed in memory.

    Starlette's own form parser spools files over 1 MiB to temporary files; this one keeps every byte in
    memory (:class:`BodyLimit` bounds it), so nothing uploaded reaches the disk.

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
        raise api_error(422, f"send the images as multipart/form-data in the field '{UPLOAD_FIELD}'")
    parts = await _read_parts(request, params[b"boundary"])
    uploads = [upload for upload in map(_upload, parts) if upload is not None]
    if not uploads:
        raise api_error(422, f"no files: send one or more images in the multipart field '{UPLOAD_FIELD}'")
    if len(uploads) > max_files:
        raise api_error(413, f"{len(uploads)} files sent; at most {max_files} a request (--max-files)")
    return uploads


# ------------------------------------------------------------------------------------------------ content


def sniff_upload(data: bytes, max_pixels: int) -> tuple[int, str] | None:
    """Why an upload cannot be scanned, from its content only, as ``(HTTP status, message)``; None if it can.

    Examples
    --------
    >>> sniff_upload(b"GIF89a not really", 100)[0]
    415
    >>> buf = io.BytesIO(); Image.new("RGB", (20, 10)).save(buf, "PNG")
    >>> sniff_upload(buf.getvalue(), 100)
    (413, 'refused as a possible decompression bomb: image is 20x10 = 200 pixels, over the limit of 100 (--max-pixels)')
    """
    if not data:
        return 415, "empty file"
    try:
        with open_image(io.BytesIO(data), max_pixels) as image:  # reads the header only: no pixels yet
            fmt = image.format
    except Image.DecompressionBombError as err:  # the scan's own words (describe_error), --max-pixels quoted
        return 413, describe_error(err)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the bytes are not an image it knows
        return 415, "not an image: the content is not a format Pillow recognises"
    if fmt not in IMAGE_FORMATS:
        return 415, f"not a supported image format ({fmt}); send JPEG, PNG, WebP, BMP, GIF or TIFF"
    return None


def keep_upload(folder: Path, data: bytes) -> Path:
    """Save one upload as ``<folder>/<sha256 prefix>.<sniffed format>`` (the client's name is not trusted).

    Parameters
    ----------
    folder : Path
        Created when missing.
    data : bytes
        The upload; kept as ``.bin`` when Pillow does not recognise it.

    Returns
    -------
    Path
        Where it is; the same content is written only once.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     keep_upload(Path(tmp), b"plain text").name
    'c9ecf5e54c7b3f2640ecca21.bin'
    """
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
