"""Robustness of a trained run to everyday photo processing: re-compression, resizing, blur, noise, crops
and exposure.

Each image of the split is decoded once at full resolution (no JPEG draft mode; EXIF orientation applied;
RGB), every perturbation in :data:`CONDITIONS` is applied to that decoded photo, and the perturbed photo then
takes the detector's normal path: :meth:`Preprocess.load` (framing), :meth:`Preprocess.finish` (evaluation
view) and :func:`normalize`. A condition therefore measures what happens when a user's photo went through
that processing before it reached the detector.

Thresholds are fixed before any perturbed image is seen: accuracy uses the run's stored threshold, and
recall uses the threshold that flags at most 1% of the *clean validation* reals. Nothing is chosen on the
evaluated split.

On a data mix (the run's recorded sources, or several folders given) each condition's row also holds one row per
source (:func:`~deepfake_detect.metrics.per_source.per_source_rows`, without intervals): a fake-only source's
AUC against the pooled reals, a real-only source's false-positive rate at the stored threshold.

>>> from deepfake_detect.evaluation.robustness import robustness              # doctest: +SKIP
>>> result = robustness("runs/s4-128-e12", "../shared/data/faces140k")  # doctest: +SKIP
>>> result["rows"][0]["condition"], result["rows"][0]["roc_auc"]     # doctest: +SKIP
('clean', 0.99...)
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from tqdm import tqdm

from deepfake_detect import metrics
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.runs import RunDir, write_json
from deepfake_detect.core.runtime import resolve_threads
from deepfake_detect.core.sources import source_record
from deepfake_detect.data.mix import Source, list_mix_split
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import _to_rgb, load_image, normalize
from deepfake_detect.evaluation.evaluate import DataSpec, run_sources
from deepfake_detect.inference.network import Network, load_network
from deepfake_detect.metrics.per_source import per_source_rows
from deepfake_detect.viz.plots import figure_png, new_figure

__all__ = [
    "CONDITIONS",
    "Condition",
    "robustness",
    "format_markdown",
    "robustness_figure",
    "jpeg",
    "rescale",
    "gaussian_blur",
    "gaussian_noise",
    "centre_crop",
    "brightness",
    "contrast",
    "TARGET_FPR",
    "figure_path",
]

log = logging.getLogger(__name__)

# Recall is reported at the threshold giving this false-positive rate on the clean validation reals.
TARGET_FPR = 0.01
BICUBIC = Image.Resampling.BICUBIC


# ------------------------------------------------------------------------------------------- perturbations


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """Re-compress as JPEG at ``quality`` with Pillow's defaults (4:2:0 chroma subsampling) and decode.

    Examples
    --------
    >>> jpeg(Image.new("RGB", (16, 16), "red"), 30).size
    (16, 16)
    """
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    out = Image.open(buffer)
    out.load()
    return out


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Downscale by ``factor`` and scale back up to the original size, bicubic both ways.

    Pillow's bicubic filter widens with the scale when shrinking, so the downscale is anti-aliased, as in
    photo editors and most web resizers.
    """
    small = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(small, BICUBIC).resize(image.size, BICUBIC)


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur of standard deviation ``sigma`` pixels (Pillow's three-pass box approximation)."""
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


def gaussian_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Add independent Gaussian noise of ``sigma`` grey levels to every pixel and channel, round and clip."""
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + np.float32(sigma) * rng.standard_normal(pixels.shape, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def centre_crop(image: Image.Image, keep: float) -> Image.Image:
    """Keep the central ``keep`` share of each side (the preprocessing later scales it back to framing).

    Examples
    --------
    >>> centre_crop(Image.new("RGB", (200, 100)), 0.75).size
    (150, 75)
    """
    width, height = max(1, round(image.width * keep)), max(1, round(image.height * keep))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def brightness(image: Image.Image, factor: float) -> Image.Image:
    """Multiply every pixel by ``factor`` and clip (Pillow's ``ImageEnhance.Brightness``)."""
    return ImageEnhance.Brightness(image).enhance(factor)


def contrast(image: Image.Image, factor: float) -> Image.Image:
    """Scale the distance of every pixel from the image's mean grey level by ``factor`` and clip
    (Pillow's ``ImageEnhance.Contrast``)."""
    return ImageEnhance.Contrast(image).enhance(factor)


@dataclass(frozen=True)
class Condition:
    """One named perturbation: ``name`` as in the results, its ``family`` and its parameter."""

    name: str
    family: str
    param: float | None
    fn: Callable[..., Image.Image] = field(repr=False)
    seeded: bool = False

    def apply(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """The perturbed image; ``rng`` is only drawn from by seeded (noise) conditions."""
        return self.fn(image, rng=rng) if self.seeded else self.fn(image)


def _conditions() -> tuple[Condition, ...]:
    clean = Condition("clean", "clean", None, lambda image: image)
    families = [
        ("jpeg", "jpeg_q{}", (95, 75, 50, 30), lambda q: partial(jpeg, quality=q)),
        ("downscale", "downscale_{}", (0.75, 0.5, 0.25), lambda f: partial(rescale, factor=f)),
        ("blur", "blur_s{}", (0.5, 1, 2), lambda s: partial(gaussian_blur, sigma=s)),
        ("noise", "noise_s{}", (5, 10), lambda s: partial(gaussian_noise, sigma=s)),
        ("crop", "crop_{}", (0.9, 0.75), lambda k: partial(centre_crop, keep=k)),
        ("brightness", "brightness_{}", (0.7, 1.3), lambda f: partial(brightness, factor=f)),
        ("contrast", "contrast_{}", (0.7, 1.3), lambda f: partial(contrast, factor=f)),
    ]
    return (clean,) + tuple(
        Condition(template.format(p), family, p, make(p), seeded=family == "noise")
        for family, template, params, make in families
        for p in params
    )


# Every condition scored, clean first; each family from mild to strong.
CONDITIONS: tuple[Condition, ...] = _conditions()


# ----------------------------------------------------------------------------------------------- scoring


def _image_seed(seed: int, key: str) -> list[int]:
    """Noise seed of one image, from its path relative to the data root: the same on every run and
    machine, and independent of which other images are scored."""
    return [seed, int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "little")]


def _views(sample: Sample, key: str, det: Network, conditions, seed: int) -> np.ndarray | None:
    """``(C, S, S, 3)`` uint8 network views of one image under every condition; None when unreadable."""
    pre = det.preprocess
    try:
        # Full resolution (no JPEG draft decoding): a user's photo is perturbed at its own size. For the
        # 256 px faces and models framed at 256 px, the clean view is the one `evaluate` scores.
        photo = _to_rgb(ImageOps.exif_transpose(load_image(sample.path, draft=False)))
        # A fresh generator per condition: both noise levels scale the same draw, so they are paired.
        perturbed = [c.apply(photo, np.random.default_rng(_image_seed(seed, key))) for c in conditions]
        views = [pre.finish(pre.load(image)) for image in perturbed]
    except Exception as err:  # noqa: BLE001 - a bad file is counted and skipped, the run goes on
        log.debug("skipping %s: %s", sample.path, err)
        return None
    return np.stack(views)


def _prepared(jobs: Sequence[Callable[[], Any]], pool: ThreadPoolExecutor, ahead: int) -> Iterator[Any]:
    """Results of ``jobs`` in order, keeping ``ahead`` of them running so the pool works while the caller
    runs the model."""
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.submit(job))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _forward(det: Network, batch: list[np.ndarray], logits: list[list[np.ndarray]]) -> None:
    stacked = np.stack(batch)  # (B, C, S, S, 3)
    pre = det.preprocess
    for c, out in enumerate(logits):
        out.append(det.logits(normalize(stacked[:, c], pre.mean, pre.std)))


def _score(det, samples, roots, conditions, *, seed, batch_size, workers, progress, desc):
    """Logits ``(C, n_good)`` of the samples under every condition, their labels, the unreadable count and the
    sources of the readable ones."""
    jobs = [
        partial(_views, s, s.path.relative_to(roots[s.source]).as_posix(), det, conditions, seed)
        for s in samples
    ]
    logits: list[list[np.ndarray]] = [[] for _ in conditions]
    labels, names, batch, n_bad = [], [], [], 0
    # The bar advances when images are scored, not when prepared: the model is the slow part.
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=not progress)
    with bar, ThreadPoolExecutor(workers) as pool:
        for sample, views in zip(samples, _prepared(jobs, pool, ahead=2 * batch_size), strict=True):
            if views is None:
                n_bad += 1
                bar.update(1)
                continue
            batch.append(views)
            labels.append(sample.label)
            names.append(sample.source)
            if len(batch) == batch_size:
                _forward(det, batch, logits)
                bar.update(len(batch))
                batch = []
        if batch:
            _forward(det, batch, logits)
            bar.update(len(batch))
    if not labels:
        raise DataError(f"no readable image among the {len(samples)} scored for {desc}")
    return np.stack([np.concatenate(out) for out in logits]), np.asarray(labels), n_bad, names


