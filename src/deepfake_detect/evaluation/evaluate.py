"""Evaluation of a trained run on a split (test by default), with thresholds chosen on validation only.

Three threshold rules, all fixed on the validation split: the stored F1-optimal one, the minimum expected cost
for given error costs, and the one that keeps the false-positive rate under a target. The chosen threshold is
applied, unchanged, to the evaluated split.

The data scored is a mix of sources (the run's recorded ones, or the folders given): besides the pooled figures,
each source gets its own row (:func:`~deepfake_detect.metrics.per_source.per_source_rows`), because a pooled AUC
hides a fake family solved by its style and a real source flagged wholesale. A model that stores an "uncertain"
band also gets the band's coverage and the precision of what it decides, pooled and per source.

``launder_seed`` scores the wild-evaluation protocol instead: every image is laundered
(:mod:`~deepfake_detect.data.launder`: a random long side in [128, 1024], then JPEG at a random quality in
[30, 95]) before the usual load path, the image at position ``i`` of its source's sorted listing (reals, then
fakes, each by relative path) with ``launder_rng(seed, i)``, so a source launders alike whichever other sources
are scored beside it. The threshold stays the one chosen on clean validation; the results go to
``eval_<split>_laundered.*`` and never replace the clean ones.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect import metrics
from deepfake_detect.core.deprecation import renamed_keyword
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.runs import RunDir, write_json
from deepfake_detect.core.sources import source_from_record, source_record
from deepfake_detect.data import resolve_data_root
from deepfake_detect.data.dataset import FaceDataset, make_loader
from deepfake_detect.data.launder import LaunderSpec
from deepfake_detect.data.layout import walk_files
from deepfake_detect.data.mix import Source, list_mix_split, parse_sources
from deepfake_detect.data.photos import samples_root
from deepfake_detect.data.samples import IMAGE_EXTENSIONS, Sample
from deepfake_detect.inference.network import Network, Predictions, load_network
from deepfake_detect.inference.onnx import update_metadata
from deepfake_detect.metrics.calibration import coverage_and_precision, two_way_verdicts
from deepfake_detect.metrics.per_source import per_source_rows
from deepfake_detect.training.tracking import attach_to_tracked_run

__all__ = [
    "evaluate",
    "choose_threshold",
    "format_markdown",
    "probe_generalisation",
    "run_data_root",
    "run_sources",
    "resolved_sources",
    "score_split",
    "scoring_detector",
    "per_source_markdown",
]

#: What ``evaluate`` accepts as its data: one folder, or several (a mix), each ``PATH`` or ``PATH:WEIGHT``.
DataSpec = str | os.PathLike[str] | Source | Sequence[str | os.PathLike[str] | Source]

log = logging.getLogger(__name__)


def run_data_root(run: RunDir, data: str | Path | None) -> Path:
    """One data folder to score: ``data`` when given, else the one recorded in the run's config.

    A mix has several: see :func:`run_sources`.

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


def run_sources(run: RunDir, data: DataSpec | None = None) -> list[Source]:
    """The sources to score, each with its data root resolved: ``data`` when given, else the run's recorded mix
    (``data_sources`` in its config), else its one data folder (a source named after the folder).

    Raises
    ------
    DataError
        When there is none, or a folder does not exist.
    """
    if _given(data):
        return resolved_sources(data)
    config = run.read_config()
    recorded = [source_from_record(s) for s in config.get("data_sources") or []]
    if recorded:
        return resolved_sources(recorded)
    if config.get("data_root") is None:
        raise DataError("this run records no data folder; pass --data DIR")
    return resolved_sources(config["data_root"])


def _given(data: DataSpec | None) -> bool:
    return data is not None and not (isinstance(data, list | tuple) and not data)


def resolved_sources(data: DataSpec) -> list[Source]:
    """:func:`~deepfake_detect.data.mix.parse_sources`, with each root resolved to the folder of its splits.

    Examples
    --------
    >>> resolved_sources(["/no/such/folder"])
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no such folder: /no/such/folder
    """
    return [replace(s, root=str(resolve_data_root(s.root))) for s in parse_sources(data)]


def scoring_detector(weights: str | Path, *, runs_dir: str | Path = "runs") -> Network:
    """The model as ``evaluate`` scores it: with its default backend (the int8 graph where the weights make it
    the default, else the torch weights), so that a default ``scan`` gives the same scores."""
    det = load_network(weights, backend="torch", runs_dir=runs_dir)
    return det.with_backend(det.scoring_backend)


