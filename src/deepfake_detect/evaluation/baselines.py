"""Reference baselines: how far a CNN has to beat chance, the majority class and two hand-made features.

* ``chance``: seeded uniform random scores; ROC AUC about 0.5 by construction.
* ``majority``: every image gets the majority class of train (a constant score, ROC AUC exactly 0.5).
* ``fourier_logreg``: logistic regression on the azimuthally averaged log-magnitude spectrum of the grayscale
  image. GAN upsampling leaves periodic traces that show up as bumps at high spatial frequency.
* ``colour_logreg``: logistic regression on colour statistics (per-channel mean, standard deviation, skew and
  percentiles in RGB and HSV).

Each is fitted on train, its threshold chosen on valid with the F1 rule the CNNs use
(:func:`metrics.f1_optimal_threshold`), and scored on test with the metrics of ``evaluate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
from PIL import Image, ImageOps
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepfake_detect import metrics
from deepfake_detect.core.exceptions import ConfigError
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.data import list_split, resolve_data_root
from deepfake_detect.data.samples import Sample

__all__ = ["BASELINES", "baselines", "fourier_features", "colour_features", "format_table"]

log = logging.getLogger(__name__)

BASELINES = ("chance", "majority", "fourier_logreg", "colour_logreg")
SPECTRUM_SIZE = 256  # pixels: larger images are resized to this before the FFT
SPECTRUM_BINS = 128  # radial bins from 0 to the Nyquist frequency
COLOUR_SIZE = 64  # colour statistics do not need full resolution
PERCENTILES = (5, 50, 95)
_FEATURE_BASELINES = {"fourier_logreg": 0, "colour_logreg": 1}


@lru_cache(maxsize=8)
def _radial_index(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer radius of each entry of the half-plane ``rfft2`` spectrum of a ``side x side`` image, and the
    2-D Hann window."""
    ky = np.fft.fftfreq(side) * side  # -side/2 .. side/2 - 1, in cycles per image
    kx = np.arange(side // 2 + 1)
    radius = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64)
    # A Hann window stops the image border from smearing a bright cross over the whole spectrum.
    window = np.outer(np.hanning(side), np.hanning(side))
    return radius, window


def fourier_features(gray: np.ndarray, n_bins: int = SPECTRUM_BINS) -> np.ndarray:
    """Azimuthal average of the log-magnitude spectrum of a square grayscale image.

    Rings run from frequency 0 out to the corner of the spectrum (Nyquist on both axes), where the
    checkerboard traces of GAN upsampling concentrate.

    Parameters
    ----------
    gray : ndarray of shape (S, S)
        Grayscale pixels, any scale.
    n_bins : int
        Length of the profile, evenly spaced from 0 to the corner frequency; the ring averages are
        interpolated, so images of any size give comparable features.

    Returns
    -------
    ndarray of shape (n_bins,)
        Mean ``log(|FFT| + 1e-3)`` on each ring.

    Examples
    --------
    >>> fourier_features(np.zeros((32, 32)), n_bins=8).shape
    (8,)
    """
    radius, window = _radial_index(gray.shape[0])
    g = gray.astype(np.float64)
    # The spectrum of a real image is conjugate-symmetric, so the half plane holds every ring;
    # scipy's rfft2 is several times faster than numpy's full fft2 here.
    log_mag = np.log(np.abs(scipy.fft.rfft2((g - g.mean()) * window)) + 1e-3)
    sums = np.bincount(radius.ravel(), weights=log_mag.ravel())
    counts = np.bincount(radius.ravel())
    rings = np.flatnonzero(counts)
    profile = sums[rings] / counts[rings]
    return np.interp(np.linspace(0, rings[-1], n_bins), rings, profile)


def _moments(channels: np.ndarray) -> np.ndarray:
    """Mean, standard deviation, skew and percentiles of each column of ``(n_pixels, n_channels)``."""
    mean = channels.mean(axis=0)
    std = channels.std(axis=0)
    centred = channels - mean
    skew = (centred * centred * centred).mean(axis=0) / np.maximum(std, 1e-6) ** 3
    pct = np.percentile(channels, PERCENTILES, axis=0)
    return np.concatenate([mean, std, skew, pct.ravel()])


