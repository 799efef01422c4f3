"""Parquet output of a scan: a folder of part files, each one complete or absent.

``deepfake-detect scan ... --output results.parquet`` (a local scan or ``--ray``) writes a **folder**::

    results.parquet/
        part-3f9c2a0b71d4e8c5.parquet    up to 256 rows, named by a hash of its rows' paths
        .part-3f9c2a0b71d4e8c5.9a1b.tmp  a part being written: renamed to its name once complete

Each row is one ``scan --json`` row (see :mod:`deepfake_detect.scan.pipeline`): ``path``, ``error``,
``verdict``, ``p_fake``, ``faces`` (a list of structs), ``model`` (a struct), ``note``, ``provenance`` (a struct)
and ``reason``, and for videos ``kind``, ``fps``, ``duration``, ``rule`` and ``frames``. Every part has the one fixed schema of :func:`result_schema`, so
parts written by different processes (Ray workers) read as one table: ``pandas.read_parquet("results.parquet")``,
``pyarrow.dataset.dataset("results.parquet")`` or DuckDB's ``read_parquet('results.parquet/*.parquet')``. The
temporary names start with a dot, which pyarrow, pandas and Spark skip, and end in ``.tmp``, which the glob skips.

**A part is never half-written.** It is written under a temporary name, flushed to disk (``fsync``) and renamed
(``os.replace``, atomic): a crash leaves a complete part or a temporary file that every reader ignores.

**Parts are named by their content.** :func:`part_name` hashes the (sorted) paths of a part's rows, so a writer
that runs again on the same rows (a Ray task retried after its worker died) replaces its own part instead of
adding a duplicate.

**Resume** reads the ``path`` column of the complete parts (:func:`done_paths`) and skips those paths. A part
that cannot be read is set aside as ``.<name>.corrupt`` with a warning, and its rows are scanned again.

Round trip: columns the JSON may leave out come back left out when they are null: ``note``, ``provenance``
(not read), ``reason`` (no declaration in the metadata) and ``timeline`` (``--explain`` on a video) of a row; ``landmarks``, ``quad`` (``--framing box``), ``note``, ``t``, ``frame``
(photos) and ``heatmap`` (no ``--explain``) of a face; ``uncertain_band`` of the model (no band); and the video
columns, all present exactly when ``kind`` is set. Every other null is a JSON ``null``. Floats are float64,
so ``p_fake`` and ``logit`` come back exactly; boxes are int32.

pyarrow is an optional dependency (``pip install 'deepfake-detect[parquet]'``, or ``[ray]``, which includes it), imported only when used.

Examples
--------
>>> import tempfile
>>> row = {"path": "a.jpg", "error": None, "verdict": "real", "p_fake": 0.25,
...        "faces": [{"box": [0, 0, 40, 40], "p_fake": 0.25, "logit": -1.1, "verdict": "real"}],
...        "model": {"name": "m", "sha256": "ab", "threshold_logit": 0.1, "temperature": 1.2,
...                  "backend": "onnx"}}
>>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
>>> write_part(folder, [row]).name
'part-509b0d4641a7c3ba.parquet'
>>> read_results(folder) == [row]
True
>>> done_paths(folder)
{'a.jpg'}
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.core.extras import import_extra
from deepfake_detect.provenance.containers import PNG_TEXT_KEYS

__all__ = [
    "PARQUET_SUFFIX",
    "ROWS_PER_PART",
    "is_parquet_output",
    "result_schema",
    "results_to_table",
    "table_to_results",
    "part_name",
    "part_files",
    "write_part",
    "PartWriter",
    "done_paths",
    "read_results",
    "prepare_output",
]

log = logging.getLogger(__name__)

PARQUET_SUFFIX = ".parquet"
# Rows a part: a killed local scan loses at most this many less one (--resume scans them again).
ROWS_PER_PART = 256
TEMP_SUFFIX = ".tmp"
CORRUPT_SUFFIX = ".corrupt"
# Raised to 2 when a column changes meaning; stored in every part's schema metadata.
SCHEMA_VERSION = "1"

# Keys the JSON rows leave out rather than set to null (see the module docstring).
ROW_OPTIONAL = frozenset({"note", "timeline", "reason", "provenance"})
VIDEO_KEYS = frozenset({"kind", "fps", "duration", "rule", "frames"})
FACE_OPTIONAL = frozenset({"landmarks", "quad", "note", "t", "frame", "heatmap"})
MODEL_OPTIONAL = frozenset({"uncertain_band"})


def _pyarrow():
    return import_extra("pyarrow", "parquet", "Parquet output")


def _parquet():
    return import_extra("pyarrow.parquet", "parquet", "Parquet output")


def is_parquet_output(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` names a Parquet output folder: its name ends in ``.parquet`` (any case).

    Examples
    --------
    >>> is_parquet_output("scans/Results.PARQUET"), is_parquet_output("results.jsonl"), is_parquet_output(None)
    (True, False, False)
    """
    return path is not None and Path(path).name.lower().endswith(PARQUET_SUFFIX)


