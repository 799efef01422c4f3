"""Content fingerprints of a data set: SHA-256 of every file, hashed in parallel threads.

:func:`fingerprint_dataset` is what a run records as its ``data_fingerprint``: it changes when any image is
renamed, added, removed or edited, and not with where the data set sits on disk. A data mix records one
fingerprint a source (:func:`fingerprint_sources`) and :func:`combine_fingerprints` of them, which for one
source of weight 1 is that source's own fingerprint, as a one-folder run always recorded.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.core.sources import Source
from deepfake_detect.data.layout import list_split, resolve_data_root
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, SPLITS
from deepfake_detect.faces.framing import DEFAULT_FRAMING, framing_key

__all__ = [
    "hash_files",
    "data_fingerprint",
    "fingerprint_dataset",
    "fingerprint_pairs",
    "fingerprint_sources",
    "photo_fingerprint",
    "combine_fingerprints",
    "map_batched",
    "resolve_workers",
]

# Files per pool task: big enough that task overhead is negligible on 140k files, small
# enough that the progress bar moves smoothly and work stays balanced across workers.
_BATCH = 64


def resolve_workers(workers: int | None) -> int:
    """The thread count for reading files: the given one, else the usable cores plus two.

    Examples
    --------
    >>> resolve_workers(3), resolve_workers(None) >= 3
    (3, True)
    """
    if workers is not None:
        if workers < 1:
            raise DataError(f"workers must be a positive integer, got {workers!r}")
        return workers
    # Threads also overlap file reads, so a couple more than the cores keeps them busy.
    return min(32, available_cores() + 2)


def _batches(items: Sequence, size: int = _BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def map_batched(
    func: Callable[[Sequence], list], items: Sequence, *, workers: int, progress: bool, desc: str
) -> list:
    """Apply `func` to batches of `items` in a thread pool; results come back in input order.

    Threads, not processes: Pillow and hashlib release the GIL in their C code, and there are no fork/spawn
    pitfalls (torch already loaded, notebooks, scripts lacking a main guard).

    Parameters
    ----------
    func : callable
        Maps a batch (a slice of `items`) to a list of as many results.
    items : sequence
    workers : int
        Threads.
    progress : bool
        Show a tqdm bar on stderr, labelled `desc`.
    desc : str

    Returns
    -------
    list
        One result an item, in the order of `items`.

    Examples
    --------
    >>> map_batched(lambda batch: [x * 2 for x in batch], range(5), workers=2, progress=False, desc="x")
    [0, 2, 4, 6, 8]
    """
    results: list = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(items), desc=desc, unit="file", disable=not progress, file=sys.stderr) as bar,
    ):
        # Executor.map keeps input order, which keeps every result list deterministic.
        for out in pool.map(func, _batches(items)):
            results.extend(out)
            bar.update(len(out))
    return results


def _hash_one(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _hash_batch(paths: Sequence[Path]) -> list[str]:
    return [_hash_one(p) for p in paths]


def hash_files(
    paths: Iterable[str | os.PathLike[str]], *, workers: int | None = None, progress: bool = True
) -> dict[Path, str]:
    """Compute the SHA-256 of each file's bytes, in parallel threads.

    Parameters
    ----------
    paths : iterable of path-like
        Files to hash.
    workers : int, optional
        Number of threads; defaults to the usable cores plus two.
    progress : bool, default True
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict of Path to str
        Hex digest per file, keyed by ``Path(p)`` for each given path, in the given order.

    Raises
    ------
    DataError
        If a file cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = f.write_bytes(b"abc")
    >>> hash_files([f], progress=False)[f][:16]
    'ba7816bf8f01cfea'
    """
    items = [Path(p) for p in paths]
    digests = map_batched(
        _hash_batch, items, workers=resolve_workers(workers), progress=progress, desc="hashing"
    )
    return dict(zip(items, digests, strict=True))


def _relative_posix(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:  # one side may be relative or go through a symlink
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise DataError(f"file {path} is not inside the data root {root}") from None


def data_fingerprint(root: str | os.PathLike[str], content_hashes: dict[Path, str]) -> str:
    """Fingerprint a data set from its files' relative paths and content hashes.

    Parameters
    ----------
    root : str or os.PathLike
        The data root the relative paths are taken from.
    content_hashes : dict of Path to str
        Content hash per file (as returned by :func:`hash_files`); files must lie under `root`.

    Returns
    -------
    str
        SHA-256 hex digest over ``"{relative POSIX path}\\t{hash}\\n"`` lines sorted by path,
        so it changes when any file is renamed, added, removed or edited, but not with the
        order files were hashed or where the data set sits on disk.

    Examples
    --------
    >>> moved = data_fingerprint("/elsewhere", {Path("/elsewhere/train/real/1.jpg"): "ab"})
    >>> data_fingerprint("/d", {Path("/d/train/real/1.jpg"): "ab"}) == moved
    True
    """
    base = Path(root)
    return fingerprint_pairs((_relative_posix(base, Path(p)), h) for p, h in content_hashes.items())


def fingerprint_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over ``"{relative path}\\t{content hash}\\n"`` lines sorted by path (see :func:`data_fingerprint`).

    Examples
    --------
    >>> fingerprint_pairs([("b", "2"), ("a", "1")]) == fingerprint_pairs([("a", "1"), ("b", "2")])
    True
    """
    digest = hashlib.sha256()
    for rel, content_hash in sorted(pairs):
        digest.update(f"{rel}\t{content_hash}\n".encode())
    return digest.hexdigest()


