"""``deepfake-detect scan --ray``: the local scan, spread over a Ray cluster with Ray Data, into Parquet parts.

>>> import deepfake_detect as dd                                                        # doctest: +SKIP
>>> dd.scan_dataset(["photos/"], output="photos.parquet", address="10.0.0.5:6379")      # doctest: +SKIP
DatasetScanSummary(n_files=10731, n_faces=10731, n_errors=0, ...)

How a scan runs:

1. **The driver** (this process) expands the inputs exactly as the local scan does
   (:func:`~deepfake_detect.scan.inputs.iter_inputs`, so every ``path`` has the local form; URLs through
   :mod:`~deepfake_detect.scan.urls`) and cuts the list into **parts** of consecutive files. A part's files
   depend only on the whole input list and the actor count, never on what is left to do, and a part is named
   by a hash of its paths (:func:`~deepfake_detect.scan.parquet.part_name`): a driver restarted with
   ``resume`` cuts the same parts, skips those already written, and a part written twice is one file.
2. **Ray Data** sends the parts to a fixed pool of actors (``map_batches`` with an ``ActorPoolStrategy``).
   Each actor loads the detector once, with a fixed thread count, and scans its part with
   :meth:`Detector.iter_scan <deepfake_detect.scan.detector.Detector.iter_scan>` (decoding in the actor):
   the local scan's decode, face finding, framing and ONNX graph, so each row is the local scan's row.
3. **The actor writes its part** (:func:`~deepfake_detect.scan.parquet.write_part`: a temporary name, then a
   rename) and returns only counts, so no result crosses the object store.

The driver holds the path list once (a part is a slice of it) and sends each actor its working folder once:
the actor makes the local paths absolute. Millions of paths are fine; for hundreds of millions, split the job
by prefix (one job a prefix, each its own output folder).

Failures: a file that cannot be read is an error row, as locally. An actor that dies (its process killed, its
node lost) is restarted by Ray and its unfinished call is retried on it; a retried call rewrites its own part
under the same name. Both are bounded: a part that killed its actor :data:`MAX_PART_CRASHES` times (a file
that crashes the decoder every time) is not scanned again, its next attempt writes each of its files as an
error row that says so (scan those files without ``--ray`` to find the culprit), and the job goes on; an actor
restarted more than :data:`MAX_ACTOR_RESTARTS` times ends the job with a :class:`ScanError` naming the part
it was scanning. The attempts are counted in a marker beside the parts (``.<part>.attempts.tmp``, removed
when the part is written and by ``resume``), since a retried call is not told it is a retry. A driver that
dies loses the parts in flight only: ``resume`` scans them again.

Out of scope under Ray: videos and ``--explain`` (a :class:`ScanError` says so).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from deepfake_detect.core import exceptions
from deepfake_detect.core.exceptions import DeepfakeDetectError, ScanError, describe_error
from deepfake_detect.core.extras import import_extra
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.scan.detector import load_detector
from deepfake_detect.scan.inputs import is_video_path, iter_inputs, named_inputs
from deepfake_detect.scan.output import ScanSummary
from deepfake_detect.scan.parquet import (
    ROWS_PER_PART,
    done_paths,
    is_parquet_output,
    part_name,
    prepare_output,
    write_part,
)
from deepfake_detect.scan.pipeline import error_result, iter_scan
from deepfake_detect.scan.urls import UrlReader, expand_url, is_url

__all__ = ["DatasetScanSummary", "scan_dataset"]

FEATURE = "scan --ray"
# Parts an actor gets, at least, when the input is small: finer parts balance the actors' load and show progress.
PARTS_PER_ACTOR = 4
# The counts each actor call returns, a part a row.
COUNTS = ("files", "faces", "errors", "fake", "real", "uncertain", "no_face")
# Times a part may kill its actor before its files are written as error rows instead: a file that crashes
# the decoder (a native library's segfault, say) does so every time, and must not be retried forever; a
# node lost now and then costs one of them.
MAX_PART_CRASHES = 3
# Ray's retries of an actor call: the crashed attempts, and then the one that writes the error rows.
MAX_TASK_RETRIES = MAX_PART_CRASHES
# Restarts of one actor in a job (a few poison parts, a few lost nodes): past them Ray gives the actor up and
# the job ends with a ScanError, rather than restarting a worker that dies on every part.
MAX_ACTOR_RESTARTS = 4 * MAX_PART_CRASHES


@dataclass
class DatasetScanSummary:
    """What a :func:`scan_dataset` did; ``n_errors > 0`` makes the command exit 1.

    ``seconds`` is the Ray job's wall time, actor start-up included: ``images_per_second`` is what the
    cluster delivered, not the network's peak.

    Examples
    --------
    >>> summary = DatasetScanSummary(n_files=200, n_faces=210, n_errors=2, n_fake=90, n_real=108, seconds=4.0,
    ...                              actors=2)
    >>> summary.format_text()
    'scanned 200 file(s) with 2 Ray actor(s): 90 fake, 108 real, 0 without a face, 2 unreadable; 210 face(s), 50.0 img/s'
    """

    n_files: int = 0
    n_faces: int = 0
    n_errors: int = 0
    n_fake: int = 0
    n_real: int = 0
    n_uncertain: int = 0
    n_no_face: int = 0
    n_skipped: int = 0
    n_parts: int = 0
    actors: int = 0
    seconds: float = 0.0
    parts: list[str] = field(default_factory=list, repr=False)

    @property
    def n_failed(self) -> int:
        """Files that could not be read (the name :class:`~deepfake_detect.scan.output.ScanSummary` uses)."""
        return self.n_errors

    @property
    def images_per_second(self) -> float:
        """Files a second of the Ray job's wall time (0 before it ran).

        Examples
        --------
        >>> DatasetScanSummary(n_files=300, seconds=2.0).images_per_second
        150.0
        """
        return self.n_files / self.seconds if self.seconds > 0 else 0.0

    def add(self, counts: dict[str, int], part: str) -> None:
        """Add one part's counts (a row of what the actors return)."""
        for key in COUNTS:
            name = f"n_{key}"
            setattr(self, name, getattr(self, name) + int(counts[key]))
        self.parts.append(part)
        self.n_parts += 1

    def format_text(self) -> str:
        """The one-line summary the command prints at the end (see the class's example).

        Examples
        --------
        >>> DatasetScanSummary(n_skipped=5).format_text()
        'scanned 0 file(s) with 0 Ray actor(s): 0 fake, 0 real, 0 without a face, 0 unreadable, 5 skipped (already in the output); 0 face(s), 0.0 img/s'
        """
        skipped = f", {self.n_skipped} skipped (already in the output)" if self.n_skipped else ""
        uncertain = f", {self.n_uncertain} uncertain" if self.n_uncertain else ""
        return (
            f"scanned {self.n_files} file(s) with {self.actors} Ray actor(s): {self.n_fake} fake, "
            f"{self.n_real} real{uncertain}, {self.n_no_face} without a face, {self.n_errors} unreadable"
            f"{skipped}; {self.n_faces} face(s), {self.images_per_second:.1f} img/s"
        )


