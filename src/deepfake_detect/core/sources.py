"""The sources of a data mix: ``[photos:|real:|fake:]PATH[:WEIGHT]`` specs, as ``train --data`` and a config's ``data``
give them.

A source is a folder in the 140k layout (or Kaggle's CSV layout) that may hold one class only, its sampling
weight within each class, and the name its rows are reported under (its folder's name). Its images are face
crops like the 140k set's, unless the spec starts with :data:`PHOTOS_PREFIX` (``photos:``): then they are whole
photos, whose faces are found and framed as ``scan`` frames them (:mod:`deepfake_detect.data.photos`). A spec
starting with ``real:`` or ``fake:`` (:data:`CLASS_PREFIXES`) takes that one class of its folder and leaves the
other out, so one family of a folder that holds two (faces140k's StyleGAN fakes beside its FFHQ photos) can be
held out of a training mix; its name says which (``faces140k-real``). Parsing reads no image;
:mod:`deepfake_detect.data.mix` lists a mix's images and draws its epochs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepfake_detect.core.exceptions import ConfigError

__all__ = [
    "PHOTOS_PREFIX",
    "CLASS_PREFIXES",
    "Source",
    "source_name",
    "parse_source",
    "parse_sources",
    "source_record",
    "source_from_record",
]

# A spec starting with this names a folder of whole photos rather than of face crops.
PHOTOS_PREFIX = "photos:"
# A spec starting with one of these takes that class of its folder only: "real" is label 0, "fake" label 1.
CLASS_PREFIXES = ("real:", "fake:")


@dataclass(frozen=True)
class Source:
    """One folder of a data mix, its sampling weight within each class, the name its rows are reported under,
    what its images are: ``"faces"`` (crops) or ``"photos"`` (whole photos, framed on listing), and ``only``,
    the one class it takes of its folder (``"real"`` or ``"fake"``; ``None`` takes what the folder holds)."""

    root: str
    weight: float = 1.0
    name: str = ""
    kind: str = "faces"
    only: str | None = None

    def __post_init__(self) -> None:
        if self.only not in (None, "real", "fake"):
            raise ConfigError(f"a source takes the class 'real' or 'fake', not {self.only!r} ({self.root})")
        if self.only is not None and self.kind == "photos":
            raise ConfigError(
                f"a photo source holds real photos only; it takes no class prefix ({self.root})"
            )

    @property
    def only_label(self) -> int | None:
        """The label of the one class this source takes (0 real, 1 fake), or ``None`` for every class."""
        return None if self.only is None else ("real", "fake").index(self.only)


def source_name(root: str | os.PathLike[str]) -> str:
    """The name a source is reported under: its folder's name (``sources/sd21-sdfd`` -> ``sd21-sdfd``).

    Examples
    --------
    >>> source_name("../shared/data/sources/sd21-sdfd/"), source_name("~/data/real_vs_fake")
    ('sd21-sdfd', 'real_vs_fake')
    """
    return Path(os.fspath(root).rstrip("/\\")).name


def parse_source(spec: str | os.PathLike[str] | Source) -> Source:
    """A source from ``PATH`` or ``PATH:WEIGHT``, either after ``photos:`` for a folder of whole photos, or
    after ``real:`` or ``fake:`` for one class of a folder.

    The weight is the text after the last colon when it is a number and the whole spec is not itself an
    existing path, so a folder whose name ends in ``:2`` keeps the meaning it had before mixes existed; so
    too a prefix counts only when the whole spec is not an existing path. A one-class source is named after
    its folder and its class (``faces140k-fake``), so it can sit in one mix beside its other class.

    Raises
    ------
    ConfigError
        For a weight that is not a positive finite number, two class prefixes, or one on a photo source.

    Examples
    --------
    >>> parse_source("sources/sd21-sdfd:2")
    Source(root='sources/sd21-sdfd', weight=2.0, name='sd21-sdfd', kind='faces', only=None)
    >>> parse_source("faces140k").weight
    1.0
    >>> parse_source("photos:../shared/data/photos/studio-london:2").kind
    'photos'
    >>> parse_source("real:../shared/data/faces140k:2")
    Source(root='../shared/data/faces140k', weight=2.0, name='faces140k-real', kind='faces', only='real')
    >>> parse_source("real:2").root  # a folder named real, at weight 2
    'real'
    """
    if isinstance(spec, Source):
        return spec if spec.name else replace(spec, name=_name(spec.root, spec.only))
    text, kind, only = os.fspath(spec), "faces", _class_prefix(os.fspath(spec))
    if only is not None:
        text = text[len(only) + 1 :]
    if text.startswith(PHOTOS_PREFIX) and not Path(text).expanduser().exists():
        if only is not None:
            raise ConfigError(f"a photo source holds real photos only; drop {only + ':'!r} from {spec!r}")
        text, kind = text[len(PHOTOS_PREFIX) :], "photos"
        if _class_prefix(text):
            raise ConfigError(f"a photo source holds real photos only; drop the class prefix from {spec!r}")
    root, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and _is_number(tail) and not Path(text).expanduser().exists():
        root, weight = head, float(tail)
    if not (weight > 0 and math.isfinite(weight)):
        raise ConfigError(f"a source's weight must be a positive number, got {tail!r} in {text!r}")
    return Source(root, weight, _name(root, only), kind, only)


def _class_prefix(text: str) -> str | None:
    """The class a spec's ``real:``/``fake:`` prefix takes, or ``None``: not when the whole spec is an existing
    path, nor when a number follows (``real:2`` is the folder ``real`` at weight 2); a second prefix is an error."""
    prefix = next((p for p in CLASS_PREFIXES if text.startswith(p)), None)
    if prefix is None or Path(text).expanduser().exists() or _is_number(text[len(prefix) :]):
        return None
    if any(text[len(prefix) :].startswith(p) for p in CLASS_PREFIXES):
        raise ConfigError(f"a source takes one class at most: {text!r} names two")
    return prefix[:-1]


def _name(root: str, only: str | None) -> str:
    """A source's name: its folder's, and for a one-class source the class too."""
    return source_name(root) if only is None else f"{source_name(root)}-{only}"


def parse_sources(
    specs: str | os.PathLike[str] | Source | Sequence[str | os.PathLike[str] | Source],
) -> list[Source]:
    """The sources of a mix from one spec or a list of them; names made unique by their parent folder.

    Raises
    ------
    ConfigError
        For no spec, a bad weight, or one folder named twice (but as its two classes).

    Examples
    --------
    >>> [s.name for s in parse_sources(["a/faces140k", "b/sd21-sdfd:2"])]
    ['faces140k', 'sd21-sdfd']
    >>> [s.name for s in parse_sources(["x/real", "y/real"])]
    ['x/real', 'y/real']
    >>> [s.name for s in parse_sources(["real:d/faces140k", "fake:d/faces140k"])]
    ['faces140k-real', 'faces140k-fake']
    """
    items = [specs] if isinstance(specs, str | os.PathLike | Source) else list(specs)
    if not items:
        raise ConfigError("a data mix needs at least one source folder")
    sources = [parse_source(item) for item in items]
    names = [s.name for s in sources]
    unique = [
        s if names.count(s.name) == 1 else replace(s, name=Path(s.root).parent.name + "/" + s.name)
        for s in sources
    ]
    twice = sorted({s.name for s in unique if [u.name for u in unique].count(s.name) > 1})
    if twice:
        raise ConfigError(f"a data mix names each source folder once; {', '.join(twice)} is named twice")
    _refuse_overlapping_classes(unique)
    return unique


def _refuse_overlapping_classes(sources: Sequence[Source]) -> None:
    """One folder may appear twice only as its two classes (``real:X`` and ``fake:X``): otherwise some of its
    images would sit in two sources and be drawn twice as often as their weights say."""
    for i, a in enumerate(sources):
        for b in sources[i + 1 :]:
            same = os.path.normpath(os.path.expanduser(a.root)) == os.path.normpath(
                os.path.expanduser(b.root)
            )
            if same and (a.only is None or b.only is None or a.only == b.only):
                raise ConfigError(
                    f"{a.name} and {b.name} share images of one folder ({a.root}); "
                    "give a folder once, or as its two classes real:PATH and fake:PATH"
                )


def source_record(source: Source) -> dict:
    """How a run's files record a source: name, root and weight, ``kind`` for a photo source, and ``only`` for
    a one-class source.

    Examples
    --------
    >>> source_record(parse_source("photos:d/studio"))
    {'name': 'studio', 'root': 'd/studio', 'weight': 1.0, 'kind': 'photos'}
    >>> source_record(parse_source("fake:d/faces140k"))
    {'name': 'faces140k-fake', 'root': 'd/faces140k', 'weight': 1.0, 'only': 'fake'}
    >>> source_from_record(source_record(parse_source("d/gen:2"))) == parse_source("d/gen:2")
    True
    """
    record = {"name": source.name, "root": source.root, "weight": source.weight}
    if source.kind != "faces":
        record["kind"] = source.kind
    if source.only is not None:
        record["only"] = source.only
    return record


def source_from_record(record: dict) -> Source:
    """The source a run's files recorded with :func:`source_record` (records without ``kind`` are faces, and
    without ``only`` take every class)."""
    name, kind, only = str(record.get("name", "")), str(record.get("kind", "faces")), record.get("only")
    return Source(str(record["root"]), float(record.get("weight", 1.0)), name, kind, only)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
