"""A data mix: several folders in the 140k layout, each with a sampling weight, trained on as one data set.

A source named ``photos:PATH`` holds whole photos: its samples are the face crops
:mod:`deepfake_detect.data.photos` frames from them as ``scan`` does.

``--data faces140k --data sources/sd21-sdfd:2 --data sources/utkface`` names three sources. A source may hold
one class only (a generator's fakes, a camera's reals), or take one class of a folder that holds two
(``--data real:faces140k``). Within each class an image is drawn with a probability
proportional to its source's weight (weight 1 everywhere: each image of a class equally often), and the two
classes are drawn half and half in every epoch, whatever their sizes; an epoch has as many images as the mix's
train splits together. A single source with weight 1 keeps the plain shuffled epoch of a one-folder run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepfake_detect.core.config import DEFAULT_CACHE_DIR
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.sources import Source, parse_source, parse_sources, source_name
from deepfake_detect.data.layout import list_split
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, Sample

__all__ = [
    "Source",
    "parse_source",
    "source_name",
    "parse_sources",
    "list_mix_split",
    "balanced_epoch_order",
    "is_plain",
    "sample_weights",
    "source_indices",
]


def list_mix_split(
    sources: Sequence[Source],
    split: str,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    limit_per_class: int | None = None,
    manifest: bool | None = None,
    cache_dir: str = DEFAULT_CACHE_DIR,
) -> list[Sample]:
    """The labelled images of one split of every source, each tagged with its source's name.

    A source may hold one class only, or take one class of its folder (``real:PATH``, ``fake:PATH``); the mix
    as a whole must hold both. ``limit_per_class`` and ``manifest`` apply to each source as
    :func:`~deepfake_detect.data.layout.list_split` applies them. A photo
    source gives the face crops of its photos, framed into (or read from) ``cache_dir``
    (:func:`~deepfake_detect.data.photos.list_photo_split`); its photos without a face are logged and left out.

    Raises
    ------
    DataError
        When a source lacks the split, or the mix lacks a class.
    """
    samples: list[Sample] = []
    for source in sources:
        if source.kind == "photos":
            from deepfake_detect.data.photos import list_photo_split  # imports the face finders

            listing = list_photo_split(
                source, split, class_names=class_names, limit_per_class=limit_per_class, cache_dir=cache_dir
            )
            samples.extend(listing.samples)
            continue
        listed = list_split(
            source.root,
            split,
            class_names=class_names,
            limit_per_class=limit_per_class,
            manifest=manifest,
            classes_present="any",
        )
        taken = [s for s in listed if source.only_label in (None, s.label)]
        if source.only is not None and not taken:
            raise DataError(f"{source.name}: {source.root} has no {source.only} images in its {split} split")
        samples.extend(Sample(s.path, s.label, source.name) for s in taken)
    missing = [name for label, name in enumerate(class_names) if not any(s.label == label for s in samples)]
    if missing:
        raise DataError(f"the data mix has no {' or '.join(missing)} images in its {split} split")
    return samples


def balanced_epoch_order(labels: torch.Tensor, weights: torch.Tensor, seed: int, epoch: int) -> list[int]:
    """One epoch of a mix: indices drawn half from each class, by weight within a class, then shuffled.

    A pure function of ``(seed, epoch)`` and the data: the same on every machine and after a resume.

    Parameters
    ----------
    labels : Tensor of shape (n,)
        0 = real, 1 = fake.
    weights : Tensor of shape (n,)
        Each image's source weight.
    seed, epoch : int

    Returns
    -------
    list of int
        ``n`` indices, with replacement: ``n // 2`` reals and ``n - n // 2`` fakes (or all of one class when the
        other is empty).

    Examples
    --------
    >>> order = balanced_epoch_order(torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]), torch.ones(8), seed=0, epoch=0)
    >>> len(order), sum(i >= 6 for i in order)
    (8, 4)
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    n = len(labels)
    classes = [torch.nonzero(labels == c).flatten() for c in (0, 1)]
    present = [members for members in classes if len(members)]
    counts = [n // 2, n - n // 2] if len(present) == 2 else [n]
    drawn = []
    for members, count in zip(present, counts, strict=True):
        pick = torch.multinomial(weights[members].double(), count, replacement=True, generator=generator)
        drawn.append(members[pick])
    order = torch.cat(drawn)
    return order[torch.randperm(n, generator=generator)].tolist()


def is_plain(sources: Sequence[Source]) -> bool:
    """True for one source of weight 1: its epochs are the plain shuffle a one-folder run always had.

    Examples
    --------
    >>> is_plain(parse_sources("faces140k")), is_plain(parse_sources(["faces140k", "sd21-sdfd"]))
    (True, False)
    """
    return len(sources) == 1 and sources[0].weight == 1.0


def sample_weights(sources: Sequence[Source], samples: Sequence[Sample]) -> torch.Tensor:
    """Each sample's source weight, for :func:`balanced_epoch_order` (samples tagged by :func:`list_mix_split`).

    Examples
    --------
    >>> from pathlib import Path
    >>> mix = parse_sources(["a/faces140k", "b/sd21-sdfd:3"])
    >>> sample_weights(mix, [Sample(Path("x.jpg"), 1, "sd21-sdfd"), Sample(Path("y.jpg"), 0, "faces140k")])
    tensor([3., 1.], dtype=torch.float64)
    """
    by_name = {s.name: s.weight for s in sources}
    try:
        return torch.tensor([by_name[s.source] for s in samples], dtype=torch.float64)
    except KeyError as err:
        raise DataError(f"a sample of source {err.args[0]!r} is not in the mix {list(by_name)}") from None


def source_indices(sources: Sequence[Source], samples: Sequence[Sample]) -> torch.Tensor:
    """Each sample's source as its index in the mix (samples tagged by :func:`list_mix_split`).

    The training loop looks a batch's sources up by the dataset indices its loader yields, so the data
    pipeline draws and carries nothing more (the source adversary, :mod:`deepfake_detect.training.adversary`).

    Examples
    --------
    >>> from pathlib import Path
    >>> mix = parse_sources(["a/faces140k", "b/sd21-sdfd:3"])
    >>> source_indices(mix, [Sample(Path("x.jpg"), 1, "sd21-sdfd"), Sample(Path("y.jpg"), 0, "faces140k")])
    tensor([1, 0])
    """
    by_name = {s.name: i for i, s in enumerate(sources)}
    try:
        return torch.tensor([by_name[s.source] for s in samples], dtype=torch.long)
    except KeyError as err:
        raise DataError(f"a sample of source {err.args[0]!r} is not in the mix {list(by_name)}") from None
