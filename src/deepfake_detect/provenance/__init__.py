"""Provenance: what a file's metadata says about where it came from, read beside the pixels.

:func:`read_provenance` reads Content Credentials (C2PA, validated offline), XMP, EXIF, PNG text chunks and
JPEG comments from the bytes the scan decodes, into a typed :class:`Provenance` record. :func:`apply_provenance`
is the policy: a declaration of generative AI makes a scan row's verdict "fake"; nothing in metadata ever
makes it "real". This layer knows nothing of faces or models: the scan layer above calls it.
"""

from deepfake_detect.provenance.policy import (
    AI_SOURCE_TYPES,
    GENERATOR_TEXT,
    Finding,
    apply_provenance,
    declaration,
    findings,
)
from deepfake_detect.provenance.read import read_provenance
from deepfake_detect.provenance.record import (
    C2PA_STATES,
    C2paAction,
    C2paManifest,
    ExifFields,
    PngText,
    Provenance,
    XmpFields,
)

__all__ = [
    "read_provenance",
    "apply_provenance",
    "declaration",
    "findings",
    "Finding",
    "AI_SOURCE_TYPES",
    "GENERATOR_TEXT",
    "C2PA_STATES",
    "Provenance",
    "C2paManifest",
    "C2paAction",
    "XmpFields",
    "ExifFields",
    "PngText",
]
