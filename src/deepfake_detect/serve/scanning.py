"""One request's scan: check each upload, judge the good ones with :meth:`Detector.scan`, one row a file.

A bad file among good ones is an error row in a 200 answer; when every file is bad the answer is 413 (all too
large) or 415, with the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_detect.scan.detector import Detector
from deepfake_detect.serve.config import ServeConfig
from deepfake_detect.serve.uploads import Upload, keep_upload, sniff_upload

__all__ = ["ScanOptions", "scan_uploads", "refusal_detail"]


@dataclass
class ScanOptions:
    """What one request asks of the scan (the query parameters of ``POST /v1/scan``)."""

    detect: bool = True
    explain: bool = False
    threshold: float | None = None
    prior: float | None = None
    provenance: bool = True


def _error_row(det: Detector, filename: str, message: str) -> dict[str, Any]:
    """An error row of the scan result schema, for a file refused before scanning."""
    return {
        "path": filename,
        "error": message,
        "verdict": None,
        "p_fake": None,
        "faces": [],
        "model": det.model_info(),
    }


def scan_uploads(
    det: Detector, uploads: list[Upload], config: ServeConfig, options: ScanOptions
) -> tuple[list[dict[str, Any]], int]:
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
        framing=config.framing,
        provenance=options.provenance,
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


def refusal_detail(results: list[dict[str, Any]]) -> str:
    """The ``detail`` of an answer in which no file could be judged: the first file's reason.

    Examples
    --------
    >>> refusal_detail([{"error": "empty file"}])
    'empty file'
    >>> refusal_detail([{"error": "empty file"}, {"error": "not an image"}])
    'none of the 2 files could be judged; first: empty file'
    """
    first = results[0]["error"]
    return first if len(results) == 1 else f"none of the {len(results)} files could be judged; first: {first}"