def score_split(
    det: Network,
    sources: Sequence[Source],
    split: str,
    *,
    launder_seed: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[list[Sample], Predictions]:
    """The samples of one split of the sources (each tagged with its source) and their logits, with ``det``'s
    backend.

    ``launder_seed`` launders every image first (see the module docstring).
    """
    samples = list_mix_split(sources, split, class_names=tuple(det.metadata["class_names"]))
    if launder_seed is None:
        preds = det.predict_samples(samples, num_workers=num_workers, progress=progress)
    else:
        preds = _laundered_predictions(det, samples, launder_seed, num_workers, progress)
    if preds.n_unreadable:
        log.warning("%s: skipped %d unreadable image(s)", split, preds.n_unreadable)
    return samples, preds


def _laundered_predictions(
    det: Network, samples: list[Sample], seed: int, num_workers: int, progress: bool
) -> Predictions:
    """Logits of laundered images, one source at a time: each image is seeded by its position in its source's
    listing (the samples of a source are contiguous, as :func:`list_mix_split` lists them)."""
    parts, start = [], 0
    for _, group in itertools.groupby(samples, key=lambda s: s.source):
        group = list(group)
        loader, _ = make_loader(
            FaceDataset(group, det.preprocess, launder_seed=seed),
            batch_size=64,
            shuffle=False,
            seed=0,
            num_workers=num_workers,
        )
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc="launder and score", unit="batch", leave=False)
        logits, labels, indices, n_bad = det.predict_loader(loader)
        parts.append((logits, labels, indices + start, n_bad))
        start += len(group)
    logits, labels, indices, n_bad = zip(*parts, strict=True)
    return Predictions(np.concatenate(logits), np.concatenate(labels), np.concatenate(indices), sum(n_bad))


