"""CSV split manifests: ``<split>.csv`` files listing a split's images, as the Kaggle 140k download ships them.

A manifest has the Kaggle columns (``path`` relative to the image folder and ``label_str`` naming the class).
:func:`~deepfake_detect.data.list_split` reads one when the split folder is absent or when asked to.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.samples import (
    DEFAULT_CLASS_NAMES,
    KAGGLE_NESTINGS,
    Sample,
    check_class_names,
    spread_subset,
)

__all__ = ["read_manifest", "find_manifest", "manifest_samples"]


def read_manifest(
    path: str | os.PathLike[str], *, class_names: Sequence[str] = DEFAULT_CLASS_NAMES
) -> list[tuple[str, int]]:
    """Read a split manifest: ``(relative path, label)`` for each row.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV with the columns of the Kaggle 140k download: an unnamed index, ``original_path``,
        ``id``, ``label``, ``label_str`` and ``path`` (e.g. ``train/real/31355.jpg``). Only
        ``path`` and ``label_str`` are used.
    class_names : sequence of str, default ("real", "fake")
        ``label_str`` values; the position is the label. The numeric ``label`` column is ignored
        on purpose: the Kaggle CSVs code real as 1 and fake as 0, the reverse of this package.

    Returns
    -------
    list of (str, int)
        Rows in file order, paths as POSIX strings.

    Raises
    ------
    DataError
        If the file lacks a needed column or a row names an unknown class.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "valid.csv"
    >>> _ = f.write_text(",original_path,id,label,label_str,path\\n0,x,7,1,real,valid/real/7.jpg\\n")
    >>> read_manifest(f)
    [('valid/real/7.jpg', 0)]
    """
    names = check_class_names(class_names)
    labels = {name: i for i, name in enumerate(names)}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("path", "label_str") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"manifest {path} lacks column(s) {', '.join(missing)}; expected the Kaggle 140k columns "
                "(,original_path,id,label,label_str,path)"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            name = row["label_str"].strip()
            if name not in labels:
                raise DataError(f"{path}:{line}: label_str {name!r} is not one of {', '.join(names)}")
            rows.append((row["path"].strip().replace("\\", "/"), labels[name]))
    return rows


def _manifest_dirs(given: Path, base: Path) -> list[Path]:
    """Folders that may hold ``<split>.csv``: the given one, the data root and the Kaggle top folder."""
    dirs = [given, base]
    for nesting in KAGGLE_NESTINGS:
        if nesting and base.parts[-len(nesting) :] == nesting:
            dirs.append(base.parents[len(nesting) - 1])  # Kaggle puts the CSVs above real_vs_fake/
    return list(dict.fromkeys(dirs))


def find_manifest(given: Path, base: Path, split: str) -> Path | None:
    """The ``<split>.csv`` in the folder the user gave, the data root or the Kaggle top folder; else None.

    Parameters
    ----------
    given : Path
        The folder the user named.
    base : Path
        The data root found from it (see :func:`~deepfake_detect.data.resolve_data_root`).
    split : str

    Returns
    -------
    Path or None

    Examples
    --------
    >>> find_manifest(Path("/no/such"), Path("/no/such"), "train") is None
    True
    """
    for folder in _manifest_dirs(given, base):
        if (folder / f"{split}.csv").is_file():
            return folder / f"{split}.csv"
    return None


def _image_dir(csv_path: Path, first_rel: str) -> Path:
    """The folder the manifest's relative paths start from: its own, or the Kaggle nesting below it."""
    for nesting in KAGGLE_NESTINGS:
        candidate = csv_path.parent.joinpath(*nesting)
        if (candidate / first_rel).is_file():
            return candidate
    raise DataError(
        f"{csv_path} lists {first_rel}, which is neither under {csv_path.parent} nor under its "
        "real_vs_fake/real-vs-fake/ folder"
    )


def manifest_samples(
    csv_path: Path | None, base: Path, split: str, names: tuple[str, ...], limit: int | None
) -> list[Sample]:
    """The samples a manifest lists, in the order and with the subset rule of a folder listing.

    Parameters
    ----------
    csv_path : Path or None
        The manifest (None when none was found: a clear error).
    base : Path
        The data root, for that error.
    split : str
    names : tuple of str
        Class names, label order.
    limit : int or None
        At most this many a class (:func:`~deepfake_detect.data.samples.spread_subset`).

    Returns
    -------
    list of Sample

    Raises
    ------
    DataError
        No manifest, an empty one, one lacking a class, or paths that lead nowhere.

    Examples
    --------
    >>> manifest_samples(None, Path("d"), "test", ("real", "fake"), None)
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no test.csv manifest in d or the folders above its Kaggle nesting
    """
    if csv_path is None:
        raise DataError(f"no {split}.csv manifest in {base} or the folders above its Kaggle nesting")
    rows = read_manifest(csv_path, class_names=names)
    if not rows:
        raise DataError(f"manifest {csv_path} lists no images")
    image_dir = _image_dir(csv_path, rows[0][0])
    samples: list[Sample] = []
    for label, name in enumerate(names):
        rels = [rel for rel, lab in rows if lab == label]
        if not rels:
            raise DataError(f"manifest {csv_path} lists no {name} images")
        samples.extend(Sample(image_dir / rel, label) for rel in spread_subset(rels, limit))
    return samples
