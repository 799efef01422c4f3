"""What ``deepfake-detect scan`` writes: a readable table, JSON Lines or CSV (resumable), and an HTML report.

An output named ``*.parquet`` is a folder of Parquet part files instead (:mod:`~deepfake_detect.scan.parquet`,
resumable too).

:func:`scan_paths` is the library call behind the command (public, as ``deepfake_detect.scan_paths``; its
keywords are named like the flags): it loads the model, skips what an earlier run already wrote (``resume``),
streams results to the chosen writer as they come, and builds the report.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from PIL import ImageDraw, ImageOps

from deepfake_detect.core import html
from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.data.transforms import _to_rgb, load_image
from deepfake_detect.inference.gradcam import png_bytes
from deepfake_detect.scan.decode import image_size
from deepfake_detect.scan.detector import load_detector
from deepfake_detect.scan.inputs import iter_inputs, named_inputs
from deepfake_detect.scan.parquet import PartWriter, done_paths, is_parquet_output, prepare_output
from deepfake_detect.scan.video import timeline_png

__all__ = ["ScanSummary", "scan_paths", "write_report", "CSV_COLUMNS", "FORMATS"]

FORMATS = ("table", "json", "csv", "parquet")
CSV_COLUMNS = (
    "path",
    "error",
    "note",
    "verdict",
    "p_fake",
    "n_faces",
    "face",
    "x",
    "y",
    "w",
    "h",
    "face_p_fake",
    "face_logit",
    "face_verdict",
    "t",
    "landmarks",
    "quad",
    "reason",
    "provenance",
)
THUMB_SIDE = 320  # pixels, long side of the report's thumbnails
VERDICT_COLOURS = {"fake": "#e74c3c", "real": "#27ae60", "uncertain": "#e69500"}  # amber: neither


@dataclass
class ScanSummary:
    """Counts of a finished scan; ``n_failed > 0`` makes the command exit 1."""

    n_scanned: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    n_fake: int = 0
    n_real: int = 0
    n_uncertain: int = 0
    n_no_face: int = 0

    def add(self, result: dict[str, Any]) -> None:
        self.n_scanned += 1
        if result["error"]:
            self.n_failed += 1
        elif result["verdict"] is None:
            self.n_no_face += 1
        elif result["verdict"] == "fake":
            self.n_fake += 1
        elif result["verdict"] == "uncertain":
            self.n_uncertain += 1
        else:
            self.n_real += 1

    def format_text(self) -> str:
        skipped = f", {self.n_skipped} skipped (already in the output)" if self.n_skipped else ""
        uncertain = f", {self.n_uncertain} uncertain" if self.n_uncertain else ""
        return (
            f"scanned {self.n_scanned} file(s): {self.n_fake} fake, {self.n_real} real{uncertain}, "
            f"{self.n_no_face} without a face, {self.n_failed} unreadable{skipped}"
        )


# ---------------------------------------------------------------------------------------------- writers


def _short(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


class _TableWriter:
    """Aligned text, one line a file, printed as results arrive (a huge folder never waits for the end)."""

    def __init__(self, out: TextIO, header: bool):
        self.out = out
        self.header = header

    def write(self, result: dict[str, Any]) -> None:
        if self.header:  # written with the first row: a scan that finds nothing prints nothing
            self.out.write(f"{'verdict':<9} {'p_fake':>7} {'faces':>5}  path\n")
            self.header = False
        verdict = "ERROR" if result["error"] else (result["verdict"] or "-")
        extra = result["error"] or result.get("reason") or result.get("note") or ""
        line = (
            f"{verdict:<9} {_short(result['p_fake']) or '-':>7} {len(result['faces']):>5}  {result['path']}"
        )
        self.out.write(line + (f"  ({extra})" if extra else "") + "\n")


class _JsonWriter:
    def __init__(self, out: TextIO, header: bool):
        self.out = out

    def write(self, result: dict[str, Any]) -> None:
        self.out.write(json.dumps(result) + "\n")


class _CsvWriter:
    """One row a face (a file without faces gets one row with empty face columns); ``provenance`` as JSON."""

    def __init__(self, out: TextIO, header: bool):
        self.writer = csv.writer(out)
        if header:
            self.writer.writerow(CSV_COLUMNS)

    def write(self, result: dict[str, Any]) -> None:
        head = [result["path"], result["error"] or "", result.get("note") or "", result["verdict"] or ""]
        head += [_short(result["p_fake"]), len(result["faces"])]
        provenance = result.get("provenance")
        tail = [result.get("reason") or "", "" if provenance is None else json.dumps(provenance)]
        if not result["faces"]:
            self.writer.writerow(head + [""] * (len(CSV_COLUMNS) - len(head) - len(tail)) + tail)
        for k, face in enumerate(result["faces"]):
            x, y, w, h = face["box"]
            t = face.get("t")
            row = [k, x, y, w, h, f"{face['p_fake']:.6f}", f"{face['logit']:.6f}", face["verdict"] or ""]
            # The points as JSON strings (one cell each): empty in box framing.
            points = [
                json.dumps(face[key]) if face.get(key) is not None else "" for key in ("landmarks", "quad")
            ]
            self.writer.writerow(head + row + ["" if t is None else t] + points + tail)


_WRITERS = {"table": _TableWriter, "json": _JsonWriter, "csv": _CsvWriter}


def _done_paths(output: Path, fmt: str) -> set[str]:
    """Paths an interrupted scan already wrote to ``output`` (a torn last line is ignored)."""
    if fmt == "parquet":
        return done_paths(output)  # complete parts only
    if not output.is_file():
        return set()
    text = output.read_text(encoding="utf-8", errors="replace")
    if fmt == "csv":
        return {row["path"] for row in csv.DictReader(io.StringIO(text)) if row.get("path")}
    done = set()
    for line in text.splitlines():
        try:
            done.add(json.loads(line)["path"])
        except (ValueError, KeyError, TypeError):
            continue  # the line being written when the scan was stopped
    return done


def _open_output(output: Path | None, resume: bool, stdout: TextIO) -> tuple[TextIO, bool]:
    """The stream to write to and whether it needs a header (a new or empty file)."""
    if output is None:
        return stdout, True
    output.parent.mkdir(parents=True, exist_ok=True)
    if resume and output.is_file() and output.stat().st_size:
        with open(output, "rb+") as handle:  # a torn last line must not glue onto the next record
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        return open(output, "a", encoding="utf-8", newline=""), False  # noqa: SIM115 - closed by the caller
    return open(output, "w", encoding="utf-8", newline=""), True  # noqa: SIM115 - closed by the caller


def resolve_format(fmt: str | None, output: Path | None) -> str:
    """The output format: the one asked for, else from the output file's suffix, else the table.

    An output named ``*.parquet`` is always ``parquet`` (a folder of part files), and ``parquet`` needs one.
    """
    if is_parquet_output(output):
        if fmt not in (None, "parquet"):
            raise ScanError(
                f"--output {output} is a folder of Parquet part files and cannot be written as {fmt}: "
                "drop --json/--csv, or name the output .jsonl or .csv"
            )
        return "parquet"
    if fmt == "parquet":
        raise ScanError("Parquet output needs --output NAME.parquet (a folder of part files)")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ScanError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = output.suffix.lower() if output is not None else ""
    return {".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json"}.get(suffix, "table")


# ------------------------------------------------------------------------------------------------ scan


def scan_paths(
    paths: list[str],
    *,
    model: str = "default",
    detect: bool = True,
    fallback_whole_image: bool = False,
    threshold: float | None = None,
    fmt: str | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    paths_from: str | Path | None = None,
    explain: str | Path | None = None,
    report: str | Path | None = None,
    fps: float = 1.0,
    batch_size: int = 32,
    workers: int | None = None,
    prior: float | None = None,
    backend: str = "auto",
    abstain: bool = True,
    runs_dir: str | Path = "runs",
    framing: str = "ffhq",
    provenance: bool = True,
    progress: bool = True,
    stdout: TextIO | None = None,
    stdin: TextIO | None = None,
) -> ScanSummary:
    """Scan files and write the results as they come: the ``deepfake-detect scan`` command, as a function.

    Each keyword is the command's flag of the same name (``--paths-from`` is ``paths_from``, ``--no-detect`` is
    ``detect=False``), except ``fmt`` (``--json``, ``--csv``), ``progress`` (``--quiet``) and the streams.
    ``deepfake-detect scan --ray`` is :func:`~deepfake_detect.batch.scan_dataset` instead.

    Parameters
    ----------
    paths : list of str
        Images, videos, folders (recursive, sorted), globs, or ``-`` (paths on ``stdin``).
    model : str
        ``default``, a run folder or id, a ``.safetensors`` or an ``.onnx`` file.
    detect, framing, fallback_whole_image, threshold, prior, fps, batch_size, workers, explain
        As :meth:`Detector.scan <deepfake_detect.scan.detector.Detector.scan>` has them.
    fmt : {"table", "json", "csv", "parquet"}, optional
        ``json`` for JSON Lines (``--json``), ``csv`` (``--csv``); default from ``output``'s suffix, else
        ``table``.
    output : path, optional
        A file instead of ``stdout``; ``NAME.parquet``: a folder of Parquet part files, which must be missing
        or empty unless resuming.
    resume : bool
        Append to ``output`` and skip the paths already in it.
    paths_from : path, optional
        A text file of paths (one a line) or a CSV (its ``path`` column).
    report : path, optional
        Write a self-contained HTML report here.
    backend, abstain, runs_dir
        :func:`~deepfake_detect.scan.detector.load_detector`'s (``abstain=False``: ``--no-abstain``).
    progress : bool
        Show a progress bar on stderr.
    stdout, stdin : file, optional
        Where table, JSON Lines and CSV rows go without ``output`` (default ``sys.stdout``), and where ``-``
        reads paths (default ``sys.stdin``).

    Returns
    -------
    ScanSummary

    Raises
    ------
    ScanError
        For unusable options or when there is nothing to scan.
    MissingExtraError
        For a ``.parquet`` output without pyarrow (``pip install 'deepfake-detect[parquet]'``).

    Examples
    --------
    >>> import io, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "face.png")
    >>> rows = io.StringIO()
    >>> summary = scan_paths([str(folder)], detect=False, backend="torch", fmt="json", progress=False, stdout=rows)
    >>> summary.n_scanned, json.loads(rows.getvalue())["path"].endswith("face.png")
    (1, True)
    """
    output = Path(output) if output is not None else None
    fmt = resolve_format(fmt, output)
    if resume and (output is None or fmt == "table"):
        raise ScanError("--resume needs --output FILE written as --json or --csv, or --output NAME.parquet")
    if fmt == "parquet":
        prepare_output(output, resume)  # before the model loads: no pyarrow, or another scan's parts
    named = named_inputs(paths, paths_from)
    det = load_detector(model, runs_dir=runs_dir, backend=backend, abstain=abstain)
    summary = ScanSummary()
    done = _done_paths(output, fmt) if resume else set()

    def todo():
        for item in iter_inputs(named, stdin=stdin):
            if item in done:
                summary.n_skipped += 1
            else:
                yield item

    results = det.iter_scan(
        todo(), detect=detect, fallback_whole_image=fallback_whole_image, threshold=threshold, prior=prior,
        fps=fps, batch_size=batch_size, workers=workers, explain=explain, framing=framing,
        provenance=provenance,
    )  # fmt: skip
    kept = _write_all(results, summary, fmt, output, resume, stdout or sys.stdout, progress, report)
    if summary.n_scanned == 0 and summary.n_skipped == 0:
        raise ScanError(f"no image or video files found in {', '.join(map(str, named))}")
    if report is not None:
        write_report(kept, report, title=f"deepfake-detect scan ({det.name}, {det.backend})")
    return summary


def _write_all(results, summary, fmt, output, resume, stdout, progress, report) -> list[dict[str, Any]]:
    """Stream results to the writer (flushed each line, so ``--resume`` loses at most one; Parquet: one part)."""
    from tqdm import tqdm

    kept = []
    if fmt == "parquet":
        stream, writer = None, PartWriter(output)
    else:
        stream, header = _open_output(output, resume, stdout)
    try:
        if stream is not None:
            writer = _WRITERS[fmt](stream, header)
        for result in tqdm(results, desc="scan", unit="file", file=sys.stderr, disable=not progress):
            writer.write(result)
            if stream is not None:
                stream.flush()
            summary.add(result)
            if report is not None:
                kept.append(result)
    finally:
        if stream is None:
            writer.close()  # also on Ctrl-C: the rows scanned so far become a part
        elif stream is not stdout:
            stream.close()
    return kept


# ------------------------------------------------------------------------------------------ HTML report


def _thumbnail(result: dict[str, Any]) -> bytes | None:
    """A small copy of the image with its face boxes drawn (None when the file cannot be shown)."""
    try:
        full_w, _ = image_size(result["path"])
        image = _to_rgb(ImageOps.exif_transpose(load_image(result["path"], THUMB_SIDE)))
    except Exception:  # noqa: BLE001 - in-memory inputs and unreadable files get no picture
        return None
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    scale = image.width / full_w
    draw = ImageDraw.Draw(image)
    for face in result["faces"]:
        colour = VERDICT_COLOURS.get(face["verdict"], VERDICT_COLOURS["real"])
        width = max(2, image.width // 120)
        if face.get("quad"):  # the oriented square the face was judged in
            draw.polygon([(x * scale, y * scale) for x, y in face["quad"]], outline=colour, width=width)
        else:
            x, y, w, h = (v * scale for v in face["box"])
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
    return png_bytes(image)


def _card(result: dict[str, Any]) -> str:
    esc = html.escape
    picture = timeline_png(result) if result.get("kind") == "video" else _thumbnail(result)
    verdict = "error" if result["error"] else (result["verdict"] or "no face")
    score = "" if result["p_fake"] is None else f"p_fake {result['p_fake']:.3f}"
    parts = [f'<div class="card {esc(verdict.replace(" ", "-"))}">']
    if picture is not None:
        parts.append(f'<img class="thumb" src="{html.data_uri(picture)}" alt="">')
    parts.append(
        f"<h3>{esc(verdict)} <small>{esc(score)}</small></h3><p class=path>{esc(result['path'])}</p>"
    )
    if result["error"] or result.get("note"):
        parts.append(f"<p class=note>{esc(result['error'] or result['note'])}</p>")
    parts.append(_provenance_panel(result))
    for k, face in enumerate(result["faces"]):
        when = f" at {face['t']:.1f} s" if face.get("t") is not None else ""
        parts.append(
            f"<p>face {k}{when}: {esc(face['verdict'])}, p_fake {face['p_fake']:.3f}, "
            f"logit {face['logit']:.3f}, box {face['box']}</p>"
        )
        heatmap = face.get("heatmap")
        if heatmap and os.path.isfile(heatmap):
            uri = html.data_uri(Path(heatmap).read_bytes())
            parts.append(f'<img class="heat" src="{uri}" alt="Grad-CAM of face {k}">')
    return "\n".join(parts) + "</div>"


def _provenance_panel(result: dict[str, Any]) -> str:
    """What the file's metadata says and what each signal is worth (empty when it was not read)."""
    provenance, esc = result.get("provenance"), html.escape
    if not provenance:
        return ""
    reason = f"<p class=reason>Verdict fake: {esc(result['reason'])}</p>" if result.get("reason") else ""
    items = "".join(
        f"<li><b>{esc(f['signal'])}</b>: {esc(f['found'])}. <i>{esc(f['worth'])}</i></li>"
        for f in provenance["findings"]
    )
    return f'<div class="provenance"><h4>Provenance</h4>{reason}<ul>{items}</ul></div>'


