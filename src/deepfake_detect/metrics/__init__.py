"""Metrics: classification figures, thresholds, bootstrap intervals and probability calibration.

Every formula has one owner here: ECE, Brier, the expected cost and the bootstrap are computed nowhere else.
"""

from deepfake_detect.metrics.bootstrap import bootstrap_ci, bootstrap_cis, ci95_at_threshold
from deepfake_detect.metrics.calibration import (
    calibrated_p_fake,
    calibration_effect,
    fit_temperature,
    logit_for_probability,
    reliability_curve,
)
from deepfake_detect.metrics.classification import (
    binary_metrics,
    brier_score_loss,
    classification_report_dict,
    expected_calibration_error,
    expected_cost,
    expected_cost_curve,
    is_fake,
    log_loss_from_logits,
    sigmoid,
)
from deepfake_detect.metrics.thresholds import (
    f1_optimal_threshold,
    min_cost_threshold,
    recall_at_fpr_score,
    threshold_at_fpr,
    threshold_at_source_fpr,
)

__all__ = [
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_cis",
    "brier_score_loss",
    "calibrated_p_fake",
    "calibration_effect",
    "ci95_at_threshold",
    "classification_report_dict",
    "expected_calibration_error",
    "expected_cost",
    "expected_cost_curve",
    "f1_optimal_threshold",
    "fit_temperature",
    "is_fake",
    "log_loss_from_logits",
    "logit_for_probability",
    "min_cost_threshold",
    "recall_at_fpr_score",
    "reliability_curve",
    "sigmoid",
    "threshold_at_fpr",
    "threshold_at_source_fpr",
]
