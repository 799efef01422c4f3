"""Torch datasets and loaders over :class:`~deepfake_detect.data.Sample` lists, with an optional
decoded cache.

Unreadable images never crash an epoch: the dataset yields ``None`` for them and :func:`collate_skip_bad`
drops them and counts them, unless ``strict`` asks to fail on the first one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from deepfake_detect.core.exceptions import BadImageError
from deepfake_detect.data.launder import launder_bytes, launder_rng
from deepfake_detect.data.mix import balanced_epoch_order
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Preprocess, normalize

__all__ = [
    "FaceDataset",
    "DecodedCache",
    "EpochShuffle",
    "make_loader",
    "collate_skip_bad",
    "BadImageError",
    "check_free_space",
]

log = logging.getLogger(__name__)


class DecodedCache:
    """Decoded uint8 images of one sample list, in a memory-mapped file at the stored resolution.

    The file is keyed by the samples' paths and content fingerprint and by the preprocessing, so a change of
    data or of preprocessing never reads stale pixels. It lives under ``cache_dir``, never in the data folder.
    A ``.ok`` marker is written last: an interrupted build is rebuilt rather than trusted.
    """

    def __init__(self, samples: Sequence[Sample], preprocess: Preprocess, cache_dir: str | Path, key: str):
        self.samples = list(samples)
        self.preprocess = preprocess
        side = preprocess.stored_size
        self.shape = (len(self.samples), side, side, 3)
        digest = hashlib.sha256(
            json.dumps([key, preprocess.to_dict(), [str(s.path) for s in self.samples]]).encode()
        ).hexdigest()[:24]
        self.path = Path(cache_dir).expanduser() / f"decoded-{digest}-{side}px.u8"
        self.bad_path = self.path.with_suffix(".bad.json")
        self._array: np.memmap | None = None

    @property
    def ready(self) -> bool:
        """True when a complete cache file exists."""
        return self.path.with_suffix(".ok").exists() and self.path.exists()

    def build(self, progress: bool = True) -> None:
        """Decode every sample once into the cache file (no-op when already built)."""
        if self.ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(int(np.prod(self.shape)), shutil.disk_usage(self.path.parent).free, self.path.parent)
        array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.uint8, shape=self.shape)
        bad: list[int] = []
        for i, sample in enumerate(tqdm(self.samples, desc="cache", disable=not progress, unit="img")):
            try:
                array[i] = self.preprocess.load(sample.path)
            except Exception:  # noqa: BLE001 - any decode failure marks the file bad, never stops the build
                bad.append(i)
        array.flush()
        del array
        self.bad_path.write_text(json.dumps(bad))
        self.path.with_suffix(".ok").write_text("ok")

    def get(self, index: int) -> np.ndarray | None:
        """Stored uint8 image of sample ``index``, or None when it did not decode."""
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
            self._bad = set(json.loads(self.bad_path.read_text()))
        return None if index in self._bad else np.asarray(self._array[index])


def check_free_space(needed: int, free: int, folder: str | Path, *, margin: float = 1.05) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when only ``free`` bytes are left.

    Parameters
    ----------
    needed, free : int
        Bytes the file will take and bytes free on the folder's file system.
    folder : path
        Named in the message.
    margin : float
        Head-room factor: the file system also needs space for metadata and other writers.

    Raises
    ------
    OSError
        With the sizes in GiB and what to do about it.

    Examples
    --------
    >>> check_free_space(10 * 2**30, 100 * 2**30, "/tmp")
    >>> check_free_space(10 * 2**30, 2**30, "/tmp")
    Traceback (most recent call last):
    ...
    OSError: the decoded cache needs 10.0 GiB but /tmp has 1.0 GiB free; ...
    """
    if free < needed * margin:
        raise OSError(
            f"the decoded cache needs {needed / 2**30:.1f} GiB but {folder} has "
            f"{free / 2**30:.1f} GiB free; free space, pass --cache-dir elsewhere, "
            "or train without --cache"
        )