def colour_features(rgb: Image.Image) -> np.ndarray:
    """Colour statistics of an RGB image in RGB and HSV: mean, std, skew and 5/50/95th percentiles.

    Parameters
    ----------
    rgb : PIL.Image.Image
        An RGB image; it is reduced to about 64 px first.

    Returns
    -------
    ndarray of shape (36,)
        Six channels (R, G, B, H, S, V) times six statistics, on a 0-1 scale.
    """
    small = rgb.reduce(max(1, min(rgb.size) // COLOUR_SIZE))  # box filter: fast, and keeps the means
    pixels = np.concatenate(
        [
            np.asarray(small, np.float64).reshape(-1, 3),
            np.asarray(small.convert("HSV"), np.float64).reshape(-1, 3),
        ],
        axis=1,
    )
    return _moments(pixels / 255.0)


def _image_features(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Both feature vectors from one decode; None for an unreadable file."""
    try:
        with Image.open(path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    side = min(rgb.size)
    square = ImageOps.fit(rgb, (side, side)) if rgb.size[0] != rgb.size[1] else rgb
    if side > SPECTRUM_SIZE:
        square = square.resize((SPECTRUM_SIZE, SPECTRUM_SIZE), Image.Resampling.LANCZOS)
    gray = np.asarray(square.convert("L"))
    return fourier_features(gray), colour_features(rgb)


def _extract(samples: Sequence[Sample], workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourier and colour features for every readable sample, plus the mask of readable ones."""
    # Pillow decoding and numpy's FFT release the GIL, so threads scale without pickling images.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(_image_features, [s.path for s in samples], chunksize=32))
    ok = np.array([o is not None for o in out], dtype=bool)
    fourier = np.stack([o[0] for o in out if o is not None]) if ok.any() else np.empty((0, SPECTRUM_BINS))
    colour = np.stack([o[1] for o in out if o is not None]) if ok.any() else np.empty((0, 36))
    return fourier, colour, ok


def _test_metrics(y_valid, s_valid, y_test, s_test, threshold: float, n_resamples: int, seed: int) -> dict:
    """The metrics ``evaluate`` reports, at a threshold fixed beforehand, with bootstrap 95% intervals."""
    stats = metrics.binary_metrics(y_test, s_test, threshold)
    stats["ci95"] = metrics.ci95_at_threshold(y_test, s_test, threshold, n_resamples=n_resamples, seed=seed)
    stats["threshold"] = float(threshold)
    stats["valid_roc_auc"] = metrics.binary_metrics(y_valid, s_valid, threshold)["roc_auc"]
    return stats


def _scores(
    name: str, splits: dict[str, dict[str, np.ndarray]], seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Valid and test scores of one baseline, and its threshold (F1 rule on valid, except majority)."""
    y_train = splits["train"]["y"]
    if name == "chance":
        rng = np.random.default_rng(seed)
        s_valid, s_test = rng.random(splits["valid"]["y"].size), rng.random(splits["test"]["y"].size)
    elif name == "majority":
        # A constant score cannot be thresholded on validation; its verdict is the train majority by definition.
        share = float(y_train.mean())
        s_valid, s_test = np.full(splits["valid"]["y"].size, share), np.full(splits["test"]["y"].size, share)
        return s_valid, s_test, 0.5 if share >= 0.5 else np.nextafter(share, np.inf)
    else:
        column = _FEATURE_BASELINES[name]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed))
        model.fit(splits["train"]["x"][column], y_train)
        s_valid = model.decision_function(splits["valid"]["x"][column])
        s_test = model.decision_function(splits["test"]["x"][column])
    return s_valid, s_test, metrics.f1_optimal_threshold(splits["valid"]["y"], s_valid)


def _load_splits(root: Path, limit_per_class: int | None, workers: int, need_features: bool) -> dict:
    splits = {}
    for split in ("train", "valid", "test"):
        samples = list_split(root, split, limit_per_class=limit_per_class)
        y = np.array([s.label for s in samples], dtype=np.int64)
        if need_features:
            fourier, colour, ok = _extract(samples, workers)
            splits[split] = {"y": y[ok], "x": (fourier, colour), "n_unreadable": int((~ok).sum())}
        else:
            splits[split] = {"y": y, "x": None, "n_unreadable": 0}
    return splits


def baselines(
    data: str | Path,
    *,
    limit_per_class: int | None = None,
    methods: Sequence[str] | None = None,
    workers: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the reference baselines on train, pick thresholds on valid, and score them on test.

    Parameters
    ----------
    data : str or Path
        Data set folder with train/valid/test and real/fake.
    limit_per_class : int, optional
        Use at most this many images a class in each split (a deterministic, spread-out subset).
    methods : sequence of str, optional
        Which of :data:`BASELINES` to run; all by default. Features are only computed when a logistic
        regression needs them.
    workers : int, optional
        Threads decoding images and computing features; default: every core.
    n_resamples : int
        Bootstrap resamples for the 95% intervals.
    seed : int
        Seed of the chance scores, the logistic regressions and the bootstrap.

    Returns
    -------
    dict
        ``data_root``, ``n`` (images per split), ``n_unreadable``, ``feature_seconds`` and ``baselines``:
        for each method, ``accuracy``, ``balanced_accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``,
        ``confusion_matrix``, ``ci95`` (accuracy, roc_auc), ``threshold`` and ``valid_roc_auc``.
    """
    methods = tuple(methods or BASELINES)
    unknown = sorted(set(methods) - set(BASELINES))
    if unknown:
        raise ConfigError(
            f"unknown baseline method {', '.join(map(repr, unknown))} (--method); choose from "
            f"{', '.join(BASELINES)}"
        )
    root = resolve_data_root(data)
    workers = workers or available_cores()
    start = time.perf_counter()
    splits = _load_splits(root, limit_per_class, workers, any(m in _FEATURE_BASELINES for m in methods))
    feature_seconds = time.perf_counter() - start
    log.info("features of %d images in %.1f s", sum(s["y"].size for s in splits.values()), feature_seconds)
    results = {}
    for name in methods:
        s_valid, s_test, threshold = _scores(name, splits, seed)
        results[name] = _test_metrics(
            splits["valid"]["y"], s_valid, splits["test"]["y"], s_test, threshold, n_resamples, seed
        )
    return {
        "data_root": str(root),
        "n": {k: int(v["y"].size) for k, v in splits.items()},
        "n_unreadable": sum(v["n_unreadable"] for v in splits.values()),
        "limit_per_class": limit_per_class,
        "feature_seconds": round(feature_seconds, 2),
        "workers": workers,
        "seed": seed,
        "baselines": results,
    }


def format_table(result: dict[str, Any]) -> str:
    """The test-split results as a Markdown table, one row per baseline, and a line on the data.

    Parameters
    ----------
    result : dict
        What :func:`baselines` returns.

    Returns
    -------
    str
    """
    lines = [
        "| baseline | test ROC AUC [95% CI] | accuracy [95% CI] | balanced acc. | precision | recall | F1 "
        "| valid ROC AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["baselines"].items():
        auc, acc = r["ci95"]["roc_auc"], r["ci95"]["accuracy"]
        lines.append(
            f"| {name} | {r['roc_auc']:.4f} [{auc[0]:.4f}, {auc[1]:.4f}] | {r['accuracy']:.4f} "
            f"[{acc[0]:.4f}, {acc[1]:.4f}] | {r['balanced_accuracy']:.4f} | {r['precision']:.4f} | "
            f"{r['recall']:.4f} | {r['f1']:.4f} | {r['valid_roc_auc']:.4f} |"
        )
    n = result["n"]
    lines.append("")
    lines.append(
        f"train {n['train']}, valid {n['valid']}, test {n['test']} images; thresholds chosen on valid (F1 rule; "
        f"majority: its train class); features in {result['feature_seconds']:.1f} s with {result['workers']} "
        "thread(s)."
    )
    return "\n".join(lines) + "\n"
