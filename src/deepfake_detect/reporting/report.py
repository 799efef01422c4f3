"""A self-contained HTML report of one run: figures people would rather look at than read.

``report(run)`` writes the run's report page (every image embedded as a base64 PNG, no scripts, no external
style sheets, nothing fetched from a network) and each figure again as a PNG in the run's plots folder. It
reads what training and :func:`deepfake_detect.evaluation.evaluate.evaluate` left in the run folder and runs
the evaluation first when its files are missing; the model is not run otherwise. A run evaluated on a data mix
gets a per-source table, and a laundered evaluation (``evaluate --launder``) its own section when it exists.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from deepfake_detect import metrics
from deepfake_detect.core import html
from deepfake_detect.core.runs import RunDir, read_json
from deepfake_detect.evaluation.robustness import figure_path as robustness_figure_path
from deepfake_detect.reporting.scores import (
    Scores,
    ensure_evaluated,
    image_files,
    load_thumbnail,
    read_scores,
    source_roots,
)
from deepfake_detect.training.tracking import attach_to_tracked_run
from deepfake_detect.viz import plots

# The scores' readers are re-exported: callers of reporting.report found them here before they moved.
__all__ = [
    "report",
    "compare_roc",
    "read_scores",
    "ensure_evaluated",
    "Scores",
    "source_roots",
    "image_files",
]

log = logging.getLogger(__name__)

SAMPLES_PER_CLASS = 8
METRIC_NAMES = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc")


# --------------------------------------------------------------------------------------------- sections


@dataclass
class _Section:
    """One part of the report: a heading, an optional figure (saved as ``plots/<slug>.png``) and HTML text."""

    slug: str
    title: str
    body: str = ""
    png: bytes | None = None
    alt: str = ""


@dataclass
class _Context:
    run_dir: RunDir
    split: str
    ev: dict[str, Any]
    scores: Scores
    files: list[Path]
    config: dict[str, Any]
    run_metrics: dict[str, Any]
    class_names: tuple[str, str]
    cost_fp: float
    cost_fn: float


def _samples_section(ctx: _Context) -> _Section:
    rng = np.random.default_rng(0)  # a fixed pick, so two reports of one run show the same faces
    images, captions, colours = [], [], []
    for label in (0, 1):
        idx = np.flatnonzero(ctx.scores.labels == label)
        picked = np.sort(rng.choice(idx, size=min(SAMPLES_PER_CLASS, idx.size), replace=False))
        for i in picked:
            images.append(load_thumbnail(ctx.files[i]))
            wrong = bool(ctx.scores.wrong[i])
            note = " (error)" if wrong else ""
            captions.append(f"true {ctx.class_names[label]}{note}\np_fake {ctx.scores.p_fake[i]:.3f}")
            colours.append("red" if wrong else "black")
        pad = -len(picked) % SAMPLES_PER_CLASS  # each class starts on a new row
        images, captions, colours = images + [None] * pad, captions + [""] * pad, colours + ["black"] * pad
    fig = plots.image_grid(
        images,
        captions,
        colours=colours,
        columns=SAMPLES_PER_CLASS,
        title=f"Sample {ctx.split} faces: {ctx.class_names[0]} (top), {ctx.class_names[1]} (bottom)",
    )
    body = (
        f"<p>Up to {SAMPLES_PER_CLASS} images a class drawn at random (seed 0) from the {ctx.split} split "
        f"of <code>{html.escape(_data_text(ctx.ev))}</code>, with the calibrated p_fake. Red captions are errors at "
        "the chosen threshold.</p>"
    )
    return _Section("sample_faces", "Sample faces", body, plots.figure_png(fig), "sample faces grid")


def _read_history(run_dir: RunDir) -> list[dict[str, str]]:
    if not run_dir.history.is_file():
        return []
    with open(run_dir.history, newline="") as handle:
        return list(csv.DictReader(handle))


def _learning_section(ctx: _Context) -> _Section:
    history = _read_history(ctx.run_dir)
    best = ctx.run_metrics.get("best_epoch")
    if not history:
        return _Section("learning_curves", "Learning curves", "<p>This run has no training history.</p>")
    fig = plots.learning_curves(history, best_epoch=best)
    body = (
        f"<p>{len(history)} epoch(s); the weights kept are those of epoch {best} (best validation "
        f"{html.escape(str(ctx.config.get('monitor', 'metric')))}). Validation accuracy here is at logit 0, "
        "before the threshold is chosen.</p>"
    )
    return _Section("learning_curves", "Learning curves", body, plots.figure_png(fig), "learning curves")


def _roc(labels: np.ndarray, logits: np.ndarray) -> plots.RocCurve:
    fpr, tpr, _ = roc_curve(labels, logits)
    return plots.RocCurve(fpr, tpr, float(roc_auc_score(labels, logits)))


def _precision_recall(labels: np.ndarray, logits: np.ndarray) -> plots.PrCurve:
    precision, recall, _ = precision_recall_curve(labels, logits)
    ap = float(average_precision_score(labels, logits))
    return plots.PrCurve(recall, precision, ap, fake_share=float(labels.mean()))


def _operating_point(labels: np.ndarray, logits: np.ndarray, threshold_logit: float) -> plots.OperatingPoint:
    """The threshold's rates; NaN for a class absent from the split, precision 1 when nothing is called fake."""
    pred = metrics.is_fake(logits, threshold_logit)
    tpr = pred[labels == 1].mean() if (labels == 1).any() else np.nan
    fpr = pred[labels == 0].mean() if (labels == 0).any() else np.nan
    precision = (labels[pred] == 1).mean() if pred.any() else 1.0
    return plots.OperatingPoint(float(fpr), float(tpr), float(precision))


