"""Whether the int8 graph may be a model's default backend: its validation AUC against the float weights'.

The int8 graph runs about twice as fast as float on a CPU, but its scores are a little off. It becomes the
default (``auto``) backend of a model only where :func:`compare_int8` finds its ROC AUC on the validation split,
clean and laundered (seed 0), within :data:`INT8_AUC_TOLERANCE` of the float weights' on the pooled split;
the per-source gaps are recorded beside it, because a small source's AUC moves more with a few flipped pairs.
:func:`make_int8_default` then writes that choice, and the figures behind it, into the weights' metadata
(:data:`~deepfake_detect.inference.network.INT8_DEFAULT_KEY`, ``INT8_CHECK_KEY``), and fits the threshold,
temperature and band again on the int8 graph's validation scores; the tensors are untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from deepfake_detect.core.runs import RunDir
from deepfake_detect.evaluation.evaluate import DataSpec, run_sources, score_split
from deepfake_detect.inference.network import INT8_CHECK_KEY, INT8_DEFAULT_KEY, load_network
from deepfake_detect.inference.onnx import update_metadata
from deepfake_detect.metrics.calibration import LAUNDER_SEED, band_metadata, calibrate_on_validation
from deepfake_detect.metrics.per_source import per_source_rows

__all__ = ["INT8_AUC_TOLERANCE", "compare_int8", "make_int8_default", "refit_on_validation"]

log = logging.getLogger(__name__)

#: Largest drop of pooled validation ROC AUC (float minus int8), clean or laundered, for int8 to be the default.
INT8_AUC_TOLERANCE = 0.002


def _aucs(det, sources, split: str, launder_seed: int | None) -> dict[str, Any]:
    samples, preds = score_split(det, sources, split, launder_seed=launder_seed)
    names = [samples[int(i)].source for i in preds.indices]
    rows = per_source_rows(preds.labels, preds.logits, names, det.threshold_logit, n_resamples=0)
    return {
        "pooled": float(roc_auc_score(preds.labels, preds.logits)),
        "per_source": {row["source"]: row["roc_auc"] for row in rows},
    }


def compare_int8(
    run: str | Path,
    data: DataSpec | None = None,
    *,
    split: str = "valid",
    launder_seed: int = 0,
    tolerance: float = INT8_AUC_TOLERANCE,
    runs_dir: str | Path = "runs",
) -> dict[str, Any]:
    """Float and int8 ROC AUC of a run on a split, clean and laundered, pooled and a source at a time.

    Parameters
    ----------
    run : str or Path
        A run folder (or id) whose int8 graph sits beside its weights (``export RUN --quantize``).
    data : path or list of paths, optional
        The data (a folder or a mix); default the run's own.
    split : str
        ``valid``: the choice of a backend, like every choice, is made on validation.
    launder_seed : int
        Seed of the laundered pass (see ``evaluate --launder``).
    tolerance : float
        Largest pooled AUC drop, clean or laundered, that still ``passes``.

    Returns
    -------
    dict
        ``split``, ``launder_seed``, ``tolerance``, ``float`` and ``int8`` (each ``{"clean": ..., "laundered":
        ...}`` of ``pooled`` and ``per_source`` AUCs), ``gap`` (float minus int8, same layout) and ``passes``.

    Raises
    ------
    BackendError
        When the run has no int8 graph made from its weights.
    """
    run_dir = RunDir.find(run, runs_dir)
    sources = run_sources(run_dir, data)
    dets = {
        "float": load_network(run_dir.model, backend="torch", abstain=False),
        "int8": load_network(run_dir.model, backend="onnx-int8", abstain=False),
    }
    scores = {
        name: {
            kind: _aucs(det, sources, split, seed)
            for kind, seed in (("clean", None), ("laundered", launder_seed))
        }
        for name, det in dets.items()
    }
    gap = {
        kind: {
            "pooled": scores["float"][kind]["pooled"] - scores["int8"][kind]["pooled"],
            "per_source": {
                name: (auc - scores["int8"][kind]["per_source"][name])
                if auc is not None and scores["int8"][kind]["per_source"][name] is not None
                else None
                for name, auc in scores["float"][kind]["per_source"].items()
            },
        }
        for kind in ("clean", "laundered")
    }
    passes = bool(all(gap[kind]["pooled"] <= tolerance for kind in gap))
    return {
        "split": split,
        "launder_seed": launder_seed,
        "tolerance": tolerance,
        **scores,
        "gap": gap,
        "passes": passes,
    }


def make_int8_default(weights: str | Path, check: dict[str, Any], data: DataSpec | None = None) -> bool:
    """Make the int8 graph the default backend of ``weights`` when ``check`` (from :func:`compare_int8`)
    passes, recording ``check`` in the metadata either way; the tensors (and their hash) stay as they are.

    When int8 becomes the default, the threshold, temperature and "uncertain" band are fitted again on the
    validation split (``data``, default the run's) with the int8 graph's scores (:func:`refit_on_validation`):
    they are chosen by the same rules as at training, on the scores users will get. Small AUC gaps can still
    move scores near the threshold: a threshold fitted on float scores left 3.6% of the FFHQ validation reals
    over it under int8, where the rule allowed 2%.

    Returns
    -------
    bool
        Whether int8 is now the default.
    """
    weights = Path(weights)
    updates: dict[str, Any] = {
        INT8_CHECK_KEY: check,
        INT8_DEFAULT_KEY: "onnx-int8" if check["passes"] else None,
    }
    if check["passes"]:
        updates.update(refit_on_validation(weights, data, backend="onnx-int8"))
    update_metadata(weights, weights, updates)  # one rewrite of the weights and their ONNX sidecars
    worst = max(check["gap"][kind]["pooled"] for kind in check["gap"])
    log.info(
        "%s: int8 %s the default backend (largest pooled %s AUC drop %.4f, tolerance %.4f)",
        weights, "is" if check["passes"] else "is not", check["split"], worst, check["tolerance"],
    )  # fmt: skip
    return bool(check["passes"])


def refit_on_validation(
    weights: str | Path, data: DataSpec | None = None, *, backend: str | None = None
) -> dict[str, Any]:
    """Threshold, temperature and "uncertain" band of ``weights`` fitted on the validation split with
    ``backend`` (default: the model's default backend), by the rules its training used (``threshold_rule``,
    ``threshold_max_fpr`` and ``abstain_precision`` from its metadata and config).

    Returns
    -------
    dict
        The metadata keys to store: ``threshold_logit``, ``threshold_rule``, ``temperature``,
        ``calibrated_with`` (the backend whose scores fitted them) and the band's ``abstain_*`` keys.
    """
    weights = Path(weights)
    det = load_network(weights, backend="torch", abstain=False)
    det = det.with_backend(backend or det.scoring_backend)
    config = det.metadata.get("config") or {}
    sources = run_sources(RunDir(weights.parent), data)
    samples, clean = score_split(det, sources, "valid")
    _, laundered = score_split(det, sources, "valid", launder_seed=LAUNDER_SEED)
    names = [samples[int(i)].source for i in clean.indices]
    max_fpr = config["threshold_max_fpr"] if det.metadata.get("threshold_rule") == "source_fpr" else None
    fitted = calibrate_on_validation(clean.logits, clean.labels, names, max_fpr)  # training's own rules
    band = band_metadata(
        np.concatenate([clean.labels, laundered.labels]),
        np.concatenate([clean.logits, laundered.logits]),
        fitted["threshold_logit"],
        target_precision=float(config.get("abstain_precision", 0.99)),
        n_laundered=len(laundered.logits),
        launder_seed=LAUNDER_SEED,
    )
    return {
        **{key: fitted[key] for key in ("threshold_logit", "threshold_rule", "temperature")},
        "calibrated_with": det.backend,
        **band,
    }
