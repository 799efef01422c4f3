"""Metrics and decision thresholds for the real-vs-fake face classifier.

Conventions used throughout:

* label ``0`` = real, ``1`` = fake; fake is the positive class;
* scores are raw logits unless a parameter is named ``p_fake``;
* the verdict is "fake" when ``logit >= threshold_logit``;
* the confusion matrix is ``[[tn, fp], [fn, tp]]``;
* ``*_score`` is higher-is-better, ``*_error`` / ``*_loss`` / ``*_cost`` lower-is-better.

Everything here is a pure function. scikit-learn supplies the classification report and
Brier score; the threshold searches, calibration error and stratified bootstrap are written
here because scikit-learn lacks them. :func:`binary_metrics` counts with numpy (and ranks for
ROC AUC) because it runs thousands of times inside bootstraps, where scikit-learn's per-call
validation dominates; the tests check it against scikit-learn.

Threshold placement
-------------------
Every threshold search returns a logit placed *midway* between the lowest score
that is flagged and the next lower distinct score (or 1.0 logit beyond the
extreme score when there is no neighbour). The verdicts on the data the search
saw are exactly those of the optimum, and numeric noise on a re-run (another BLAS,
float32 vs float64) smaller than half the gap to the neighbouring score cannot flip
the boundary image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn import metrics as _skm

__all__ = [
    "binary_metrics",
    "bootstrap_ci",
    "brier_score_loss",
    "classification_report_dict",
    "expected_calibration_error",
    "expected_cost",
    "f1_optimal_threshold",
    "log_loss_from_logits",
    "min_cost_threshold",
    "recall_at_fpr_score",
    "sigmoid",
    "threshold_at_fpr",
]

# Relative slack when comparing objective values, so that ties which are exact in
# rational arithmetic but differ in the last bit are still broken by the documented rule.
_TIE_RTOL = 1e-12


# --------------------------------------------------------------------------- helpers


def sigmoid(x):
    """Numerically stable logistic function ``1 / (1 + exp(-x))``.

    Parameters
    ----------
    x : float or array-like of shape (n_samples,)
        Logits.

    Returns
    -------
    p : float or ndarray of shape (n_samples,)
        Probabilities in ``[0, 1]``; no overflow warning for huge ``|x|``.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import sigmoid
    >>> float(sigmoid(0.0))
    0.5
    >>> sigmoid([-1000.0, 1000.0]).tolist()
    [0.0, 1.0]
    """
    # scipy's expit is branch-free stable (no exp overflow), unlike the textbook formula.
    return expit(np.asarray(x, dtype=float))


def _check_labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y_true is empty: at least one sample is required")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must contain only 0 (real) and 1 (fake)")
    return y.astype(np.int64)


def _check_binary(y_true, scores, name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and finite 1-D scores of the same length."""
    y = _check_labels(y_true)
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"{name} must have shape {y.shape} like y_true, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return y, s


def _check_proba(y_true, p_fake) -> tuple[np.ndarray, np.ndarray]:
    y, p = _check_binary(y_true, p_fake, name="p_fake")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p_fake must lie in [0, 1]")
    return y, p


def _check_prior(prior: float | None, name: str = "prior") -> None:
    if prior is not None and not 0.0 <= prior <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {prior!r}")


