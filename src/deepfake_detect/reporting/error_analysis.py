"""Error analysis of an evaluated run: which images the model gets wrong, and what they have in common.

``error_analysis(run)`` writes the run's errors folder: galleries of the most confident false positives and
false negatives (PNG grids and ``errors.html``), the per-image attributes (``attributes.csv``) and a bucket
table (``buckets.csv``, ``buckets.md``) of the error rate by brightness, contrast, saturation, sharpness,
estimated JPEG quality and original image size, and by source when the evaluation scored a data mix.

A bucket is flagged ``worse`` only when the lower end of its 95% Wilson interval lies above the overall error
rate, and ``maybe worse`` when just its point estimate does: small buckets are noisy, and most "bad buckets"
found by eye in a table of twenty are chance.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepfake_detect.core import html
from deepfake_detect.core.runs import RunDir, write_json
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.reporting.scores import (
    Scores,
    ensure_evaluated,
    image_files,
    load_thumbnail,
    read_scores,
    source_roots,
)
from deepfake_detect.viz import plots

__all__ = [
    "ErrorAnalysis",
    "error_analysis",
    "image_attributes",
    "estimate_jpeg_quality",
    "wilson_interval",
    "bucket_table",
    "format_buckets",
]

#: Attributes cut into quantile bins; the others are discrete (one bucket per value, or a few).
CONTINUOUS = ("brightness", "contrast", "saturation", "sharpness")
DISCRETE = ("jpeg_quality", "size")
MAX_CATEGORIES = 6
Z_95 = 1.959963984540054

# The IJG (libjpeg) luminance quantisation table at quality 50, row-major, as in Annex K of the JPEG standard.
_IJG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=float,
).ravel()


def _ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at ``quality`` (1-100), clamped to baseline's 1..255."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)


_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])


def estimate_jpeg_quality(image: Image.Image | str | Path) -> int | None:
    """Estimate the IJG quality (1-100) a JPEG was saved at, from its luminance quantisation table.

    Parameters
    ----------
    image : PIL.Image.Image or path
        An opened image or a file.

    Returns
    -------
    int or None
        The quality whose scaled standard table is closest (least absolute difference) to the file's; exact
        for files written by libjpeg or Pillow. ``None`` when the image has no quantisation tables
        (not a JPEG).

    Examples
    --------
    >>> import io
    >>> buf = io.BytesIO(); Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=75)
    >>> estimate_jpeg_quality(Image.open(buf))
    75
    """
    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            return estimate_jpeg_quality(opened)
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    luma = np.asarray(tables[0], dtype=float)  # Pillow gives the table in natural (row-major) order
    return int(np.argmin(np.abs(_IJG_TABLES - luma).sum(axis=1))) + 1


def _laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred images, high for sharp or noisy ones."""
    if min(gray.shape) < 3:
        return float("nan")
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]
    return float(lap.var())


def image_attributes(path: str | Path) -> dict[str, Any]:
    """Attributes of one image file that may explain its errors, measured on the original pixels.

    Parameters
    ----------
    path : str or Path
        The image file.

    Returns
    -------
    dict
        ``brightness`` (mean luma, 0-255), ``contrast`` (luma standard deviation), ``saturation`` (mean HSV
        saturation, 0-255), ``sharpness`` (variance of the Laplacian of luma), ``jpeg_quality`` (estimated
        IJG quality, ``"lossless"`` for PNG and other lossless formats, ``"unknown"`` otherwise), ``size``
        (``"WxH"`` of the file) and ``format``. Unreadable files give NaN and ``"unreadable"``.
    """
    try:
        with Image.open(path) as image:
            quality = estimate_jpeg_quality(image)
            fmt, size = image.format or "unknown", image.size
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        nan = float("nan")
        return dict.fromkeys(CONTINUOUS, nan) | {
            "jpeg_quality": "unreadable",
            "size": "unreadable",
            "format": "",
        }
    gray = np.asarray(rgb.convert("L"), dtype=np.float64)
    saturation = np.asarray(rgb.convert("HSV"), dtype=np.float64)[..., 1]
    if quality is None:
        quality = "lossless" if fmt in ("PNG", "BMP", "TIFF", "GIF") else "unknown"
    return {
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "saturation": float(saturation.mean()),
        "sharpness": _laplacian_variance(gray),
        "jpeg_quality": quality,
        "size": f"{size[0]}x{size[1]}",
        "format": fmt,
    }


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible for 0 or n successes and small n.

    Parameters
    ----------
    k, n : int
        Successes (here: errors) and trials.
    z : float
        Normal quantile; 1.96 for 95%.

    Returns
    -------
    (low, high) : tuple of float
        ``(0.0, 1.0)`` when ``n == 0``.

    Examples
    --------
    >>> [round(v, 4) for v in wilson_interval(0, 10)]
    [0.0, 0.2775]
    >>> [round(v, 4) for v in wilson_interval(5, 10)]
    [0.2366, 0.7634]
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _num(value: float, digits: int) -> str:
    """``digits`` significant digits without scientific notation (a sharpness of 45690, not 4.569e+04)."""
    return np.format_float_positional(value, precision=digits, unique=True, fractional=False, trim="-")


