"""Figures for reports and error galleries, drawn with matplotlib's Agg canvas.

Every function returns a :class:`matplotlib.figure.Figure` bound to its own ``FigureCanvasAgg``; pyplot is
never imported, so making a figure changes no global matplotlib state (no backend switch, no figure
registry) and works without a display. :func:`figure_png` turns a figure into PNG bytes and
optionally writes them.

Conventions as in :mod:`deepfake_detect.metrics`: label 0 = real, 1 = fake, scores are raw logits and the
verdict is fake when ``logit >= threshold``. Everything drawn is given: curves, areas and images come computed
and decoded by the caller (:mod:`deepfake_detect.reporting`), so drawing reads no file and computes no metric.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "RocCurve",
    "PrCurve",
    "OperatingPoint",
    "new_figure",
    "figure_png",
    "image_grid",
    "learning_curves",
    "roc_pr_curves",
    "roc_overlay",
    "confusion_matrix_figure",
    "score_histograms",
    "reliability_diagram",
    "cost_curve",
]

DPI = 110
REAL_COLOUR, FAKE_COLOUR = "#1f77b4", "#d62728"
THRESHOLD_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}


@dataclass(frozen=True)
class RocCurve:
    """A ROC curve (fake = positive) and the area under it.

    Attributes
    ----------
    fpr, tpr : ndarray
        The curve's points, e.g. from ``sklearn.metrics.roc_curve``.
    auc : float
        The area under it.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


@dataclass(frozen=True)
class PrCurve:
    """A precision-recall curve (fake = positive), its average precision, and the chance level.

    Attributes
    ----------
    recall, precision : ndarray
        The curve's points, e.g. from ``sklearn.metrics.precision_recall_curve``.
    average_precision : float
    fake_share : float
        The share of fakes among the images: the precision of a chance classifier.
    """

    recall: np.ndarray
    precision: np.ndarray
    average_precision: float
    fake_share: float


@dataclass(frozen=True)
class OperatingPoint:
    """Where a decision threshold sits: its false-positive rate, true-positive rate (recall) and precision."""

    fpr: float
    tpr: float
    precision: float