def choose_threshold(
    det: Network,
    data: DataSpec,
    *,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    target_fpr: float | None = None,
    prior: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Pick the threshold rule: cost when costs are given, FPR when a target is given, else the stored one.

    Cost and FPR rules score the (clean) validation split of ``data`` (a folder, or a mix's sources) to choose
    their threshold; the test split is not used.

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
        _, val = score_split(det, resolved_sources(data), "valid", progress=progress)
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
    labels, logits, det: Network, threshold: float, costs: dict[str, Any], n_resamples: int, seed: int
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
    data: DataSpec | None = None,
    *,
    split: str = "test",
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    target_fpr: float | None = None,
    prior: float | None = None,
    save_threshold: bool = False,
    launder_seed: int | None = None,
    num_workers: int = 0,
    n_resamples: int = 1000,
    bootstrap_seed: int = 0,
    runs_dir: str | Path = "runs",
    progress: bool = True,
    seed: int | None = None,
) -> dict[str, Any]:
    """Score a run on a split and write ``eval_<split>.json``, ``eval_<split>.md`` and ``scores_<split>.csv``.

    Parameters
    ----------
    run : str or Path
        A run folder, or a run id under ``runs_dir``.
    data : path or list of paths, optional
        Data set folder, or several (a mix, each ``PATH`` or ``PATH:WEIGHT``; weights do not matter here);
        defaults to the sources recorded in the run.
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
    launder_seed : int, optional
        Launder every image with this seed first and write ``eval_<split>_laundered.*`` instead (the clean files
        are left alone); the threshold is still chosen on clean validation (``--launder --launder-seed N``).
    num_workers : int
        Image decoding (and laundering) processes; 0 decodes in this process. The scores do not depend on it.
    n_resamples, bootstrap_seed : int
        Bootstrap size and seed for the 95% confidence intervals.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Show progress bars.
    seed : int, optional
        Deprecated: the old name of ``bootstrap_seed`` (a ``DeprecationWarning`` says so).

    Returns
    -------
    dict
        The evaluation, in the layout ``evaluate --json`` prints: the pooled figures, ``data_sources``,
        ``per_source`` (one row per source, see :func:`~deepfake_detect.metrics.per_source.per_source_rows`),
        ``abstention`` (the band's coverage and precisions, None without a band) and ``laundering`` (None when
        clean).
    """
    bootstrap_seed = renamed_keyword("seed", seed, "bootstrap_seed", bootstrap_seed, default=0)
    run_dir = RunDir.find(run, runs_dir)
    det = scoring_detector(run_dir.model)
    sources = run_sources(run_dir, data)
    threshold = choose_threshold(
        det, sources, cost_fp=cost_fp, cost_fn=cost_fn, target_fpr=target_fpr, prior=prior, progress=progress
    )
    samples, preds = score_split(
        det, sources, split, launder_seed=launder_seed, num_workers=num_workers, progress=progress
    )
    costs = {"cost_fp": cost_fp or 1.0, "cost_fn": cost_fn or 1.0, "prior": prior}
    names = [samples[int(i)].source for i in preds.indices]
    band = getattr(det, "band", None)
    result = {
        "split": split,
        "n": int(len(preds.logits)),
        "threshold": threshold,
        **_report(preds.labels, preds.logits, det, threshold["logit"], costs, n_resamples, bootstrap_seed),
        "n_unreadable": preds.n_unreadable,
        "prior": prior,
        "model": det.model_info(),
        "data_root": sources[0].root,
        "data_sources": [source_record(s) for s in sources],
        "per_source": per_source_rows(
            preds.labels,
            preds.logits,
            names,
            threshold["logit"],
            band=band,
            n_resamples=n_resamples,
            seed=bootstrap_seed,
        ),
        "abstention": _abstention(det, band, preds.labels, preds.logits),
        "laundering": None if launder_seed is None else _laundering(launder_seed),
    }
    _write_outputs(run_dir, result, sources, samples, preds, det.p_fake(preds.logits, prior=prior))
    if save_threshold:
        _save_threshold(run_dir.model, threshold)
    return result


def _abstention(det: Network, band, labels, logits) -> dict[str, Any] | None:
    """The stored "uncertain" band and, on these scores, its coverage and the precision of what it decides."""
    if band is None:
        return None
    stats = coverage_and_precision(labels, logits, *band)
    return {**det.band_info(), **{k: None if np.isnan(v) else v for k, v in stats.items()}}


def _laundering(seed: int) -> dict[str, Any]:
    spec = LaunderSpec()
    return {
        "seed": seed,
        "long_side": list(spec.long_side),
        "jpeg_quality": list(spec.jpeg_quality),
        "rng": "launder_rng(seed, position in its source's sorted listing)",
    }


def _write_outputs(run_dir: RunDir, result: dict[str, Any], sources, samples, preds, p_fake) -> None:
    split, laundered = result["split"], result["laundering"] is not None
    written = run_dir.eval_json(split, laundered=laundered), run_dir.eval_md(split, laundered=laundered)
    write_json(written[0], result)
    written[1].write_text(format_markdown(result, run_dir.name))
    roots = {s.name: samples_root(s) for s in sources}
    path = run_dir.scores_csv(split, laundered=laundered)
    _write_scores(path, roots, samples, preds, p_fake, result["threshold"]["logit"])
    # A run mirrored in MLflow gets the files and the headline numbers (eval_test_roc_auc, ...) too.
    attach_to_tracked_run(run_dir, written, metrics={f"{written[0].stem}_{k}": v for k, v in result.items()})


def _write_scores(path: Path, roots: dict[str, Path], samples, preds, p_fake, threshold: float) -> None:
    """Per-image scores (``p_fake`` at the evaluation's prior), so reports and error analysis need not run
    the model again. ``path`` is relative to the image's source root; ``source`` comes last, so readers of the
    older five columns read these files unchanged."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "logit", "p_fake", "verdict", "source"])
        verdicts = two_way_verdicts(preds.logits, threshold)
        for i, logit, p, verdict in zip(preds.indices, preds.logits, p_fake, verdicts, strict=True):
            sample = samples[int(i)]
            rel = sample.path.relative_to(roots[sample.source]).as_posix()
            writer.writerow([rel, sample.label, f"{logit:.6f}", f"{p:.6f}", verdict, sample.source])


def _save_threshold(model_path: Path, threshold: dict[str, Any]) -> None:
    # Through update_metadata, so the ONNX graphs exported from these weights decide at the same threshold.
    update_metadata(
        model_path, model_path, {"threshold_logit": threshold["logit"], "threshold_rule": threshold["rule"]}
    )
    log.info("saved threshold %.4f (%s) into %s", threshold["logit"], threshold["rule"], model_path)


def format_markdown(result: dict[str, Any], title: str) -> str:
    """A readable Markdown summary of :func:`evaluate`'s result."""
    ci = result["ci95"]
    t = result["threshold"]
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    laundering = result.get("laundering")
    heading = f"# Evaluation of {title} on {result['split']} (n = {result['n']})"
    rows = [
        heading if laundering is None else heading + f", laundered (seed {laundering['seed']})",
        "",
        f"Threshold rule **{t['rule']}**: logit {t['logit']:.4f}, p_fake {t['p_fake']:.4f} "
        f"(chosen on validation).",
        "",
        *_laundering_lines(laundering),
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
        *_abstention_lines(result.get("abstention")),
        *per_source_markdown(result.get("per_source") or []),
    ]
    return "\n".join(rows) + "\n"


def _laundering_lines(laundering: dict[str, Any] | None) -> list[str]:
    if laundering is None:
        return []
    (side_lo, side_hi), (q_lo, q_hi) = laundering["long_side"], laundering["jpeg_quality"]
    return [
        f"Laundered: each image resized to a long side drawn from [{side_lo}, {side_hi}] px (Lanczos), then "
        f"JPEG at a quality drawn from [{q_lo}, {q_hi}]; the image at position i of its source's sorted "
        f"listing uses `launder_rng({laundering['seed']}, i)`. The threshold is the one chosen on clean "
        "validation.",
        "",
    ]


def _abstention_lines(band: dict[str, Any] | None) -> list[str]:
    if band is None:
        return []
    # A null end decides nothing on its side: the band reaches to infinity there.
    lower = "-inf" if band["lower_logit"] is None else f"{band['lower_logit']:.4f}"
    upper = "inf" if band["upper_logit"] is None else f"{band['upper_logit']:.4f}"
    return [
        "",
        f"Uncertain band [{lower}, {upper}) in logits (chosen on validation for precision "
        f"{band.get('target_precision')}): coverage {_fmt(band['coverage'])} (share decided), precision of the "
        f"decided share {_fmt(band['accuracy_decided'])} (fake {_fmt(band['precision_fake'])}, real "
        f"{_fmt(band['precision_real'])}).",
        *(
            f"Nothing is called {side}: on validation no {side} verdict reached that precision."
            for side, end in (("real", band["lower_logit"]), ("fake", band["upper_logit"]))
            if end is None
        ),
    ]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _with_ci(row: dict[str, Any], key: str) -> str:
    value, ci = row.get(key), row.get(f"{key}_ci95")
    if value is None:
        return "–"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def per_source_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The per-source rows as Markdown lines (none for no rows).

    Examples
    --------
    >>> row = {"source": "utkface", "n": 2, "n_real": 2, "n_fake": 0, "auc_against": "pooled fakes",
    ...        "roc_auc": 0.5, "accuracy": 0.5, "fpr": 0.5}
    >>> per_source_markdown([row])[-1]
    '| utkface | 2 (2 / 0) | 0.5000 (pooled fakes) | 0.5000 | – | – | 0.5000 |'
    """
    if not rows:
        return []
    band = any("abstention" in r for r in rows)
    lines = [
        "",
        "Per source (fake-only sources against the pooled reals of the split; recall at 1% FPR at the threshold "
        "flagging 1% of those pooled reals; FPR: the source's reals called fake at the stored threshold; "
        "95% bootstrap intervals):",
        "",
        "| source | n (real / fake) | AUC | accuracy | recall | recall@1%FPR | FPR |"
        + (" coverage |" * band),
        "|---|---|---|---|---|---|---|" + "---|" * band,
    ]
    for r in rows:
        cells = [
            r["source"],
            f"{r['n']} ({r['n_real']} / {r['n_fake']})",
            _with_ci(r, "roc_auc") + (f" ({r['auc_against']})" if r.get("auc_against") else ""),
            *(_with_ci(r, key) for key in ("accuracy", "recall", "recall_at_1pct_fpr", "fpr")),
        ]
        if band:
            cells.append(_fmt((r.get("abstention") or {}).get("coverage")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _image_samples(folder: Path, label: int) -> list[Sample]:
    """The images below ``folder`` (hidden names left out), sorted by path, all with ``label``."""
    files = sorted(folder / rel for rel in walk_files(folder, suffixes=IMAGE_EXTENSIONS))
    if not files:
        raise DataError(f"no images in {folder}")
    return [Sample(path=p, label=label) for p in files]


def probe_generalisation(
    run: str | Path,
    fakes: str | Path,
    reals: str | Path,
    *,
    runs_dir: str | Path = "runs",
    n_resamples: int = 1000,
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
        ``false_positive_rate`` at it, the counts, ``ci95`` (stratified bootstrap intervals of the three, with
        ``n_resamples`` resamples) and the ``backend`` that scored them.
    """
    det = scoring_detector(RunDir.find(run, runs_dir).model if Path(run).is_dir() else run, runs_dir=runs_dir)
    samples = _image_samples(Path(reals), 0) + _image_samples(Path(fakes), 1)
    preds = det.predict_samples(samples)
    threshold = det.threshold_logit
    verdict = metrics.is_fake(preds.logits, threshold)
    fake, real = preds.labels == 1, preds.labels == 0
    intervals = metrics.bootstrap_cis(
        preds.labels,
        preds.logits,
        {
            "roc_auc": lambda y, z: metrics.binary_metrics(y, z, threshold)["roc_auc"],
            "recall": lambda y, z: float(np.mean(metrics.is_fake(z[y == 1], threshold))),
            "false_positive_rate": lambda y, z: float(np.mean(metrics.is_fake(z[y == 0], threshold))),
        },
        n_resamples=n_resamples,
        seed=0,
    )
    return {
        "n_fake": int(fake.sum()),
        "n_real": int(real.sum()),
        "roc_auc": metrics.binary_metrics(preds.labels, preds.logits, threshold)["roc_auc"],
        "recall": float(verdict[fake].mean()),
        "false_positive_rate": float(verdict[real].mean()),
        "ci95": {name: [float(low), float(high)] for name, (low, high) in intervals.items()},
        "backend": det.backend,
    }