def _roc_section(ctx: _Context) -> _Section:
    s, t = ctx.scores, ctx.ev["threshold"]
    labels, logits = np.asarray(s.labels), np.asarray(s.logits, dtype=float)
    point = _operating_point(labels, logits, t["logit"])
    fig = plots.roc_pr_curves(_roc(labels, logits), _precision_recall(labels, logits), point)
    body = (
        f"<p>Fake is the positive class. The dot is the chosen threshold (rule <b>{html.escape(t['rule'])}"
        f"</b>, logit {t['logit']:.4f}, p_fake {t['p_fake']:.4f}), fixed on validation and applied unchanged "
        f"to {ctx.split}.</p>"
    )
    return _Section("roc_pr", "ROC and precision-recall", body, plots.figure_png(fig), "ROC and PR curves")


def _confusion_section(ctx: _Context) -> _Section:
    fig = plots.confusion_matrix_figure(ctx.ev["confusion_matrix"], ctx.class_names)
    (tn, fp), (fn, tp) = ctx.ev["confusion_matrix"]
    body = f"<p>{fp} real photo(s) called fake and {fn} fake(s) missed, out of {ctx.ev['n']} images.</p>"
    return _Section("confusion_matrix", "Confusion matrix", body, plots.figure_png(fig), "confusion matrix")


def _histogram_section(ctx: _Context) -> _Section:
    s = ctx.scores
    fig = plots.score_histograms(s.labels, s.logits, ctx.ev["threshold"]["logit"], ctx.class_names)
    body = "<p>Overlap between the two histograms is where errors live; the dashed line is the threshold.</p>"
    return _Section("score_histograms", "Score histograms", body, plots.figure_png(fig), "score histograms")


def _calibration_text(cal: dict[str, float], temperature: float, split: str, n: int) -> str:
    """Say plainly whether temperature scaling helped on this split; it is fitted on validation only."""
    lines = [
        f"Temperature scaling (T = {temperature:.3f}, fitted on validation) on {split} (n = {n}): "
        f"ECE {cal['ece_before']:.4f} before, {cal['ece_after']:.4f} after; "
        f"Brier {cal['brier_before']:.4f} before, {cal['brier_after']:.4f} after."
    ]
    if cal["ece_after"] < cal["ece_before"]:
        lines.append("Calibration lowered ECE on this split.")
    else:
        lines.append(
            f"<b>Calibration did not lower ECE on this split</b> ({cal['ece_before']:.4f} → "
            f"{cal['ece_after']:.4f}): the temperature fitted on validation did not carry over to {split}."
        )
    if cal["brier_after"] >= cal["brier_before"]:
        lines.append("<b>The Brier score did not improve either.</b>")
    if n < 1000:
        lines.append(f"With {n} images ECE is noisy: a few images decide each bin.")
    return "<p>" + " ".join(lines) + "</p>"