def _score_splits(
    det: Network, sources: list[Source], split: str, limit_per_class: int | None, *, workers, **kw
):
    """:func:`_score` of the clean validation split and of ``split`` under every condition."""
    names = tuple(det.metadata["class_names"])
    val = list_mix_split(sources, "valid", class_names=names, limit_per_class=limit_per_class)
    samples = list_mix_split(sources, split, class_names=names, limit_per_class=limit_per_class)
    roots = {s.name: Path(s.root) for s in sources}
    score = partial(_score, det, roots=roots, workers=resolve_threads(workers), **kw)
    return (
        score(val, conditions=CONDITIONS[:1], desc="valid clean"),
        score(samples, conditions=CONDITIONS, desc=f"{split} x {len(CONDITIONS)}"),
    )


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads, then put the previous count back."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------------------------------------- metrics


def _finite(value: float) -> float | None:
    """NaN (e.g. ROC AUC with one class) as None, so the JSON file stays valid JSON."""
    return None if value is None or math.isnan(value) else float(value)


def _row(condition: Condition, labels, logits, threshold: float, threshold_fpr: float) -> dict[str, Any]:
    stats = metrics.binary_metrics(labels, logits, threshold)
    fakes, reals = logits[labels == 1], logits[labels == 0]
    return {
        "condition": condition.name,
        "family": condition.family,
        "param": condition.param,
        "roc_auc": _finite(stats["roc_auc"]),
        "accuracy": float(stats["accuracy"]),
        "recall_at_1pct_fpr": _finite(
            float(np.mean(metrics.is_fake(fakes, threshold_fpr))) if fakes.size else math.nan
        ),
        # Perturbations that push every score up raise recall for free; this shows what it cost on reals.
        "fpr_at_1pct_threshold": _finite(
            float(np.mean(metrics.is_fake(reals, threshold_fpr))) if reals.size else math.nan
        ),
        # Which way a perturbation pushes each class: towards "real" (down) or "fake" (up).
        "mean_logit_real": _finite(float(reals.mean()) if reals.size else math.nan),
        "mean_logit_fake": _finite(float(fakes.mean()) if fakes.size else math.nan),
        "n": int(labels.size),
    }