# ------------------------------------------------------------------------------------------------- the actor


@dataclass(frozen=True)
class _Job:
    """What every actor needs: the model to load, how to scan, where to write. Sent once, to each actor."""

    model: str
    backend: str
    abstain: bool
    runs_dir: str
    onnx_cache: str | None
    threads: int
    output: str
    scan_options: dict[str, Any]
    cwd: str  # the driver's working folder: local paths are relative to it, and the actors run elsewhere


class PartScanner:
    """A Ray Data actor: loads the detector once, then scans one part a row and writes it as a Parquet part.

    Not for direct use: :func:`scan_dataset` hands it to ``map_batches``.
    """

    def __init__(self, job: _Job):
        import cv2
        import torch

        # Fixed threads: the actor holds job.threads CPUs of the cluster; ONNX Runtime takes torch's count.
        torch.set_num_threads(job.threads)
        cv2.setNumThreads(job.threads)
        self.job = job
        self.det = load_detector(
            job.model,
            backend=job.backend,
            runs_dir=job.runs_dir,
            onnx_cache=job.onnx_cache,
            abstain=job.abstain,
        )
        self.reader = UrlReader()

    def __call__(self, batch) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {key: [] for key in ("part", *COUNTS)}
        for labels in batch.column("paths").to_pylist():
            name = part_name(labels)  # the same paths, the same name: a retried call replaces its own part
            marker = Path(self.job.output) / f".{name}.attempts.tmp"
            crashes = _start_attempt(marker, labels[0])
            if crashes < MAX_PART_CRASHES:
                results = self.scan_part(labels)
            else:
                results = self.crashed_part(labels, crashes)
            write_part(self.job.output, results, name=name)
            marker.unlink(missing_ok=True)
            rows["part"].append(name)
            for key, value in _counts(results).items():
                rows[key].append(value)
        return {key: np.asarray(values) for key, values in rows.items()}

    def scan_part(self, labels: list[str]) -> list[dict[str, Any]]:
        """The result rows of one part, in input order, each with its ``path`` as the driver named it."""
        failed: dict[int, str] = {}
        scanned: list[int] = []  # the positions of what iter_scan was given, in its order

        def items() -> Iterator[str | bytes]:
            for index, label in enumerate(labels):
                if not is_url(label):
                    scanned.append(index)
                    yield os.path.normpath(
                        os.path.join(self.job.cwd, label)
                    )  # abspath, from the driver's folder
                    continue
                try:
                    data = self.reader.read(label)
                except Exception as err:  # noqa: BLE001 - an unreadable URL is its error row, as a local file
                    failed[index] = describe_error(err)
                    continue
                scanned.append(index)
                yield data

        rows: list[dict[str, Any]] = [{} for _ in labels]
        # expand=False: each label is one file the driver listed, never walked or globbed again here.
        results = iter_scan(self.det, items(), workers=0, expand=False, **self.job.scan_options)
        for position, result in enumerate(results):
            index = scanned[position]  # iter_scan keeps input order: the n-th result is the n-th item
            rows[index] = {**result, "path": labels[index]}
        for index, error in failed.items():
            rows[index] = error_result(self.det, labels[index], error)
        return rows

    def crashed_part(self, labels: list[str], crashes: int) -> list[dict[str, Any]]:
        """Error rows for a part that killed its actor ``crashes`` times: one of its files crashes the decoder."""
        error = (
            f"the Ray worker scanning this file's part ({len(labels)} files from {labels[0]}) died {crashes} "
            "times: one of those files crashes the decoder; scan them without --ray to find which"
        )
        return [error_result(self.det, label, error) for label in labels]


