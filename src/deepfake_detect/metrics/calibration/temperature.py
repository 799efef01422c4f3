"""Temperature scaling and base-rate (prior) adjustment of the detector's logits.

A CNN trained with cross-entropy is usually over-confident: its logits are too large.
Temperature scaling divides every logit by one scalar ``T > 0`` fit on held-out data.
It is monotone, so it never changes a verdict at a correspondingly rescaled threshold,
ROC AUC or ranking; it only makes ``p_fake`` honest.

The calibration set is (by construction) balanced, so ``p_fake`` means "probability of
fake *if half of all images were fake*". :func:`calibrated_p_fake` re-targets it to the
share of fakes the user actually expects, by Bayes' rule on the odds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logit as _logit

from deepfake_detect.metrics.classification import (
    _bce_from_logits,
    _calibration_bins,
    _check_binary,
    _check_proba,
    brier_score_loss,
    expected_calibration_error,
    sigmoid,
)

__all__ = [
    "calibrated_p_fake",
    "calibration_effect",
    "fit_temperature",
    "logit_for_probability",
    "reliability_curve",
]

# Search range for T. Below 0.05 or above 20 the fit is almost surely chasing a degenerate
# validation set (perfect separation or pure noise) rather than genuine miscalibration.
_LOG_T_BOUNDS = (math.log(0.05), math.log(20.0))


def fit_temperature(y_true, logits) -> float:
    """Temperature ``T > 0`` minimising the NLL of ``sigmoid(logit / T)`` on validation data.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw validation logits.

    Returns
    -------
    temperature : float
        In ``[0.05, 20]``. ``T > 1`` softens over-confident logits. Deterministic:
        bounded Brent search on ``log T`` (the NLL is convex in ``1/T``, hence unimodal in
        ``log T``). Degenerate data (a single class, or all logits equal), which carries no
        information about the scale, returns 1.0.

    Examples
    --------
    >>> import numpy as np
    >>> from deepfake_detect.metrics.calibration import fit_temperature
    >>> rng = np.random.default_rng(0)
    >>> true_logit = rng.normal(0.0, 2.0, 4000)
    >>> y = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    >>> round(fit_temperature(y, 5.0 * true_logit))  # recovers the over-confidence factor
    5
    """
    y, z = _check_binary(y_true, logits)
    if np.unique(y).size < 2 or np.ptp(z) == 0.0:
        return 1.0

    def nll(log_t: float) -> float:
        return _bce_from_logits(y, z * math.exp(-log_t))

    res = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    # Guard against a failed search: never return a T worse than leaving logits alone.
    if not res.success or nll(res.x) > nll(0.0):
        return 1.0
    return float(math.exp(res.x))


def _as_float(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _check_rate(value: float, name: str) -> None:
    if not 0.0 < _as_float(value, name) < 1.0:  # NaN fails this too
        raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {value!r}")


def _check_temperature(temperature: float) -> None:
    t = _as_float(temperature, "temperature")
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def calibrated_p_fake(
    logits, temperature: float, *, prior: float = 0.5, base_rate: float = 0.5
) -> np.ndarray:
    """Calibrated probability of fake: ``sigmoid(logit / T + logit(prior) - logit(base_rate))``.

    Why the prior matters: ``sigmoid(logit / T)`` is calibrated for the calibration set,
    whose share of fakes is ``base_rate`` (50%). The posterior odds are the likelihood
    ratio times the prior odds, so for a deployment where a share ``prior`` of images are
    fake the odds must be rescaled by ``(prior / (1 - prior)) / (base_rate / (1 - base_rate))``.
    Worked number: ``p = 0.9`` at a 50% base rate is odds 9:1; if only 1% of uploads are
    expected to be fake the odds become ``9 * (1 / 99) = 0.091``, i.e. ``p_fake ~ 0.083``.
    The same image is then far more likely real than fake.

    Parameters
    ----------
    logits : array-like of shape (n_samples,)
        Raw logits.
    temperature : float
        ``T > 0`` from :func:`fit_temperature`.
    prior : float in (0, 1), default=0.5
        Share of fakes expected where the detector is used.
    base_rate : float in (0, 1), default=0.5
        Share of fakes in the calibration set.

    Returns
    -------
    p_fake : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from deepfake_detect.metrics.calibration import calibrated_p_fake
    >>> z = np.log(9.0)  # p_fake = 0.9 at the 50% base rate
    >>> calibrated_p_fake([z], 1.0).round(3).tolist()
    [0.9]
    >>> calibrated_p_fake([z], 1.0, prior=0.01).round(3).tolist()
    [0.083]
    """
    _check_temperature(temperature)
    _check_rate(prior, "prior")
    _check_rate(base_rate, "base_rate")
    z = np.asarray(logits, dtype=float)
    return sigmoid(z / temperature + _logit(prior) - _logit(base_rate))


def logit_for_probability(
    p: float, temperature: float, *, prior: float = 0.5, base_rate: float = 0.5
) -> float:
    """Raw logit at which :func:`calibrated_p_fake` equals ``p`` (its inverse).

    Used to show a logit threshold as a ``p_fake`` and to turn a user's ``p_fake``
    threshold back into the logit threshold the ``>=`` rule is applied to.

    Parameters
    ----------
    p : float in (0, 1)
        Calibrated probability of fake.
    temperature : float
        ``T > 0`` from :func:`fit_temperature`.
    prior : float in (0, 1), default=0.5
        Share of fakes expected where the detector is used.
    base_rate : float in (0, 1), default=0.5
        Share of fakes in the calibration set.

    Returns
    -------
    logit : float
        ``T * (logit(p) - logit(prior) + logit(base_rate))``.

    Examples
    --------
    >>> from deepfake_detect.metrics.calibration import logit_for_probability
    >>> logit_for_probability(0.5, 2.0)
    0.0
    >>> round(logit_for_probability(0.9, 2.0), 4)  # 2 * log(9)
    4.3944
    """
    _check_rate(p, "p")
    _check_temperature(temperature)
    _check_rate(prior, "prior")
    _check_rate(base_rate, "base_rate")
    return float(temperature * (_logit(p) - _logit(prior) + _logit(base_rate)))


def calibration_effect(
    y_true, logits, temperature: float, *, prior: float = 0.5, base_rate: float = 0.5, n_bins: int = 15
) -> dict[str, float]:
    """ECE and Brier score of ``p_fake`` before (raw sigmoid) and after calibration.

    The one place the effect of calibration is measured: training records it on validation, ``evaluate``
    and the report on the evaluated split, each under its own key names.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw logits.
    temperature : float
        ``T > 0`` from :func:`fit_temperature`.
    prior : float in (0, 1), default=0.5
        Share of fakes the calibrated ``p_fake`` is targeted at (see :func:`calibrated_p_fake`). Calibration
        is judged at the calibration set's own share: leave ``prior`` equal to ``base_rate`` (the defaults),
        where the prior terms cancel and the calibrated ``p_fake`` is ``sigmoid(logit / T)``.
    base_rate : float in (0, 1), default=0.5
        Share of fakes in the calibration set.
    n_bins : int, default=15
        Bins of the ECE (see :func:`deepfake_detect.metrics.expected_calibration_error`).

    Returns
    -------
    dict of str to float
        ``ece_before``, ``ece_after``, ``brier_before``, ``brier_after``; lower is better.

    Examples
    --------
    >>> import numpy as np
    >>> from deepfake_detect.metrics.calibration import calibration_effect
    >>> rng = np.random.default_rng(0)
    >>> true_logit = rng.normal(0.0, 2.0, 4000)
    >>> y = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    >>> effect = calibration_effect(y, 5.0 * true_logit, fit_temperature(y, 5.0 * true_logit))
    >>> sorted(effect)
    ['brier_after', 'brier_before', 'ece_after', 'ece_before']
    >>> bool(effect["ece_after"] < effect["ece_before"] and effect["brier_after"] < effect["brier_before"])
    True
    """
    before = sigmoid(logits)
    after = calibrated_p_fake(logits, temperature, prior=prior, base_rate=base_rate)
    return {
        "ece_before": expected_calibration_error(y_true, before, n_bins=n_bins),
        "ece_after": expected_calibration_error(y_true, after, n_bins=n_bins),
        "brier_before": brier_score_loss(y_true, before),
        "brier_after": brier_score_loss(y_true, after),
    }


def reliability_curve(y_true, p_fake, *, n_bins: int = 15) -> dict:
    """Per-bin calibration statistics for a reliability diagram.

    Uses the same equal-width bins as :func:`deepfake_detect.metrics.expected_calibration_error`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    p_fake : array-like of shape (n_samples,)
        Predicted probability of fake, in ``[0, 1]``.
    n_bins : int, default=15
        Number of bins ``[i/n_bins, (i+1)/n_bins)`` (the last one closed).

    Returns
    -------
    curve : dict of ndarray
        ``bin_edges`` (n_bins + 1,), ``bin_centers`` (n_bins,), ``mean_predicted``
        (n_bins,), ``fraction_fake`` (n_bins,) and ``counts`` (n_bins,) of int. Empty
        bins have NaN mean and fraction (matplotlib skips them).

    Examples
    --------
    >>> from deepfake_detect.metrics.calibration import reliability_curve
    >>> c = reliability_curve([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], n_bins=2)
    >>> c["counts"].tolist(), c["mean_predicted"].tolist(), c["fraction_fake"].tolist()
    ([2, 2], [0.1, 0.9], [0.0, 0.5])
    """
    y, p = _check_proba(y_true, p_fake)
    edges, counts, sum_p, sum_y = _calibration_bins(y, p, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins -> NaN on purpose
        mean_predicted = sum_p / counts
        fraction_fake = sum_y / counts
    return {
        "bin_edges": edges,
        "bin_centers": (edges[:-1] + edges[1:]) / 2,
        "mean_predicted": mean_predicted,
        "fraction_fake": fraction_fake,
        "counts": counts,
    }