def _check_costs(cost_fp: float, cost_fn: float) -> None:
    for name, c in (("cost_fp", cost_fp), ("cost_fn", cost_fn)):
        if not (np.isfinite(c) and c >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {c!r}")


def _place_threshold(upper: float, lower: float) -> float:
    """A threshold t with ``lower < t <= upper`` (``>=`` rule): flags ``upper``, not ``lower``.

    ``upper=+inf`` / ``lower=-inf`` mean "no neighbour"; one logit beyond the extreme is used.
    """
    if np.isinf(upper):
        t = lower + 1.0
        # For huge logits lower + 1.0 == lower would flag ``lower``; step one ulp instead.
        return float(t if t > lower else np.nextafter(lower, np.inf))
    if np.isinf(lower):
        return float(upper - 1.0)
    t = lower / 2 + upper / 2  # halve first so that huge logits cannot overflow
    # Adjacent floats: the midpoint may round onto ``lower``; ``upper`` is still a valid cut.
    return float(t if lower < t <= upper else upper)


def _cut_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate cuts from the highest threshold down, with (tp, fp) flagged by each.

    Returns ``cand`` of shape (n_distinct + 1,): ``cand[0] = +inf`` (flag nothing), then the
    distinct scores in decreasing order; cut k flags every score ``>= cand[k]``.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Only the last position of each run of equal scores is a valid cut (ties share a verdict).
    ends = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    tp = np.cumsum(y_sorted)[ends]
    fp = np.cumsum(1 - y_sorted)[ends]
    return np.r_[np.inf, s_sorted[ends]], np.r_[0, tp], np.r_[0, fp]


def _threshold_for_cut(cand: np.ndarray, k: int) -> float:
    lower = cand[k + 1] if k + 1 < cand.size else -np.inf
    return _place_threshold(cand[k], lower)


def _first_best(values: np.ndarray, *, maximize: bool) -> int:
    """Index of the first (= highest-threshold) near-optimal value."""
    v = values if maximize else -values
    best = v.max()
    return int(np.flatnonzero(v >= best - _TIE_RTOL * max(1.0, abs(best)))[0])


def _cost(fp, fn, n_neg: int, n_pos: int, cost_fp: float, cost_fn: float, prior: float | None):
    """Expected cost per image from counts; shared by the search and the evaluation."""
    if prior is None:
        return (cost_fp * fp + cost_fn * fn) / (n_neg + n_pos)
    if n_neg == 0 or n_pos == 0:
        raise ValueError("prior reweighting needs both real (0) and fake (1) samples")
    return cost_fp * (1.0 - prior) * fp / n_neg + cost_fn * prior * fn / n_pos


# ---------------------------------------------------------------- point metrics


def binary_metrics(y_true, logits, threshold_logit: float) -> dict:
    """Headline classification metrics at a logit threshold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits; the verdict is fake when ``logit >= threshold_logit``.
    threshold_logit : float
        Decision threshold on the logit scale.

    Returns
    -------
    metrics : dict
        Float keys ``accuracy, balanced_accuracy, precision, recall, f1, roc_auc``
        (``roc_auc`` is NaN when only one class is present; precision, recall and F1
        use ``zero_division=0``) and ``confusion_matrix`` as ``[[tn, fp], [fn, tp]]``
        (list of lists of int, always 2x2).

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import binary_metrics
    >>> m = binary_metrics([0, 0, 1, 1], [-2.0, 0.5, 1.0, 3.0], threshold_logit=0.0)
    >>> m["confusion_matrix"], m["accuracy"], m["roc_auc"]
    ([[1, 1], [0, 2]], 0.75, 1.0)
    """
    y, s = _check_binary(y_true, logits)
    pred = s >= threshold_logit
    # Counted with numpy rather than sklearn's scorers: their input validation costs ~1-2 ms
    # a call, which dominates a 1000-resample bootstrap; the tests cross-check against sklearn.
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = y.size - tp - fp - fn
    n_neg, n_pos = tn + fp, tp + fn
    # Balanced accuracy: mean recall over the classes that are present (sklearn warns otherwise).
    balanced = float(np.mean([hit / n for hit, n in ((tn, n_neg), (tp, n_pos)) if n]))
    return {
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": balanced,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, n_pos),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": _roc_auc(y, s),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def _ratio(num: int, den: int) -> float:
    """``num / den`` with scikit-learn's ``zero_division=0``."""
    return num / den if den else 0.0


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank formula; NaN with one class.

    Identical to ``sklearn.metrics.roc_auc_score`` (ties count one half via average ranks)
    but ~30x cheaper on small arrays, which matters inside bootstraps.
    """
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(rankdata(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def classification_report_dict(y_true, logits, threshold_logit: float, class_names=("real", "fake")) -> dict:
    """scikit-learn's ``classification_report`` as a dict, at a logit threshold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.
    threshold_logit : float
        Verdict is fake when ``logit >= threshold_logit``.
    class_names : sequence of 2 str, default=("real", "fake")
        Names for labels 0 and 1.

    Returns
    -------
    report : dict
        ``classification_report(..., labels=[0, 1], output_dict=True, zero_division=0)``;
        both classes always appear, even when one is absent from the data.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import classification_report_dict
    >>> r = classification_report_dict([0, 1, 1], [-1.0, 2.0, -0.5], 0.0)
    >>> r["fake"]["recall"], r["real"]["support"]
    (0.5, 1.0)
    """
    y, s = _check_binary(y_true, logits)
    if len(class_names) != 2:
        raise ValueError(f"class_names must have 2 entries, got {len(class_names)}")
    pred = (s >= threshold_logit).astype(np.int64)
    return _skm.classification_report(
        y, pred, labels=[0, 1], target_names=list(class_names), output_dict=True, zero_division=0
    )


def expected_cost(
    y_true, logits, threshold_logit: float, *, cost_fp: float = 1.0, cost_fn: float = 1.0, prior=None
) -> float:
    """Expected misclassification cost per image at a logit threshold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.
    threshold_logit : float
        Verdict is fake when ``logit >= threshold_logit``.
    cost_fp : float, default=1.0
        Cost of calling a real photo fake.
    cost_fn : float, default=1.0
        Cost of missing a fake.
    prior : float in [0, 1] or None, default=None
        Share of fakes expected in deployment. ``None`` uses the sample's own mix, i.e.
        ``(cost_fp * FP + cost_fn * FN) / n``; otherwise
        ``cost_fp * (1 - prior) * FPR + cost_fn * prior * FNR`` (needs both classes).

    Returns
    -------
    cost : float
        Lower is better; 0 means no errors.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import expected_cost
    >>> expected_cost([0, 0, 1, 1], [1.0, -1.0, -1.0, 2.0], 0.0, cost_fp=1.0, cost_fn=3.0)
    1.0
    """
    y, s = _check_binary(y_true, logits)
    _check_costs(cost_fp, cost_fn)
    _check_prior(prior)
    pred = s >= threshold_logit
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    n_pos = int(y.sum())
    return float(_cost(fp, fn, y.size - n_pos, n_pos, cost_fp, cost_fn, prior))


def log_loss_from_logits(y_true, logits) -> float:
    """Mean binary cross-entropy computed directly from logits.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.

    Returns
    -------
    loss : float
        ``mean(log(1 + exp(z)) - y * z)``; exact even for ``|z|`` in the thousands, where
        going through probabilities would clip to ``log(0)``.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import log_loss_from_logits
    >>> round(log_loss_from_logits([1, 0], [0.0, 0.0]), 6)
    0.693147
    >>> log_loss_from_logits([0], [1000.0])
    1000.0
    """
    y, z = _check_binary(y_true, logits)
    return float(_bce_from_logits(y, z))


def _bce_from_logits(y: np.ndarray, z: np.ndarray) -> float:
    # logaddexp(0, z) = log(1 + e^z) without overflow; BCE = softplus(z) - y * z.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def brier_score_loss(y_true, p_fake) -> float:
    """Brier score (mean squared error of ``p_fake``), wrapping scikit-learn's.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    p_fake : array-like of shape (n_samples,)
        Predicted probability of fake, in ``[0, 1]``.

    Returns
    -------
    loss : float
        In ``[0, 1]``; lower is better.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import brier_score_loss
    >>> round(brier_score_loss([0, 1], [0.1, 0.8]), 6)
    0.025
    """
    y, p = _check_proba(y_true, p_fake)
    # labels=[0, 1] pins the positive class even when one class is absent.
    return float(_skm.brier_score_loss(y, p, labels=[0, 1]))


def _calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int):
    """Equal-width bins ``[i/n, (i+1)/n)`` (last one closed): edges, counts, sum p, sum y."""
    if not (isinstance(n_bins, int | np.integer) and n_bins >= 1):
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    return edges, counts, sum_p, sum_y


def expected_calibration_error(y_true, p_fake, *, n_bins: int = 15) -> float:
    """Expected calibration error (ECE) with equal-width bins, weighted by bin count.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    p_fake : array-like of shape (n_samples,)
        Predicted probability of fake, in ``[0, 1]``.
    n_bins : int, default=15
        Number of bins ``[i/n_bins, (i+1)/n_bins)`` on ``[0, 1]`` (the last is closed).

    Returns
    -------
    ece : float
        ``sum_b (n_b / n) * |mean(p_fake in b) - fraction of fakes in b|``; in ``[0, 1]``,
        lower is better. Empty bins contribute nothing.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import expected_calibration_error
    >>> round(expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], n_bins=10), 6)
    0.25
    """
    y, p = _check_proba(y_true, p_fake)
    _, _, sum_p, sum_y = _calibration_bins(y, p, n_bins)
    # (n_b / n) * |sum_p/n_b - sum_y/n_b| simplifies to |sum_p - sum_y| / n.
    return float(np.abs(sum_p - sum_y).sum() / y.size)


# ------------------------------------------------------------------ thresholds


def f1_optimal_threshold(y_true, logits) -> float:
    """Logit threshold that maximises F1 of the fake class under the ``>=`` rule.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.

    Returns
    -------
    threshold_logit : float
        Placed midway between the lowest flagged score and the next lower distinct
        score (1.0 logit beyond the extreme score when there is none), so a tiny
        perturbation does not flip the boundary image. Ties in F1 go to the *higher*
        threshold: among equally good cuts, flag fewer real photos. With no fakes F1 is
        0 everywhere and the threshold lies above every score (nothing flagged).

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import f1_optimal_threshold
    >>> f1_optimal_threshold([0, 0, 1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    2.5
    """
    y, s = _check_binary(y_true, logits)
    cand, tp, fp = _cut_counts(y, s)
    fn = y.sum() - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(tp.size), where=denom > 0)
    return _threshold_for_cut(cand, _first_best(f1, maximize=True))


def min_cost_threshold(
    y_true, logits, *, cost_fp: float = 1.0, cost_fn: float = 1.0, prior: float | None = None
) -> float:
    """Logit threshold minimising the expected cost per image.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.
    cost_fp : float, default=1.0
        Cost of calling a real photo fake.
    cost_fn : float, default=1.0
        Cost of missing a fake.
    prior : float in [0, 1] or None, default=None
        Share of fakes expected in deployment. The empirical FPR and FNR are reweighted:
        ``cost = cost_fp * (1 - prior) * FPR + cost_fn * prior * FNR`` (needs both
        classes). ``None`` uses the sample's own share of fakes. Same objective as
        :func:`expected_cost`.

    Returns
    -------
    threshold_logit : float
        Placed midway between sample scores as in :func:`f1_optimal_threshold`; ties in
        cost go to the higher threshold (fewer images flagged).

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import min_cost_threshold
    >>> y, z = [0, 0, 1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    >>> min_cost_threshold(y, z), min_cost_threshold(y, z, cost_fn=10.0)
    (4.5, 2.5)
    >>> min_cost_threshold(y, z, prior=0.9)  # fakes expected to dominate: flag more
    2.5
    """
    y, s = _check_binary(y_true, logits)
    _check_costs(cost_fp, cost_fn)
    _check_prior(prior)
    cand, tp, fp = _cut_counts(y, s)
    n_pos = int(y.sum())
    cost = _cost(fp, n_pos - tp, y.size - n_pos, n_pos, cost_fp, cost_fn, prior)
    return _threshold_for_cut(cand, _first_best(cost, maximize=False))


def _allowed_false_positives(target_fpr: float, n_neg: int) -> int:
    """Largest k with ``k / n_neg <= target_fpr``, robust to float error in the product."""
    k = int(np.floor(target_fpr * n_neg))
    if k + 1 <= n_neg and (k + 1) / n_neg <= target_fpr:
        k += 1
    while k > 0 and k / n_neg > target_fpr:
        k -= 1
    return k


def threshold_at_fpr(y_true, logits, target_fpr: float) -> float:
    """Lowest logit threshold whose false-positive rate on the reals is <= ``target_fpr``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake; at least one real is required.
    logits : array-like of shape (n_samples,)
        Raw logits.
    target_fpr : float in [0, 1]
        Largest acceptable share of real photos called fake.

    Returns
    -------
    threshold_logit : float
        "Lowest" in terms of verdicts: it flags as many images as possible while
        ``FPR <= target_fpr``. Any cut between the highest real score that must stay
        unflagged and the next higher sample score gives the same verdicts; the midpoint is
        returned (1.0 logit beyond the extreme score when there is no neighbour).

    Raises
    ------
    ValueError
        If there is no real sample (FPR undefined) or ``target_fpr`` is outside [0, 1].

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import threshold_at_fpr
    >>> y, z = [0, 0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]
    >>> threshold_at_fpr(y, z, 0.0), threshold_at_fpr(y, z, 0.25), threshold_at_fpr(y, z, 1.0)
    (5.5, 3.5, 0.0)
    """
    y, s = _check_binary(y_true, logits)
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr!r}")
    neg = np.sort(s[y == 0])[::-1]
    if neg.size == 0:
        raise ValueError("threshold_at_fpr needs at least one real (label 0) sample")
    k = _allowed_false_positives(target_fpr, neg.size)
    if k >= neg.size:  # every real may be flagged: flag everything
        return _place_threshold(s.min(), -np.inf)
    # neg[k] is the highest real score that must stay below the threshold.
    above = s[s > neg[k]]
    return _place_threshold(above.min() if above.size else np.inf, neg[k])


def recall_at_fpr_score(y_true, logits, target_fpr: float) -> float:
    """Recall of fakes at :func:`threshold_at_fpr` (the threshold is fit on the same data).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake; at least one real is required.
    logits : array-like of shape (n_samples,)
        Raw logits.
    target_fpr : float in [0, 1]
        Largest acceptable share of real photos called fake.

    Returns
    -------
    recall : float
        Share of fakes with ``logit >= threshold``; NaN when there is no fake.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import recall_at_fpr_score
    >>> recall_at_fpr_score([0, 0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 4.0, 6.0], 0.25)
    1.0
    """
    t = threshold_at_fpr(y_true, logits, target_fpr)
    y, s = _check_binary(y_true, logits)
    pos = s[y == 1]
    return float(np.mean(pos >= t)) if pos.size else float("nan")


# ------------------------------------------------------------------- uncertainty


def bootstrap_ci(
    y_true,
    y_score,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric(y_true, y_score)``.

    Stratified by class: reals and fakes are resampled separately (with replacement, each
    to its own count), so every resample has both classes whenever the data does and
    metrics such as ROC AUC stay defined.

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
    >>> from deepfake_detect.metrics.classification import bootstrap_ci
    >>> y, z = [0, 0, 0, 1, 1, 1], [-2.0, -1.0, 0.5, 0.0, 1.0, 2.0]
    >>> low, high = bootstrap_ci(y, z, roc_auc_score, n_resamples=200, seed=0)
    >>> bool(0.0 <= low <= roc_auc_score(y, z) <= high <= 1.0)
    True
    """
    y, s = _check_binary(y_true, y_score, name="y_score")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    stats = np.array([metric(y[i], s[i]) for i in _stratified_resamples(y, n_resamples, seed)], dtype=float)
    if np.isnan(stats).any():
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def _stratified_resamples(y: np.ndarray, n_resamples: int, seed: int):
    """Yield index arrays resampling each present class with replacement to its own count."""
    if not (isinstance(n_resamples, int | np.integer) and n_resamples >= 1):
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in (0, 1) if np.any(y == c)]
    # One resample at a time: an (n_resamples, n) index matrix would be 160 MB for 20k images.
    for _ in range(n_resamples):
        yield np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
