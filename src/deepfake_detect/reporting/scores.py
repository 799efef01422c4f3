"""The per-image scores an evaluation wrote (``scores_<split>.csv``), where each image lives, its thumbnail, and
running the evaluation when its files are missing: what the report and the error analysis read instead of running
the model.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from deepfake_detect.core.runs import RunDir, read_json
from deepfake_detect.core.sources import source_from_record
from deepfake_detect.data.photos import samples_root
from deepfake_detect.data.transforms import load_image
from deepfake_detect.evaluation.evaluate import evaluate, resolved_sources

__all__ = ["Scores", "read_scores", "source_roots", "image_files", "load_thumbnail", "ensure_evaluated"]

log = logging.getLogger(__name__)


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
    sources : list of str
        Each image's source (its path is relative to that source's root); empty names in files written before
        evaluations had sources.
    """

    paths: list[str]
    labels: np.ndarray
    logits: np.ndarray
    p_fake: np.ndarray
    verdicts: list[str]
    sources: list[str] = field(default_factory=list)

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
        sources=[r.get("source") or "" for r in rows],
    )


def source_roots(ev: Mapping[str, Any], data: Any = None) -> tuple[dict[str, Path], Path]:
    """Each source's data root by name, and the root of paths whose source is unknown.

    Parameters
    ----------
    ev : mapping
        An evaluation (``eval_<split>.json``): its ``data_sources`` and ``data_root``.
    data : path or list of paths, optional
        Folders given instead (as ``--data``); they replace the recorded ones.

    Examples
    --------
    >>> roots, default = source_roots({"data_root": "/d/a", "data_sources": [{"name": "a", "root": "/d/a"}]})
    >>> roots, default
    ({'a': PosixPath('/d/a')}, PosixPath('/d/a'))
    """
    if data is not None and not (isinstance(data, list | tuple) and not data):
        sources = resolved_sources(data)
        default = Path(sources[0].root)
    else:
        sources = [source_from_record(s) for s in ev.get("data_sources") or []]
        default = Path(ev["data_root"])
    return {s.name: samples_root(s) for s in sources}, default


def image_files(scores: Scores, roots: Mapping[str, Path], default: Path) -> list[Path]:
    """The image file of each scored row: its path under its source's root (``default`` for an unknown one)."""
    names = scores.sources or [""] * len(scores.paths)
    return [roots.get(name, default) / path for path, name in zip(scores.paths, names, strict=True)]


def load_thumbnail(path: str | Path, size: int = 128) -> np.ndarray:
    """A centre-square thumbnail of an image file, for galleries.

    Parameters
    ----------
    path : str or Path
        The image file.
    size : int
        Side of the thumbnail, in pixels.

    Returns
    -------
    ndarray of shape (size, size, 3), uint8
        A grey square for an unreadable file, so one bad file does not stop a report.
    """
    try:
        image = ImageOps.exif_transpose(load_image(path, min_side=size)).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return np.full((size, size, 3), 128, np.uint8)
    return np.asarray(ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR))


def ensure_evaluated(
    run_dir: RunDir,
    data: str | Path | Sequence[str | Path] | None,
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
    data : path or list of paths, optional
        Data set folder, or a mix's folders; defaults to the sources recorded in the run.
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
