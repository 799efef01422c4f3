"""Read a file's provenance from its bytes: C2PA, XMP, EXIF, PNG text chunks and JPEG comments.

:func:`read_provenance` takes the bytes the scan decodes (the file is read once) and never raises: damaged
metadata gives what could be read, never an error. The costly step, c2pa's validation, runs only when the
container walk found an embedded manifest store: a file without one costs a walk over its segment headers.

XMP is searched with bounded regular expressions rather than parsed as XML: a malformed packet (or an
entity-expansion bomb) must not cost more than one pass over its text. The namespace prefix is not checked,
only the property names (``DigitalSourceType``, ``CreatorTool``, ``dcterms:provenance``).
"""

from __future__ import annotations

import html
import re

from PIL import Image

from deepfake_detect.provenance.containers import Blocks, metadata_blocks
from deepfake_detect.provenance.manifest import read_manifest
from deepfake_detect.provenance.record import (
    C2paManifest,
    ExifFields,
    PngText,
    Provenance,
    XmpFields,
    clip,
)

__all__ = ["read_provenance"]

# EXIF tags of the first directory (IFD0).
EXIF_TAGS = {"make": 0x010F, "model": 0x0110, "software": 0x0131}
MAX_XMP_BYTES = 1 << 20  # an XMP packet is searched in its first MiB only


def _xmp_pattern(name: str) -> re.Pattern[bytes]:
    """``prefix:name="v"``, ``<prefix:name>v</...>`` or ``<prefix:name rdf:resource="v"/>``: v is captured."""
    prop = rb"[\w.-]{1,64}:" + name.encode()
    return re.compile(
        rb"(?:\s" + prop + rb"\s*=\s*[\"']([^\"'<>]{0,2000})[\"']"
        rb"|<" + prop + rb"\s*>\s*([^<]{0,2000})<"
        rb"|<" + prop + rb"\s[^>]{0,200}?rdf:resource\s*=\s*[\"']([^\"'<>]{0,2000})[\"'])"
    )


XMP_SOURCE_TYPE = _xmp_pattern("DigitalSourceType")
XMP_CREATOR_TOOL = _xmp_pattern("CreatorTool")
XMP_REMOTE_MANIFEST = re.compile(rb"dcterms:provenance\s*=\s*[\"']([^\"'<>]{0,2000})[\"']")


def read_provenance(data: bytes) -> Provenance:
    """What an image file's bytes say about where it came from.

    Parameters
    ----------
    data : bytes
        The whole file, as it is decoded.

    Returns
    -------
    Provenance
        Every field the file states; empty ones where it says nothing (or cannot be read).

    Examples
    --------
    >>> import io
    >>> from PIL import Image, PngImagePlugin
    >>> info = PngImagePlugin.PngInfo(); info.add_text("parameters", "a portrait, Steps: 20, Seed: 1")
    >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    >>> record = read_provenance(buf.getvalue())
    >>> record.format, record.png_text.parameters, record.c2pa.present
    ('PNG', 'a portrait, Steps: 20, Seed: 1', False)
    """
    blocks = metadata_blocks(data)
    xmp = (blocks.xmp or b"")[:MAX_XMP_BYTES]
    remote_url = _xmp_value(XMP_REMOTE_MANIFEST, xmp)
    return Provenance(
        format=blocks.format,
        c2pa=read_manifest(data, blocks.format, remote_url)
        if blocks.has_manifest
        else C2paManifest(remote_url=remote_url),
        xmp=XmpFields(_xmp_value(XMP_SOURCE_TYPE, xmp), _xmp_value(XMP_CREATOR_TOOL, xmp)),
        exif=_exif(blocks),
        png_text=PngText(**{key: clip(text) or None for key, text in blocks.texts.items()}),
        jpeg_comments=tuple(text for text in map(clip, blocks.comments) if text),
    )


def _xmp_value(pattern: re.Pattern[bytes], xmp: bytes) -> str | None:
    """The first value ``pattern`` finds in an XMP packet, entities decoded; None when absent."""
    match = pattern.search(xmp) if xmp else None
    if match is None:
        return None
    raw = next(group for group in match.groups() if group is not None)
    return clip(html.unescape(raw.decode("utf-8", "replace")), 200) or None


def _exif(blocks: Blocks) -> ExifFields:
    if not blocks.exif:
        return ExifFields()
    try:
        exif = Image.Exif()
        exif.load(blocks.exif)
        values = {key: exif.get(tag) for key, tag in EXIF_TAGS.items()}
    except Exception:  # noqa: BLE001 - a damaged EXIF block says nothing
        return ExifFields()
    return ExifFields(**{key: _exif_text(value) for key, value in values.items()})


def _exif_text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return clip(value, 200) or None if isinstance(value, str) else None