def _calibration_section(ctx: _Context) -> _Section:
    s = ctx.scores
    temperature = float(ctx.run_metrics.get("temperature", ctx.ev["model"]["temperature"]))
    cal = metrics.calibration_effect(s.labels, s.logits, temperature)
    summary = (
        f"ECE {cal['ece_before']:.4f} → {cal['ece_after']:.4f}, "
        f"Brier {cal['brier_before']:.4f} → {cal['brier_after']:.4f} (before → after)"
    )
    before = metrics.reliability_curve(s.labels, metrics.sigmoid(s.logits))
    after = metrics.reliability_curve(s.labels, metrics.calibrated_p_fake(s.logits, temperature))
    fig = plots.reliability_diagram(before, after, summary=summary)
    body = _calibration_text(cal, temperature, ctx.split, len(s.labels))
    val = ctx.run_metrics.get("val_calibration")
    if val:
        body += (
            f"<p>On validation, where T was fitted: ECE {val['ece_before']:.4f} → {val['ece_after']:.4f}, "
            f"Brier {val['brier_before']:.4f} → {val['brier_after']:.4f}.</p>"
        )
    return _Section("reliability", "Calibration", body, plots.figure_png(fig), "reliability diagram")


def _metrics_section(ctx: _Context) -> _Section:
    ev, ci = ctx.ev, ctx.ev.get("ci95", {})
    rows: list[list[Any]] = []
    for name in METRIC_NAMES:
        interval = f"[{ci[name][0]:.4f}, {ci[name][1]:.4f}]" if name in ci else ""
        rows.append([name, float(ev[name]), interval])
    rows.append(
        ["average_precision", float(average_precision_score(ctx.scores.labels, ctx.scores.logits)), ""]
    )
    t = ev["threshold"]
    rows.append(
        [f"expected_cost (FP:FN = {t.get('cost_fp', 1):g}:{t.get('cost_fn', 1):g})", ev["expected_cost"], ""]
    )
    body = (
        f"<p>{ev['split']} split, n = {ev['n']}. Threshold rule <b>{html.escape(t['rule'])}</b> "
        f"(logit {t['logit']:.4f}, p_fake {t['p_fake']:.4f}), chosen on validation. "
        "95% intervals: stratified bootstrap.</p>" + html.table(["metric", "value", "95% CI"], rows)
    )
    report_rows = [
        [name, r["precision"], r["recall"], r["f1-score"], int(r["support"])]
        for name, r in ev.get("classification_report", {}).items()
        if isinstance(r, dict)
    ]
    if report_rows:
        body += "<h3>Per class</h3>" + html.table(
            ["class", "precision", "recall", "f1", "support"], report_rows
        )
    return _Section("metrics", "Metrics", body)


def _data_text(ev: Mapping[str, Any]) -> str:
    """The evaluated folders: the data root, or each source's name and root for a mix."""
    sources = ev.get("data_sources") or []
    if len(sources) < 2:
        return str(ev["data_root"])
    return ", ".join(f"{s['name']} ({s['root']})" for s in sources)


PER_SOURCE_FIGURES = ("roc_auc", "accuracy", "recall", "recall_at_1pct_fpr", "fpr")