class FaceDataset(Dataset):
    """Labelled face images as normalised ``(3, H, W)`` float tensors.

    Parameters
    ----------
    samples : sequence of Sample
    preprocess : Preprocess
    train : bool
        Apply seeded augmentation (random crop in ``crop`` mode, random flip) instead of the evaluation view.
    seed : int
        Augmentation seed; together with the epoch and the index it fixes every random choice.
    hflip : bool
        Random horizontal flips when training.
    cache : DecodedCache, optional
        Read decoded pixels from here instead of the JPEG files.
    strict : bool
        Raise :class:`BadImageError` on an unreadable image instead of yielding None.
    degrade : Degradations, optional
        Extra seeded training augmentations (JPEG, blur, rescale, colour, rotation, masking, zoom).
    launder_seed : int, optional
        Launder each file before the usual load path (:func:`~deepfake_detect.data.launder.launder_bytes`, the
        image at position ``i`` with ``launder_rng(launder_seed, i)``), one image at a time; not with ``cache``.
    """

    def __init__(
        self,
        samples,
        preprocess,
        *,
        train=False,
        seed=0,
        hflip=True,
        cache=None,
        strict=False,
        degrade=None,
        launder_seed=None,
    ):
        if launder_seed is not None and cache is not None:
            raise ValueError(
                "a laundered dataset decodes its files each time; it cannot read a decoded cache"
            )
        self.samples = list(samples)
        self.preprocess = preprocess
        self.train = train
        self.seed = seed
        self.hflip = hflip
        self.cache = cache
        self.strict = strict
        self.degrade = degrade
        self.launder_seed = launder_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws are used (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def _stored(self, index: int) -> np.ndarray | None:
        if self.cache is not None:
            stored = self.cache.get(index)
            if stored is None and self.strict:
                raise BadImageError(f"cannot read image {self.samples[index].path}")
            return stored
        try:
            return self.preprocess.load(self._source(index))
        except Exception as err:  # noqa: BLE001 - a bad file is reported and skipped, the epoch goes on
            if self.strict:
                raise BadImageError(f"cannot read image {self.samples[index].path}: {err}") from err
            log.debug("skipping %s: %s", self.samples[index].path, err)
            return None

    def _source(self, index: int) -> Path | bytes:
        """The file to load, or its laundered bytes (seeded by index, so any worker launders it alike)."""
        path = self.samples[index].path
        if self.launder_seed is None:
            return path
        laundered, _ = launder_bytes(Path(path).read_bytes(), launder_rng(self.launder_seed, index))
        return laundered

    def __getitem__(self, item: int):
        # A data mix's epoch may draw an image more than once; its k-th draw comes as index + k * len(self)
        # (see EpochShuffle) and gets its own augmentation. A first draw keeps the (seed, epoch, index) key.
        draw, index = divmod(item, len(self.samples))
        stored = self._stored(index)
        if stored is None:
            return None
        if self.train:
            key = (self.seed, self.epoch, index) if draw == 0 else (self.seed, self.epoch, index, draw)
            view = self.preprocess.augment(
                stored, np.random.default_rng(key), hflip=self.hflip, degrade=self.degrade
            )
        else:
            view = self.preprocess.finish(stored)
        x = normalize(view, self.preprocess.mean, self.preprocess.std)[0]
        return torch.from_numpy(x), self.samples[index].label, index


def collate_skip_bad(items):
    """Stack the good items of a batch; return ``(x, y, indices, n_bad)``."""
    good = [item for item in items if item is not None]
    n_bad = len(items) - len(good)
    if not good:
        return torch.empty(0), torch.empty(0), torch.empty(0, dtype=torch.long), n_bad
    x = torch.stack([g[0] for g in good])
    y = torch.tensor([g[1] for g in good], dtype=torch.float32)
    idx = torch.tensor([g[2] for g in good], dtype=torch.long)
    return x, y, idx, n_bad


class EpochShuffle(Sampler[int]):
    """An epoch order that depends only on ``(seed, epoch)``, optionally sharded across ranks.

    The order is a permutation of the ``n`` indices, or, given each sample's ``labels`` and source
    ``weights``, a data mix's balanced draw (:func:`~deepfake_detect.data.mix.balanced_epoch_order`: half of
    each class, by weight within a class, ``n`` indices with replacement). Either is dealt out alike. In a
    mix's order an image's second draw of the epoch comes as ``index + n``, its third as ``index + 2n`` and so
    on, so that :class:`FaceDataset` gives each draw its own augmentation.

    With ``world_size`` ranks the epoch's permutation is padded by repeating its first indices until its
    length divides by ``world_size`` (as ``DistributedSampler`` does with ``drop_last=False``), and rank
    ``r`` takes every ``world_size``-th index from position ``r``. Every rank then has the same number of
    samples, hence of steps, and rank ``r``'s batch ``j`` is a subset of the single-process global batch
    ``j`` when the per-rank batch is the global batch divided by ``world_size``.

    Parameters
    ----------
    n : int
        Dataset length.
    seed : int
    rank, world_size : int
        This process's shard; ``0`` and ``1`` give the plain permutation.
    labels, weights : Tensor of shape (n,), optional
        Each sample's class and source weight; given together, they make each epoch a balanced mix draw.

    Examples
    --------
    >>> shards = [list(EpochShuffle(5, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    >>> shards  # 5 indices padded to 6 by repeating the first one
    [[4, 1, 2], [0, 3, 4]]
    >>> mix = EpochShuffle(6, seed=0, labels=torch.tensor([0, 0, 0, 0, 0, 1]), weights=torch.ones(6))
    >>> sorted(i for i in mix if i % 6 == 5)  # the one fake is half of the epoch: drawn 3 times
    [5, 11, 17]
    """

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        labels: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if (labels is None) != (weights is None) or (
            labels is not None and not len(labels) == len(weights) == n
        ):
            raise ValueError(f"labels and weights go together, one for each of the {n} samples")
        self.n = n
        self.labels = labels
        self.weights = weights
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's permutation; ``skip`` drops this rank's first samples (to resume mid-epoch)."""
        self.epoch = epoch
        self.skip = skip

    def order(self) -> list[int]:
        """The whole epoch's order, before it is dealt out to the ranks."""
        if self.weights is not None:
            return _number_repeats(
                balanced_epoch_order(self.labels, self.weights, self.seed, self.epoch), self.n
            )
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def shard(self) -> list[int]:
        """This rank's whole share of the epoch's order, ignoring ``skip``."""
        order = self.order()
        if self.world_size == 1:
            return order
        padded = order + order[: (-len(order)) % self.world_size] if order else order
        return padded[self.rank :: self.world_size]

    def __len__(self) -> int:
        per_rank = -(-self.n // self.world_size)  # ceil: the padded share
        return max(per_rank - self.skip, 0)

    def __iter__(self):
        # Skipping draws nothing: the order is a pure function of (seed, epoch, rank, world_size).
        return iter(self.shard()[self.skip :])


def _number_repeats(order: list[int], n: int) -> list[int]:
    """Each index's k-th appearance in ``order`` as ``index + k * n`` (the first one unchanged).

    Examples
    --------
    >>> _number_repeats([2, 0, 2, 2], 3)
    [2, 0, 5, 8]
    """
    seen: dict[int, int] = {}
    numbered = []
    for index in order:
        draw = seen.get(index, 0)
        seen[index] = draw + 1
        numbered.append(index + draw * n)
    return numbered


def _seed_worker(worker_id: int) -> None:
    # Each worker's torch seed comes from the loader's generator; derive the others from it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: FaceDataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    weights: torch.Tensor | None = None,
):
    """A DataLoader with a seeded generator, seeded workers and bad-image skipping.

    Parameters
    ----------
    dataset : FaceDataset
    batch_size : int
        Images a batch (per rank when ``world_size`` > 1).
    shuffle : bool
        Draw each epoch's order from ``(seed, epoch)``; otherwise keep the dataset order.
    seed : int
    num_workers : int
        Decoding worker processes.
    rank, world_size : int
        With ``shuffle``, give this rank its shard of the order (see :class:`EpochShuffle`).
    weights : Tensor of shape (len(dataset),), optional
        With ``shuffle``, each sample's source weight: epochs are a data mix's balanced draw (half of each
        class, by weight within a class) instead of a permutation.

    Returns
    -------
    loader : torch.utils.data.DataLoader
    sampler : EpochShuffle or None
        Call ``sampler.set_epoch(e)`` (and ``dataset.set_epoch(e)``) before each epoch when shuffling.
    """
    sampler = None
    if shuffle:
        labels = None if weights is None else torch.tensor([s.label for s in dataset.samples])
        sampler = EpochShuffle(
            len(dataset), seed, rank=rank, world_size=world_size, labels=labels, weights=weights
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skip_bad,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        multiprocessing_context="spawn" if num_workers and os.name != "posix" else None,
    )
    return loader, sampler