def _interval_names(edges: np.ndarray) -> list[str]:
    for digits in (4, 6, 10):  # more digits only when close edges would print alike
        names = [
            f"[{_num(lo, digits)}, {_num(hi, digits)})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        names[-1] = names[-1][:-1] + "]"
        if len(set(names)) == len(names):
            break
    return names


def _quantile_buckets(values: Sequence[float], n_bins: int) -> tuple[list[str], list[str]]:
    """Each value's quantile bin ``[lo, hi)`` (the last closed) and the bins in order; NaN goes to "n/a"."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    labels = np.full(v.size, "n/a", dtype=object)
    names: list[str] = []
    if finite.any():
        edges = np.unique(np.quantile(v[finite], np.linspace(0, 1, n_bins + 1)))
        if edges.size == 1:
            names = [f"all = {_num(edges[0], 4)}"]
            labels[finite] = names[0]
        else:
            names = _interval_names(edges)
            idx = np.clip(np.searchsorted(edges, v[finite], side="right") - 1, 0, edges.size - 2)
            labels[finite] = [names[i] for i in idx]
    return list(labels), names + (["n/a"] if not finite.all() else [])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _discrete_buckets(values: Sequence[Any], n_bins: int) -> tuple[list[str], list[str]]:
    """One bucket per value when there are few; else quantile bins for numbers and "other" for rare labels."""
    if len(set(values)) <= MAX_CATEGORIES:
        labels = [str(v) for v in values]
        numbers = sorted({v for v in values if _is_number(v)})
        return labels, [str(v) for v in numbers] + sorted({str(v) for v in values if not _is_number(v)})
    numeric = [i for i, v in enumerate(values) if _is_number(v)]
    labels = [str(v) for v in values]
    order: list[str] = []
    if numeric:
        binned, order = _quantile_buckets([values[i] for i in numeric], n_bins)
        for i, name in zip(numeric, binned, strict=True):
            labels[i] = name
    common = Counter(labels[i] for i in range(len(values)) if i not in set(numeric))
    keep = {name for name, _ in common.most_common(MAX_CATEGORIES - 1)}
    labels = [name if name in keep or name in order else "other" for name in labels]
    return labels, order + sorted(keep) + (["other"] if "other" in labels else [])


def bucket_table(
    attributes: Mapping[str, Sequence[Any]],
    wrong: Sequence[bool],
    *,
    n_bins: int = 4,
    continuous: Sequence[str] = CONTINUOUS,
) -> list[dict[str, Any]]:
    """Error rate by attribute bucket, with 95% Wilson intervals and a flag against the overall rate.

    Parameters
    ----------
    attributes : mapping of str to sequence
        Attribute name to one value per image.
    wrong : sequence of bool
        Whether each image was misclassified.
    n_bins : int
        Quantile bins for continuous attributes (fewer when values tie).
    continuous : sequence of str
        Attributes to cut into quantile bins; the others get one bucket per value (or quantile bins of their
        numbers plus "other" when there are more than six values).

    Returns
    -------
    list of dict
        One row per non-empty bucket: ``attribute``, ``bucket``, ``count``, ``errors``, ``error_rate``,
        ``ci_low``, ``ci_high`` and ``flag``: ``"worse"`` when ``ci_low`` exceeds the overall error rate,
        ``"maybe worse"`` when only ``error_rate`` does, else ``""``. Counts of each attribute add up to n.

    Examples
    --------
    >>> rows = bucket_table({"brightness": [10, 20, 200, 210]}, [False, False, True, True], n_bins=2)
    >>> [(r["bucket"], r["errors"], r["flag"]) for r in rows]
    [('[10, 110)', 0, ''), ('[110, 210]', 2, 'maybe worse')]
    """
    err = np.asarray(wrong, dtype=bool)
    overall = float(err.mean()) if err.size else 0.0
    rows = []
    for name, values in attributes.items():
        split = _quantile_buckets if name in continuous else _discrete_buckets
        labels, order = split(list(values), n_bins)
        labels = np.asarray(labels, dtype=object)
        for bucket in order:
            members = labels == bucket
            n, k = int(members.sum()), int(err[members].sum())
            if n == 0:
                continue
            low, high = wilson_interval(k, n)
            flag = "worse" if low > overall else "maybe worse" if k / n > overall else ""
            rows.append(
                {
                    "attribute": name,
                    "bucket": bucket,
                    "count": n,
                    "errors": k,
                    "error_rate": k / n,
                    "ci_low": low,
                    "ci_high": high,
                    "flag": flag,
                }
            )
    return rows


BUCKET_COLUMNS = ("attribute", "bucket", "count", "errors", "error_rate", "ci_low", "ci_high", "flag")


def format_buckets(rows: Sequence[Mapping[str, Any]]) -> str:
    """The bucket table as Markdown, rates as percentages with their 95% interval.

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :func:`bucket_table`.

    Returns
    -------
    str
    """
    lines = [
        "| attribute | bucket | images | errors | error rate | 95% CI | flag |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['attribute']} | {r['bucket']} | {r['count']} | {r['errors']} | {r['error_rate']:.1%} | "
            f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}] | {r['flag']} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class ErrorAnalysis:
    """What :func:`error_analysis` found and wrote.

    Attributes
    ----------
    run_dir, out_dir : Path
        The run folder and its ``errors/`` folder.
    split : str
        The evaluated split.
    n, n_errors : int
        Images scored and misclassified.
    error_rate : float
        ``n_errors / n``, with ``error_rate_ci95`` its Wilson interval.
    false_positives, false_negatives : list of dict
        The top-k most confident errors of each kind: ``path`` (relative to its source's data root),
        ``label``, ``logit``, ``p_fake``, ``source``.
    buckets : list of dict
        Rows of :func:`bucket_table`.
    """

    run_dir: Path
    out_dir: Path
    split: str
    n: int
    n_errors: int
    error_rate: float
    error_rate_ci95: tuple[float, float]
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    false_negatives: list[dict[str, Any]] = field(default_factory=list)
    buckets: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    def format_text(self) -> str:
        """A one-line summary and the bucket table, in Markdown."""
        low, high = self.error_rate_ci95
        head = (
            f"{self.split}: {self.n_errors} errors in {self.n} images, error rate {self.error_rate:.1%} "
            f"[{low:.1%}, {high:.1%}]; {len(self.false_positives)} false positive(s) and "
            f"{len(self.false_negatives)} false negative(s) shown in {self.out_dir}/errors.html\n\n"
        )
        return head + format_buckets(self.buckets)


def _attributes_of(paths: Sequence[Path], workers: int | None) -> list[dict[str, Any]]:
    # Pillow decodes without the GIL, so threads overlap decoding of different files.
    workers = workers or min(4, available_cores())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(image_attributes, paths, chunksize=16))


def _top_errors(scores: Scores, kind: str, top_k: int) -> list[dict[str, Any]]:
    """The most confident false positives (highest logit on reals) or false negatives (lowest on fakes)."""
    label = 0 if kind == "fp" else 1
    idx = np.flatnonzero(scores.wrong & (scores.labels == label))
    idx = idx[np.argsort(-scores.logits[idx] if label == 0 else scores.logits[idx], kind="stable")][:top_k]
    return [
        {
            "path": scores.paths[i],
            "label": label,
            "logit": float(scores.logits[i]),
            "p_fake": float(scores.p_fake[i]),
            "source": scores.sources[i] if scores.sources else "",
        }
        for i in idx
    ]


def _bucket_attributes(attrs: list[dict[str, Any]], scores: Scores) -> dict[str, list[Any]]:
    """The attributes the buckets cut by; the source too when there is more than one (one bucket says nothing)."""
    columns = {a: [row[a] for row in attrs] for a in CONTINUOUS + DISCRETE}
    if len(set(scores.sources)) > 1:
        columns["source"] = list(scores.sources)
    return columns


def error_analysis(
    run: str | Path,
    data: str | Path | None = None,
    *,
    split: str = "test",
    top_k: int = 16,
    n_bins: int = 4,
    workers: int | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = False,
) -> ErrorAnalysis:
    """Galleries of the worst errors and a table of the error rate by image attribute, under ``errors/``.

    Parameters
    ----------
    run : str or Path
        A run folder, or a run id under ``runs_dir``.
    data : path or list of paths, optional
        Data set folder, or a mix's folders; defaults to the ones the evaluation used.
    split : str
        The evaluated split; it is evaluated first when it has no scores yet.
    top_k : int
        False positives and false negatives shown, each.
    n_bins : int
        Quantile bins for brightness, contrast, saturation and sharpness.
    workers : int, optional
        Threads reading images; default: up to 4.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Progress bars when the evaluation has to run.

    Returns
    -------
    ErrorAnalysis
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    run_dir = RunDir.find(run, runs_dir)
    ev = ensure_evaluated(run_dir, data, split, progress=progress)
    scores = read_scores(run_dir.scores_csv(split))
    files = image_files(scores, *source_roots(ev, data))
    attrs = _attributes_of(files, workers)
    wrong = scores.wrong
    n, k = len(scores.paths), int(wrong.sum())
    result = ErrorAnalysis(
        run_dir=run_dir.path,
        out_dir=run_dir.errors,
        split=split,
        n=n,
        n_errors=k,
        error_rate=k / n if n else 0.0,
        error_rate_ci95=wilson_interval(k, n),
        false_positives=_top_errors(scores, "fp", top_k),
        false_negatives=_top_errors(scores, "fn", top_k),
        buckets=bucket_table(_bucket_attributes(attrs, scores), wrong, n_bins=n_bins),
    )
    _write_outputs(result, dict(zip(_keys(scores), files, strict=True)), scores, attrs)
    return result


def _keys(scores: Scores) -> list[tuple[str, str]]:
    """Each row's (source, path): a path alone may repeat across the sources of a mix."""
    return list(zip(scores.sources or [""] * len(scores.paths), scores.paths, strict=True))


def _gallery(items: list[dict[str, Any]], files: Mapping[tuple[str, str], Path], title: str) -> bytes:
    images = [load_thumbnail(files[item["source"], item["path"]]) for item in items]
    captions = [f"p_fake {item['p_fake']:.3f}\n{Path(item['path']).name[:22]}" for item in items]
    return plots.figure_png(plots.image_grid(images, captions, title=title, columns=8))


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_outputs(
    result: ErrorAnalysis, files: Mapping[tuple[str, str], Path], scores: Scores, attrs: list[dict[str, Any]]
) -> None:
    out = result.out_dir
    out.mkdir(exist_ok=True)
    galleries = {
        "false_positives": (result.false_positives, "real photos called fake, most confident first"),
        "false_negatives": (result.false_negatives, "fakes called real, most confident first"),
    }
    pngs = {}
    for name, (items, what) in galleries.items():
        pngs[name] = _gallery(items, files, f"Top {len(items)} {name.replace('_', ' ')}: {what}")
        (out / f"{name}.png").write_bytes(pngs[name])
    per_image = [
        {"path": p, "label": int(y), "verdict": v, "wrong": bool(w), "p_fake": f"{pf:.6f}", **a, "source": s}
        for (s, p), y, v, w, pf, a in zip(
            _keys(scores), scores.labels, scores.verdicts, scores.wrong, scores.p_fake, attrs, strict=True
        )
    ]
    columns = ["path", "label", "verdict", "wrong", "p_fake", *CONTINUOUS, *DISCRETE, "format", "source"]
    _write_csv(out / "attributes.csv", columns, per_image)
    _write_csv(out / "buckets.csv", BUCKET_COLUMNS, result.buckets)
    (out / "buckets.md").write_text(format_buckets(result.buckets))
    write_json(out / "errors.json", result.to_dict())
    (out / "errors.html").write_text(_html(result, pngs), encoding="utf-8")


# The report's look, with the buckets flagged worse shaded.
_STYLE = html.BASE_STYLE + ".worse { background: #fdd; }\n"


def _html(result: ErrorAnalysis, pngs: Mapping[str, bytes]) -> str:
    """A self-contained page: embedded PNG galleries, the error lists and the bucket table."""
    low, high = result.error_rate_ci95
    parts = [
        f"<p>{result.n_errors} errors in {result.n} images: {result.error_rate:.1%} "
        f"(95% Wilson interval {low:.1%} to {high:.1%}).</p>"
    ]
    for name, items in (
        ("false_positives", result.false_positives),
        ("false_negatives", result.false_negatives),
    ):
        parts += [
            f"<h2>{name.replace('_', ' ').capitalize()}</h2>",
            html.img(pngs[name], name),
            html.table(
                ["source", "path", "p_fake", "logit"],
                [[i["source"], i["path"], i["p_fake"], i["logit"]] for i in items],
            ),
        ]
    parts += [
        "<h2>Error rate by attribute</h2><p>Flag <b>worse</b>: the bucket's 95% interval lies entirely above "
        "the overall error rate; <b>maybe worse</b>: only its point estimate does.</p>",
        html.table(
            BUCKET_COLUMNS,
            [[r[c] for c in BUCKET_COLUMNS] for r in result.buckets],
            row_classes=["worse" if r["flag"] == "worse" else "" for r in result.buckets],
        ),
    ]
    name = result.run_dir.name
    return html.page(f"Errors: {name}", parts, style=_STYLE, heading=f"Errors of {name} on {result.split}")
