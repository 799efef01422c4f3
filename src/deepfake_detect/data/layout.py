"""Find and list a real-vs-fake face data set on disk.

The expected layout is ``ROOT/{train,valid,test}/{real,fake}/**/*.jpg``. The Kaggle
"140k Real and Fake Faces" download nests that under ``real_vs_fake/real-vs-fake/``;
:func:`resolve_data_root` accepts either. A split may instead be listed by a CSV manifest,
``ROOT/<split>.csv`` (see :mod:`deepfake_detect.data.manifests`); :func:`list_split` reads it when the
split folder is absent or when asked to. Everything here only reads the data set, so it works on
read-only copies.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.manifests import find_manifest, manifest_samples
from deepfake_detect.data.samples import (
    DEFAULT_CLASS_NAMES,
    IMAGE_EXTENSIONS,
    KAGGLE_NESTINGS,
    SPLITS,
    Sample,
    check_class_names,
    is_hidden,
    spread_subset,
)

__all__ = ["resolve_data_root", "list_split", "walk_files"]


def resolve_data_root(path: str | os.PathLike[str]) -> Path:
    """Return the folder that holds the split folders.

    Parameters
    ----------
    path : str or os.PathLike
        Either the folder holding ``train/``, ``valid/`` and ``test/``, or a parent using the
        Kaggle nesting ``real_vs_fake/real-vs-fake/`` (or ``real-vs-fake/`` alone).

    Returns
    -------
    Path
        The folder containing at least one split folder (missing splits are reported by
        :func:`list_split` and :func:`~deepfake_detect.data.check_dataset`); failing that, `path`
        itself when it holds a ``<split>.csv`` manifest.

    Raises
    ------
    DataError
        If `path` is not a folder, or neither a split folder (in it or its Kaggle nesting)
        nor a split manifest is found.

    Examples
    --------
    >>> resolve_data_root("/no/such/folder")
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no such folder: /no/such/folder
    """
    base = Path(path).expanduser()
    if not base.is_dir():
        raise DataError(f"no such folder: {base}")
    for nesting in KAGGLE_NESTINGS:
        candidate = base.joinpath(*nesting)
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    if any((base / f"{split}.csv").is_file() for split in SPLITS):
        return base
    raise DataError(_expected_layout(base))


def _expected_layout(base: Path, class_names: Sequence[str] = DEFAULT_CLASS_NAMES) -> str:
    splits = ", ".join(f"{s}/" for s in SPLITS)
    classes = " and ".join(f"{n}/" for n in class_names)
    manifests = ", ".join(f"{s}.csv" for s in SPLITS)
    return f"expected folders {splits} (each with {classes}) under {base}, or manifests {manifests} there"


def walk_files(
    top: str | os.PathLike[str], *, suffixes: Collection[str] | None = None, skip_hidden: bool = True
) -> Iterator[str]:
    """Yield the POSIX paths, relative to ``top``, of the files below it, in sorted walk order.

    Each folder's files come sorted, then its sub-folders in sorted order. Links to folders are followed,
    but each real folder is walked once, so a symlink loop or a folder linked twice ends the descent.

    Parameters
    ----------
    top : str or os.PathLike
        The folder to walk.
    suffixes : collection of str, optional
        Lower-case suffixes with the dot (e.g. :data:`~deepfake_detect.data.IMAGE_EXTENSIONS`); a file
        is kept when its suffix, lower-cased, is one of them. ``None`` keeps every file.
    skip_hidden : bool, default True
        Leave out dot-named files and folders (macOS ``._x.jpg`` forks, ``.ipynb_checkpoints``).

    Yields
    ------
    str
        ``"sub/name.jpg"``; ``os.path.join(top, rel)`` is the file.

    Examples
    --------
    >>> import tempfile
    >>> top = Path(tempfile.mkdtemp())
    >>> for rel in ("b/2.jpg", "b/1.png", "a.jpg", ".hidden/x.jpg", "notes.txt"):
    ...     (top / rel).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (top / rel).write_bytes(b"")
    >>> list(walk_files(top, suffixes={".jpg", ".png"}))
    ['a.jpg', 'b/1.png', 'b/2.jpg']
    """
    seen: set[str] = set()
    top_str = os.fspath(top)
    for dirpath, dirnames, filenames in os.walk(top_str, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a folder linked twice: do not walk it again
            dirnames[:] = []
            continue
        seen.add(real)
        # Sorting in place makes os.walk descend in sorted order too.
        dirnames[:] = sorted(d for d in dirnames if not (skip_hidden and is_hidden(d)))
        # Plain string joins: Path objects per file cost seconds on 140k files.
        rel_dir = os.path.relpath(dirpath, top_str).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(filenames):
            if skip_hidden and is_hidden(name):
                continue
            if suffixes is None or os.path.splitext(name)[1].lower() in suffixes:
                yield prefix + name


def _class_files(root: Path, split: str, name: str, limit: int | None) -> list[str]:
    """Sorted relative paths (from `root`) of the images of one split/class folder."""
    folder = root / split / name
    if not folder.is_dir():
        raise DataError(f"missing class folder: expected {folder}/ (with the {name} images)")
    prefix = f"{split}/{name}/"
    rels = [prefix + rel for rel in walk_files(folder, suffixes=IMAGE_EXTENSIONS)]
    if not rels:
        raise DataError(f"no images in {root}/{split}/{name}")
    return spread_subset(rels, limit)


def list_split(
    root: str | os.PathLike[str],
    split: str,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    limit_per_class: int | None = None,
    manifest: bool | None = None,
    classes_present: str = "both",
) -> list[Sample]:
    """List the labelled images of one split.

    Parameters
    ----------
    root : str or os.PathLike
        The data root (or a Kaggle parent folder, see :func:`resolve_data_root`).
    split : str
        Split folder name, usually one of :data:`~deepfake_detect.data.SPLITS`.
    class_names : sequence of str, default ("real", "fake")
        Class folder names; the position is the label (0 = real, 1 = fake).
    limit_per_class : int, optional
        Keep at most this many images per class: the first ones when ordered by the SHA-1 of
        their relative path, so the subset is deterministic yet spread over the folder.
    manifest : bool, optional
        ``True`` reads the split from ``<split>.csv`` (see
        :func:`~deepfake_detect.data.manifests.read_manifest`) even where the split folder exists;
        ``False`` reads folders only; ``None`` (default) reads the folder and falls back to the manifest
        when the folder is absent.
    classes_present : {"both", "any"}
        ``both`` (default) refuses a split without one of the class folders; ``any`` lists whichever class
        folders exist (at least one): a source of a data mix may hold one class only.

    Returns
    -------
    list of Sample
        Image files found recursively (by extension, hidden files skipped) or listed by the
        manifest, class 0 first, each class sorted by relative POSIX path so the order is the
        same on every machine. A manifest listing the files of a folder layout gives the same
        list as that layout.

    Raises
    ------
    DataError
        If the split or a class folder is missing, a class has no images, the manifest is
        malformed, or the arguments are invalid.

    Examples
    --------
    >>> list_split("/no/such/folder", "train")
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no such folder: /no/such/folder
    """
    names = check_class_names(class_names)
    if limit_per_class is not None and (isinstance(limit_per_class, bool) or limit_per_class < 1):
        raise DataError(f"limit_per_class must be a positive integer, got {limit_per_class!r}")
    base = resolve_data_root(root)
    use_manifest = manifest or (manifest is None and not (base / split).is_dir())
    if use_manifest:
        csv_path = find_manifest(Path(root).expanduser(), base, split)
        if csv_path is not None or manifest:
            return manifest_samples(csv_path, base, split, names, limit_per_class)
    if not (base / split).is_dir():
        raise DataError(f"missing split folder {split}/: {_expected_layout(base, names)}")
    present = [
        (label, name)
        for label, name in enumerate(names)
        if classes_present == "both" or (base / split / name).is_dir()
    ]
    if not present:
        raise DataError(f"no class folder ({' or '.join(names)}) in {base / split}/")
    samples: list[Sample] = []
    for label, name in present:
        rels = _class_files(base, split, name, limit_per_class)
        samples.extend(Sample(base / rel, label) for rel in rels)
    return samples
