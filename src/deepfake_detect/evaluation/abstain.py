"""Fit the "uncertain" band of an existing model on its validation split and store it with the weights.

Training fits the band itself at its end (:mod:`deepfake_detect.training.band`); this does the same for a run
trained before the band existed, for the shipped default model, or with another target precision:

>>> from deepfake_detect.evaluation.abstain import calibrate_abstention              # doctest: +SKIP
>>> calibrate_abstention("runs/s4-128-e12", target_precision=0.99)["abstain_coverage"]  # doctest: +SKIP
0.93

The validation split (of the run's recorded data, or ``data``) is scored clean and laundered once (seed 0, the
protocol of ``evaluate --launder``), with torch as ``evaluate`` scores, and the band is chosen on the two pooled
around the stored threshold. The checkpoint's metadata is rewritten in place (or into ``output``), the way
``evaluate --save-threshold`` rewrites the threshold: the tensors, and so their hash, do not change. ONNX
metadata files beside the weights that were exported from the same tensors get the band too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from deepfake_detect.core.checkpoint import resolve_weights
from deepfake_detect.core.config import TrainConfig
from deepfake_detect.core.exceptions import ConfigError
from deepfake_detect.core.runs import RunDir
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.evaluation.evaluate import DataSpec, run_sources
from deepfake_detect.inference.network import load_network
from deepfake_detect.inference.onnx import update_metadata
from deepfake_detect.metrics.calibration import LAUNDER_SEED
from deepfake_detect.training.band import band_on_validation

__all__ = ["calibrate_abstention"]

log = logging.getLogger(__name__)


def calibrate_abstention(
    model: str | Path,
    data: DataSpec | None = None,
    *,
    target_precision: float | None = None,
    launder_seed: int = LAUNDER_SEED,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> dict[str, Any]:
    """Choose a model's "uncertain" band on its validation split, clean and laundered, and store it.

    Parameters
    ----------
    model : str or Path
        A run folder or run id (under ``runs_dir``), ``default``, or a ``.safetensors`` file.
    data : path or list of paths, optional
        The data set folder, or a mix's folders, whose ``valid`` split is scored; default: what the run
        recorded (a model outside a run folder needs it).
    target_precision : float, optional
        Precision each decided verdict must reach on those scores, in [0.5, 1]; default: the run config's
        ``abstain_precision`` (0.99).
    launder_seed : int
        Seed of the laundered copy (0, as training uses).
    output : path, optional
        Write the weights with the band here instead of rewriting ``model`` in place.
    runs_dir : str or Path
        Where run ids are looked up.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        The stored metadata (``abstain_lower_logit``, ``abstain_upper_logit``, ``abstain_target_precision``,
        ``abstain_coverage``, ``abstain_validation``), plus ``weights`` (the file written), ``tensor_sha256``
        and ``threshold_logit``.

    Raises
    ------
    ConfigError
        When ``target_precision`` is outside [0.5, 1].
    CheckpointError, DataError
        When the model or its validation data cannot be found.
    """
    path = resolve_weights(model, runs_dir)
    det = load_network(path, backend="torch", abstain=False)
    precision = _target_precision(det.metadata, target_precision)
    sources = run_sources(RunDir(path.parent), data)
    samples = list_mix_split(sources, "valid", class_names=tuple(det.metadata["class_names"]))
    clean = det.predict_samples(samples, progress=progress)
    band = band_on_validation(
        det.model, samples, det.preprocess, clean.logits, clean.labels, det.threshold_logit,
        target_precision=precision, device=det.device, launder_seed=launder_seed,
    )  # fmt: skip
    target = Path(output) if output is not None else path
    sha = update_metadata(path, target, band)
    log.debug(
        "band [%s, %s) covers %.1f%% of %d validation faces (clean and laundered); written into %s",
        band["abstain_lower_logit"], band["abstain_upper_logit"], 100 * (band["abstain_coverage"] or 0.0),
        band["abstain_validation"]["n"], target,
    )  # fmt: skip
    return {**band, "weights": str(target), "tensor_sha256": sha, "threshold_logit": det.threshold_logit}


def _target_precision(metadata: dict[str, Any], given: float | None) -> float:
    recorded = (metadata.get("config") or {}).get("abstain_precision", TrainConfig.abstain_precision)
    precision = float(recorded if given is None else given)
    if not 0.5 <= precision <= 1.0:
        raise ConfigError(f"the target precision must be in [0.5, 1], got {precision}")
    return precision
