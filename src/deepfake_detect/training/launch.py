"""Start a data-parallel training as ``nproc`` local processes (the ``--nproc`` of ``train``).

Each spawned process sets the torchrun-style environment (``RANK``, ``WORLD_SIZE``, ``MASTER_PORT`` ...) and
runs :func:`~deepfake_detect.training.loop.train_process`, which joins the process group through
:func:`~deepfake_detect.training.distributed.session`. See :mod:`deepfake_detect.training.distributed` for how
such a run behaves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import torch

from deepfake_detect.core.config import TrainConfig, config_from_dict
from deepfake_detect.core.exceptions import ConfigError, DeepfakeDetectError, DistributedError
from deepfake_detect.training.distributed import DistContext
from deepfake_detect.training.loop import TrainResult, train_process

__all__ = ["launch"]

log = logging.getLogger(__name__)

# Seconds the other ranks get to finish after one of them failed, before they are terminated.
FAILURE_GRACE_S = 10.0
# Seconds every rank gets to save and exit after Ctrl-C, before it is terminated.
INTERRUPT_GRACE_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, config: dict, options: dict, queue) -> None:
    """One spawned rank: set the torchrun-style environment, train, hand rank 0's result to the parent."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    try:
        cfg = config_from_dict(config)
        result = train_process(cfg, progress=options["progress"] and rank == 0, resume=options["resume"])
    except DeepfakeDetectError as err:  # user errors: one line, no traceback
        log.error("error (rank %d): %s", rank, err)
        raise SystemExit(2) from None
    if rank == 0:
        queue.put((str(result.run_dir), result.metrics, result.interrupted))


def _stop(processes, sig: int) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)


def _wait(processes, queue, grace_s: float) -> tuple[Any, list[int | None]]:
    """Collect rank 0's result while waiting for every rank; terminate the rest ``grace_s`` after a failure."""
    result, failed_at = None, None
    while True:
        while not queue.empty():
            result = queue.get()
        codes = [p.exitcode for p in processes]
        if all(c is not None for c in codes):
            return (queue.get() if not queue.empty() else result), codes
        if failed_at is None and any(c not in (None, 0) for c in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace_s:
            _stop(processes, signal.SIGTERM)
        time.sleep(0.05)


def launch(cfg: TrainConfig, nproc: int, *, progress: bool = True, resume: str | Path | None = None) -> Any:
    """Train with ``nproc`` local processes (gloo on CPU, NCCL on GPUs) and return rank 0's result.

    Parameters
    ----------
    cfg : TrainConfig
        ``batch_size`` is the global batch and must divide by ``nproc``.
    nproc : int
        Processes to start; with ``device='cuda'`` at most one a visible GPU.
    progress : bool
        Progress bars from rank 0.
    resume : path, optional
        Run folder to continue (it must have been started with the same ``nproc``).

    Returns
    -------
    TrainResult
        As :func:`~deepfake_detect.training.train.train` returns on rank 0.

    Raises
    ------
    ConfigError
        Before anything starts, for a config with no data set, a bad ``nproc`` or a global batch it does not
        divide.
    DistributedError
        When a rank fails; the others are stopped.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    DistContext(world_size=nproc).local_batch(cfg.batch_size)  # fail before spawning anything
    cfg.data_sources()  # likewise a config without a data set
    if cfg.device.startswith("cuda") and nproc > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {nproc} with device={cfg.device} needs {nproc} GPUs; {torch.cuda.device_count()} visible"
        )
    context = torch.multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    options = {"progress": progress, "resume": str(resume) if resume is not None else None}
    port = _free_port()
    processes = [
        context.Process(target=_worker, args=(rank, nproc, port, cfg.to_dict(), options, queue))
        for rank in range(nproc)
    ]
    for process in processes:
        process.start()
    try:
        result, codes = _wait(processes, queue, FAILURE_GRACE_S)
    except KeyboardInterrupt:
        # Ranks started from a terminal got the Ctrl-C themselves; ranks started otherwise get it now.
        # A rank ignores a second one, so it never cuts short rank 0's save.
        _stop(processes, signal.SIGINT)
        result, codes = _wait(processes, queue, INTERRUPT_GRACE_S)
    failed = [(rank, code) for rank, code in enumerate(codes) if code not in (0, None)]
    if result is None or (failed and not result[2]):
        details = ", ".join(f"rank {r} exited with status {c}" for r, c in failed) or "rank 0 sent no result"
        raise DistributedError(f"distributed training failed: {details} (see the messages above)")
    run_dir, metrics, interrupted = result
    return TrainResult(run_dir=Path(run_dir), metrics=metrics, interrupted=interrupted)