def _start_attempt(marker: Path, first_path: str) -> int:
    """Record an attempt at a part in its marker; the attempts before it, each of which killed its actor."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    before = marker.read_text(encoding="utf-8").count("\n") if marker.is_file() else 0
    with open(marker, "a", encoding="utf-8") as out:
        out.write(first_path + "\n")
    return before


def _counts(results: list[dict[str, Any]]) -> dict[str, int]:
    """One part's row of counts, counted as the local scan counts (:class:`ScanSummary`)."""
    summary = ScanSummary()
    for result in results:
        summary.add(result)
    return {
        "files": summary.n_scanned,
        "faces": sum(len(r["faces"]) for r in results),
        "errors": summary.n_failed,
        "fake": summary.n_fake,
        "real": summary.n_real,
        "uncertain": summary.n_uncertain,
        "no_face": summary.n_no_face,
    }


# ------------------------------------------------------------------------------------------------ the driver


def _expand(inputs: list[Any], paths_from: str | Path | None, stdin: TextIO | None) -> list[str]:
    """Every file to scan, named as the local scan names it (URLs: the file URLs below each one)."""
    named = named_inputs(inputs, paths_from)
    labels: list[str] = []
    for item in iter_inputs(named, stdin=stdin):
        if not isinstance(item, str):
            raise ScanError(
                "scan_dataset reads files and URLs, not in-memory images: use Detector.scan for those"
            )
        labels += expand_url(item) if is_url(item) else [item]
    if not labels:
        raise ScanError(f"no image files found in {', '.join(map(str, named))}")
    videos = [label for label in labels if is_video_path(label)]
    if videos:
        raise ScanError(
            f"videos are not scanned under --ray ({len(videos)} found, e.g. {videos[0]}): scan them without --ray"
        )
    return labels


def _parts(labels: list[str], size: int, done: set[str]) -> list[list[str]]:
    """Consecutive runs of ``size`` labels, less those already done (and parts left empty by that)."""
    chunks = (labels[start : start + size] for start in range(0, len(labels), size))
    return [todo for chunk in chunks if (todo := [label for label in chunk if label not in done])]


def _model_reference(model: str | Path) -> str:
    """The model as every node can name it: an existing file or folder made absolute, else the name as given."""
    return os.path.abspath(model) if os.path.exists(model) else str(model)