def new_figure(width: float, height: float) -> Figure:
    """A figure with constrained layout, drawn by its own Agg canvas (not pyplot).

    Parameters
    ----------
    width, height : float
        Size in inches (at :data:`DPI` dots per inch).

    Returns
    -------
    Figure
    """
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, path: str | Path | None = None) -> bytes:
    """Render ``fig`` as PNG bytes; also write them to ``path`` when given.

    Parameters
    ----------
    fig : Figure
        The figure.
    path : str or Path, optional
        Where to save the PNG too (parent folders are created).

    Returns
    -------
    bytes
        The PNG. It carries no "Software" text chunk, so nothing in it points at a web address.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    data = buffer.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def image_grid(
    images: Sequence[np.ndarray | None],
    captions: Sequence[str],
    *,
    title: str,
    columns: int = 8,
    colours: Sequence[str] | None = None,
    cell_inches: float = 1.5,
) -> Figure:
    """Images in a grid with a caption above each (e.g. class and p_fake).

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 arrays or None
        The images, row by row; ``None`` leaves a blank cell. An empty sequence draws "none".
    captions : sequence of str
        One caption per image (may hold a newline).
    title : str
        Figure title.
    columns : int
        Cells per row.
    colours : sequence of str, optional
        Caption colours, e.g. red for errors.
    cell_inches : float
        Size of one cell.

    Returns
    -------
    Figure
    """
    if not images:
        fig = new_figure(6, 1.2)
        fig.suptitle(title)
        fig.text(0.5, 0.4, "none", ha="center", va="center", fontsize=12)
        return fig
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    fig = new_figure(max(cell_inches * columns, 6.0), cell_inches * rows + 0.5)  # wide enough for the title
    fig.suptitle(title)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images) and images[i] is not None:  # None leaves a gap, e.g. to start a class's row
            ax.imshow(images[i])
            ax.set_title(captions[i], fontsize=7, color=colours[i] if colours else "black")
    return fig


def _series(history: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    return np.array([float(row.get(key, "nan") or "nan") for row in history], dtype=float)


def learning_curves(history: Sequence[Mapping[str, float]], best_epoch: int | None = None) -> Figure:
    """Loss, accuracy, ROC AUC (train and validation) and learning rate against epoch, one panel each.

    Parameters
    ----------
    history : sequence of mapping
        Rows of ``history.csv`` (``epoch``, ``lr``, ``train_loss``, ``val_loss``, ...); values may be strings.
    best_epoch : int, optional
        The epoch whose weights were kept, marked on every panel.

    Returns
    -------
    Figure
    """
    fig = new_figure(11, 6.5)
    fig.suptitle("Learning curves")
    epochs = _series(history, "epoch")
    panels = [
        ("loss", "binary cross-entropy (nats / image)", "Loss"),
        ("accuracy", "accuracy (validation at logit 0)", "Accuracy"),
        ("roc_auc", "ROC AUC", "ROC AUC"),
    ]
    axes = fig.subplots(2, 2).flat
    for ax, (key, ylabel, title) in zip(axes, panels, strict=False):
        ax.plot(epochs, _series(history, f"train_{key}"), "o-", label="train")
        ax.plot(epochs, _series(history, f"val_{key}"), "s-", label="validation")
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    lr_ax = fig.axes[3]
    lr_ax.plot(epochs, _series(history, "lr"), "o-", color="tab:green", label="learning rate")
    lr_ax.set(title="Learning rate", xlabel="epoch", ylabel="learning rate (per step)", yscale="log")
    for ax in fig.axes:
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def roc_pr_curves(roc: RocCurve, pr: PrCurve, at_threshold: OperatingPoint) -> Figure:
    """ROC (with AUC) and precision-recall (with average precision) curves, the threshold marked on both.

    Parameters
    ----------
    roc : RocCurve
    pr : PrCurve
    at_threshold : OperatingPoint
        The decision threshold's (FPR, TPR) and (recall, precision), marked on the curves.

    Returns
    -------
    Figure
    """
    fpr_t, tpr_t, prec_t = at_threshold.fpr, at_threshold.tpr, at_threshold.precision
    fig = new_figure(11, 4.8)
    roc_ax, pr_ax = fig.subplots(1, 2)
    roc_ax.plot(roc.fpr, roc.tpr, color=FAKE_COLOUR, label=f"model (AUC = {roc.auc:.4f})")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance (AUC = 0.5)")
    roc_ax.plot(fpr_t, tpr_t, "ko", label=f"threshold: FPR {fpr_t:.3f}, TPR {tpr_t:.3f}")
    roc_ax.set(
        title="ROC curve",
        xlabel="false-positive rate (reals called fake)",
        ylabel="true-positive rate (fakes caught)",
    )
    ap, share = pr.average_precision, pr.fake_share
    pr_ax.step(pr.recall, pr.precision, where="post", color=FAKE_COLOUR, label=f"model (AP = {ap:.4f})")
    pr_ax.axhline(share, color="grey", linestyle=":", label=f"chance (share of fakes {share:.2f})")
    pr_ax.plot(tpr_t, prec_t, "ko", label=f"threshold: recall {tpr_t:.3f}, precision {prec_t:.3f}")
    pr_ax.set(title="Precision-recall curve (fake = positive)", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is roc_ax else "lower left", fontsize=8)
    return fig


def roc_overlay(curves: Mapping[str, RocCurve], title: str) -> Figure:
    """ROC curves of several models on one axis.

    Parameters
    ----------
    curves : mapping of str to RocCurve
        One curve per model, by name.
    title : str
        Figure title.

    Returns
    -------
    Figure
    """
    fig = new_figure(7, 6)
    ax = fig.subplots()
    for name, roc in curves.items():
        ax.plot(roc.fpr, roc.tpr, label=f"{name} (AUC = {roc.auc:.4f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(
        title=title,
        xlabel="false-positive rate (reals called fake)",
        ylabel="true-positive rate (fakes caught)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def confusion_matrix_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> Figure:
    """The 2x2 confusion matrix as counts and as rates of each true class (rows sum to 1).

    Parameters
    ----------
    confusion : 2x2 nested sequence of int
        ``[[tn, fp], [fn, tp]]``.
    class_names : sequence of 2 str
        Names of label 0 and label 1.

    Returns
    -------
    Figure
    """
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = new_figure(10, 4.2)
    fig.suptitle("Confusion matrix at the chosen threshold")
    for ax, values, title, fmt in zip(
        fig.subplots(1, 2),
        (counts, rates),
        ("counts (images)", "rates (share of true class)"),
        ("{:.0f}", "{:.1%}"),
        strict=True,
    ):
        image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                fmt.format(v),
                ha="center",
                va="center",
                fontsize=13,
                color="white" if rates[i, j] > 0.5 else "black",
            )
        ticks = [0, 1]
        ax.set_xticks(ticks, [f"predicted {n}" for n in class_names])
        ax.set_yticks(ticks, [f"true {n}" for n in class_names])
        ax.set_title(title)
    fig.colorbar(image, ax=fig.axes, label="share of the true class", shrink=0.8)
    return fig


def score_histograms(labels, logits, threshold_logit: float, class_names: Sequence[str]) -> Figure:
    """Histograms of the raw score for each true class, with the decision threshold marked.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        0 = real, 1 = fake.
    logits : array-like of shape (n_samples,)
        Raw scores.
    threshold_logit : float
        The decision threshold.
    class_names : sequence of 2 str
        Names of label 0 and label 1.

    Returns
    -------
    Figure
    """
    y, s = np.asarray(labels), np.asarray(logits, dtype=float)
    fig = new_figure(9, 4.5)
    ax = fig.subplots()
    bins = np.histogram_bin_edges(s, bins=min(60, max(10, s.size // 10)))
    for label, colour in ((0, REAL_COLOUR), (1, FAKE_COLOUR)):
        part = s[y == label]
        ax.hist(
            part, bins=bins, alpha=0.55, color=colour, label=f"true {class_names[label]} (n = {part.size})"
        )
    ax.axvline(threshold_logit, **THRESHOLD_STYLE, label=f"threshold (logit {threshold_logit:.4g})")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set(
        title="Score distribution by true class (right of the line = called fake)",
        xlabel="score (raw logit; higher = more likely fake)",
        ylabel="images",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def reliability_diagram(
    before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], *, summary: str = ""
) -> Figure:
    """Observed share of fakes against predicted p_fake, before and after temperature scaling.

    The lower panel shows how many images fall in each bin, since bins with few images are noisy.

    Parameters
    ----------
    before, after : mapping of str to ndarray
        Reliability curves of p_fake before and after temperature scaling, on the same equal-width bins of
        [0, 1], as :func:`deepfake_detect.metrics.reliability_curve` returns them (``bin_centers``,
        ``mean_predicted``, ``fraction_fake``, ``counts``).
    summary : str
        A line under the title, e.g. ECE and Brier before and after.

    Returns
    -------
    Figure
    """
    fig = new_figure(7.5, 7.5)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    width = 1.0 / len(before["counts"])
    for curve, name, colour, shift in (
        (before, "before (raw sigmoid)", "tab:orange", -0.25),
        (after, "after temperature scaling", "tab:green", 0.25),
    ):
        top.plot(curve["mean_predicted"], curve["fraction_fake"], "o-", color=colour, label=name)
        bottom.bar(curve["bin_centers"] + shift * width, curve["counts"], width / 2, color=colour)
    top.set(
        title="Reliability diagram" + (f"\n{summary}" if summary else ""), ylabel="observed share of fakes"
    )
    top.set(xlim=(0, 1), ylim=(-0.02, 1.02))
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set(xlabel="predicted p_fake (bin)", ylabel="images", yscale="symlog")
    bottom.grid(alpha=0.3)
    return fig


def cost_curve(
    thresholds, costs, *, chosen: tuple[float, float], best: tuple[float, float], label: str
) -> Figure:
    """Expected cost per image against the logit threshold, the chosen and the hindsight-best marked.

    Parameters
    ----------
    thresholds, costs : array-like of shape (n_points,)
        The curve, e.g. from :func:`deepfake_detect.metrics.expected_cost_curve`.
    chosen, best : (threshold, cost)
        The threshold in use (chosen on validation) and the lowest cost on this split (known only in
        hindsight).
    label : str
        The cost ratio, shown in the title.

    Returns
    -------
    Figure
    """
    fig = new_figure(9, 4.5)
    ax = fig.subplots()
    ax.step(thresholds, costs, where="pre", color="tab:purple", label="expected cost on this split")
    ax.axvline(chosen[0], **THRESHOLD_STYLE)
    ax.plot(*chosen, "ko", label=f"chosen threshold {chosen[0]:.4g}: cost {chosen[1]:.4f}")
    ax.plot(
        *best,
        "o",
        mfc="none",
        mec="tab:red",
        ms=10,
        label=f"lowest on this split (hindsight) {best[0]:.4g}: cost {best[1]:.4f}",
    )
    ax.set(
        title=f"Cost curve ({label})",
        xlabel="threshold (raw logit; images at or above are called fake)",
        ylabel="expected cost per image (cost units)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
