"""A self-contained HTML report of one run: figures people would rather look at than read.

``report(run)`` writes the run's report page (every image embedded as a base64 PNG, no scripts, no external
style sheets, nothing fetched from a network) and each figure again as a PNG in the run's plots folder. It
reads what training and :func:`deepfake_detect.evaluation.evaluate.evaluate` left in the run folder and runs
the evaluation first when its files are missing; the model is not run otherwise.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from deepfake_detect import metrics
from deepfake_detect.core import html
from deepfake_detect.core.runs import RunDir, read_json
from deepfake_detect.data import resolve_data_root
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.evaluation.robustness import figure_path as robustness_figure_path
from deepfake_detect.viz import plots

__all__ = ["report", "compare_roc", "read_scores", "ensure_evaluated", "Scores"]

log = logging.getLogger(__name__)

SAMPLES_PER_CLASS = 8
METRIC_NAMES = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass
class Scores:
    """The per-image scores ``evaluate`` wrote to ``scores_<split>.csv``.

    Attributes
    ----------
    paths : list of str
        Image paths relative to the data root.
    labels : ndarray of int, shape (n,)
        0 = real, 1 = fake.
    logits, p_fake : ndarray of float, shape (n,)
        Raw score and calibrated probability of fake.
    verdicts : list of str
        ``"fake"`` or ``"real"`` at the evaluation's threshold.
    """

    paths: list[str]
    labels: np.ndarray
    logits: np.ndarray
    p_fake: np.ndarray
    verdicts: list[str]

    @property
    def wrong(self) -> np.ndarray:
        """Boolean mask of the misclassified images."""
        return np.array([v == "fake" for v in self.verdicts]) != (self.labels == 1)


def read_scores(path: str | Path) -> Scores:
    """Read a ``scores_<split>.csv`` written by :func:`deepfake_detect.evaluation.evaluate.evaluate`.

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    Scores
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return Scores(
        paths=[r["path"] for r in rows],
        labels=np.array([int(r["label"]) for r in rows], dtype=np.int64),
        logits=np.array([float(r["logit"]) for r in rows]),
        p_fake=np.array([float(r["p_fake"]) for r in rows]),
        verdicts=[r["verdict"] for r in rows],
    )


def ensure_evaluated(
    run_dir: RunDir,
    data: str | Path | None,
    split: str,
    *,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Return a run's ``eval_<split>.json``, running :func:`evaluate` first when it or the scores are missing.

    Parameters
    ----------
    run_dir : RunDir
        The run folder.
    data : path, optional
        Data set folder; defaults to the one recorded in the run.
    split : str
        The evaluated split.
    cost_fp, cost_fn : float, optional
        Passed to ``evaluate`` when it has to run: the minimum-cost threshold on validation.
    progress : bool
        Progress bars while scoring.

    Returns
    -------
    dict
        The evaluation result.
    """
    if run_dir.eval_json(split).is_file() and run_dir.scores_csv(split).is_file():
        return read_json(run_dir.eval_json(split))
    log.info("%s: no evaluation of %s yet; running evaluate", run_dir.name, split)
    return evaluate(
        run_dir.path,
        data,
        split=split,
        cost_fp=cost_fp,
        cost_fn=cost_fn,
        runs_dir=run_dir.path.parent,
        progress=progress,
    )


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
    config: dict[str, Any]
    run_metrics: dict[str, Any]
    class_names: tuple[str, str]
    cost_fp: float
    cost_fn: float


def _samples_section(ctx: _Context) -> _Section:
    root = Path(ctx.ev["data_root"])
    rng = np.random.default_rng(0)  # a fixed pick, so two reports of one run show the same faces
    images, captions, colours = [], [], []
    for label in (0, 1):
        idx = np.flatnonzero(ctx.scores.labels == label)
        picked = np.sort(rng.choice(idx, size=min(SAMPLES_PER_CLASS, idx.size), replace=False))
        for i in picked:
            images.append(plots.load_thumbnail(root / ctx.scores.paths[i]))
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
        f"of <code>{html.escape(str(root))}</code>, with the calibrated p_fake. Red captions are errors at "
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


def _roc_section(ctx: _Context) -> _Section:
    s, t = ctx.scores, ctx.ev["threshold"]
    fig = plots.roc_pr_curves(s.labels, s.logits, t["logit"])
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
    p_after = metrics.calibrated_p_fake(s.logits, temperature)
    fig = plots.reliability_diagram(s.labels, metrics.sigmoid(s.logits), p_after, summary=summary)
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
    extra = [k for r in rows for k in r if k not in ROBUSTNESS_COLUMNS]
    columns = list(ROBUSTNESS_COLUMNS) + list(dict.fromkeys(extra))
    body = html.table(columns, [[r.get(c) for c in columns] for r in rows]) if rows else "<p>No rows.</p>"
    png_path = robustness_figure_path(ctx.run_dir)
    png = png_path.read_bytes() if png_path.is_file() else None
    return _Section("robustness", "Robustness", body, png, "robustness")


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
    return _Context(
        run_dir=run_dir,
        split=split,
        ev=ev,
        scores=read_scores(run_dir.scores_csv(split)),
        config=config,
        run_metrics=run_dir.read_metrics(),
        class_names=tuple(config.get("class_names", ("real", "fake"))),
        cost_fp=1.0 if cost_fp is None else float(cost_fp),
        cost_fn=1.0 if cost_fn is None else float(cost_fn),
    )


SECTIONS: tuple[Callable[[_Context], _Section | None], ...] = (
    _samples_section,
    _metrics_section,
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
    data: str | Path | None = None,
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
    data : path, optional
        Data set folder, for the sample faces and a missing evaluation; defaults to the evaluated one.
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
        ev = {**ev, "data_root": str(resolve_data_root(data))}
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
        f"n = {ev['n']}, data {ev['data_root']}"
    )
    run_dir.report.write_text(_render(f"Report: {run_dir.name}", meta, sections), encoding="utf-8")
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
        curves[run_dir.name] = (scores.labels, scores.logits)
    fig = plots.roc_overlay(curves, title=f"ROC curves on {split}")
    plots.figure_png(fig, plot)
    return Path(plot)