def _add_drops(rows: list[dict[str, Any]]) -> None:
    """Drop of each headline metric from the clean row (positive = worse than clean)."""
    clean = rows[0]
    for row in rows:
        for key in ("roc_auc", "accuracy", "recall_at_1pct_fpr"):
            both = clean[key] is not None and row[key] is not None
            row[f"{key}_drop"] = clean[key] - row[key] if both else None


def _rows(labels, logits, threshold: float, threshold_fpr: float, names: list[str]) -> list[dict[str, Any]]:
    """One row per condition of :data:`CONDITIONS` (``logits`` has one row each), with drops from clean; on a
    mix, each with its ``per_source`` rows."""
    rows = [_row(c, labels, z, threshold, threshold_fpr) for c, z in zip(CONDITIONS, logits, strict=True)]
    _add_drops(rows)
    if len(set(names)) > 1:
        for row, z in zip(rows, logits, strict=True):
            row["per_source"] = per_source_rows(
                labels, z, names, threshold, fpr_threshold_logit=threshold_fpr, n_resamples=0
            )
    return rows


# ------------------------------------------------------------------------------------------------ public


def robustness(
    run: str | Path,
    data: DataSpec | None = None,
    *,
    split: str = "test",
    limit_per_class: int | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> dict[str, Any]:
    """Score a split under every condition of :data:`CONDITIONS`; write ``robustness.json`` and the plot.

    Parameters
    ----------
    run : str or Path
        A run folder, or a run id under ``runs_dir``.
    data : path or list of paths, optional
        Data set folder, or a mix's folders; defaults to the sources recorded in the run.
    split : str
        Split to perturb and score; ``test`` by default.
    limit_per_class : int, optional
        Score at most this many images per class, of the split *and* of validation (a deterministic,
        spread-out subset); for quick checks.
    batch_size : int
        Images per forward pass (each condition is its own pass).
    workers : int, optional
        Threads decoding and perturbing images; default: every core.
    threads : int, optional
        Torch threads for the forward passes, restored afterwards; default: torch's own (every core).
        On cores shared with other jobs, 1 can be several times faster than an oversubscribed 2.
    seed : int
        Seed of the per-image noise.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    dict
        ``split``, ``n``, ``n_unreadable``, ``threshold_logit`` (stored), ``threshold_1pct_fpr_logit``
        (from the clean validation reals), ``valid_n``, ``valid_n_unreadable``, ``limit_per_class``, ``seed``,
        ``model``, ``data_root``, ``data_sources`` and ``rows``: one dict per
        condition with ``condition``, ``family``, ``param``, ``roc_auc``, ``accuracy``,
        ``recall_at_1pct_fpr``, ``fpr_at_1pct_threshold`` (share of the split's reals over the 1%-FPR
        threshold), ``mean_logit_real``, ``mean_logit_fake``, ``n``, the ``*_drop`` from clean and, on a mix,
        ``per_source``.
    """
    run_dir = RunDir.find(run, runs_dir)
    det = load_network(run_dir.model, backend="torch")
    sources = run_sources(run_dir, data)
    with _torch_threads(threads):
        valid, scored = _score_splits(
            det,
            sources,
            split,
            limit_per_class,
            seed=seed,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
        )
    result = _result(det, split, valid, scored, limit_per_class=limit_per_class, seed=seed, sources=sources)
    write_json(run_dir.robustness, result)
    figure_png(robustness_figure(result, title=run_dir.name), figure_path(run_dir))
    return result


def _result(
    det: Network, split: str, valid, scored, *, limit_per_class, seed: int, sources: list[Source]
) -> dict:
    """The result of :func:`robustness` from the clean validation scores and the split's scores under every
    condition (each ``(logits, labels, n_unreadable, sources)``)."""
    (val_logits, val_labels, val_bad, _), (logits, labels, n_bad, names) = valid, scored
    threshold_fpr = float(metrics.threshold_at_fpr(val_labels, val_logits[0], TARGET_FPR))
    if n_bad or val_bad:
        log.warning("skipped unreadable image(s): %d in %s, %d in valid", n_bad, split, val_bad)
    return {
        "split": split,
        "n": int(labels.size),
        "n_unreadable": n_bad,
        "threshold_logit": det.threshold_logit,
        "threshold_1pct_fpr_logit": threshold_fpr,
        "valid_n": int(val_labels.size),
        "valid_n_unreadable": val_bad,
        "limit_per_class": limit_per_class,
        "seed": seed,
        "model": det.model_info(),
        "data_root": sources[0].root,
        "data_sources": [source_record(s) for s in sources],
        "rows": _rows(labels, logits, det.threshold_logit, threshold_fpr, names),
    }


def figure_path(run_dir: RunDir) -> Path:
    """Where :func:`robustness` saves its figure: among the run's plots, named after its JSON file."""
    return run_dir.plots / run_dir.robustness.with_suffix(".png").name


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def format_markdown(result: dict[str, Any], title: str) -> str:
    """A Markdown table of :func:`robustness`'s result, one row per condition."""
    lines = [
        f"# Robustness of {title} on {result['split']} (n = {result['n']}, {result['n_unreadable']} unreadable)",
        "",
        f"Accuracy at the stored threshold (logit {result['threshold_logit']:.4f}); recall at the threshold "
        f"giving 1% FPR on the clean validation reals (logit {result['threshold_1pct_fpr_logit']:.4f}, "
        f"n valid = {result['valid_n']}). Drops are clean minus condition (positive = worse).",
        "",
        "| condition | ROC AUC | AUC drop | accuracy | acc drop | recall@1%FPR | recall drop | FPR at that "
        "threshold | mean logit real / fake | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = [
            r["condition"],
            _cell(r["roc_auc"]),
            _cell(r["roc_auc_drop"], signed=True),
            _cell(r["accuracy"]),
            _cell(r["accuracy_drop"], signed=True),
            _cell(r["recall_at_1pct_fpr"]),
            _cell(r["recall_at_1pct_fpr_drop"], signed=True),
            _cell(r["fpr_at_1pct_threshold"]),
            f"{_cell(r['mean_logit_real'], signed=True)} / {_cell(r['mean_logit_fake'], signed=True)}",
            str(r["n"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + _per_source_lines(result["rows"])) + "\n"


def _per_source_lines(rows: list[dict[str, Any]]) -> list[str]:
    """On a mix: AUC per source and condition, and the false-positive rate of each source with reals."""
    if "per_source" not in rows[0]:
        return []
    names = [s["source"] for s in rows[0]["per_source"]]
    with_reals = [s["source"] for s in rows[0]["per_source"] if s["n_real"]]
    headers = ["condition", *(f"AUC {n}" for n in names), *(f"FPR {n}" for n in with_reals)]
    lines = [
        "",
        "Per source: AUC (a fake-only source against the pooled reals); FPR at the stored threshold (sources "
        "with reals).",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for r in rows:
        by_name = {s["source"]: s for s in r["per_source"]}
        cells = [_cell(by_name[n]["roc_auc"]) for n in names] + [_cell(by_name[n]["fpr"]) for n in with_reals]
        lines.append(f"| {r['condition']} | " + " | ".join(cells) + " |")
    return lines


_METRICS = (
    ("roc_auc", "ROC AUC", "#1f77b4"),
    ("accuracy", "accuracy (stored threshold)", "#2ca02c"),
    ("recall_at_1pct_fpr", "recall at 1% FPR (clean-validation threshold)", "#d62728"),
)


def robustness_figure(result: dict[str, Any], title: str = ""):
    """Grouped bars of the three metrics under each condition, families separated, clean levels dashed.

    Returns
    -------
    matplotlib.figure.Figure
        Drawn on its own Agg canvas; pyplot is not used.
    """
    rows = result["rows"]
    # A gap of one slot between families keeps them apart on the axis.
    x, position, last_family = [], -1.0, None
    for r in rows:
        position += 1.0 if r["family"] == last_family else 1.6
        x.append(position)
        last_family = r["family"]
    x = np.asarray(x)
    fig = new_figure(max(8.0, 0.55 * len(rows) + 2), 4.8)
    ax = fig.subplots()
    width = 0.8 / len(_METRICS)
    for i, (key, label, colour) in enumerate(_METRICS):
        values = [np.nan if r[key] is None else r[key] for r in rows]
        ax.bar(x + (i - 1) * width, values, width, color=colour, label=label)
        if rows[0][key] is not None:
            ax.axhline(rows[0][key], color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set_xticks(x, [r["condition"] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set(
        title=f"Robustness of {title} on {result['split']} (n = {result['n']}); dashed: clean",
        xlabel="perturbation applied to the decoded photo before preprocessing",
        ylabel="score",
        ylim=(0, 1.05),
    )
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=len(_METRICS), fontsize=8)  # below, never over a bar
    return fig