@contextmanager
def _connected(ray, address: str | None, progress: bool) -> Iterator[None]:
    """Ray connected to ``address`` (None: a new local instance) for the duration."""
    if ray.is_initialized():  # the caller's own session (a notebook): use it and leave it running
        _warn_if_elsewhere(ray, address)
        yield
        return
    settings: dict[str, Any] = {
        "log_to_driver": progress,
        "logging_level": logging.INFO if progress else logging.WARNING,
    }
    if address is None:
        # "local", not None: ray.init(None) would join whatever RAY_ADDRESS names, and the library reads no
        # environment (the CLI passes RAY_ADDRESS down as address).
        settings.update(address="local", num_cpus=available_cores(), include_dashboard=False)
    else:
        settings["address"] = address
    ray.init(**settings)
    try:
        yield
    finally:
        ray.shutdown()


def _warn_if_elsewhere(ray, address: str | None) -> None:
    """Warn when this process's Ray session is not the cluster ``address`` names: the scan runs on the session."""
    if address in (None, "auto") or address.startswith("ray://"):
        return  # None and "auto" accept any session; a Ray Client address has no comparable form
    running = ray.get_runtime_context().gcs_address
    here = ray.util.get_node_ip_address()  # Ray names a cluster on this machine by its IP, not 127.0.0.1
    if _host_port(running, here) != _host_port(address, here):
        warnings.warn(
            f"Ray is already running in this process, connected to {running}: the scan runs there, not at "
            f"{address} (call ray.shutdown() first to scan on {address})",
            UserWarning,
            stacklevel=4,
        )


def _host_port(address: str, here: str) -> tuple[str, str]:
    """``host:port`` with the host as an IP address, this machine's loopback as its IP ``here``.

    Examples
    --------
    >>> _host_port("localhost:6379", "10.0.0.5"), _host_port("10.0.0.7:6379", "10.0.0.5")
    (('10.0.0.5', '6379'), ('10.0.0.7', '6379'))
    """
    host, _, port = address.rpartition(":")
    with contextlib.suppress(OSError):  # a name this machine cannot resolve is compared as written
        host = socket.gethostbyname(host)
    return (here if host.startswith("127.") else host), port


@contextmanager
def _data_context(data, progress: bool) -> Iterator[None]:
    """Ray Data's progress bars on or off for this scan, the caller's settings restored afterwards."""
    context = data.DataContext.get_current()
    before = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = progress
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = before


# How a package error reads in the traceback text Ray sends back from a worker.
_WORKER_ERROR = re.compile(r"deepfake_detect\.core\.exceptions\.(\w+): ([^\n]+)")


def _user_error(err: BaseException) -> DeepfakeDetectError | None:
    """The package error a worker raised, as this package's exception with its one-line message (or None).

    Ray hands back a worker's error as its traceback text (an actor that could not start: ``error_msg``; a
    failed call: the wrapper's message), not as the exception object: the last package error named in that text
    is raised again here, with its own class (and exit code), so the command prints one line.
    """
    text = f"{getattr(err, 'error_msg', '')}\n{err}"
    found = _WORKER_ERROR.findall(text)
    if not found:
        return None
    name, message = found[-1]
    cls = getattr(exceptions, name, None)
    cls = cls if isinstance(cls, type) and issubclass(cls, DeepfakeDetectError) else ScanError
    return cls(f"{message.strip()} (on a Ray worker)")


def _run(parts: list[list[str]], job: _Job, actors: int, progress: bool, summary: DatasetScanSummary):
    """Scan the parts on ``actors`` actors, adding each written part's counts to ``summary`` as it comes."""
    data = import_extra("ray.data", "ray", FEATURE)
    items = [{"paths": labels} for labels in parts]
    with warnings.catch_warnings():
        # Ray Data 2.60 warns about its own deprecated settings whenever it makes its context, and deprecates
        # passing max_restarts/max_task_retries (fixed defaults from 2.64): they are spelt out here because a
        # lost worker must never lose a part, and a part that kills its worker every time must not loop.
        warnings.simplefilter("ignore", DeprecationWarning)
        with _data_context(data, progress):
            # One part a block: a block is the unit an actor call gets and a retry repeats.
            dataset = data.from_items(items, override_num_blocks=len(items)).map_batches(
                PartScanner, fn_constructor_args=(job,), batch_size=1, batch_format="pyarrow",
                compute=data.ActorPoolStrategy(size=actors), num_cpus=job.threads,
                max_restarts=MAX_ACTOR_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
            )  # fmt: skip
            try:
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    for i, part in enumerate(batch["part"]):
                        summary.add({key: batch[key][i] for key in COUNTS}, str(part))
            except Exception as err:
                user = _user_error(err) or _workers_kept_dying(err, Path(job.output))
                if user is None:
                    raise
                raise user from None


