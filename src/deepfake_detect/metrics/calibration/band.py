"""An honest "uncertain" verdict: an abstention band around the threshold, chosen on validation.

A score near the threshold is a coin toss, and users act on verdicts. The band ``[lower, upper)`` in logit units
is the narrowest one such that, on the scores it was chosen on,

* the faces called "fake" (``logit >= upper``) are fakes with precision at least ``target_precision``, and
* the faces called "real" (``logit < lower``) are reals with precision at least ``target_precision``;

inside it the verdict is "uncertain". The band always contains the stored threshold, so a decided verdict never
contradicts the two-way one. Choose it on validation scores (clean and laundered), never on test:
:func:`band_metadata` chooses it on given scores and gives the checkpoint keys that store it; training
(:mod:`deepfake_detect.training.band`) and ``calibrate-abstention`` (:mod:`deepfake_detect.evaluation.abstain`)
score the faces and call it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfake_detect.metrics.classification import is_fake

__all__ = [
    "LAUNDER_SEED",
    "abstention_band",
    "band_metadata",
    "band_verdicts",
    "coverage_and_precision",
    "two_way_verdicts",
]

#: The laundering seed of the validation copy the band is chosen on (the issue's "laundered (seed 0)").
LAUNDER_SEED = 0


def _lowest_precise_cut(scores: np.ndarray, hits: np.ndarray, target: float) -> float:
    """The lowest cut ``c`` (a score value) such that the share of hits among ``scores >= c`` is >= target.

    ``inf`` when no cut reaches it (nothing is decided on that side).
    """
    order = np.argsort(-scores, kind="stable")
    s, h = scores[order], hits[order]
    precision = np.cumsum(h) / np.arange(1, len(h) + 1)
    # Only cut between distinct scores: tied scores are decided together.
    distinct = np.r_[s[1:] != s[:-1], True]
    ok = np.flatnonzero((precision >= target) & distinct)
    return float(s[ok[-1]]) if len(ok) else float("inf")


def abstention_band(y_true, logits, threshold_logit: float, *, target_precision: float = 0.99) -> dict:
    """The abstention band of a detector's scores.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 = fake, 0 = real.
    logits : array-like of shape (n,)
        Raw scores, higher = more likely fake.
    threshold_logit : float
        The detector's stored two-way threshold; the band always contains it.
    target_precision : float
        Precision each decided side must reach on these scores.

    Returns
    -------
    dict
        ``lower_logit`` and ``upper_logit`` (the band ``[lower, upper)``), ``target_precision``, and
        :func:`coverage_and_precision` of the band on these scores.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    >>> z = np.array([-4., -3., -2., -1., -0.5, 0.5, 1., 2., 3., 4.])
    >>> band = abstention_band(y, z, 0.0, target_precision=0.99)
    >>> band["lower_logit"], band["upper_logit"], band["coverage"]
    (-0.5, 1.0, 0.8)
    """
    y = np.asarray(y_true).astype(bool)
    z = np.asarray(logits, dtype=np.float64)
    if not 0.5 <= target_precision <= 1.0:
        raise ValueError(f"target_precision must be in [0.5, 1], got {target_precision}")
    upper = _lowest_precise_cut(z, y, target_precision)
    # The real side, mirrored: a cut -c on -z is "logit <= c"; the band's lower end is the first score above it.
    below = -_lowest_precise_cut(-z, ~y, target_precision)
    above = z[z > below]
    lower = float(above.min()) if len(above) else float("inf")
    lower, upper = min(lower, threshold_logit), max(upper, threshold_logit)
    return {
        "lower_logit": lower,
        "upper_logit": upper,
        "target_precision": target_precision,
        **coverage_and_precision(y, z, lower, upper),
    }


def band_verdicts(logits, lower_logit: float, upper_logit: float) -> list[str]:
    """ "fake" at or above the band, "real" below it, "uncertain" inside.

    Examples
    --------
    >>> band_verdicts([-2.0, 0.0, 2.0], -1.0, 1.0)
    ['real', 'uncertain', 'fake']
    """
    z = np.asarray(logits, dtype=np.float64)
    fake, real = is_fake(z, upper_logit), z < lower_logit
    return ["fake" if f else "real" if r else "uncertain" for f, r in zip(fake, real, strict=True)]


def two_way_verdicts(scores, threshold: float) -> list[str]:
    """ "fake" at or above ``threshold`` (:func:`~deepfake_detect.metrics.classification.is_fake`), else "real".

    Examples
    --------
    >>> two_way_verdicts([-2.0, 0.0, 2.0], 0.0)
    ['real', 'fake', 'fake']
    """
    return ["fake" if fake else "real" for fake in is_fake(np.ravel(scores), threshold)]


def coverage_and_precision(y_true, logits, lower_logit: float, upper_logit: float) -> dict:
    """Share of faces decided by the band, and the precision of each decided side (NaN when a side is empty).

    Examples
    --------
    >>> coverage_and_precision([0, 1, 1], [-2.0, 0.0, 2.0], -1.0, 1.0)
    {'coverage': 0.6666666666666666, 'precision_fake': 1.0, 'precision_real': 1.0, 'accuracy_decided': 1.0}
    """
    y = np.asarray(y_true).astype(bool)
    z = np.asarray(logits, dtype=np.float64)
    fake, real = is_fake(z, upper_logit), z < lower_logit
    decided = fake | real
    return {
        "coverage": float(decided.mean()) if len(z) else float("nan"),
        "precision_fake": float(y[fake].mean()) if fake.any() else float("nan"),
        "precision_real": float((~y[real]).mean()) if real.any() else float("nan"),
        "accuracy_decided": float((fake == y)[decided].mean()) if decided.any() else float("nan"),
    }


def _json_number(value: float) -> float | None:
    """A float for JSON metadata: None for infinity (an end that decides nothing) and for NaN (an empty side)."""
    return None if math.isnan(value) or math.isinf(value) else float(value)


def band_metadata(
    labels: np.ndarray,
    logits: np.ndarray,
    threshold_logit: float,
    *,
    target_precision: float,
    n_laundered: int,
    launder_seed: int = LAUNDER_SEED,
) -> dict[str, Any]:
    """Choose the band on pooled validation scores and return the checkpoint metadata that stores it.

    Parameters
    ----------
    labels, logits : array-like
        The clean and the laundered validation faces, pooled (1 = fake).
    threshold_logit : float
        The stored two-way threshold; the band contains it.
    target_precision : float
        Precision each decided side must reach on these scores.
    n_laundered : int
        How many of the pooled faces are laundered (recorded).
    launder_seed : int
        The laundering seed (recorded).

    Returns
    -------
    dict
        ``abstain_lower_logit`` and ``abstain_upper_logit`` (null for an end that decides nothing),
        ``abstain_target_precision``, ``abstain_coverage`` (the share of these faces decided) and
        ``abstain_validation`` (counts, seed and the precision of each decided side).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    >>> z = np.array([-4., -3., -2., -1., -0.5, 0.5, 1., 2., 3., 4.])
    >>> meta = band_metadata(y, z, 0.0, target_precision=0.99, n_laundered=0)
    >>> meta["abstain_lower_logit"], meta["abstain_upper_logit"], meta["abstain_coverage"]
    (-0.5, 1.0, 0.8)
    """
    band = abstention_band(labels, logits, threshold_logit, target_precision=target_precision)
    return {
        "abstain_lower_logit": _json_number(band["lower_logit"]),
        "abstain_upper_logit": _json_number(band["upper_logit"]),
        "abstain_target_precision": float(target_precision),
        "abstain_coverage": _json_number(band["coverage"]),
        "abstain_validation": {
            "split": "valid",
            "n": int(len(labels)),
            "n_laundered": int(n_laundered),
            "launder_seed": int(launder_seed),
            "precision_fake": _json_number(band["precision_fake"]),
            "precision_real": _json_number(band["precision_real"]),
        },
    }