# ---------------------------------------------------------------------------------------------- schema


def _face_type(pa):
    points = pa.list_(pa.list_(pa.float64()))
    return pa.struct(
        [
            pa.field("box", pa.list_(pa.int32())),
            pa.field("landmarks", points),
            pa.field("quad", points),
            pa.field("p_fake", pa.float64()),
            pa.field("logit", pa.float64()),
            pa.field("verdict", pa.string()),
            pa.field("note", pa.string()),
            pa.field("t", pa.float64()),
            pa.field("frame", pa.int64()),
            pa.field("heatmap", pa.string()),
        ]
    )


def _model_type(pa):
    band = pa.struct(
        [
            pa.field("lower_logit", pa.float64()),
            pa.field("upper_logit", pa.float64()),
            pa.field("target_precision", pa.float64()),
        ]
    )
    return pa.struct(
        [
            pa.field("name", pa.string()),
            pa.field("sha256", pa.string()),
            pa.field("threshold_logit", pa.float64()),
            pa.field("temperature", pa.float64()),
            pa.field("backend", pa.string()),
            pa.field("uncertain_band", band),
        ]
    )


def _provenance_type(pa):
    """The ``provenance`` object: :class:`~deepfake_detect.provenance.Provenance`'s fields and the panel."""
    text = pa.string()
    action = pa.struct(
        [
            pa.field("action", text),
            pa.field("digital_source_type", text),
            pa.field("software_agent", text),
            pa.field("ingredient", pa.bool_()),
        ]
    )
    c2pa = pa.struct(
        [pa.field("present", pa.bool_()), pa.field("state", text), pa.field("codes", pa.list_(text))]
        + [pa.field(name, text) for name in ("claim_generator", "signer", "signer_org")]
        + [pa.field("actions", pa.list_(action)), pa.field("remote_url", text), pa.field("error", text)]
    )
    return pa.struct(
        [
            pa.field("format", text),
            pa.field("c2pa", c2pa),
            pa.field("xmp", pa.struct([pa.field(n, text) for n in ("digital_source_type", "creator_tool")])),
            pa.field("exif", pa.struct([pa.field(n, text) for n in ("software", "make", "model")])),
            pa.field("png_text", pa.struct([pa.field(n, text) for n in PNG_TEXT_KEYS])),
            pa.field("jpeg_comments", pa.list_(text)),
            pa.field("declares_ai", pa.bool_()),
            pa.field(
                "findings", pa.list_(pa.struct([pa.field(n, text) for n in ("signal", "found", "worth")]))
            ),
        ]
    )


def _frame_type(pa, face):
    return pa.struct(
        [
            pa.field("t", pa.float64()),
            pa.field("frame", pa.int64()),
            pa.field("p_fake", pa.float64()),
            pa.field("faces", pa.list_(face)),
        ]
    )


