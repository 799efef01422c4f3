"""Where and how computation runs: device, threads, determinism, and batched forward passes."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["available_cores", "make_deterministic", "resolve_device", "resolve_threads", "predict_logits"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else every core).

    The one place a core count is read: thread counts, decode workers and hashing pools all start here.

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    """The torch thread count to use: the given one, else every core this process may use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        return threads
    return available_cores()


def make_deterministic(seed: int, threads: int | None = None, device: str | torch.device = "cpu") -> int:
    """Seed every generator, fix the thread count and ask torch for deterministic kernels.

    The thread count changes floating-point reduction order, hence results, so it is fixed here and
    returned for the run's records. On a GPU some kernels torch needs (adaptive pooling's backward among them)
    have no deterministic version: there torch only warns, and GPU runs are repeatable only up to those kernels.

    Returns
    -------
    int
        The thread count in force.
    """
    threads = resolve_threads(threads)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=torch.device(device).type == "cuda")
    # Needed by deterministic cuBLAS; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    return threads


def resolve_device(device: str = "cpu") -> torch.device:
    """Turn ``cpu``/``cuda``/``auto`` into a device, with a clear error when CUDA is asked for but absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    return torch.device(device)


@torch.inference_mode()
def predict_logits(model, loader, device, *, channels_last: bool = True, tta_flip: bool = False):
    """Run ``model`` over a loader of ``(x, y, index, n_bad)`` batches (optionally mirror-averaged).

    Returns
    -------
    logits : ndarray of shape (n_good,)
    labels : ndarray of shape (n_good,)
    indices : ndarray of shape (n_good,)
        Positions in the dataset of the images that decoded.
    n_bad : int
        Images skipped because they could not be read.
    """
    model.eval()
    logits, labels, indices, n_bad = [], [], [], 0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for x, y, idx, bad in loader:
        n_bad += bad
        if len(idx) == 0:
            continue
        x = x.to(device, memory_format=fmt)
        out = model(x)
        if tta_flip:  # mirror-image test-time augmentation: average the two views' logits
            out = 0.5 * (out + model(x.flip(3)))
        logits.append(out.float().cpu())
        labels.append(y)
        indices.append(idx)
    if not logits:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), n_bad
    return (
        torch.cat(logits).numpy(),
        torch.cat(labels).numpy(),
        torch.cat(indices).numpy(),
        n_bad,
    )
