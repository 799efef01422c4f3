"""Evaluation of a trained run on a split (test by default), with thresholds chosen on validation only.

Three threshold rules, all fixed on the validation split: the stored F1-optimal one, the minimum expected cost
for given error costs, and the one that keeps the false-positive rate under a target. The chosen threshold is
applied, unchanged, to the evaluated split.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect import metrics
from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.runs import RunDir, write_json
from deepfake_detect.data import list_split, resolve_data_root
from deepfake_detect.data.samples import Sample, is_image_name
from deepfake_detect.scan.detector import Detector, load_detector

__all__ = ["evaluate", "choose_threshold", "format_markdown", "probe_generalisation", "run_data_root"]

log = logging.getLogger(__name__)


def run_data_root(run: RunDir, data: str | Path | None) -> Path:
    """The data folder to score: ``data`` when given, else the one recorded in the run's config.

    Raises
    ------
    DataError
        When neither is there.
    """
    if data is not None:
        return resolve_data_root(data)
    recorded = run.read_config().get("data_root")
    if recorded is None:
        raise DataError("this run records no data folder; pass --data DIR")
    return resolve_data_root(recorded)


def _scores(det: Detector, root: Path, split: str, progress: bool) -> tuple[list, Any]:
    samples = list_split(root, split, class_names=tuple(det.metadata["class_names"]))
    preds = det.predict_samples(samples, progress=progress)
    if preds.n_unreadable:
        log.warning("%s: skipped %d unreadable image(s)", split, preds.n_unreadable)
    return samples, preds


def choose_threshold(
    det: Detector,
    root: Path,
    *,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    target_fpr: float | None = None,
    prior: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Pick the threshold rule: cost when costs are given, FPR when a target is given, else the stored one.

    Cost and FPR rules score the validation split to choose their threshold; the test split is not used.

    Returns
    -------
    dict
        ``rule``, ``logit`` and ``p_fake`` (at ``prior``), plus the rule's parameters.
    """
    if cost_fp is None and cost_fn is None and target_fpr is None:
        rule: dict[str, Any] = {
            "rule": det.metadata.get("threshold_rule", "f1"),
            "logit": det.threshold_logit,
        }
    else:
        _, val = _scores(det, root, "valid", progress)
        if target_fpr is not None:
            logit = metrics.threshold_at_fpr(val.labels, val.logits, target_fpr)
            rule = {"rule": "target_fpr", "logit": logit, "target_fpr": target_fpr}
        else:
            fp, fn = cost_fp or 1.0, cost_fn or 1.0
            logit = metrics.min_cost_threshold(val.labels, val.logits, cost_fp=fp, cost_fn=fn, prior=prior)
            rule = {"rule": "min_cost", "logit": logit, "cost_fp": fp, "cost_fn": fn}
    rule["logit"] = float(rule["logit"])
    rule["p_fake"] = float(det.p_fake(np.array([rule["logit"]]), prior=prior)[0])
    return rule


def _report(
    labels, logits, det: Detector, threshold: float, costs: dict[str, Any], n_resamples: int, seed: int
) -> dict[str, Any]:
    """The metrics of a scored split at the threshold chosen beforehand, in the layout of the JSON file."""
    stats = metrics.binary_metrics(labels, logits, threshold)
    cm = stats.pop("confusion_matrix")
    # Judged at the calibration base rate, where the prior terms cancel: p_fake = sigmoid(logit / T).
    effect = metrics.calibration_effect(labels, logits, det.temperature)
    return {
        **stats,
        "ci95": metrics.ci95_at_threshold(labels, logits, threshold, n_resamples=n_resamples, seed=seed),
        "confusion_matrix": cm,
        "classification_report": metrics.classification_report_dict(
            labels, logits, threshold, tuple(det.metadata["class_names"])
        ),
        "calibration": {
            "ece_raw": effect["ece_before"],
            "ece_calibrated": effect["ece_after"],
            "brier_raw": effect["brier_before"],
            "brier_calibrated": effect["brier_after"],
        },
        "expected_cost": float(metrics.expected_cost_curve(labels, logits, [threshold], **costs)[0]),
    }


