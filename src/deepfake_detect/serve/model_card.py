"""The model card of ``GET /v1/model``: identity, threshold, "uncertain" band, calibration, data fingerprint and
metrics.

Test metrics come from the checkpoint's metadata when it has them (the shipped default model does), else from
the test evaluation in the run folder the weights came from; the run folder's files are named only by
:class:`~deepfake_detect.core.runs.RunDir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_detect.core.checkpoint import read_metadata
from deepfake_detect.core.exceptions import CheckpointError
from deepfake_detect.core.runs import RunDir, read_json
from deepfake_detect.scan.detector import Detector

__all__ = ["model_card"]

# The headline figures of an evaluation report that the card passes on (the report has many more).
TEST_METRIC_KEYS = (
    "n",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "ci95",
    "confusion_matrix",
)


def _scores_these_weights(run: RunDir, det: Detector) -> bool:
    """Whether the run's weights are the detector's (a retrained run of the same name is not)."""
    try:
        return read_metadata(run.model).get("tensor_sha256") == det.metadata["tensor_sha256"]
    except (CheckpointError, ValueError):  # no such run here, or an unreadable one: no metrics from it
        return False


def _runs_of(det: Detector, runs_dir: str | Path) -> list[RunDir]:
    """Folders whose test evaluation scores exactly these weights: the weights' own, and their run's."""
    runs = [RunDir(Path(det.path).parent)] if det.path is not None else []
    run_id = det.metadata.get("run_id")
    if run_id:
        run = RunDir(Path(runs_dir).expanduser() / str(run_id))
        if _scores_these_weights(run, det):
            runs.append(run)
    return runs


def _test_metrics(det: Detector, runs_dir: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Test-split metrics and where they came from: the checkpoint's ``test_metrics``, else its run's."""
    if isinstance(det.metadata.get("test_metrics"), dict):
        return det.metadata["test_metrics"], "checkpoint metadata (test_metrics)"
    for run in _runs_of(det, runs_dir):
        report_path = run.eval_json("test")
        if report_path.is_file():
            report = read_json(report_path)
            return {k: report[k] for k in TEST_METRIC_KEYS if k in report}, str(report_path)
    return None, None


def _threshold(det: Detector) -> dict[str, Any]:
    return {
        "logit": det.threshold_logit,
        "p_fake": float(det.p_fake([det.threshold_logit])[0]),
        "rule": det.metadata.get("threshold_rule"),
    }


def _band(det: Detector) -> dict[str, Any] | None:
    """The band in use, in logits and as p_fake (null ends decide nothing), with its validation coverage."""
    info = det.band_info()
    if info is None:
        return None
    ends = {
        f"{side}_p_fake": None
        if info[f"{side}_logit"] is None
        else float(det.p_fake([info[f"{side}_logit"]])[0])
        for side in ("lower", "upper")
    }
    return {**info, **ends, "validation_coverage": det.metadata.get("abstain_coverage")}


def _calibration(det: Detector) -> dict[str, Any]:
    return {
        "method": "temperature scaling (fitted on validation)",
        "temperature": det.temperature,
        "base_rate": float(det.metadata.get("base_rate", 0.5)),
    }


def model_card(det: Detector, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """What ``GET /v1/model`` answers: identity, threshold, calibration, data fingerprint and metrics.

    Parameters
    ----------
    det : Detector
    runs_dir : path
        Where the weights' training run may be found, for its test metrics when the checkpoint has none.

    Returns
    -------
    dict
        The :class:`~deepfake_detect.serve.schemas.ModelCard` fields.

    Examples
    --------
    An untrained checkpoint whose metadata carries its test metrics, as the shipped default model's does:

    >>> import tempfile
    >>> from deepfake_detect.core.checkpoint import save_checkpoint
    >>> from deepfake_detect.data.transforms import Preprocess
    >>> from deepfake_detect.models import create_model
    >>> from deepfake_detect.scan.detector import load_detector
    >>> weights = Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> meta = {"model": "notebook-cnn", "preprocess": Preprocess(size=32).to_dict(), "class_names": ["real", "fake"],
    ...         "threshold_logit": 0.0, "temperature": 1.0, "test_metrics": {"n": 2, "roc_auc": 1.0}}
    >>> _ = save_checkpoint(weights, create_model("notebook-cnn"), meta)
    >>> card = model_card(load_detector(weights, backend="torch"))
    >>> card["name"], card["threshold"]["p_fake"], card["test_metrics_source"]
    ('notebook-cnn', 0.5, 'checkpoint metadata (test_metrics)')
    """
    meta = det.metadata
    test, source = _test_metrics(det, runs_dir)
    return {
        "name": det.name,
        "version": f"{meta.get('run_id') or det.name}@{meta['tensor_sha256'][:12]}",
        "sha256": meta["tensor_sha256"],
        "run_id": meta.get("run_id"),
        "created": meta.get("created"),
        "code_version": meta.get("code_version"),
        "backend": det.backend,
        "input_size": det.preprocess.size,
        "resize_mode": det.preprocess.resize_mode,
        "explain_available": det.model is not None,
        "threshold": _threshold(det),
        "uncertain_band": _band(det),
        "calibration": _calibration(det),
        "training_data_fingerprint": meta.get("data_fingerprint"),
        "training_data_fingerprints": meta.get("data_fingerprints"),
        "validation_metrics": meta.get("val_metrics"),
        "test_metrics": test,
        "test_metrics_source": source,
    }
