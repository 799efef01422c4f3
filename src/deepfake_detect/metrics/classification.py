"""Point metrics of the real-vs-fake face classifier: counts, ROC AUC, expected cost, log loss, Brier, ECE.

Conventions used throughout the metrics package:

* label ``0`` = real, ``1`` = fake; fake is the positive class;
* scores are raw logits unless a parameter is named ``p_fake``;
* the verdict is "fake" when ``logit >= threshold_logit`` (:func:`is_fake`, the one place the rule is written);
* the confusion matrix is ``[[tn, fp], [fn, tp]]``;
* ``*_score`` is higher-is-better, ``*_error`` / ``*_loss`` / ``*_cost`` lower-is-better.

Everything here is a pure function. scikit-learn supplies the classification report and
Brier score; the calibration error is written here because scikit-learn lacks it (as are the
threshold searches in :mod:`~deepfake_detect.metrics.thresholds` and the stratified bootstrap in
:mod:`~deepfake_detect.metrics.bootstrap`). :func:`binary_metrics` counts with numpy (and ranks for
ROC AUC) because it runs thousands of times inside bootstraps, where scikit-learn's per-call
validation dominates; the tests check it against scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn import metrics as _skm

__all__ = [
    "binary_metrics",
    "brier_score_loss",
    "classification_report_dict",
    "expected_calibration_error",
    "expected_cost",
    "expected_cost_curve",
    "is_fake",
    "log_loss_from_logits",
    "sigmoid",
]


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


def _cost_from_counts(fp, fn, n_neg: int, n_pos: int, cost_fp: float, cost_fn: float, prior: float | None):
    """Expected cost per image from error counts (scalars or arrays): the one formula of the expected cost."""
    if prior is None:
        return (cost_fp * fp + cost_fn * fn) / (n_neg + n_pos)
    if n_neg == 0 or n_pos == 0:
        raise ValueError("prior reweighting needs both real (0) and fake (1) samples")
    return cost_fp * (1.0 - prior) * fp / n_neg + cost_fn * prior * fn / n_pos


# ---------------------------------------------------------------- point metrics


def is_fake(scores, threshold: float) -> np.ndarray:
    """The verdict rule: a score at or above ``threshold`` is "fake". Every verdict of the package comes from here.

    Parameters
    ----------
    scores : array-like of shape (n_samples,), or a number
        Raw logits with a logit threshold (as thresholds are stored), or calibrated ``p_fake`` with a ``p_fake``
        threshold (a scan's ``threshold=``); calibration is monotone, so both give the same verdicts at
        matching thresholds.
    threshold : float
        In the units of ``scores``.

    Returns
    -------
    ndarray of bool
        True where the verdict is "fake" (a 0-d array for a number); a NaN score is never fake.

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import is_fake
    >>> is_fake([-1.0, 0.0, 2.0], 0.0).tolist()
    [False, True, True]
    """
    return np.asarray(scores) >= threshold


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
    pred = is_fake(s, threshold_logit)
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
    pred = is_fake(s, threshold_logit).astype(np.int64)
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
    curve = expected_cost_curve(
        y_true, logits, [threshold_logit], cost_fp=cost_fp, cost_fn=cost_fn, prior=prior
    )
    return float(curve[0])


def expected_cost_curve(
    y_true, logits, thresholds, *, cost_fp: float = 1.0, cost_fn: float = 1.0, prior: float | None = None
) -> np.ndarray:
    """:func:`expected_cost` at many logit thresholds at once (a cost curve).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits; the verdict is fake when ``logit >= threshold``.
    thresholds : array-like of shape (n_thresholds,)
        Logit thresholds.
    cost_fp, cost_fn : float, default=1.0
        Cost of calling a real photo fake, and of missing a fake.
    prior : float in [0, 1] or None, default=None
        Share of fakes expected in deployment; ``None`` weights by the sample's own mix (as in
        :func:`expected_cost`).

    Returns
    -------
    costs : ndarray of shape (n_thresholds,)

    Examples
    --------
    >>> from deepfake_detect.metrics.classification import expected_cost_curve
    >>> expected_cost_curve([0, 0, 1, 1], [1.0, -1.0, -1.0, 2.0], [0.0, 5.0], cost_fn=3.0).tolist()
    [1.0, 1.5]
    """
    y, s = _check_binary(y_true, logits)
    _check_costs(cost_fp, cost_fn)
    _check_prior(prior)
    t = np.asarray(thresholds, dtype=float).ravel()
    neg, pos = np.sort(s[y == 0]), np.sort(s[y == 1])
    # Counts for every threshold at once from the sorted scores: fp = reals >= t, fn = fakes < t.
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn = np.searchsorted(pos, t, side="left")
    return np.asarray(_cost_from_counts(fp, fn, neg.size, pos.size, cost_fp, cost_fn, prior), dtype=float)


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
