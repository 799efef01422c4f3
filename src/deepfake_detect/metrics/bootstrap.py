"""Stratified percentile bootstrap: confidence intervals of metrics, all of them on the same resamples.

Reals and fakes are resampled separately (with replacement, each to its own count), so every resample has
both classes whenever the data does and metrics such as ROC AUC stay defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from deepfake_detect.metrics.classification import _check_binary, _roc_auc, is_fake

__all__ = ["bootstrap_ci", "bootstrap_cis", "ci95_at_threshold"]

Metric = Callable[[np.ndarray, np.ndarray], float]


def bootstrap_ci(
    y_true,
    y_score,
    metric: Metric,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric(y_true, y_score)``, stratified by class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    y_score : array-like of shape (n_samples,)
        Logits or probabilities, whatever ``metric`` expects.
    metric : callable
        ``metric(y_true, y_score) -> float``.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence : float in (0, 1), default=0.95
        Coverage of the interval.
    seed : int, default=0
        Seed for ``np.random.default_rng``; the same seed gives the same interval.

    Returns
    -------
    (low, high) : tuple of float
        ``(NaN, NaN)`` if the metric is NaN on any resample.

    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> from deepfake_detect.metrics.bootstrap import bootstrap_ci
    >>> y, z = [0, 0, 0, 1, 1, 1], [-2.0, -1.0, 0.5, 0.0, 1.0, 2.0]
    >>> low, high = bootstrap_ci(y, z, roc_auc_score, n_resamples=200, seed=0)
    >>> bool(0.0 <= low <= roc_auc_score(y, z) <= high <= 1.0)
    True
    """
    cis = bootstrap_cis(
        y_true, y_score, {"metric": metric}, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return cis["metric"]


def bootstrap_cis(
    y_true,
    y_score,
    metrics: Mapping[str, Metric],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several metrics, each computed on the same stratified resamples.

    Each interval equals :func:`bootstrap_ci` of that metric with the same seed; the resampling is done once.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    y_score : array-like of shape (n_samples,)
        Logits or probabilities, whatever the metrics expect.
    metrics : mapping of str to callable
        Name to ``metric(y_true, y_score) -> float``.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence : float in (0, 1), default=0.95
        Coverage of the intervals.
    seed : int, default=0
        Seed for ``np.random.default_rng``.

    Returns
    -------
    dict of str to (low, high)
        In the order of ``metrics``; ``(NaN, NaN)`` for a metric that is NaN on any resample.

    Examples
    --------
    >>> import numpy as np
    >>> from deepfake_detect.metrics.bootstrap import bootstrap_cis
    >>> y, z = [0, 0, 0, 1, 1, 1], [-2.0, -1.0, 0.5, 0.0, 1.0, 2.0]
    >>> cis = bootstrap_cis(y, z, {"mean": lambda y, s: s.mean(), "max": lambda y, s: s.max()}, seed=0)
    >>> list(cis), bool(cis["mean"][1] <= cis["max"][1] == 2.0)
    (['mean', 'max'], True)
    """
    y, s = _check_binary(y_true, y_score, name="y_score")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    stats: dict[str, list[float]] = {name: [] for name in metrics}
    for i in _stratified_resamples(y, n_resamples, seed):
        y_i, s_i = y[i], s[i]
        for name, metric in metrics.items():
            stats[name].append(metric(y_i, s_i))
    alpha = (1.0 - confidence) / 2.0
    return {name: _percentile_interval(np.array(v, dtype=float), alpha) for name, v in stats.items()}


def ci95_at_threshold(
    y_true, logits, threshold_logit: float, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% bootstrap intervals of accuracy at a fixed logit threshold and of ROC AUC.

    The ``ci95`` of an evaluation and of a baseline: the threshold was chosen beforehand (on validation) and
    is not re-fitted on the resamples.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw scores; the verdict is fake when ``logit >= threshold_logit``.
    threshold_logit : float
        The fixed decision threshold.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    seed : int, default=0
        Seed for ``np.random.default_rng``.

    Returns
    -------
    dict
        ``accuracy`` and ``roc_auc``, each ``[low, high]`` (lists, as written to JSON).

    Examples
    --------
    >>> from deepfake_detect.metrics.bootstrap import ci95_at_threshold
    >>> ci = ci95_at_threshold([0, 0, 0, 1, 1, 1], [-2.0, -1.0, 0.5, 0.0, 1.0, 2.0], 0.0, n_resamples=200)
    >>> list(ci), all(0.0 <= low <= high <= 1.0 for low, high in ci.values())
    (['accuracy', 'roc_auc'], True)
    """

    def accuracy(y: np.ndarray, s: np.ndarray) -> float:
        return float(np.mean(is_fake(s, threshold_logit) == (y == 1)))

    cis = bootstrap_cis(
        y_true, logits, {"accuracy": accuracy, "roc_auc": _roc_auc}, n_resamples=n_resamples, seed=seed
    )
    return {name: list(interval) for name, interval in cis.items()}


def _percentile_interval(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    if np.isnan(stats).any():
        return float("nan"), float("nan")
    low, high = np.percentile(stats, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def _stratified_resamples(y: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield index arrays resampling each present class with replacement to its own count."""
    if not (isinstance(n_resamples, int | np.integer) and n_resamples >= 1):
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in (0, 1) if np.any(y == c)]
    # One resample at a time: an (n_resamples, n) index matrix would be 160 MB for 20k images.
    for _ in range(n_resamples):
        yield np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