def _cell(row: Mapping[str, Any], key: str) -> str:
    value, ci = row.get(key), row.get(f"{key}_ci95")
    if value is None:
        return "–"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def _per_source_table(rows: Sequence[Mapping[str, Any]]) -> str:
    band = any("abstention" in r for r in rows)
    columns = ["source", "n (real / fake)", "AUC against", *PER_SOURCE_FIGURES] + ["coverage"] * band
    cells = []
    for r in rows:
        line = [r["source"], f"{r['n']} ({r['n_real']} / {r['n_fake']})", r.get("auc_against") or "–"]
        line += [_cell(r, key) for key in PER_SOURCE_FIGURES]
        if band:
            coverage = (r.get("abstention") or {}).get("coverage")
            line.append("–" if coverage is None else f"{coverage:.4f}")
        cells.append(line)
    return html.table(columns, cells)


_PER_SOURCE_NOTE = (
    "<p>One row per source, with 95% bootstrap intervals. AUC of a fake-only source is against the pooled reals "
    "of the split, of a real-only source against the pooled fakes. Accuracy, recall and FPR (the share of the "
    "source's reals called fake) are at the stored threshold; recall at 1% FPR is at the threshold that flags "
    "1% of the split's pooled reals. A pooled AUC can hide a source solved by its style or flagged wholesale: "
    "read these rows.</p>"
)


def _per_source_section(ctx: _Context) -> _Section | None:
    rows = ctx.ev.get("per_source")
    if not rows:
        return None  # an evaluation written before per-source rows existed
    return _Section("per_source", "Per source", _PER_SOURCE_NOTE + _per_source_table(rows))


def _laundered_section(ctx: _Context) -> _Section | None:
    path = ctx.run_dir.eval_json(ctx.split, laundered=True)
    if not path.is_file():
        return None  # written by `evaluate --launder`, when someone has run it
    ev = read_json(path)
    laundering, clean, ci = ev.get("laundering") or {}, ctx.ev, ev.get("ci95", {})
    rows = [
        [
            name,
            float(ev[name]),
            f"[{ci[name][0]:.4f}, {ci[name][1]:.4f}]" if name in ci else "",
            clean.get(name),
        ]
        for name in METRIC_NAMES
    ]
    body = (
        f"<p>The {ctx.split} split laundered with seed {laundering.get('seed')}: each image resized to a long "
        f"side drawn from {laundering.get('long_side')} px, then JPEG at a quality drawn from "
        f"{laundering.get('jpeg_quality')}, at the threshold chosen on clean validation "
        f"(logit {ev['threshold']['logit']:.4f}); n = {ev['n']}.</p>"
        + html.table(["metric", "laundered", "95% CI", "clean"], rows)
    )
    if ev.get("per_source"):
        body += "<h3>Per source, laundered</h3>" + _per_source_table(ev["per_source"])
    return _Section("laundered", "Laundered", body)


def _cost_section(ctx: _Context) -> _Section:
    s, ev = ctx.scores, ctx.ev
    prior = ev.get("prior")
    chosen = float(ev["threshold"]["logit"])
    lo, hi = float(min(s.logits.min(), chosen)), float(max(s.logits.max(), chosen))
    pad = max(0.05 * (hi - lo), 1e-3)  # relative: an untrained model's logits may span only 0.01
    grid = np.unique(np.r_[np.linspace(lo - pad, hi + pad, 600), s.logits, chosen])
    costs = metrics.expected_cost_curve(
        s.labels, s.logits, grid, cost_fp=ctx.cost_fp, cost_fn=ctx.cost_fn, prior=prior
    )
    best = int(np.argmin(costs))
    chosen_cost = float(costs[np.searchsorted(grid, chosen)])  # the grid holds the chosen threshold
    label = f"false positive : false negative = {ctx.cost_fp:g} : {ctx.cost_fn:g}"
    fig = plots.cost_curve(
        grid, costs, chosen=(chosen, chosen_cost), best=(grid[best], costs[best]), label=label
    )
    body = (
        f"<p>Expected cost per image on {ctx.split} for costs {label}"
        f"{'' if prior is None else f' at a prior of {prior:g} fakes'}. The chosen threshold "
        f"(rule {html.escape(ev['threshold']['rule'])}) costs {chosen_cost:.4f}; the lowest on this split, "
        f"{costs[best]:.4f}, could only be found by looking at the "
        f"{ctx.split} labels, so it is a bound, not a "
        "choice.</p>"
    )
    return _Section("cost_curve", "Cost curve", body, plots.figure_png(fig), "cost curve")