def _workers_kept_dying(err: BaseException, output: Path) -> ScanError | None:
    """A job ended by an actor that died once too often: which part it was on, and what to do (or None)."""
    ray_exceptions = import_extra("ray.exceptions", "ray", FEATURE)
    if not isinstance(err, ray_exceptions.RayActorError) and "ActorDiedError" not in str(err):
        return None
    markers = [marker.read_text(encoding="utf-8").splitlines() for marker in output.glob(".*.attempts.tmp")]
    attempts = max(markers, key=len, default=[])  # the part retried most: the one its actor died on
    where = f" on the part that starts at {attempts[0]} ({len(attempts)} attempts)" if attempts else ""
    return ScanError(
        f"a Ray worker died more than {MAX_ACTOR_RESTARTS} times{where}: look for a node that keeps failing, "
        "or a file that crashes the decoder (scan that part's files without --ray to find it); then run the "
        "same command with --resume to finish the scan"
    )


def _check_parts_visible(output: Path, summary: DatasetScanSummary) -> None:
    """Every part an actor wrote must be in the driver's output folder: else the folder is not shared."""
    missing = [name for name in summary.parts if not (output / f"{name}.parquet").is_file()]
    if missing:
        raise ScanError(
            f"{len(missing)} of {summary.n_parts} parts the actors wrote are not in {output} on this machine: "
            "they went to the disks of other nodes. --output must be a folder every node of the cluster can "
            "reach (a shared file system), and the same path on each"
        )


