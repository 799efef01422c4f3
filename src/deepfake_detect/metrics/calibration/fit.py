"""The calibration a model stores, fitted on its validation scores: temperature, threshold and base rate.

Training fits it at its end (:mod:`deepfake_detect.training.loop`), and ``evaluation.backend_choice`` refits it
on the int8 graph's scores with the same rules; both call :func:`calibrate_on_validation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfake_detect.metrics.calibration.temperature import (
    calibrated_p_fake,
    calibration_effect,
    fit_temperature,
)
from deepfake_detect.metrics.classification import binary_metrics
from deepfake_detect.metrics.thresholds import f1_optimal_threshold, threshold_at_source_fpr

__all__ = ["calibrate_on_validation"]


def calibrate_on_validation(
    logits: np.ndarray, labels: np.ndarray, sources=None, max_fpr: float | None = None
) -> dict[str, Any]:
    """Temperature, threshold and the validation metrics at that threshold.

    The threshold is F1-optimal, or with ``max_fpr`` the lowest that keeps each source of reals (``sources``,
    one name a sample) at or under that false-positive rate (:func:`~deepfake_detect.metrics.threshold_at_source_fpr`).

    Examples
    --------
    >>> z = np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 2.0, 3.0, -0.5])
    >>> y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    >>> fitted = calibrate_on_validation(z, y)
    >>> fitted["threshold_rule"], fitted["threshold_logit"], round(fitted["base_rate"], 3)
    ('f1', -0.75, 0.625)
    """
    temperature = fit_temperature(labels, logits)
    if max_fpr is None:
        threshold, rule = f1_optimal_threshold(labels, logits), "f1"
    else:
        threshold, rule = threshold_at_source_fpr(labels, logits, sources, max_fpr), "source_fpr"
    return {
        "temperature": float(temperature),
        "threshold_logit": float(threshold),
        "threshold_rule": rule,
        "threshold_p_fake": float(calibrated_p_fake(np.array([threshold]), temperature)[0]),
        # Clipped so a one-class validation set cannot store an infinite prior log-odds.
        "base_rate": float(np.clip(labels.mean(), 1e-3, 1 - 1e-3)),
        "val": binary_metrics(labels, logits, threshold),
        # ECE and Brier before and after, at the validation split's own share of fakes (the prior terms cancel).
        "val_calibration": calibration_effect(labels, logits, temperature),
    }