ROBUSTNESS_COLUMNS = ("condition", "roc_auc", "accuracy", "recall_at_1pct_fpr")


def _robustness_rows(data: Any) -> list[dict[str, Any]]:
    """Rows from ``robustness.json``: a list of rows, a dict holding one, or a dict keyed by condition."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for key in ("rows", "conditions", "results"):
            if isinstance(data.get(key), list):
                return _robustness_rows(data[key])
        return [{"condition": k, **v} for k, v in data.items() if isinstance(v, dict)]
    return []


def _robustness_section(ctx: _Context) -> _Section | None:
    path = ctx.run_dir.robustness
    if not path.is_file():
        return None  # written by the robustness command, when someone has run it
    try:
        rows = _robustness_rows(read_json(path))
    except (OSError, ValueError) as err:
        return _Section(
            "robustness", "Robustness", f"<p>{path.name} could not be read: {html.escape(err)}</p>"
        )
    extra = [k for r in rows for k in r if k not in ROBUSTNESS_COLUMNS and k != "per_source"]
    columns = list(ROBUSTNESS_COLUMNS) + list(dict.fromkeys(extra))
    body = html.table(columns, [[r.get(c) for c in columns] for r in rows]) if rows else "<p>No rows.</p>"
    body += _robustness_by_source(rows)
    png_path = robustness_figure_path(ctx.run_dir)
    png = png_path.read_bytes() if png_path.is_file() else None
    return _Section("robustness", "Robustness", body, png, "robustness")


def _robustness_by_source(rows: Sequence[Mapping[str, Any]]) -> str:
    """A condition-by-source AUC table, when the rows carry per-source figures of more than one source."""
    names = list(dict.fromkeys(s["source"] for r in rows for s in r.get("per_source") or []))
    if len(names) < 2:
        return ""
    cells = []
    for r in rows:
        by_name = {s["source"]: s for s in r.get("per_source") or []}
        cells.append([r.get("condition")] + [(by_name.get(n) or {}).get("roc_auc") for n in names])
    return "<h3>AUC per source</h3>" + html.table(["condition", *names], cells)


def _dict_section(slug: str, title: str, values: dict[str, Any]) -> _Section:
    # repr keeps every digit of a setting (lr 1e-05 must not print as 0.0000, as a metric would).
    rows = [[k, repr(v) if isinstance(v, float) else v] for k, v in values.items()]
    return _Section(slug, title, html.table(["key", "value"], rows))


def _render(title: str, meta: str, sections: list[_Section]) -> str:
    nav = " ".join(f'<a href="#{s.slug}">{html.escape(s.title)}</a>' for s in sections)
    parts = [f"<p class='meta'>{meta}</p><nav>{nav}</nav>"]
    for s in sections:
        parts.append(f'<section id="{s.slug}"><h2>{html.escape(s.title)}</h2>')
        if s.png is not None:
            parts.append(html.img(s.png, s.alt))
        parts.append(s.body + "</section>")
    return html.page(title, parts)


def _load_context(run_dir: RunDir, ev: dict[str, Any], split: str, cost_fp, cost_fn) -> _Context:
    config = run_dir.read_config()
    scores = read_scores(run_dir.scores_csv(split))
    return _Context(
        run_dir=run_dir,
        split=split,
        ev=ev,
        scores=scores,
        files=image_files(scores, *source_roots(ev)),
        config=config,
        run_metrics=run_dir.read_metrics(),
        class_names=tuple(config.get("class_names", ("real", "fake"))),
        cost_fp=1.0 if cost_fp is None else float(cost_fp),
        cost_fn=1.0 if cost_fn is None else float(cost_fn),
    )


SECTIONS: tuple[Callable[[_Context], _Section | None], ...] = (
    _samples_section,
    _metrics_section,
    _per_source_section,
    _laundered_section,
    _learning_section,
    _roc_section,
    _confusion_section,
    _histogram_section,
    _calibration_section,
    _cost_section,
    _robustness_section,
)


def report(
    run: str | Path,
    data: str | Path | Sequence[str | Path] | None = None,
    *,
    split: str = "test",
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = False,
) -> Path:
    """Write ``report.html`` and ``plots/*.png`` for a run; evaluate it first if ``split`` has no scores.

    Parameters
    ----------
    run : str or Path
        A run folder, or a run id under ``runs_dir``.
    data : path or list of paths, optional
        Data set folder (or a mix's folders), for the sample faces and a missing evaluation; defaults to the
        evaluated ones.
    split : str
        The evaluated split (``test`` by default).
    cost_fp, cost_fn : float, optional
        Error costs for the cost curve (1 each by default). Only when the evaluation is missing do they also
        pick its threshold (minimum cost on validation); otherwise the evaluation's threshold is shown.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Progress bars when the evaluation has to run.

    Returns
    -------
    Path
        The written ``report.html``.
    """
    run_dir = RunDir.find(run, runs_dir)
    ev = ensure_evaluated(run_dir, data, split, cost_fp=cost_fp, cost_fn=cost_fn, progress=progress)
    if data is not None:
        roots, default = source_roots(ev, data)  # the folders given replace the recorded ones
        sources = [{"name": name, "root": str(root)} for name, root in roots.items()]
        ev = {**ev, "data_root": str(default), "data_sources": sources}
    ctx = _load_context(run_dir, ev, split, cost_fp, cost_fn)
    sections = [s for s in (build(ctx) for build in SECTIONS) if s is not None]
    sections += [
        _dict_section("config", "Configuration", ctx.config),
        _dict_section("environment", "Environment", _environment(run_dir)),
    ]
    _save_figures(run_dir, sections)
    model = ev.get("model", {})
    meta = html.escape(
        f"model {model.get('name', '?')} (sha256 {str(model.get('sha256', ''))[:12]}), {split} split, "
        f"n = {ev['n']}, data {_data_text(ev)}"
    )
    run_dir.report.write_text(_render(f"Report: {run_dir.name}", meta, sections), encoding="utf-8")
    attach_to_tracked_run(run_dir, [run_dir.report])  # a run mirrored in MLflow gets its report there too
    return run_dir.report


def _save_figures(run_dir: RunDir, sections: list[_Section]) -> None:
    """Each section's figure as ``<slug>.png`` among the run's plots (the robustness one is its command's)."""
    for s in sections:
        if s.png is not None and s.slug != "robustness":
            run_dir.plots.mkdir(exist_ok=True)
            (run_dir.plots / f"{s.slug}.png").write_bytes(s.png)


def _environment(run_dir: RunDir) -> dict[str, Any]:
    return read_json(run_dir.environment) if run_dir.environment.is_file() else {}


def compare_roc(
    runs: list[str | Path],
    plot: str | Path,
    *,
    split: str = "test",
    runs_dir: str | Path = "runs",
    progress: bool = False,
) -> Path:
    """Overlay the ROC curves of several runs on one split and save the figure as a PNG.

    Parameters
    ----------
    runs : list of str or Path
        Run folders or ids; a run without ``scores_<split>.csv`` is evaluated first.
    plot : str or Path
        The PNG file to write.
    split : str
        The evaluated split.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Progress bars when an evaluation has to run.

    Returns
    -------
    Path
        ``plot``.
    """
    curves = {}
    for run in runs:
        run_dir = RunDir.find(run, runs_dir)
        ensure_evaluated(run_dir, None, split, progress=progress)
        scores = read_scores(run_dir.scores_csv(split))
        curves[run_dir.name] = _roc(scores.labels, scores.logits)
    fig = plots.roc_overlay(curves, title=f"ROC curves on {split}")
    plots.figure_png(fig, plot)
    return Path(plot)
