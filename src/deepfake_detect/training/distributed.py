"""Data-parallel training over several processes: process group, DDP wrapper, launcher.

Two ways to start it, with the same result:

* ``deepfake-detect train --nproc N ...`` spawns N local processes (:func:`launch`);
* ``torchrun --nproc-per-node N -m deepfake_detect train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR`` and ``MASTER_PORT`` itself.

Either way :func:`session` (entered by :func:`~deepfake_detect.training.train.train`) reads that torchrun-style
environment and joins a process group: gloo on CPU, NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``). Without
the environment it is a world of one and nothing changes.

How a distributed run behaves:

* ``batch_size`` stays the *global* batch; each rank takes ``batch_size / world_size`` images a step, and
  DDP averages the gradients, so a step equals one single-process step on the global batch up to float
  rounding (when no image is unreadable).
* Each epoch's order is the single-process ``(seed, epoch)`` permutation, padded by repeating its first indices
  until its length divides by the world size, and then dealt out by rank (see
  :class:`~deepfake_detect.data.dataset.EpochShuffle`). Every rank runs the same number of steps; in the last one a
  few images may be seen twice when the train split does not divide evenly.
* Only rank 0 validates (on its own copy of the weights) and writes the run folder and checkpoints; it sends
  the monitored value to the other ranks so every rank makes the same plateau and early-stopping decisions.
  The train columns of the run's history are rank 0's shard.
* Batch normalisation: SyncBatchNorm refuses CPU tensors in torch 2.13, so during training each rank
  normalises with its own batch statistics, and DDP (``forward_sync_buffers=True``, the successor of
  ``broadcast_buffers=True``) copies rank 0's running statistics to every rank before each forward pass.
  Validation and saving use rank 0's buffers.
* Ctrl-C: every rank stops; rank 0 saves the best weights so far, calibrated, as a single-process run does;
  each process leaves the process group before exiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from deepfake_detect.core.config import ConfigError
from deepfake_detect.core.exceptions import DistributedError
from deepfake_detect.core.runtime import resolve_device, resolve_threads

__all__ = ["DistContext", "DistributedError", "session", "world_from_env"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) data-parallel run.

    Attributes
    ----------
    rank, world_size, local_rank : int
    device : torch.device
        ``cuda:LOCAL_RANK`` for NCCL runs, else the configured device.
    backend : str or None
        ``gloo``, ``nccl``, or None when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True inside a process group."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that validates and writes."""
        return self.rank == 0

    def local_batch(self, batch_size: int) -> int:
        """Images a step on this rank: the global batch divided by the world size."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"batch_size {batch_size} must divide by the {self.world_size} processes "
                "(it is the global batch; each process takes an equal share)"
            )
        return batch_size // self.world_size

    def threads(self, threads: int | None) -> int:
        """Torch threads a rank: as configured, else this machine's cores shared between the local ranks."""
        if threads is not None or not self.enabled:
            return resolve_threads(threads)
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        return max(1, resolve_threads(None) // local_world)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model in DistributedDataParallel when distributed, else the model itself."""
        if not self.enabled:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, forward_sync_buffers=True
        )

    def broadcast_float(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (float64, so rank 0 keeps its exact value)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def broadcast_str(self, text: str) -> str:
        """Rank 0's ``text`` on every rank."""
        if not self.enabled:
            return text
        data = text.encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, src=0)
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buffer, src=0)
        return bytes(buffer.cpu().tolist()).decode()

    def barrier(self) -> None:
        """Wait for every rank (a no-op when not distributed)."""
        if self.enabled:
            dist.barrier()

    @contextlib.contextmanager
    def rank0_first(self) -> Iterator[None]:
        """Run the body on rank 0, then on the others (e.g. to build a shared on-disk cache once)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


def world_from_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from a torchrun-style environment, or None outside one."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world_size = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK {rank} is outside WORLD_SIZE {world_size}")
    return rank, world_size, local_rank


@contextlib.contextmanager
def session(device: str = "cpu") -> Iterator[DistContext]:
    """Join the process group the environment describes (if any) for the body, and leave it after.

    A process group that already exists (started by the caller) is used and left open.
    """
    world = world_from_env()
    if world is None:
        yield DistContext(device=resolve_device(device))
        return
    rank, world_size, local_rank = world
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        yield DistContext(rank, world_size, local_rank, resolved, dist.get_backend())
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()
