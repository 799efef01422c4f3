"""Decision thresholds on the logit scale: F1-optimal, minimum expected cost, and at a target FPR (pooled or
for each source of reals).

Conventions as in :mod:`deepfake_detect.metrics.classification`: label ``0`` = real, ``1`` = fake, scores are
raw logits and the verdict is "fake" when ``logit >= threshold_logit``.

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

import numpy as np

from deepfake_detect.metrics.classification import (
    _check_binary,
    _check_costs,
    _check_prior,
    _cost_from_counts,
    is_fake,
)

__all__ = [
    "f1_optimal_threshold",
    "min_cost_threshold",
    "recall_at_fpr_score",
    "threshold_at_fpr",
    "threshold_at_source_fpr",
]

# Relative slack when comparing objective values, so that ties which are exact in
# rational arithmetic but differ in the last bit are still broken by the documented rule.
_TIE_RTOL = 1e-12


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
    >>> from deepfake_detect.metrics.thresholds import f1_optimal_threshold
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
        :func:`deepfake_detect.metrics.expected_cost`.

    Returns
    -------
    threshold_logit : float
        Placed midway between sample scores as in :func:`f1_optimal_threshold`; ties in
        cost go to the higher threshold (fewer images flagged).

    Examples
    --------
    >>> from deepfake_detect.metrics.thresholds import min_cost_threshold
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
    cost = _cost_from_counts(fp, n_pos - tp, y.size - n_pos, n_pos, cost_fp, cost_fn, prior)
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
    >>> from deepfake_detect.metrics.thresholds import threshold_at_fpr
    >>> y, z = [0, 0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]
    >>> threshold_at_fpr(y, z, 0.0), threshold_at_fpr(y, z, 0.25), threshold_at_fpr(y, z, 1.0)
    (5.5, 3.5, 0.0)
    """
    y, s = _check_binary(y_true, logits)
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr!r}")
    if not (y == 0).any():
        raise ValueError("threshold_at_fpr needs at least one real (label 0) sample")
    return _threshold_above(s, _highest_unflagged(s[y == 0], target_fpr))


def threshold_at_source_fpr(y_true, logits, sources, target_fpr: float) -> float:
    """Lowest logit threshold at which the false-positive rate of *each* source of reals is <= ``target_fpr``.

    A pooled FPR lets a large source of reals outvote a small one: 2% pooled over FFHQ and a few hundred web
    portraits can still flag 5% of the portraits. Here every source must meet the target on its own, so the
    threshold is the highest of :func:`threshold_at_fpr` over the sources' reals.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake; at least one real is required.
    logits : array-like of shape (n_samples,)
        Raw logits.
    sources : array-like of str, shape (n_samples,)
        The source of each sample; only the sources of reals matter.
    target_fpr : float in [0, 1]
        Largest acceptable share of any one source's real photos called fake.

    Returns
    -------
    threshold_logit : float
        Placed as in :func:`threshold_at_fpr`, for the source that needs the highest threshold.

    Raises
    ------
    ValueError
        If there is no real sample, the lengths differ, or ``target_fpr`` is outside [0, 1].

    Examples
    --------
    >>> from deepfake_detect.metrics.thresholds import threshold_at_source_fpr
    >>> y = [0, 0, 0, 0, 0, 0, 1, 1]
    >>> z = [1.0, 2.0, 3.0, 1.5, 2.5, 5.0, 4.0, 6.0]
    >>> src = ["a", "a", "a", "b", "b", "b", "f", "f"]
    >>> threshold_at_source_fpr(y, z, src, 0.0)  # source b's 5.0 must stay real
    5.5
    >>> threshold_at_source_fpr(y, z, src, 0.34)  # one real of each may be flagged: b's 2.5 stays real
    2.75
    """
    y, s = _check_binary(y_true, logits)
    names = np.asarray(sources, dtype=object)
    if names.shape != y.shape:
        raise ValueError(f"sources has {names.size} entries for {y.size} samples")
    real_sources = sorted(set(names[y == 0]))
    if not real_sources:
        raise ValueError("threshold_at_source_fpr needs at least one real (label 0) sample")
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr!r}")
    # The highest real score that must stay unflagged, over every source (-inf: a source allows all).
    must_stay = max(_highest_unflagged(s[(y == 0) & (names == n)], target_fpr) for n in real_sources)
    return _threshold_above(s, must_stay)


def _threshold_above(scores: np.ndarray, must_stay: float) -> float:
    """The threshold just above ``must_stay`` (midway to the next higher score); everything when it is -inf."""
    if must_stay == -np.inf:  # every real may be flagged: flag everything
        return _place_threshold(scores.min(), -np.inf)
    above = scores[scores > must_stay]
    return _place_threshold(above.min() if above.size else np.inf, must_stay)


def _highest_unflagged(real_scores: np.ndarray, target_fpr: float) -> float:
    """The real score the threshold must stay above for an FPR <= ``target_fpr`` (-inf when all may be flagged)."""
    neg = np.sort(real_scores)[::-1]
    k = _allowed_false_positives(target_fpr, neg.size)
    return -np.inf if k >= neg.size else float(neg[k])


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
    >>> from deepfake_detect.metrics.thresholds import recall_at_fpr_score
    >>> recall_at_fpr_score([0, 0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 4.0, 6.0], 0.25)
    1.0
    """
    t = threshold_at_fpr(y_true, logits, target_fpr)
    y, s = _check_binary(y_true, logits)
    pos = s[y == 1]
    return float(np.mean(is_fake(pos, t))) if pos.size else float("nan")
