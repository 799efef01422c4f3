"""Metrics: classification figures, thresholds, bootstrap intervals and probability calibration.

Every formula has one owner here: ECE, Brier, the expected cost and the bootstrap are computed nowhere else.
"""

from deepfake_detect.metrics.classification import (
    binary_metrics,
    bootstrap_ci,
    brier_score_loss,
    classification_report_dict,
    expected_calibration_error,
    expected_cost,
    f1_optimal_threshold,
    log_loss_from_logits,
    min_cost_threshold,
    recall_at_fpr_score,
    sigmoid,
    threshold_at_fpr,
)

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
