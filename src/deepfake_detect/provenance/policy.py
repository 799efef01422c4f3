"""What provenance is worth: the one place where metadata changes a verdict.

The rule (:func:`apply_provenance`, called once by the scan pipeline for every row):

* A file whose metadata **declares generative AI** gets the verdict ``"fake"``, whether or not a face was
  found, and a ``reason`` naming the evidence; its pixel scores (``p_fake``, each face's verdict) stay as the
  model gave them. A declaration is any of:

  - a C2PA action whose ``digitalSourceType`` is one of :data:`AI_SOURCE_TYPES`, in a manifest whose signature
    is valid, untrusted (intact, but anyone can sign: a forged declaration only ever makes a file "fake") or
    **invalid**. An invalid manifest still counts: the file changed after it was signed (most often an editor
    that does not keep Content Credentials re-saved it), but somebody declared it generated, and the same
    words in unsigned XMP count too; the reason says "invalid" and gives the codes;
  - IPTC's ``DigitalSourceType`` in XMP with one of those terms;
  - a generator's PNG text chunk (:data:`GENERATOR_TEXT`): Stable Diffusion WebUI's ``parameters``,
    ComfyUI's ``prompt`` or ``workflow``. Their content is not parsed: the keyword is the front end's mark.

* Metadata never makes a file ``"real"``: camera EXIF (``Make``, ``Model``), a C2PA manifest without an AI
  source type and any other field are reported, not trusted. Anyone can write them, and a generated image
  can carry a camera's EXIF.
* **Absence proves nothing**: social networks and messengers strip metadata, so a file that says nothing is
  judged by its pixels alone, exactly as without provenance.
* A file that cannot be read keeps its error and no verdict; its provenance is still reported.

Examples
--------
>>> from deepfake_detect.provenance.record import PngText, Provenance
>>> row = {"path": "a.png", "error": None, "verdict": None, "p_fake": None, "faces": []}
>>> row = apply_provenance(row, Provenance(format="PNG", png_text=PngText(parameters="Steps: 20")))
>>> row["verdict"], row["reason"]
('fake', "declared by a generator's PNG text chunk 'parameters' (Stable Diffusion WebUI)")
>>> apply_provenance({"error": None, "verdict": "real"}, Provenance(format="JPEG"))["verdict"]
'real'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepfake_detect.provenance.record import Provenance

__all__ = ["AI_SOURCE_TYPES", "GENERATOR_TEXT", "Finding", "declaration", "findings", "apply_provenance"]

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types that mean generative AI made the content, or part of it. Others
# ("digitalCapture", "algorithmicMedia": made by a formula without training data, "composite", ...) are reported.
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
# PNG text keywords that generators write, and who writes them.
GENERATOR_TEXT = {"parameters": "Stable Diffusion WebUI", "prompt": "ComfyUI", "workflow": "ComfyUI"}
MAX_CODES_SHOWN = 3
ABSENCE = "absence proves nothing: sites and messengers strip metadata, so the pixels are judged as usual"
REPORTED = "reported, not trusted: anyone can write it"


@dataclass(frozen=True)
class Finding:
    """One line of the provenance panel: which signal, what the file says, and what that is worth."""

    signal: str
    found: str
    worth: str


def source_type_term(value: str | None) -> str | None:
    """The IPTC term of a digital source type written as a URI or a bare term.

    Examples
    --------
    >>> source_type_term("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
    'trainedAlgorithmicMedia'
    >>> source_type_term("digitalCapture"), source_type_term(None)
    ('digitalCapture', None)
    """
    return None if not value else value.rstrip("/").rsplit("/", 1)[-1].strip() or None


def _c2pa_evidence(record: Provenance) -> str | None:
    manifest = record.c2pa
    terms = [source_type_term(a.digital_source_type) for a in manifest.actions]
    ai = sorted({t for t in terms if t in AI_SOURCE_TYPES})
    if not ai:
        return None
    signer = f"signed by {_signer(record)}" if manifest.signer else "signer not named"
    return f"declared by C2PA ({', '.join(ai)}, {signer}, {_state(record)})"


def _signer(record: Provenance) -> str:
    manifest = record.c2pa
    return f"{manifest.signer} ({manifest.signer_org})" if manifest.signer_org else str(manifest.signer)


def _state(record: Provenance) -> str:
    """The manifest's validation state, with the codes that made it invalid."""
    manifest = record.c2pa
    if manifest.state != "invalid":
        return str(manifest.state)
    codes = [c for c in manifest.codes if c != "signingCredential.untrusted"][:MAX_CODES_SHOWN]
    return f"invalid: {', '.join(codes)}" if codes else "invalid"


def declaration(record: Provenance | None) -> str | None:
    """The evidence by which a file's metadata declares generative AI, in words; None when it does not.

    Examples
    --------
    >>> from deepfake_detect.provenance.record import Provenance, XmpFields
    >>> term = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    >>> declaration(Provenance(xmp=XmpFields(digital_source_type=term)))
    'declared by XMP (IPTC DigitalSourceType trainedAlgorithmicMedia)'
    >>> declaration(Provenance(xmp=XmpFields(digital_source_type="digitalCapture"))) is None
    True
    """
    if record is None:
        return None
    evidence = [_c2pa_evidence(record)]
    term = source_type_term(record.xmp.digital_source_type)
    if term in AI_SOURCE_TYPES:
        evidence.append(f"declared by XMP (IPTC DigitalSourceType {term})")
    for key, writer in GENERATOR_TEXT.items():
        if getattr(record.png_text, key):
            evidence.append(f"declared by a generator's PNG text chunk '{key}' ({writer})")
    return "; ".join(e for e in evidence if e) or None


def findings(record: Provenance) -> list[Finding]:
    """The provenance panel: each signal the file carries, what it says and what it is worth."""
    out = _c2pa_findings(record)
    term = source_type_term(record.xmp.digital_source_type)
    if term:
        ai = term in AI_SOURCE_TYPES
        worth = "declares generative AI (unsigned): verdict fake" if ai else f"not generative AI; {REPORTED}"
        out.append(Finding("XMP DigitalSourceType", term, worth))
    if record.xmp.creator_tool:
        out.append(Finding("XMP CreatorTool", record.xmp.creator_tool, f"the editing program; {REPORTED}"))
    camera = " ".join(v for v in (record.exif.make, record.exif.model) if v)
    if camera:
        out.append(
            Finding("EXIF camera", camera, f"{REPORTED}, and generated images can carry a camera's EXIF")
        )
    if record.exif.software:
        out.append(Finding("EXIF Software", record.exif.software, REPORTED))
    for key, writer in GENERATOR_TEXT.items():
        if text := getattr(record.png_text, key):
            out.append(
                Finding(f"PNG text '{key}'", text, f"written by {writer}: declares a generator, verdict fake")
            )
    if record.png_text.software:
        out.append(Finding("PNG text 'Software'", record.png_text.software, REPORTED))
    out += [Finding("JPEG comment", comment, REPORTED) for comment in record.jpeg_comments]
    return out or [Finding("metadata", "none that tells where the image came from", ABSENCE)]


def _c2pa_findings(record: Provenance) -> list[Finding]:
    manifest = record.c2pa
    if not manifest.present:
        if manifest.remote_url is None:
            return []
        found = f"a manifest kept at {manifest.remote_url}"
        return [Finding("C2PA", found, "not fetched (a scan never goes online), so nothing is verified")]
    if manifest.error is not None:
        return [Finding("C2PA", f"a manifest that cannot be read ({manifest.error})", "nothing: " + ABSENCE)]
    by = f" by {manifest.claim_generator}" if manifest.claim_generator else ""
    signer = f", signed by {_signer(record)}" if manifest.signer else ""
    actions = ", ".join(
        a.action + (f" ({source_type_term(a.digital_source_type)})" if a.digital_source_type else "")
        for a in manifest.actions
    )
    found = f"manifest{by}{signer}: {_state(record)}" + (f"; actions {actions}" if actions else "")
    return [Finding("C2PA", found, _c2pa_worth(record))]


def _c2pa_worth(record: Provenance) -> str:
    if _c2pa_evidence(record) is None:
        return "declares no generative AI, which proves nothing about the pixels: they are judged as usual"
    return {
        "valid": "declares generative AI, signed by a trusted certificate: verdict fake",
        "untrusted": "declares generative AI; the signature is intact but nobody vouches for the signer "
        "(anyone can sign): verdict fake, since a declaration only ever makes a file fake",
        "invalid": "declares generative AI, but the file changed after signing: still counted as a "
        "declaration, verdict fake",
    }[str(record.c2pa.state)]


def apply_provenance(row: dict[str, Any], record: Provenance | None) -> dict[str, Any]:
    """Add a file's provenance to its scan row and let a declaration of generative AI decide the verdict.

    Parameters
    ----------
    row : dict
        A scan result row (``path``, ``error``, ``verdict``, ...); changed in place.
    record : Provenance or None
        What the file's metadata says; None when it was not read (``provenance=False``, a video, pixels
        passed in memory): then the row is left as it is.

    Returns
    -------
    dict
        ``row``, with ``provenance`` (the record's fields, ``declares_ai`` and the panel's ``findings``) and,
        when the metadata declares generative AI and the file was read, ``verdict`` ``"fake"`` and
        ``reason``.
    """
    if record is None:
        return row
    evidence = declaration(record)
    row["provenance"] = {
        **record.to_dict(),
        "declares_ai": evidence is not None,
        "findings": [dict(vars(finding)) for finding in findings(record)],
    }
    if evidence is not None and row.get("error") is None:
        row["verdict"], row["reason"] = "fake", evidence
    return row