@functools.cache
def result_schema():
    """The one Arrow schema of every part: the fields of ``scan --json`` rows, photos and videos alike.

    ``path`` and ``faces`` are never null; everything else may be (see the module docstring for which nulls
    are keys the JSON leaves out).

    Returns
    -------
    pyarrow.Schema

    Examples
    --------
    >>> result_schema().names[:6]
    ['path', 'error', 'verdict', 'p_fake', 'faces', 'model']
    >>> str(result_schema().field("faces").type.value_type.field("box").type)
    'list<item: int32>'
    """
    pa = _pyarrow()
    face = _face_type(pa)
    fields = [
        pa.field("path", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("verdict", pa.string()),
        pa.field("p_fake", pa.float64()),
        pa.field("faces", pa.list_(face), nullable=False),
        pa.field("model", _model_type(pa)),
        pa.field("note", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("fps", pa.float64()),
        pa.field("duration", pa.float64()),
        pa.field("rule", pa.string()),
        pa.field("frames", pa.list_(_frame_type(pa, face))),
        pa.field("timeline", pa.string()),
        pa.field("provenance", _provenance_type(pa)),
        pa.field("reason", pa.string()),
    ]
    return pa.schema(fields, metadata={"deepfake_detect.result_schema": SCHEMA_VERSION})


def _check_keys(result: dict[str, Any], schema) -> None:
    """A result field without a column would be dropped silently: refuse it instead."""
    face_fields = {f.name for f in schema.field("faces").type.value_type}
    model_fields = {f.name for f in schema.field("model").type}
    provenance_fields = {f.name for f in schema.field("provenance").type}
    faces = list(result.get("faces") or [])
    faces += [f for frame in result.get("frames") or [] for f in frame.get("faces") or []]
    unknown = (
        set(result) - set(schema.names)
        | {f"faces.{k}" for face in faces for k in face if k not in face_fields}
        | {f"model.{k}" for k in result.get("model") or {} if k not in model_fields}
        | {f"provenance.{k}" for k in result.get("provenance") or {} if k not in provenance_fields}
    )
    if unknown:
        raise ScanError(f"scan result field(s) without a Parquet column: {', '.join(sorted(unknown))}")


def results_to_table(results: list[dict[str, Any]]):
    """Scan results (``scan --json`` rows) as an Arrow table of :func:`result_schema`.

    Raises
    ------
    ScanError
        When a result has a field the schema has no column for.

    Examples
    --------
    >>> table = results_to_table([{"path": "gone.jpg", "error": "No such file", "verdict": None,
    ...                            "p_fake": None, "faces": [], "model": None}])
    >>> table.num_rows, table.column("error").to_pylist()
    (1, ['No such file'])
    """
    pa = _pyarrow()
    schema = result_schema()
    for result in results:
        _check_keys(result, schema)
    return pa.Table.from_pylist(list(results), schema=schema)


def _face_row(face: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in face.items() if v is not None or k not in FACE_OPTIONAL}


def _result_row(row: dict[str, Any]) -> dict[str, Any]:
    video = row.get("kind") is not None
    out = {
        k: v
        for k, v in row.items()
        if v is not None or not (k in ROW_OPTIONAL or (k in VIDEO_KEYS and not video))
    }
    out["faces"] = [_face_row(face) for face in out.get("faces") or []]
    if out.get("model") is not None:
        out["model"] = {k: v for k, v in out["model"].items() if v is not None or k not in MODEL_OPTIONAL}
    for frame in out.get("frames") or []:
        frame["faces"] = [_face_row(face) for face in frame["faces"] or []]
    return out


def table_to_results(table) -> list[dict[str, Any]]:
    """The ``scan --json`` rows of an Arrow table (the inverse of :func:`results_to_table`).

    Examples
    --------
    >>> row = {"path": "gone.jpg", "error": "No such file", "verdict": None, "p_fake": None, "faces": [],
    ...        "model": None}
    >>> table_to_results(results_to_table([row])) == [row]
    True
    """
    return [_result_row(row) for row in table.to_pylist()]


# ---------------------------------------------------------------------------------------------- writing


def part_name(results: Iterable[dict[str, Any] | str]) -> str:
    """The name of the part that holds these rows (or paths): ``part-`` and 16 hex digits of their hash.

    The paths are sorted before hashing, so the same rows give the same name in any order: a retried writer
    replaces its part instead of adding another.

    Examples
    --------
    >>> part_name(["b.jpg", "a.jpg"]) == part_name([{"path": "a.jpg"}, {"path": "b.jpg"}])
    True
    >>> part_name(["a.jpg"])
    'part-509b0d4641a7c3ba'
    """
    paths = sorted(r if isinstance(r, str) else r["path"] for r in results)
    digest = hashlib.sha256("\0".join(paths).encode("utf-8", "surrogatepass")).hexdigest()
    return f"part-{digest[:16]}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # a folder cannot be fsynced on some systems (Windows); the rename still happened
        pass
    finally:
        os.close(fd)


def write_part(folder: str | os.PathLike, results: list[dict[str, Any]], name: str | None = None) -> Path:
    """Write one part file into ``folder`` (created if missing) so that it is complete or absent.

    The rows go to ``.<name>.<random>.tmp``, which is flushed to disk and renamed to ``<name>.parquet``; a
    part of that name already there (a retried writer's) is replaced.

    Parameters
    ----------
    folder : path
        The output folder (``results.parquet``).
    results : list of dict
        ``scan --json`` rows.
    name : str, optional
        The part's name without the suffix; default :func:`part_name` of the rows.

    Returns
    -------
    Path
        The written part.

    Examples
    --------
    >>> import tempfile
    >>> row = {"path": "x.png", "error": "unreadable", "verdict": None, "p_fake": None, "faces": [],
    ...        "model": None}
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_part(folder, [row]) == write_part(folder, [row]), len(part_files(folder))
    (True, 1)
    """
    pq = _parquet()
    table = results_to_table(results)  # before any file: a row that does not fit leaves nothing behind
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or part_name(results)
    temp = folder / f".{name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"  # unique: two writers never share one
    try:
        pq.write_table(table, temp, compression="zstd")
        _fsync(temp)
        final = folder / f"{name}{PARQUET_SUFFIX}"
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    _fsync(folder)  # the rename itself survives a power cut
    return final


class PartWriter:
    """Collect scan results and write a part every ``rows_per_part`` rows (and the rest on :meth:`close`).

    ``rows_per_part`` defaults to :data:`ROWS_PER_PART` (256): a scan killed outright loses at most 255 rows,
    which ``--resume`` scans again; a scan stopped by Ctrl-C writes what it has on :meth:`close`.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
    >>> with PartWriter(folder, rows_per_part=2) as writer:
    ...     for name in ("a", "b", "c"):
    ...         writer.write({"path": name, "error": "x", "verdict": None, "p_fake": None, "faces": [],
    ...                       "model": None})
    >>> len(writer.parts), sorted(done_paths(folder))
    (2, ['a', 'b', 'c'])
    """

    def __init__(self, folder: str | os.PathLike, rows_per_part: int | None = None):
        rows_per_part = ROWS_PER_PART if rows_per_part is None else rows_per_part
        if rows_per_part < 1:
            raise ScanError(f"rows_per_part must be at least 1, got {rows_per_part}")
        _parquet()  # a missing pyarrow stops the scan now, not at its first full part
        self.folder = Path(folder)
        self.rows_per_part = rows_per_part
        self.parts: list[Path] = []
        self._pending: list[dict[str, Any]] = []

    def write(self, result: dict[str, Any]) -> None:
        self._pending.append(result)
        if len(self._pending) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the rows collected so far as one part (nothing when there are none)."""
        if self._pending:
            self.parts.append(write_part(self.folder, self._pending))
            self._pending = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- reading


def part_files(folder: str | os.PathLike) -> list[Path]:
    """The complete parts in ``folder``, by name (temporary and set-aside files are not parts).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
    >>> part_files(folder)                                   # no folder yet
    []
    >>> _ = write_part(folder, [{"path": "a.jpg", "error": "bad", "verdict": None, "p_fake": None,
    ...                         "faces": [], "model": None}])
    >>> _ = (folder / ".part-0000000000000000.1a2b.tmp").write_bytes(b"")   # a part being written
    >>> [part.name for part in part_files(folder)]
    ['part-509b0d4641a7c3ba.parquet']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name.endswith(PARQUET_SUFFIX) and not p.name.startswith((".", "_"))
    )


def _unreadable(part: Path, err: Exception, set_aside: bool) -> None:
    what = f"{part}: not a readable Parquet part ({type(err).__name__}: {err})"
    if not set_aside:
        log.warning("%s; skipped", what)
        return
    aside = part.with_name(f".{part.name}{CORRUPT_SUFFIX}")
    os.replace(part, aside)
    log.warning("%s; set aside as %s, its files will be scanned again", what, aside.name)


def done_paths(folder: str | os.PathLike) -> set[str]:
    """The paths already in the complete parts of ``folder``: what ``--resume`` skips.

    Temporary files (a part being written when the scan stopped) are ignored. A part that cannot be read is
    warned about and renamed ``.<name>.corrupt`` (out of every reader's way), so its paths are scanned again.

    Returns
    -------
    set of str
        Empty when the folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
    >>> done_paths(folder)
    set()
    >>> rows = [{"path": p, "error": "bad", "verdict": None, "p_fake": None, "faces": [], "model": None}
    ...         for p in ("a.jpg", "b.jpg")]
    >>> _ = write_part(folder, rows)
    >>> sorted(done_paths(folder))
    ['a.jpg', 'b.jpg']
    """
    pa, pq = _pyarrow(), _parquet()
    done: set[str] = set()
    for part in part_files(folder):
        try:
            done.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
        except (pa.ArrowException, OSError) as err:
            _unreadable(part, err, set_aside=True)
    return done


def read_results(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of the complete parts of ``folder`` as ``scan --json`` dicts, part by part.

    Parts are named by content, so the rows are not in scan order: sort them (by ``path``) when order
    matters. An unreadable part is warned about and skipped.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
    >>> row = {"path": "a.jpg", "error": "not a recognised image format", "verdict": None, "p_fake": None,
    ...        "faces": [], "model": None}
    >>> _ = write_part(folder, [row])
    >>> read_results(folder) == [row]
    True
    >>> import pandas as pd                                              # doctest: +SKIP
    >>> pd.read_parquet(folder).path.tolist()                            # doctest: +SKIP
    ['a.jpg']
    """
    pa, pq = _pyarrow(), _parquet()
    rows: list[dict[str, Any]] = []
    for part in part_files(folder):
        try:
            table = pq.read_table(part, schema=result_schema())
        except (pa.ArrowException, OSError) as err:
            _unreadable(part, err, set_aside=False)
            continue
        rows += table_to_results(table)
    return rows


def prepare_output(folder: str | os.PathLike, resume: bool) -> None:
    """Check a ``.parquet`` output folder before a scan writes to it.

    Without ``resume`` the folder must be missing or empty: a scan never mixes its parts with another's, and
    never deletes files. With ``resume``, temporary files a stopped scan left are removed (call this before
    any writer starts).

    Raises
    ------
    MissingExtraError
        Without pyarrow.
    ScanError
        When ``folder`` is a file, or a non-empty folder without ``resume``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results.parquet"
    >>> prepare_output(folder, resume=False)                  # missing: fine, the first part makes it
    >>> _ = write_part(folder, [{"path": "a.jpg", "error": "bad", "verdict": None, "p_fake": None,
    ...                         "faces": [], "model": None}])
    >>> _ = (folder / ".part-0000000000000000.1a2b.tmp").write_bytes(b"")  # left by a stopped scan
    >>> prepare_output(folder, resume=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.ScanError: ... already holds scan results: pass --resume to go on with that scan, or remove the folder to start again
    >>> prepare_output(folder, resume=True)                   # the temporary file goes
    >>> sorted(p.name for p in folder.iterdir())
    ['part-509b0d4641a7c3ba.parquet']
    """
    _parquet()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ScanError(f"{folder} is a file: a .parquet output is a folder of Parquet part files")
    if not folder.is_dir():
        return
    if not resume:
        if any(folder.iterdir()):
            raise ScanError(
                f"{folder} already holds scan results: pass --resume to go on with that scan, "
                "or remove the folder to start again"
            )
        return
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
