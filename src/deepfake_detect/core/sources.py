"""The sources of a data mix: ``[photos:]PATH[:WEIGHT]`` specs, as ``train --data`` and a config's ``data`` give them.

A source is a folder in the 140k layout (or Kaggle's CSV layout) that may hold one class only, its sampling
weight within each class, and the name its rows are reported under (its folder's name). Its images are face
crops like the 140k set's, unless the spec starts with :data:`PHOTOS_PREFIX` (``photos:``): then they are whole
photos, whose faces are found and framed as ``scan`` frames them (:mod:`deepfake_detect.data.photos`). Parsing
reads no image; :mod:`deepfake_detect.data.mix` lists a mix's images and draws its epochs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepfake_detect.core.exceptions import ConfigError

__all__ = [
    "PHOTOS_PREFIX",
    "Source",
    "source_name",
    "parse_source",
    "parse_sources",
    "source_record",
    "source_from_record",
]

# A spec starting with this names a folder of whole photos rather than of face crops.
PHOTOS_PREFIX = "photos:"


@dataclass(frozen=True)
class Source:
    """One folder of a data mix, its sampling weight within each class, the name its rows are reported under,
    and what its images are: ``"faces"`` (crops) or ``"photos"`` (whole photos, framed on listing)."""

    root: str
    weight: float = 1.0
    name: str = ""
    kind: str = "faces"


def source_name(root: str | os.PathLike[str]) -> str:
    """The name a source is reported under: its folder's name (``sources/sd21-sdfd`` -> ``sd21-sdfd``).

    Examples
    --------
    >>> source_name("../shared/data/sources/sd21-sdfd/"), source_name("~/data/real_vs_fake")
    ('sd21-sdfd', 'real_vs_fake')
    """
    return Path(os.fspath(root).rstrip("/\\")).name


def parse_source(spec: str | os.PathLike[str] | Source) -> Source:
    """A source from ``PATH`` or ``PATH:WEIGHT``, either after ``photos:`` for a folder of whole photos.

    The weight is the text after the last colon when it is a number and the whole spec is not itself an
    existing path, so a folder whose name ends in ``:2`` keeps the meaning it had before mixes existed; so
    too ``photos:`` starts a photo source only when the whole spec is not an existing path.

    Raises
    ------
    ConfigError
        For a weight that is not a positive finite number.

    Examples
    --------
    >>> parse_source("sources/sd21-sdfd:2")
    Source(root='sources/sd21-sdfd', weight=2.0, name='sd21-sdfd', kind='faces')
    >>> parse_source("faces140k").weight
    1.0
    >>> parse_source("photos:../shared/data/photos/studio-london:2")
    Source(root='../shared/data/photos/studio-london', weight=2.0, name='studio-london', kind='photos')
    """
    if isinstance(spec, Source):
        return spec if spec.name else Source(spec.root, spec.weight, source_name(spec.root), spec.kind)
    text, kind = os.fspath(spec), "faces"
    if text.startswith(PHOTOS_PREFIX) and not Path(text).expanduser().exists():
        text, kind = text[len(PHOTOS_PREFIX) :], "photos"
    root, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and _is_number(tail) and not Path(text).expanduser().exists():
        root, weight = head, float(tail)
    if not (weight > 0 and math.isfinite(weight)):
        raise ConfigError(f"a source's weight must be a positive number, got {tail!r} in {text!r}")
    return Source(root, weight, source_name(root), kind)


def parse_sources(
    specs: str | os.PathLike[str] | Source | Sequence[str | os.PathLike[str] | Source],
) -> list[Source]:
    """The sources of a mix from one spec or a list of them; names made unique by their parent folder.

    Raises
    ------
    ConfigError
        For no spec, a bad weight, or one folder named twice.

    Examples
    --------
    >>> [s.name for s in parse_sources(["a/faces140k", "b/sd21-sdfd:2"])]
    ['faces140k', 'sd21-sdfd']
    >>> [s.name for s in parse_sources(["x/real", "y/real"])]
    ['x/real', 'y/real']
    """
    items = [specs] if isinstance(specs, str | os.PathLike | Source) else list(specs)
    if not items:
        raise ConfigError("a data mix needs at least one source folder")
    sources = [parse_source(item) for item in items]
    names = [s.name for s in sources]
    unique = [
        s
        if names.count(s.name) == 1
        else Source(s.root, s.weight, Path(s.root).parent.name + "/" + s.name, s.kind)
        for s in sources
    ]
    twice = sorted({s.name for s in unique if [u.name for u in unique].count(s.name) > 1})
    if twice:
        raise ConfigError(f"a data mix names each source folder once; {', '.join(twice)} is named twice")
    return unique


def source_record(source: Source) -> dict:
    """How a run's files record a source: name, root and weight, and ``kind`` for a photo source.

    Examples
    --------
    >>> source_record(parse_source("photos:d/studio"))
    {'name': 'studio', 'root': 'd/studio', 'weight': 1.0, 'kind': 'photos'}
    >>> source_from_record(source_record(parse_source("d/gen:2"))) == parse_source("d/gen:2")
    True
    """
    record = {"name": source.name, "root": source.root, "weight": source.weight}
    return record if source.kind == "faces" else {**record, "kind": source.kind}


def source_from_record(record: dict) -> Source:
    """The source a run's files recorded with :func:`source_record` (records without ``kind`` are faces)."""
    name, kind = str(record.get("name", "")), str(record.get("kind", "faces"))
    return Source(str(record["root"]), float(record.get("weight", 1.0)), name, kind)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
