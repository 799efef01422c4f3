"""Per-source figures of a scored data mix: one row per source, each with its 95% bootstrap intervals.

A pooled AUC over a mix hides what matters: a fake-only source paired with one camera's reals can be "solved" by
its style, and a real-only source can be flagged wholesale while the pooled figure barely moves. So each source
gets its own row, judged against the right opposite class:

* a source with both classes: its own AUC;
* a fake-only source: its fakes against the **pooled reals** of the same split (every source's reals);
* a real-only source: its reals against the pooled fakes, and above all its false-positive rate at the stored
  threshold (the share of its real photos called fake).

Recall at 1% FPR uses the threshold that flags 1% of the pooled reals: fitted on these very scores (and re-fitted
on each bootstrap resample) unless a threshold chosen beforehand is given, as robustness does with the clean
validation reals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepfake_detect.metrics.bootstrap import bootstrap_cis
from deepfake_detect.metrics.calibration.band import coverage_and_precision
from deepfake_detect.metrics.classification import _check_binary, _roc_auc, is_fake
from deepfake_detect.metrics.thresholds import threshold_at_fpr

__all__ = ["TARGET_FPR", "per_source_rows"]

#: The false-positive rate on the pooled reals at which recall is reported.
TARGET_FPR = 0.01

Metric = Callable[[np.ndarray, np.ndarray], float]


def per_source_rows(
    y_true,
    logits,
    sources: Sequence[str],
    threshold_logit: float,
    *,
    fpr_threshold_logit: float | None = None,
    band: tuple[float, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row of figures per source, in the order the sources first appear.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 = real, 1 = fake.
    logits : array-like of shape (n,)
        Raw scores; the verdict is fake when ``logit >= threshold_logit``.
    sources : sequence of str, length n
        Each image's source name.
    threshold_logit : float
        The stored threshold (chosen on validation).
    fpr_threshold_logit : float, optional
        A threshold fixed beforehand for ``recall_at_1pct_fpr``; by default the one flagging 1% of the pooled
        reals of these scores (re-fitted on each resample).
    band : (lower_logit, upper_logit), optional
        An abstention band: each row then gains ``abstention``, the band's coverage and precisions on it.
    n_resamples, seed : int
        Stratified bootstrap size and seed; ``n_resamples=0`` gives no intervals (every ``*_ci95`` is None).

    Returns
    -------
    list of dict
        ``source``, ``n``, ``n_real``, ``n_fake``; ``auc_against`` (``"own"``, ``"pooled reals"`` or
        ``"pooled fakes"``) and ``roc_auc``; ``accuracy`` of its images at the stored threshold; ``recall`` of
        its fakes at it; ``recall_at_1pct_fpr`` of its fakes; ``fpr``, the share of its reals called fake at the
        stored threshold; each figure with ``<name>_ci95`` as ``[low, high]``. A figure that does not apply
        (recall of a real-only source) is None.

    Examples
    --------
    >>> y = [0, 0, 1, 1, 1, 1, 0, 0]
    >>> z = [-3.0, 0.5, 1.0, 3.0, -1.0, 2.0, -0.5, 1.5]
    >>> src = ["ffhq"] * 4 + ["sd"] * 2 + ["web"] * 2
    >>> rows = per_source_rows(y, z, src, threshold_logit=0.0, n_resamples=50)
    >>> for r in rows:
    ...     print(r["source"], r["auc_against"], r["roc_auc"], r["recall"], r["fpr"])
    ffhq own 1.0 1.0 0.5
    sd pooled reals 0.625 0.5 None
    web pooled fakes 0.625 None 0.5
    """
    y, z = _check_binary(y_true, logits)
    names = np.asarray(sources, dtype=object)
    if names.shape != y.shape:
        raise ValueError(f"sources must have one name per score, got {names.shape} for {y.shape}")
    pooled_real, pooled_fake = y == 0, y == 1
    rows = []
    for name in dict.fromkeys(names.tolist()):
        own = names == name
        row = _own_figures(y[own], z[own], threshold_logit, n_resamples, seed)
        real_here, fake_here = own & pooled_real, own & pooled_fake
        if fake_here.any() and pooled_real.any():
            versus = fake_here | pooled_real
            fake_only = not real_here.any()
            row.update(_versus_reals(y[versus], z[versus], fake_only, fpr_threshold_logit, n_resamples, seed))
        elif real_here.any() and pooled_fake.any():
            versus = real_here | pooled_fake
            row.update(_figures(y[versus], z[versus], {"roc_auc": _roc_auc}, n_resamples, seed))
            row["auc_against"] = "pooled fakes"
        if band is not None:
            row["abstention"] = _finite(coverage_and_precision(y[own], z[own], *band))
        rows.append({"source": name, **_ordered(row)})
    return rows