def fingerprint_dataset(
    root: str | os.PathLike[str],
    *,
    splits: Sequence[str] = SPLITS,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    workers: int | None = None,
    progress: bool = True,
    manifest: bool | None = None,
    classes_present: str = "both",
    only_label: int | None = None,
) -> str:
    """Hash every image of the given splits and return :func:`data_fingerprint` of them.

    Parameters
    ----------
    root : str or os.PathLike
        The data root (or a Kaggle parent folder).
    splits : sequence of str, default SPLITS
        Splits to include.
    class_names : sequence of str, default ("real", "fake")
        Class folder names.
    workers : int, optional
        Hashing threads.
    progress : bool, default True
        Show a progress bar on stderr.
    manifest : bool, optional
        Where the splits are listed, as for :func:`~deepfake_detect.data.list_split`.
    classes_present : {"both", "any"}
        ``any`` accepts a source of a data mix that holds one class only (the same files where both exist).
    only_label : int, optional
        Hash the images of this label only (a one-class source, ``real:PATH`` or ``fake:PATH``).

    Returns
    -------
    str
        The fingerprint; equals :attr:`~deepfake_detect.data.DataReport.fingerprint` of a usable data set.

    Raises
    ------
    DataError
        As :func:`~deepfake_detect.data.list_split` does.
    """
    base = resolve_data_root(root)
    paths = [
        s.path
        for split in splits
        for s in list_split(
            base, split, class_names=class_names, manifest=manifest, classes_present=classes_present
        )
        if only_label in (None, s.label)
    ]
    return data_fingerprint(base, hash_files(paths, workers=workers, progress=progress))


def fingerprint_sources(
    sources: Sequence[Source],
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    workers: int | None = None,
    progress: bool = True,
    manifest: bool | None = None,
) -> dict[str, str]:
    """:func:`fingerprint_dataset` of each source of a data mix (one class may be absent), by source name.

    A photo source's fingerprint also covers how its faces are framed (the framing's key), since its samples
    are the crops framed from the photos; a one-class source's covers the images of its class only.

    Returns
    -------
    dict of str to str
        ``{source name: fingerprint}`` in the mix's order.
    """
    found = {}
    for source in sources:
        photos = fingerprint_dataset(
            source.root,
            class_names=class_names,
            workers=workers,
            progress=progress,
            manifest=manifest,
            classes_present="any",
            only_label=source.only_label,
        )
        if source.kind == "photos":
            photos = photo_fingerprint(photos)
        found[source.name] = photos
    return found


def photo_fingerprint(photos_fingerprint: str) -> str:
    """A photo source's fingerprint: its photos' and how their faces are framed (the framing's key), since its
    samples are the crops framed from the photos (:mod:`~deepfake_detect.data.photos`).

    Examples
    --------
    >>> len(photo_fingerprint("ab12")), photo_fingerprint("ab12") != "ab12"
    (64, True)
    """
    return fingerprint_pairs([("framing", framing_key(DEFAULT_FRAMING)), ("photos", photos_fingerprint)])


def combine_fingerprints(sources: Sequence[Source], fingerprints: dict[str, str]) -> str:
    """One fingerprint for a data mix: its sources' fingerprints and weights, in order.

    One source of weight 1 gives its own fingerprint unchanged, so a one-folder run keeps the value it always
    recorded (and its checkpoints still resume). Otherwise it is the SHA-256 over ``"{weight!r}\t{fingerprint}\n"``
    lines in the mix's order: the order decides the epochs, so it counts; the names (folder names) do not.

    Examples
    --------
    >>> one = [Source("d/faces140k", 1.0, "faces140k")]
    >>> combine_fingerprints(one, {"faces140k": "ab12"})
    'ab12'
    >>> mix = one + [Source("d/sd21-sdfd", 2.0, "sd21-sdfd")]
    >>> a = combine_fingerprints(mix, {"faces140k": "ab12", "sd21-sdfd": "cd34"})
    >>> a != combine_fingerprints(mix[::-1], {"faces140k": "ab12", "sd21-sdfd": "cd34"}), len(a)
    (True, 64)
    """
    if len(sources) == 1 and sources[0].weight == 1.0:
        return fingerprints[sources[0].name]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(f"{source.weight!r}\t{fingerprints[source.name]}\n".encode())
    return digest.hexdigest()
