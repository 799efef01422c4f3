"""Where and how computation runs: device, threads, determinism, and batched forward passes."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "available_cores",
    "deterministic",
    "make_deterministic",
    "resolve_device",
    "resolve_threads",
    "predict_logits",
]

# Read by cuBLAS when it starts: its deterministic mode needs a fixed workspace.
CUBLAS_CONFIG_ENV = "CUBLAS_WORKSPACE_CONFIG"


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
    """Seed every generator, fix the thread count and ask torch for deterministic kernels, process-wide.

    The thread count changes floating-point reduction order, hence results, so it is fixed here and
    returned for the run's records. On a GPU some kernels torch needs (adaptive pooling's backward among them)
    have no deterministic version: there torch only warns, and GPU runs are repeatable only up to those kernels.
    Only the generators of ``device``'s kind are seeded besides the CPU's, so a CPU run leaves no seed queued
    for a GPU the process may start later. :func:`deterministic` does the same for a block of code and then
    restores the caller's settings.

    Returns
    -------
    int
        The thread count in force.
    """
    threads = resolve_threads(threads)
    device = torch.device(device)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)  # other accelerators: every generator, as before
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    # Needed by deterministic cuBLAS; harmless on CPU.
    os.environ.setdefault(CUBLAS_CONFIG_ENV, ":4096:8")
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    return threads


@dataclass(frozen=True)
class _ProcessSettings:
    """What :func:`make_deterministic` changes: settings and generator states, to put back afterwards."""

    threads: int
    deterministic: bool
    warn_only: bool
    cudnn_benchmark: bool
    cublas_config: str | None
    python_rng: tuple
    numpy_rng: dict
    torch_rng: torch.Tensor
    cuda_rngs: list[torch.Tensor] | None

    @classmethod
    def capture(cls, device: torch.device) -> _ProcessSettings:
        # Reading the GPU generators starts CUDA, so it is done only for a run that will start it anyway.
        cuda = device.type == "cuda" or torch.cuda.is_initialized()
        return cls(
            threads=torch.get_num_threads(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            cublas_config=os.environ.get(CUBLAS_CONFIG_ENV),
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(legacy=False),
            torch_rng=torch.get_rng_state(),
            cuda_rngs=torch.cuda.get_rng_state_all() if cuda else None,
        )

    def restore(self) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.cublas_config is None:
            os.environ.pop(CUBLAS_CONFIG_ENV, None)
        else:
            os.environ[CUBLAS_CONFIG_ENV] = self.cublas_config
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rngs is not None:
            torch.cuda.set_rng_state_all(self.cuda_rngs)


@contextlib.contextmanager
def deterministic(seed: int, threads: int | None = None, device: str | torch.device = "cpu") -> Iterator[int]:
    """:func:`make_deterministic` for the body only: the caller's settings and generator states come back after.

    Restored on exit, also when the body raises: the torch thread count, ``torch.use_deterministic_algorithms``,
    ``torch.backends.cudnn.benchmark``, ``CUBLAS_WORKSPACE_CONFIG``, and the Python, NumPy and torch (CPU, and
    CUDA for a CUDA device) random states.

    Yields
    ------
    int
        The thread count in force in the body.

    Examples
    --------
    >>> before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    >>> with deterministic(seed=0, threads=1) as threads:
    ...     threads, torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    (1, 1, True)
    >>> (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    True
    """
    saved = _ProcessSettings.capture(torch.device(device))
    try:
        yield make_deterministic(seed, threads, device)
    finally:
        saved.restore()


def resolve_device(device: str = "cpu") -> torch.device:
    """Turn ``cpu``/``cuda``/``auto`` into a device, with a clear error when CUDA is asked for but absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device} was asked for but no CUDA GPU is visible; use device=cpu (--set device=cpu)"
        )
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
