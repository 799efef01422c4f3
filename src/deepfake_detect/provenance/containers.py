"""The metadata blocks of an image file, found by walking its container: no pixel is decoded.

JPEG (segments up to the first scan), PNG (every chunk; the pixel chunks are stepped over) and WebP (RIFF
chunks) are walked here, byte by byte with every length checked against the data, so a truncated or lying
file ends the walk instead of raising. Other formats go through Pillow's header reader. Compressed PNG text is
inflated only for the keywords kept, and never past :data:`MAX_INFLATE_BYTES` (a zip bomb in a chunk).

Examples
--------
>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO(); Image.new("RGB", (4, 4)).save(buf, "JPEG", comment=b"made by hand")
>>> blocks = metadata_blocks(buf.getvalue())
>>> blocks.format, blocks.comments, blocks.has_manifest
('JPEG', ['made by hand'], False)
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field

from PIL import Image

from deepfake_detect.provenance.record import MAX_TEXT_CHARS

__all__ = ["PNG_TEXT_KEYS", "MAX_INFLATE_BYTES", "Blocks", "metadata_blocks"]

JPEG_SIGNATURE = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_PREFIX = b"Exif\x00\x00"
PNG_XMP_KEY = "xml:com.adobe.xmp"
# PNG text keywords kept, matched without regard to case; each is a field of PngText.
PNG_TEXT_KEYS = ("parameters", "prompt", "workflow", "software")
# Compressed PNG text (an XMP packet, a workflow) is inflated to at most this many bytes.
MAX_INFLATE_BYTES = 1 << 20
# Text is decoded from at most this many bytes: enough for MAX_TEXT_CHARS characters and the mark of a cut.
MAX_TEXT_BYTES = 4 * MAX_TEXT_CHARS + 4
MAX_COMMENTS = 8  # JPEG comment segments kept
# JPEG markers without a length: TEM, RST0-7 (SOI is consumed before the walk).
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


@dataclass
class Blocks:
    """The raw metadata of one file: where each block is, not yet what it means."""

    format: str | None = None
    xmp: bytes | None = None
    exif: bytes | None = None
    texts: dict[str, str] = field(default_factory=dict)  # a PNG_TEXT_KEYS keyword -> its text
    comments: list[str] = field(default_factory=list)
    has_manifest: bool = False  # an embedded C2PA manifest store (JUMBF) is there to validate


def metadata_blocks(data: bytes) -> Blocks:
    """The metadata blocks of an image file's bytes; a damaged file gives what could be read before the damage.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    Blocks
    """
    if data.startswith(JPEG_SIGNATURE):
        return _jpeg(data)
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return _other(data)


# ------------------------------------------------------------------------------------------------ JPEG


def _jpeg(data: bytes) -> Blocks:
    blocks = Blocks("JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break  # not a marker where one must be: damaged
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: metadata segments come before
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break
        _jpeg_segment(blocks, marker, data[pos + 4 : pos + 2 + length])
        pos += 2 + length
    return blocks


def _jpeg_segment(blocks: Blocks, marker: int, body: bytes) -> None:
    if marker == 0xE1 and body.startswith(EXIF_PREFIX) and blocks.exif is None:
        blocks.exif = body
    elif marker == 0xE1 and body.startswith(XMP_JPEG_PREFIX) and blocks.xmp is None:
        blocks.xmp = body[len(XMP_JPEG_PREFIX) :]
    elif marker == 0xEB and body[:2] == b"JP" and (b"jumb" in body or b"c2pa" in body):
        blocks.has_manifest = True  # APP11: a JUMBF box (C2PA's container) in ISO 19566-5's wrapping
    elif marker == 0xFE and len(blocks.comments) < MAX_COMMENTS:
        blocks.comments.append(_text(body, "utf-8"))


# ------------------------------------------------------------------------------------------------- PNG


def _png(data: bytes) -> Blocks:
    blocks = Blocks("PNG")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, start = data[pos + 4 : pos + 8], pos + 8
        if start + length > len(data) or kind == b"IEND":
            break  # truncated, or the end
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            _png_text(blocks, kind, data[start : start + length])
        elif kind == b"eXIf" and blocks.exif is None:
            blocks.exif = data[start : start + length]
        elif kind == b"caBX":  # C2PA's chunk for its JUMBF manifest store
            blocks.has_manifest = True
        pos = start + length + 4  # the chunk's CRC
    return blocks


def _png_text(blocks: Blocks, kind: bytes, body: bytes) -> None:
    keyword, sep, rest = body.partition(b"\x00")
    key = keyword.decode("latin-1").lower()
    if not sep or (key not in PNG_TEXT_KEYS and key != PNG_XMP_KEY):
        return
    if kind == b"tEXt":
        raw, encoding = rest, "latin-1"
    elif kind == b"zTXt":
        raw, encoding = _inflate(rest[1:]), "latin-1"  # one byte of compression method, then the stream
    else:  # iTXt: compression flag, method, language tag, translated keyword, then the text
        if len(rest) < 2:
            return
        compressed, tail = rest[0], rest[2:]
        text = tail.split(b"\x00", 2)[-1] if tail.count(b"\x00") >= 2 else b""
        raw, encoding = (_inflate(text) if compressed else text), "utf-8"
    if key == PNG_XMP_KEY:
        blocks.xmp = blocks.xmp or raw
    elif key not in blocks.texts:
        blocks.texts[key] = _text(raw, encoding)


def _inflate(stream: bytes) -> bytes:
    """At most :data:`MAX_INFLATE_BYTES` of a zlib stream; what inflates before any damage."""
    inflater = zlib.decompressobj()
    try:
        return inflater.decompress(stream, MAX_INFLATE_BYTES)
    except zlib.error:
        return b""


# ------------------------------------------------------------------------------------------------ WebP


def _webp(data: bytes) -> Blocks:
    blocks = Blocks("WEBP")
    pos = 12
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        start = pos + 8
        if start + length > len(data):
            break
        body = data[start : start + length]
        if kind == b"EXIF" and blocks.exif is None:
            blocks.exif = body
        elif kind == b"XMP " and blocks.xmp is None:
            blocks.xmp = body
        elif kind == b"C2PA":
            blocks.has_manifest = True
        pos = start + length + (length & 1)  # chunks are padded to an even length
    return blocks


# ----------------------------------------------------------------------------------------- other formats


def _other(data: bytes) -> Blocks:
    """TIFF, GIF, BMP, ...: EXIF and XMP from Pillow's header reader; a JUMBF box type means a manifest."""
    blocks = Blocks(has_manifest=b"jumb" in data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            blocks.format = image.format
            exif = image.getexif()
            blocks.exif = exif.tobytes() if len(exif) else None
            xmp = image.info.get("xmp")
            blocks.xmp = xmp if isinstance(xmp, bytes) else xmp.encode() if isinstance(xmp, str) else None
    except Exception:  # noqa: BLE001 - whatever Pillow raises, there is no metadata it can read
        pass
    return blocks


def _text(raw: bytes, encoding: str) -> str:
    """The text of a block, decoded from its first :data:`MAX_TEXT_BYTES` only (a huge chunk costs nothing)."""
    return raw[:MAX_TEXT_BYTES].decode(encoding, "replace")
