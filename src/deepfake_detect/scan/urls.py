"""Inputs named by URL under ``scan --ray``: listed on the driver, read by the actors, through ``pyarrow.fs``.

Any URL that :meth:`pyarrow.fs.FileSystem.from_uri` understands works: ``s3://bucket/prefix`` (AWS S3 and
S3-compatible stores, credentials from the usual AWS chain), ``gs://bucket/prefix`` (Google Cloud Storage),
``hdfs://host:port/path`` and ``file:///absolute/path``. A URL ending in an image or video suffix is one file
(not looked up: a list of ten million URLs costs no request); any other URL is a folder (a prefix) whose image
and video files are listed recursively, hidden names skipped, in sorted order. A result's ``path`` is the URL.
Globs are not expanded in URLs.

pyarrow is an optional dependency (``pip install 'deepfake-detect[ray]'``), imported only when used.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> top = Path(tempfile.mkdtemp())
>>> for rel in ("b/2.jpg", "a.png", ".hidden/x.jpg", "notes.txt"):
...     (top / rel).parent.mkdir(parents=True, exist_ok=True)
...     _ = (top / rel).write_bytes(b"pixels")
>>> [url.removeprefix(top.as_uri()) for url in expand_url(top.as_uri())]
['/a.png', '/b/2.jpg']
>>> UrlReader().read(top.as_uri() + "/a.png")
b'pixels'
"""

from __future__ import annotations

import os
import re
from typing import Any

from deepfake_detect.core.extras import import_extra
from deepfake_detect.data import IMAGE_EXTENSIONS
from deepfake_detect.scan.inputs import VIDEO_EXTENSIONS

__all__ = ["is_url", "url_problem", "expand_url", "UrlReader", "RAY_SCHEMES"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MEDIA = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
#: The URL schemes ``scan --ray`` reads (through pyarrow.fs); no scan fetches http(s) or anything else.
RAY_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "file", "abfs", "abfss")
_RAY_READS = "--ray reads s3://, gs://, hdfs:// and file:// URLs"


def _fs():
    return import_extra("pyarrow.fs", "ray", "URL inputs (s3://, gs://)")


def is_url(item: Any) -> bool:
    """True for a string that names a file system by its scheme (``s3://...``), not a local path.

    Examples
    --------
    >>> is_url("s3://bucket/photos"), is_url("photos/a.jpg"), is_url("C:/photos"), is_url(b"bytes")
    (True, False, False, False)
    """
    return isinstance(item, str) and _SCHEME.match(item) is not None


def url_problem(item: Any, *, ray: bool = False) -> str | None:
    """Why a scan cannot read ``item``, a URL, as a file: a local scan reads no URL, ``--ray`` only those of
    :data:`RAY_SCHEMES`; None for anything else (a path, an in-memory image, a URL that ``--ray`` reads).

    Examples
    --------
    >>> url_problem("https://example.com/a.jpg")
    'https://example.com/a.jpg: URLs are not fetched; download it first (--ray reads s3://, gs://, hdfs:// and file:// URLs)'
    >>> url_problem("s3://bucket/a.jpg", ray=True) is None and url_problem("photos/a.jpg") is None
    True
    >>> url_problem("s3://bucket/a.jpg")
    's3://bucket/a.jpg: URLs are not fetched without --ray; download it first, or scan with --ray (--ray reads s3://, gs://, hdfs:// and file:// URLs)'
    """
    if not is_url(item):
        return None
    scheme = item.split("://", 1)[0].lower()
    if scheme not in RAY_SCHEMES:
        return f"{item}: URLs are not fetched; download it first ({_RAY_READS})"
    if ray:
        return None
    return f"{item}: URLs are not fetched without --ray; download it first, or scan with --ray ({_RAY_READS})"


def _root(url: str) -> str:
    """``scheme://authority/``: the part of a URL that names the file system (one per bucket)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/"


def _is_media(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _MEDIA


def expand_url(url: str) -> list[str]:
    """The file URLs a URL names: itself when it ends in an image or video suffix, else the media files below it.

    A folder that does not exist (or holds nothing) yields the URL itself: the scan reports it as an error row,
    as it does for a local path that does not exist.

    Raises
    ------
    MissingExtraError
        Without pyarrow.

    Examples
    --------
    >>> expand_url("s3://photos/2026/a.jpg")         # a file by its suffix: no request made
    ['s3://photos/2026/a.jpg']
    >>> import tempfile
    >>> from pathlib import Path
    >>> top = Path(tempfile.mkdtemp())
    >>> for name in ("b.jpg", "a.png", "notes.txt"):
    ...     _ = (top / name).write_bytes(b"pixels")
    >>> [url.rsplit("/", 1)[1] for url in expand_url(top.as_uri())]
    ['a.png', 'b.jpg']
    >>> expand_url(top.as_uri() + "/missing") == [top.as_uri() + "/missing"]  # reported as an error row
    True
    """
    if _is_media(url):
        return [url]
    pafs = _fs()
    filesystem, root = pafs.FileSystem.from_uri(url)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        return [url]
    base = root.rstrip("/")
    found = []
    for info in filesystem.get_file_info(pafs.FileSelector(base, recursive=True)):
        relative = info.path[len(base) :].lstrip("/")
        hidden = any(part.startswith(".") for part in relative.split("/"))
        if info.type == pafs.FileType.File and _is_media(relative) and not hidden:
            found.append(relative)
    return [f"{url.rstrip('/')}/{relative}" for relative in sorted(found)] or [url]


class UrlReader:
    """Reads whole files by URL, opening each file system (an S3 bucket's client, say) once.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> photo = Path(tempfile.mkdtemp()) / "a.jpg"
    >>> _ = photo.write_bytes(b"pixels")
    >>> reader = UrlReader()
    >>> reader.read(photo.as_uri())
    b'pixels'
    >>> reader.read("s3://photos/a.jpg")                               # doctest: +SKIP
    b'\xff\xd8\xff\xe0...'
    """

    def __init__(self) -> None:
        self._systems: dict[str, tuple[Any, str]] = {}

    def read(self, url: str) -> bytes:
        """The bytes of the file at ``url``.

        Raises
        ------
        OSError
            When the file cannot be read (pyarrow's ``FileNotFoundError`` and the like).
        """
        root = _root(url)
        if root not in self._systems:
            self._systems[root] = _fs().FileSystem.from_uri(root)
        filesystem, base = self._systems[root]
        with filesystem.open_input_stream(base.rstrip("/") + "/" + url[len(root) :]) as stream:
            return stream.read()