def evaluate(
    run: str | Path,
    data: str | Path | None = None,
    *,
    split: str = "test",
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    target_fpr: float | None = None,
    prior: float | None = None,
    save_threshold: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> dict[str, Any]:
    """Score a run on a split and write ``eval_<split>.json``, ``eval_<split>.md`` and ``scores_<split>.csv``.

    Parameters
    ----------
    run : str or Path
        A run folder, or a run id under ``runs_dir``.
    data : path, optional
        Data set folder; defaults to the one recorded in the run.
    split : str
        Split to score; ``test`` by default. Thresholds are never chosen on it.
    cost_fp, cost_fn : float, optional
        Use the minimum-expected-cost threshold on validation for these error costs.
    target_fpr : float, optional
        Use the validation threshold that keeps the false-positive rate at or under this.
    prior : float, optional
        Expected share of fakes where the model is used, for ``p_fake`` and the cost rule; ``None`` keeps the
        validation split's share. Calibration metrics are always judged at the validation share.
    save_threshold : bool
        Write the chosen rule's threshold into the run's checkpoint.
    n_resamples, seed : int
        Bootstrap size and seed for the 95% confidence intervals.

    Returns
    -------
    dict
        The evaluation, in the layout ``evaluate --json`` prints.
    """
    run_dir = RunDir.find(run, runs_dir)
    det = load_detector(run_dir.model, backend="torch")
    root = run_data_root(run_dir, data)
    threshold = choose_threshold(
        det, root, cost_fp=cost_fp, cost_fn=cost_fn, target_fpr=target_fpr, prior=prior, progress=progress
    )
    samples, preds = _scores(det, root, split, progress)
    costs = {"cost_fp": cost_fp or 1.0, "cost_fn": cost_fn or 1.0, "prior": prior}
    result = {
        "split": split,
        "n": int(len(preds.logits)),
        "threshold": threshold,
        **_report(preds.labels, preds.logits, det, threshold["logit"], costs, n_resamples, seed),
        "n_unreadable": preds.n_unreadable,
        "prior": prior,
        "model": det.model_info(),
        "data_root": str(root),
    }
    _write_outputs(run_dir, result, root, samples, preds, det.p_fake(preds.logits, prior=prior))
    if save_threshold:
        _save_threshold(run_dir.model, threshold)
    return result


def _write_outputs(run_dir: RunDir, result: dict[str, Any], root: Path, samples, preds, p_fake) -> None:
    split = result["split"]
    write_json(run_dir.eval_json(split), result)
    run_dir.eval_md(split).write_text(format_markdown(result, run_dir.name))
    _write_scores(run_dir.scores_csv(split), root, samples, preds, p_fake, result["threshold"]["logit"])


def _write_scores(path: Path, root: Path, samples, preds, p_fake, threshold: float) -> None:
    """Per-image scores (``p_fake`` at the evaluation's prior), so reports and error analysis need not run
    the model again."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "logit", "p_fake", "verdict"])
        for i, logit, p in zip(preds.indices, preds.logits, p_fake, strict=True):
            sample = samples[int(i)]
            rel = sample.path.relative_to(root).as_posix()
            writer.writerow(
                [rel, sample.label, f"{logit:.6f}", f"{p:.6f}", "fake" if logit >= threshold else "real"]
            )


def _save_threshold(model_path: Path, threshold: dict[str, Any]) -> None:
    state, meta = load_checkpoint(model_path)
    meta["threshold_logit"] = threshold["logit"]
    meta["threshold_rule"] = threshold["rule"]
    save_checkpoint(model_path, state, meta)
    log.info("saved threshold %.4f (%s) into %s", threshold["logit"], threshold["rule"], model_path)


def format_markdown(result: dict[str, Any], title: str) -> str:
    """A readable Markdown summary of :func:`evaluate`'s result."""
    ci = result["ci95"]
    t = result["threshold"]
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    rows = [
        f"# Evaluation of {title} on {result['split']} (n = {result['n']})",
        "",
        f"Threshold rule **{t['rule']}**: logit {t['logit']:.4f}, p_fake {t['p_fake']:.4f} "
        f"(chosen on validation).",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc"):
        interval = f"[{ci[name][0]:.4f}, {ci[name][1]:.4f}]" if name in ci else ""
        rows.append(f"| {name} | {result[name]:.4f} | {interval} |")
    rows += [
        "",
        "Confusion matrix (fake is positive):",
        "",
        "| | predicted real | predicted fake |",
        "|---|---|---|",
        f"| real | {tn} | {fp} |",
        f"| fake | {fn} | {tp} |",
        "",
        "| class | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["classification_report"].items():
        if isinstance(row, dict):
            rows.append(
                f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                f"{int(row['support'])} |"
            )
    cal = result["calibration"]
    rows += [
        "",
        f"Calibration: ECE {cal['ece_raw']:.4f} raw, {cal['ece_calibrated']:.4f} after temperature "
        f"scaling; Brier {cal['brier_raw']:.4f} raw, {cal['brier_calibrated']:.4f} after.",
    ]
    return "\n".join(rows) + "\n"


def _image_samples(folder: Path, label: int) -> list[Sample]:
    files = sorted(p for p in Path(folder).rglob("*") if is_image_name(p.name))
    if not files:
        raise DataError(f"no images in {folder}")
    return [Sample(path=p, label=label) for p in files]


def probe_generalisation(
    run: str | Path, fakes: str | Path, reals: str | Path, *, runs_dir: str | Path = "runs"
) -> dict[str, Any]:
    """Score fakes from a generator the model never saw against held-out reals.

    Parameters
    ----------
    run : str or Path
        Run folder, run id or checkpoint.
    fakes : path
        Folder of generated faces (e.g. ``stylegan3-probe/fake``).
    reals : path
        Folder of real faces of the same framing (e.g. ``faces140k/test/real``).

    Returns
    -------
    dict
        ``roc_auc`` (fakes vs reals), ``recall`` of the fakes at the model's stored threshold, the reals'
        ``false_positive_rate`` at it, and the counts.
    """
    det = load_detector(
        RunDir.find(run, runs_dir).model if Path(run).is_dir() else run,
        runs_dir=runs_dir,
        backend="torch",
    )
    samples = _image_samples(Path(reals), 0) + _image_samples(Path(fakes), 1)
    preds = det.predict_samples(samples)
    verdict = preds.logits >= det.threshold_logit
    fake, real = preds.labels == 1, preds.labels == 0
    return {
        "n_fake": int(fake.sum()),
        "n_real": int(real.sum()),
        "roc_auc": metrics.binary_metrics(preds.labels, preds.logits, det.threshold_logit)["roc_auc"],
        "recall": float(verdict[fake].mean()),
        "false_positive_rate": float(verdict[real].mean()),
    }