_STYLE = """body{font-family:sans-serif;margin:1.5em;background:#fafafa}
.card{display:inline-block;vertical-align:top;width:340px;margin:8px;padding:8px;background:#fff;
border:1px solid #ddd;border-top:6px solid #999}.card.fake{border-top-color:#e74c3c}
.card.real{border-top-color:#27ae60}.card.uncertain{border-top-color:#e69500}.card.error{border-top-color:#555}
.thumb{max-width:320px}.heat{width:160px;margin:2px}.path{word-break:break-all;font-size:80%}
.note{color:#a04000}h3{margin:4px 0}p{margin:3px 0;font-size:90%}
.provenance{background:#f4f4f8;padding:4px 6px;margin:4px 0;font-size:85%}.provenance h4{margin:2px 0}
.provenance ul{margin:2px 0;padding-left:1.2em;word-break:break-word}.reason{color:#b03000;font-weight:bold}"""


def write_report(
    results: list[dict[str, Any]], path: str | Path, *, title: str = "deepfake-detect scan"
) -> Path:
    """Write a self-contained HTML page of scan results, highest ``p_fake`` first.

    Images (thumbnails with face boxes, Grad-CAM overlays when the scan wrote them, video timelines) are
    embedded as base64 PNG: the page needs no other file and no network.

    Returns
    -------
    Path
        The written file.
    """
    ordered = sorted(results, key=lambda r: (r["p_fake"] is None, -(r["p_fake"] or 0.0)))
    n_fake = sum(r["verdict"] == "fake" for r in results)
    n_uncertain = sum(r["verdict"] == "uncertain" for r in results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    uncertain = (
        f", {n_uncertain} uncertain (a score in the model's abstention band, where a verdict would be a "
        "coin toss: look at these yourself)"
        if n_uncertain
        else ""
    )
    intro = (
        f"<p>{len(results)} file(s), {n_fake} judged fake{uncertain}. The model judges whole generated "
        "faces, not face swaps. A photo's score is its most suspicious face; a video's is the mean of its "
        "top-3 faces. A file whose metadata declares generative AI is fake by that declaration (its provenance "
        "panel says which); metadata never makes a file real, and its absence proves nothing.</p>"
    )
    # Cards are made as they are written: only one card's images are in memory at a time.
    cards = (_card(result) for result in ordered)
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(html.page_parts(title, itertools.chain([intro], cards), style=_STYLE))
    return path
