"""What a file says about where it came from: the typed record that :func:`read_provenance` returns.

Every field is what the file states, as written (text cut to :data:`MAX_TEXT_CHARS`); nothing here judges it.
What each statement is worth is :mod:`~deepfake_detect.provenance.policy`'s business.

Examples
--------
>>> record = Provenance(format="PNG", png_text=PngText(parameters="a face, Steps: 20"))
>>> record.to_dict()["png_text"]
{'parameters': 'a face, Steps: 20', 'prompt': None, 'workflow': None, 'software': None}
>>> record.to_dict()["c2pa"]["present"]
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "C2PA_STATES",
    "MAX_TEXT_CHARS",
    "C2paAction",
    "C2paManifest",
    "XmpFields",
    "ExifFields",
    "PngText",
    "Provenance",
    "clip",
]

# "valid": signed by a trusted certificate and unchanged (never without a trust list, which this project
# does not fetch); "untrusted": intact and its signature checks out, but nobody vouches for the signer;
# "invalid": the content or the manifest changed after signing, or the manifest cannot be read.
C2PA_STATES = ("valid", "untrusted", "invalid")
# Text fields are cut to this many characters (a ComfyUI workflow can run to 100 KB): enough to show.
MAX_TEXT_CHARS = 1000


def clip(text: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    """``text`` without NUL characters, cut to ``limit`` characters (an ellipsis marks the cut); None stays.

    Examples
    --------
    >>> clip("abcdef", 4), clip(" x\\x00 "), clip(None)
    ('abc…', 'x', None)
    """
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class C2paAction:
    """One action of a C2PA ``c2pa.actions`` assertion.

    ``digital_source_type`` is the IPTC term's URI as written (e.g.
    ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``); ``ingredient`` is True for an
    action of an ingredient's manifest (an earlier version the file was made from) rather than the active one.
    """

    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None
    ingredient: bool = False


@dataclass(frozen=True)
class C2paManifest:
    """The C2PA manifest store of a file (Content Credentials), as validated offline.

    ``present``: an embedded manifest store was found. ``state`` is one of :data:`C2PA_STATES` (None when
    nothing was validated); ``codes`` are the validation failure codes (e.g. ``signingCredential.untrusted``,
    ``assertion.dataHash.mismatch``). ``signer`` is the signing certificate's subject common name and
    ``signer_org`` its organisation (c2pa calls it ``issuer``), as the certificate states them.
    ``remote_url``: where the file says its manifest is kept; it is reported, never fetched. ``error``: why a
    manifest that is there could not be read.
    """

    present: bool = False
    state: str | None = None
    codes: tuple[str, ...] = ()
    claim_generator: str | None = None
    signer: str | None = None
    signer_org: str | None = None
    actions: tuple[C2paAction, ...] = ()
    remote_url: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class XmpFields:
    """From the XMP packet: IPTC's ``DigitalSourceType`` (a URI or a bare term) and ``xmp:CreatorTool``."""

    digital_source_type: str | None = None
    creator_tool: str | None = None


@dataclass(frozen=True)
class ExifFields:
    """From EXIF's first directory: ``Software``, ``Make`` and ``Model`` (the camera, as the file claims)."""

    software: str | None = None
    make: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class PngText:
    """PNG text chunks that generators write.

    ``parameters`` is Stable Diffusion WebUI's (prompt and settings), ``prompt`` and ``workflow`` ComfyUI's
    (its graph, as JSON); ``software`` is the ``Software`` chunk any program may write.
    """

    parameters: str | None = None
    prompt: str | None = None
    workflow: str | None = None
    software: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Everything :func:`~deepfake_detect.provenance.read_provenance` found in a file's bytes.

    ``format`` is the container as its first bytes say (``JPEG``, ``PNG``, ``WEBP``, else what Pillow
    names, or None). Empty fields mean the file does not say: absence proves nothing, since sites and
    messengers strip metadata.
    """

    format: str | None = None
    c2pa: C2paManifest = field(default_factory=C2paManifest)
    xmp: XmpFields = field(default_factory=XmpFields)
    exif: ExifFields = field(default_factory=ExifFields)
    png_text: PngText = field(default_factory=PngText)
    jpeg_comments: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready dicts and lists (tuples become lists; every key is always there).

        Field by field rather than :func:`dataclasses.asdict`, which deep-copies and cost more than reading
        a file's metadata (it runs for every scanned file).
        """
        c2pa = self.c2pa
        return {
            "format": self.format,
            "c2pa": {
                **vars(c2pa),
                "codes": list(c2pa.codes),
                "actions": [dict(vars(action)) for action in c2pa.actions],
            },
            "xmp": dict(vars(self.xmp)),
            "exif": dict(vars(self.exif)),
            "png_text": dict(vars(self.png_text)),
            "jpeg_comments": list(self.jpeg_comments),
        }