_ORDER = (
    "n",
    "n_real",
    "n_fake",
    "auc_against",
    "roc_auc",
    "accuracy",
    "recall",
    "recall_at_1pct_fpr",
    "fpr",
)


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    """Keys in a fixed order (figure, then its interval), every figure present: None where it does not apply."""
    out: dict[str, Any] = {}
    for key in _ORDER:
        out[key] = row.get(key)
        if key not in ("n", "n_real", "n_fake", "auc_against"):
            out[f"{key}_ci95"] = row.get(f"{key}_ci95")
    if "abstention" in row:
        out["abstention"] = row["abstention"]
    return out


def _own_figures(y: np.ndarray, z: np.ndarray, threshold: float, n_resamples: int, seed: int) -> dict:
    """Figures of a source's own images: counts, accuracy, recall, FPR and (with both classes) AUC."""
    n_fake = int(y.sum())
    chosen: dict[str, Metric] = {"accuracy": lambda y, s: float(np.mean(is_fake(s, threshold) == (y == 1)))}
    if n_fake:
        chosen["recall"] = lambda y, s: float(np.mean(is_fake(s[y == 1], threshold)))
    if n_fake < y.size:
        chosen["fpr"] = lambda y, s: float(np.mean(is_fake(s[y == 0], threshold)))
    if 0 < n_fake < y.size:
        chosen["roc_auc"] = _roc_auc
    row = {"n": int(y.size), "n_real": int(y.size - n_fake), "n_fake": n_fake}
    row.update(_figures(y, z, chosen, n_resamples, seed))
    if 0 < n_fake < y.size:
        row["auc_against"] = "own"
    return row


def _versus_reals(y, z, fake_only: bool, fpr_threshold: float | None, n_resamples: int, seed: int) -> dict:
    """A source's fakes against the pooled reals: recall at 1% FPR of those reals (and AUC when fake-only)."""

    def recall_at_fpr(y: np.ndarray, s: np.ndarray) -> float:
        cut = threshold_at_fpr(y, s, TARGET_FPR) if fpr_threshold is None else fpr_threshold
        return float(np.mean(s[y == 1] >= cut))

    chosen: dict[str, Metric] = {"recall_at_1pct_fpr": recall_at_fpr}
    if fake_only:
        chosen["roc_auc"] = _roc_auc
    row = _figures(y, z, chosen, n_resamples, seed)
    if fake_only:
        row["auc_against"] = "pooled reals"
    return row


def _figures(y: np.ndarray, z: np.ndarray, chosen: dict[str, Metric], n_resamples: int, seed: int) -> dict:
    """Each metric's value and, when resampling, its 95% interval (all on the same resamples)."""
    row: dict[str, Any] = {name: _finite_value(metric(y, z)) for name, metric in chosen.items()}
    if n_resamples:
        cis = bootstrap_cis(y, z, chosen, n_resamples=n_resamples, seed=seed)
        row.update({f"{name}_ci95": _finite_interval(ci) for name, ci in cis.items()})
    return row


def _finite_value(value: float) -> float | None:
    """NaN (a figure undefined on these scores) as None, so the JSON file stays valid JSON."""
    return None if math.isnan(value) else float(value)


def _finite_interval(ci: tuple[float, float]) -> list[float] | None:
    """An interval as written to JSON: None when the metric was undefined on a resample (NaN)."""
    return None if any(math.isnan(v) for v in ci) else [float(ci[0]), float(ci[1])]


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (an empty side of the band) as None, so the JSON file stays valid JSON."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}
