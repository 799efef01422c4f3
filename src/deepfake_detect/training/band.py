"""The "uncertain" band of a trained model, fitted on its validation split: clean, and laundered once.

A score near the threshold on a laundered or off-distribution face is a coin toss. The band
(:func:`~deepfake_detect.metrics.abstention.abstention_band`) is chosen on the validation faces pooled with the
same faces laundered once (seed :data:`LAUNDER_SEED`, the protocol of ``evaluate --launder``: per source, the
image at position ``i`` of its source's listing with ``launder_rng(seed, i)``), so that outside it each decided
verdict reaches the target precision on photos that went through resizing and recompression too. The test split
is never used.

Training calls :func:`band_on_validation` at its end; ``deepfake-detect calibrate-abstention`` does the same for
an existing model. Both store :func:`band_metadata`'s keys in the checkpoint, which
:class:`~deepfake_detect.inference.network.Network` reads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deepfake_detect.core.runtime import predict_logits
from deepfake_detect.data.dataset import FaceDataset, make_loader
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.metrics.abstention import abstention_band

__all__ = ["LAUNDER_SEED", "band_on_validation", "band_metadata", "laundered_logits"]

#: The laundering seed of the validation copy the band is chosen on (the issue's "laundered (seed 0)").
LAUNDER_SEED = 0


def laundered_logits(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    preprocess: Preprocess,
    device: torch.device | str = "cpu",
    *,
    seed: int = LAUNDER_SEED,
    batch_size: int = 64,
    num_workers: int = 0,
    channels_last: bool = True,
    tta_flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``samples``, each image laundered first (unreadable ones are skipped).

    The samples of one source must be contiguous (as :func:`~deepfake_detect.data.mix.list_mix_split` lists
    them): each is laundered with ``launder_rng(seed, its position in its source)``, so a source launders alike
    whichever other sources are scored beside it.
    """
    logits, labels = [np.zeros(0, np.float32)], [np.zeros(0, np.float32)]
    for _, group in itertools.groupby(samples, key=lambda s: s.source):
        dataset = FaceDataset(list(group), preprocess, launder_seed=seed)
        loader, _ = make_loader(
            dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers
        )
        z, y, _, _ = predict_logits(model, loader, device, channels_last=channels_last, tta_flip=tta_flip)
        logits.append(z)
        labels.append(y)
    return np.concatenate(logits), np.concatenate(labels)


def _json_number(value: float) -> float | None:
    """A float for JSON metadata: None for infinity (an end that decides nothing) and for NaN (an empty side)."""
    return None if math.isnan(value) or math.isinf(value) else float(value)


def band_metadata(
    labels: np.ndarray,
    logits: np.ndarray,
    threshold_logit: float,
    *,
    target_precision: float,
    n_laundered: int,
    launder_seed: int = LAUNDER_SEED,
) -> dict[str, Any]:
    """Choose the band on pooled validation scores and return the checkpoint metadata that stores it.

    Parameters
    ----------
    labels, logits : array-like
        The clean and the laundered validation faces, pooled (1 = fake).
    threshold_logit : float
        The stored two-way threshold; the band contains it.
    target_precision : float
        Precision each decided side must reach on these scores.
    n_laundered : int
        How many of the pooled faces are laundered (recorded).
    launder_seed : int
        The laundering seed (recorded).

    Returns
    -------
    dict
        ``abstain_lower_logit`` and ``abstain_upper_logit`` (null for an end that decides nothing),
        ``abstain_target_precision``, ``abstain_coverage`` (the share of these faces decided) and
        ``abstain_validation`` (counts, seed and the precision of each decided side).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    >>> z = np.array([-4., -3., -2., -1., -0.5, 0.5, 1., 2., 3., 4.])
    >>> meta = band_metadata(y, z, 0.0, target_precision=0.99, n_laundered=0)
    >>> meta["abstain_lower_logit"], meta["abstain_upper_logit"], meta["abstain_coverage"]
    (-0.5, 1.0, 0.8)
    """
    band = abstention_band(labels, logits, threshold_logit, target_precision=target_precision)
    return {
        "abstain_lower_logit": _json_number(band["lower_logit"]),
        "abstain_upper_logit": _json_number(band["upper_logit"]),
        "abstain_target_precision": float(target_precision),
        "abstain_coverage": _json_number(band["coverage"]),
        "abstain_validation": {
            "split": "valid",
            "n": int(len(labels)),
            "n_laundered": int(n_laundered),
            "launder_seed": int(launder_seed),
            "precision_fake": _json_number(band["precision_fake"]),
            "precision_real": _json_number(band["precision_real"]),
        },
    }


def band_on_validation(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    preprocess: Preprocess,
    clean_logits: np.ndarray,
    clean_labels: np.ndarray,
    threshold_logit: float,
    *,
    target_precision: float,
    device: torch.device | str = "cpu",
    launder_seed: int = LAUNDER_SEED,
    batch_size: int = 64,
    num_workers: int = 0,
    channels_last: bool = True,
    tta_flip: bool = False,
) -> dict[str, Any]:
    """The band's checkpoint metadata (:func:`band_metadata`), from the validation split's clean scores and the
    scores of the same ``samples`` laundered once (:func:`laundered_logits`), pooled."""
    logits, labels = laundered_logits(
        model, samples, preprocess, device, seed=launder_seed, batch_size=batch_size, num_workers=num_workers,
        channels_last=channels_last, tta_flip=tta_flip,
    )  # fmt: skip
    return band_metadata(
        np.concatenate([np.asarray(clean_labels), labels]),
        np.concatenate([np.asarray(clean_logits), logits]),
        threshold_logit,
        target_precision=target_precision,
        n_laundered=len(logits),
        launder_seed=launder_seed,
    )