def scan_dataset(
    inputs: list[Any],
    *,
    output: str | Path,
    model: str | Path = "default",
    detect: bool = True,
    framing: str = "ffhq",
    fallback_whole_image: bool = False,
    threshold: float | None = None,
    prior: float | None = None,
    backend: str = "auto",
    abstain: bool = True,
    batch_size: int = 32,
    address: str | None = None,
    actors: int | None = None,
    threads_per_actor: int | None = None,
    resume: bool = False,
    progress: bool = True,
    runs_dir: str | Path = "runs",
    paths_from: str | Path | None = None,
    rows_per_part: int | None = None,
    onnx_cache: str | Path | None = None,
    stdin: TextIO | None = None,
    provenance: bool = True,
) -> DatasetScanSummary:
    """Scan photos on a Ray cluster and write one Parquet row a file: ``deepfake-detect scan --ray``.

    The rows are the local scan's (:meth:`Detector.scan <deepfake_detect.scan.detector.Detector.scan>`, whose
    parameters ``detect``, ``framing``, ``fallback_whole_image``, ``threshold``, ``prior``, ``batch_size`` and
    ``provenance`` mean the same here), for the same model and backend: ``p_fake`` within 1e-6, the same
    verdicts, boxes,
    errors and ``path`` strings.

    Parameters
    ----------
    inputs : list
        Files, folders (recursive, sorted), globs and ``-`` (paths on ``stdin``), as for the local scan, and
        URLs that ``pyarrow.fs`` reads (``s3://bucket/prefix``, ``gs://...``; see
        :mod:`~deepfake_detect.scan.urls`). Local paths must be readable at the same path on every node (a
        shared file system). Videos are refused.
    output : str or Path
        A folder named ``*.parquet`` that every node can write at the same path (see
        :mod:`~deepfake_detect.scan.parquet`); missing or empty unless ``resume``.
    model, backend, abstain, runs_dir, onnx_cache
        As for :func:`~deepfake_detect.scan.detector.load_detector`. The model is loaded here first (a bad
        one fails before the cluster does any work), and each actor runs the backend it resolved to.
    address : str, optional
        The cluster to join (``host:6379``, ``ray://host:10001``, ``auto``); None starts a Ray instance on
        this machine for the scan. The library reads no environment: pass ``os.environ.get("RAY_ADDRESS")``
        to join the cluster it names, as the command does.
    actors : int, optional
        Scanning actors; default: the cluster's CPUs divided by ``threads_per_actor`` (at least 1), read once
        when the scan starts. On an autoscaling cluster (a head with no CPUs, workers added on demand) that is
        too few, often 1: give ``actors`` there.
    threads_per_actor : int, optional
        CPUs each actor holds and ONNX Runtime (or torch) threads it runs; default 1, usually the most
        images a second per core since each actor also decodes.
    resume : bool
        Skip the files already in ``output``'s complete parts, and write the rest.
    progress : bool
        Ray Data's progress bar (and Ray's worker logs on this terminal).
    paths_from : path, optional
        A text or CSV list of paths or URLs, added to ``inputs``.
    rows_per_part : int, optional
        Files a part; default: 256, or fewer so that each actor gets at least 4 parts.
    stdin : text stream, optional
        Where ``-`` reads paths from.

    Returns
    -------
    DatasetScanSummary
        Counts of files, faces, errors and verdicts, and the images a second.

    Raises
    ------
    ScanError
        For unusable options, nothing to scan, videos, an output that is not a ``.parquet`` folder, or parts
        written where this machine cannot see them.
    MissingExtraError
        Without Ray or pyarrow (``pip install 'deepfake-detect[ray]'``).

    Examples
    --------
    >>> import os                                                                            # doctest: +SKIP
    >>> summary = scan_dataset(["s3://photos/2026-11-30/"], output="/shared/scans/day.parquet",
    ...                        address=os.environ.get("RAY_ADDRESS"), detect=True)          # doctest: +SKIP
    >>> print(summary.format_text())                                                        # doctest: +SKIP
    scanned 48213 file(s) with 32 Ray actor(s): 1180 fake, 46410 real, 611 without a face, 12 unreadable; ...
    """
    ray = import_extra("ray", "ray", FEATURE)  # before anything else: a missing extra is one line, at once
    output = _checked_output(output)
    for name, value in (
        ("actors", actors),
        ("threads_per_actor", threads_per_actor),
        ("rows_per_part", rows_per_part),
    ):
        if value is not None and value < 1:
            raise ScanError(f"{name} must be at least 1, got {value}")
    prepare_output(output, resume)  # before anything is loaded: no pyarrow, or another scan's parts
    labels = _expand(inputs, paths_from, stdin)
    det = load_detector(model, runs_dir=runs_dir, backend=backend, abstain=abstain, onnx_cache=onnx_cache)
    scan_options = {
        "detect": detect, "fallback_whole_image": fallback_whole_image, "threshold": threshold, "prior": prior,
        "batch_size": batch_size, "framing": framing, "provenance": provenance,
    }  # fmt: skip
    det.iter_scan([], **scan_options)  # checks the options (and the face model) here, not in every actor
    threads = threads_per_actor or 1
    job = _Job(
        model=_model_reference(model), backend=det.backend, abstain=abstain, runs_dir=os.path.abspath(runs_dir),
        onnx_cache=None if onnx_cache is None else os.path.abspath(onnx_cache), threads=threads,
        output=str(output.absolute()), scan_options=scan_options, cwd=os.getcwd(),
    )  # fmt: skip
    done = done_paths(output) if resume else set()
    summary = DatasetScanSummary(n_skipped=sum(label in done for label in labels))
    if summary.n_skipped == len(labels):
        return summary  # nothing left: no cluster needed
    with _connected(ray, address, progress):
        summary.actors = actors or max(1, int(ray.cluster_resources().get("CPU", 0) // threads))
        size = rows_per_part or min(
            ROWS_PER_PART, math.ceil(len(labels) / (PARTS_PER_ACTOR * summary.actors))
        )
        start = time.perf_counter()
        _run(_parts(labels, size, done), job, summary.actors, progress, summary)
        summary.seconds = time.perf_counter() - start
    _check_parts_visible(output, summary)
    return summary


def _checked_output(output: str | Path | None) -> Path:
    if output is None or not is_parquet_output(output):
        raise ScanError(f"--ray writes a folder of Parquet parts: give --output NAME.parquet (got {output})")
    # Path("s3://b/x") reads "s3:/b/x": a scheme of two letters or more (not a drive letter) gives it away.
    if is_url(str(output)) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(output)):
        raise ScanError(
            f"--ray writes its parts to a folder every node shares, not to a URL ({output}): write to a shared "
            "file system, then copy the folder (e.g. aws s3 sync)"
        )
    return Path(output)
