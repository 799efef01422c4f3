"""What a scan reads: files, folders, globs, path lists and in-memory images, expanded lazily and in order."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.data import IMAGE_EXTENSIONS, walk_files

__all__ = [
    "VIDEO_EXTENSIONS",
    "iter_inputs",
    "read_path_list",
    "named_inputs",
    "input_label",
    "output_key",
    "is_video_path",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"})
_GLOB_CHARS = frozenset("*?[")


def is_video_path(item: Any) -> bool:
    """True for a path string whose suffix is a video's.

    Examples
    --------
    >>> is_video_path("clip.MP4"), is_video_path("face.jpg")
    (True, False)
    """
    return isinstance(item, str) and os.path.splitext(item)[1].lower() in VIDEO_EXTENSIONS


def _walk_media(top: str) -> Iterator[str]:
    """Image and video files below ``top``, sorted, hidden names skipped, each real folder walked once."""
    for rel in walk_files(top, suffixes=IMAGE_EXTENSIONS | VIDEO_EXTENSIONS):
        yield os.path.join(top, rel)


def iter_inputs(paths: Iterable[Any], *, stdin: io.TextIOBase | None = None) -> Iterator[Any]:
    """Expand what the user named into single inputs, lazily and in order.

    Parameters
    ----------
    paths : iterable
        Paths (files, folders walked recursively in sorted order, glob patterns, ``-`` for one path a line
        on ``stdin``), or already decoded ``PIL.Image`` / ``ndarray`` images, passed through.
    stdin : text stream, optional
        Where ``-`` reads from; ``sys.stdin`` by default.

    Yields
    ------
    str or PIL.Image.Image or ndarray
        A path that does not exist is yielded as is: scanning reports it as an error.
    """
    for item in paths:
        if isinstance(item, Image.Image | np.ndarray | bytes):
            yield item
            continue
        text = os.fspath(item)
        if text == "-":
            yield from (line.strip() for line in (stdin or sys.stdin) if line.strip())
        elif os.path.isdir(text):
            yield from _walk_media(text)
        elif not os.path.lexists(text) and _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            yield from (m for m in matches if not os.path.isdir(m)) if matches else [text]
        else:
            yield text


def read_path_list(path: str | Path) -> list[str]:
    """Paths listed in a text file (one a line) or a CSV file (its ``path`` column, else the first).

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "list.csv"; _ = f.write_text("label,path\\n1,a.jpg\\n0,b.png\\n")
    >>> read_path_list(f)
    ['a.jpg', 'b.png']
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    if Path(path).suffix.lower() != ".csv":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" in header:
        column = header.index("path")
        return [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]
    return [row[0].strip() for row in rows if row[0].strip()]


def named_inputs(paths: Iterable[Any] | None, paths_from: str | Path | None) -> list[Any]:
    """What the user named for a scan: ``paths`` and the entries of the ``paths_from`` list, not yet expanded.

    Raises
    ------
    ScanError
        When ``paths_from`` cannot be read, or nothing is named at all.

    Examples
    --------
    >>> named_inputs(["photos/"], None)
    ['photos/']
    >>> named_inputs([], None)
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.ScanError: nothing to scan: give image, folder or video paths, '-' for stdin, or --paths-from
    """
    named = list(paths or [])
    if paths_from is not None:
        try:
            named += read_path_list(paths_from)
        except OSError as err:
            raise ScanError(f"cannot read --paths-from {paths_from}: {err.strerror or err}") from None
    if not named:
        raise ScanError("nothing to scan: give image, folder or video paths, '-' for stdin, or --paths-from")
    return named


def input_label(item: Any, index: int) -> str:
    """The ``path`` reported for an input: the path itself, or a placeholder for in-memory images."""
    if isinstance(item, Image.Image):
        return f"<PIL image {index}>"
    if isinstance(item, np.ndarray):
        return f"<array {index}>"
    if isinstance(item, bytes):
        return f"<bytes {index}>"
    return os.fspath(item)


def output_key(path: str) -> str:
    """Stable short id of a path, for file names of heatmaps and timelines."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
