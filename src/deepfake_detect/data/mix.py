"""A data mix: several folders in the 140k layout, each with a sampling weight, trained on as one data set.

``--data faces140k --data sources/sd21-sdfd:2 --data sources/utkface`` names three sources. A source may hold
one class only (a generator's fakes, a camera's reals). Within each class an image is drawn with a probability
proportional to its source's weight (weight 1 everywhere: each image of a class equally often), and the two
classes are drawn half and half in every epoch, whatever their sizes; an epoch has as many images as the mix's
train splits together. A single source with weight 1 keeps the plain shuffled epoch of a one-folder run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.layout import list_split
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, Sample

__all__ = ["Source", "parse_source", "source_name", "parse_sources", "list_mix_split", "balanced_epoch_order"]


@dataclass(frozen=True)
class Source:
    """One folder of a mix, its sampling weight within each class, and the name its rows are reported under."""

    root: str
    weight: float = 1.0
    name: str = ""


def source_name(root: str | os.PathLike[str]) -> str:
    """The name a source is reported under: its folder's name (``sources/sd21-sdfd`` -> ``sd21-sdfd``).

    Examples
    --------
    >>> source_name("../shared/data/sources/sd21-sdfd/"), source_name("~/data/real_vs_fake")
    ('sd21-sdfd', 'real_vs_fake')
    """
    return Path(os.fspath(root).rstrip("/\\")).name


def parse_source(spec: str | os.PathLike[str] | Source) -> Source:
    """A source from ``PATH`` or ``PATH:WEIGHT`` (the weight is the text after the last colon, if it is a number).

    Examples
    --------
    >>> parse_source("sources/sd21-sdfd:2")
    Source(root='sources/sd21-sdfd', weight=2.0, name='sd21-sdfd')
    >>> parse_source("faces140k").weight
    1.0
    """
    if isinstance(spec, Source):
        return spec if spec.name else Source(spec.root, spec.weight, source_name(spec.root))
    text = os.fspath(spec)
    root, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and _is_number(tail):  # else the colon belongs to the path itself
        root, weight = head, float(tail)
    if not weight > 0:
        raise DataError(f"a source's weight must be positive, got {weight} in {text!r}")
    return Source(root, weight, source_name(root))


def parse_sources(specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | Source]) -> list[Source]:
    """The sources of a mix from one spec or a list of them; names made unique by their parent folder.

    Examples
    --------
    >>> [s.name for s in parse_sources(["a/faces140k", "b/sd21-sdfd:2"])]
    ['faces140k', 'sd21-sdfd']
    >>> [s.name for s in parse_sources(["x/real", "y/real"])]
    ['x/real', 'y/real']
    """
    items = [specs] if isinstance(specs, str | os.PathLike | Source) else list(specs)
    if not items:
        raise DataError("a data mix needs at least one source folder")
    sources = [parse_source(item) for item in items]
    names = [s.name for s in sources]
    return [
        s if names.count(s.name) == 1 else Source(s.root, s.weight, Path(s.root).parent.name + "/" + s.name)
        for s in sources
    ]


def list_mix_split(
    sources: Sequence[Source],
    split: str,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    limit_per_class: int | None = None,
) -> list[Sample]:
    """The labelled images of one split of every source, each tagged with its source's name.

    A source may hold one class only; the mix as a whole must hold both.

    Raises
    ------
    DataError
        When a source lacks the split, or the mix lacks a class.
    """
    samples: list[Sample] = []
    for source in sources:
        listed = list_split(
            source.root,
            split,
            class_names=class_names,
            limit_per_class=limit_per_class,
            classes_present="any",
        )
        samples.extend(Sample(s.path, s.label, source.name) for s in listed)
    missing = [name for label, name in enumerate(class_names) if not any(s.label == label for s in samples)]
    if missing:
        raise DataError(f"the data mix has no {' or '.join(missing)} images in its {split} split")
    return samples


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
