"""What a labelled image is, and the naming rules every data module shares.

The split and class folder names, the image suffixes, where the Kaggle download nests its folders, and the
rule that picks a deterministic subset of a class: :mod:`~deepfake_detect.data.layout`,
:mod:`~deepfake_detect.data.manifests` and :mod:`~deepfake_detect.data.check` all follow these.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepfake_detect.core.exceptions import DataError

__all__ = [
    "SPLITS",
    "IMAGE_EXTENSIONS",
    "DEFAULT_CLASS_NAMES",
    "KAGGLE_NESTINGS",
    "Sample",
    "check_class_names",
    "is_hidden",
    "is_image_name",
    "spread_subset",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Lower-case suffixes (with the dot) of files treated as images; matched case-insensitively.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)
DEFAULT_CLASS_NAMES: tuple[str, str] = ("real", "fake")
#: Where the Kaggle archive puts the split folders, relative to the folder a user points at.
KAGGLE_NESTINGS: tuple[tuple[str, ...], ...] = ((), ("real_vs_fake", "real-vs-fake"), ("real-vs-fake",))


@dataclass(frozen=True)
class Sample:
    """One labelled image file.

    Attributes
    ----------
    path : Path
        The image file (the data root joined with its relative path).
    label : int
        Index into the class names: 0 = real, 1 = fake with the defaults.
    source : str
        The name of the data mix source it comes from (see :mod:`~deepfake_detect.data.mix`); empty for a
        plain one-folder listing.

    Examples
    --------
    >>> Sample(Path("train/fake/1.jpg"), 1).label
    1
    """

    path: Path
    label: int
    source: str = ""


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """The class folder names as a tuple, refusing anything but two distinct non-empty names.

    Parameters
    ----------
    class_names : sequence of str
        Real (label 0) then fake (label 1).

    Returns
    -------
    tuple of str

    Raises
    ------
    DataError
        For a wrong count, a repeated or an empty name.

    Examples
    --------
    >>> check_class_names(["real", "fake"])
    ('real', 'fake')
    """
    names = tuple(class_names)
    if len(names) != 2 or len(set(names)) != 2 or not all(names):
        raise DataError(f"expected two distinct class folder names (real, fake), got {names!r}")
    return names


def is_hidden(name: str) -> bool:
    """True for a dot-name: macOS ``._x.jpg`` resource forks and ``.ipynb_checkpoints`` look like data but are not.

    Examples
    --------
    >>> is_hidden("._x.jpg"), is_hidden("x.jpg")
    (True, False)
    """
    return name.startswith(".")


def is_image_name(name: str) -> bool:
    """True when the name ends in one of :data:`IMAGE_EXTENSIONS` (any case).

    Examples
    --------
    >>> is_image_name("a/B.JPG"), is_image_name("notes.txt")
    (True, False)
    """
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _sha1_key(rel: str) -> str:
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()


def spread_subset(rels: Sequence[str], limit: int | None) -> list[str]:
    """At most ``limit`` of the relative paths, sorted: those first in SHA-1 order of the path.

    Hash order spreads the subset over the whole folder instead of taking its first names, and gives the
    same subset on every machine, whether the files come from a folder walk or a manifest.

    Parameters
    ----------
    rels : sequence of str
        Relative POSIX paths.
    limit : int or None
        ``None`` keeps them all.

    Returns
    -------
    list of str

    Examples
    --------
    >>> spread_subset(["b", "a", "c"], None)
    ['a', 'b', 'c']
    >>> len(spread_subset(["b", "a", "c"], 2))
    2
    """
    if limit is not None:
        rels = sorted(rels, key=_sha1_key)[:limit]
    return sorted(rels)
