"""The "uncertain" band of a trained model, fitted on its validation split: clean, and laundered once.

This module scores the faces; the band's rule and its checkpoint keys are :mod:`deepfake_detect.metrics.calibration`'s
(:func:`~deepfake_detect.metrics.calibration.band_metadata`). A score near the threshold on a laundered or
off-distribution face is a coin toss. The band is chosen on the validation faces pooled with the
same faces laundered once (seed :data:`~deepfake_detect.metrics.calibration.LAUNDER_SEED`, the protocol of ``evaluate --launder``: per source, the
image at position ``i`` of its source's listing with ``launder_rng(seed, i)``), so that outside it each decided
verdict reaches the target precision on photos that went through resizing and recompression too. The test split
is never used.

Training calls :func:`band_on_validation` at its end; ``deepfake-detect calibrate-abstention`` does the same for
an existing model. Both store ``band_metadata``'s keys in the checkpoint, which
:class:`~deepfake_detect.inference.network.Network` reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deepfake_detect.core.runtime import predict_logits
from deepfake_detect.data.dataset import FaceDataset, make_loader
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.metrics.calibration import LAUNDER_SEED, band_metadata

__all__ = ["band_on_validation", "laundered_logits"]


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
