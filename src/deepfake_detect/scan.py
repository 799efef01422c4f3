"""Scan photos and videos in the wild: find the faces, frame them like the training data, judge each one.

>>> import deepfake_detect as dd                      # doctest: +SKIP
>>> det = dd.load_detector("default")                 # doctest: +SKIP
>>> det.scan(["holiday.jpg", "photos/"])              # doctest: +SKIP
[{'path': 'holiday.jpg', 'error': None, 'verdict': 'real', 'p_fake': 0.08, 'faces': [...], ...}, ...]

The models judge whole GAN-generated faces (StyleGAN-like), not face swaps or edits of a real photo.

Result schema (one dict a input, in input order; ``scan --json`` prints them as JSON Lines)::

    {"path": "a.jpg", "error": null, "verdict": "fake", "p_fake": 0.93,
     "faces": [{"box": [x, y, w, h], "p_fake": 0.93, "logit": 2.6, "verdict": "fake"}],
     "model": {"name": "...", "sha256": "...", "threshold_logit": 0.3, "temperature": 1.2}}

* ``box`` is in pixels of the EXIF-corrected image. ``p_fake`` is calibrated (at ``prior``); ``verdict`` is
  ``logit >= threshold_logit`` (the model's), or ``p_fake >= threshold`` when a threshold is given.
* The image's ``verdict`` and ``p_fake`` are those of its face with the highest ``p_fake``: one fake face
  makes a fake photo.
* No face found: ``"faces": []``, ``"verdict": null``, ``"p_fake": null`` and a ``"note"``; not an error.
  With ``fallback_whole_image`` the whole image is scored instead (and the note says so).
* ``detect=False`` treats each image as an already framed face (what the 140k crops are): one face whose box
  covers the whole image, scored exactly as ``evaluate`` scores it.
* A file that cannot be read: ``"error": "<message>"``, ``"faces": []``, verdict and p_fake null.
* With ``explain_dir``, each face also has ``"heatmap"``: the path of its Grad-CAM overlay PNG; with
  ``explain_inline``, the same PNG as a ``data:image/png;base64,...`` URL (nothing written to disk).

Videos (``.mp4 .webm .mov .mkv .avi .m4v``) are sampled at ``fps`` frames a second with PyAV and add::

    {"kind": "video", "fps": 1.0, "duration": 12.0, "rule": "mean of the top-3 face p_fake",
     "frames": [{"t": 0.0, "frame": 0, "p_fake": 0.91, "faces": [{"box": ..., "p_fake": ..., ...}]}, ...]}

The video's ``p_fake`` is the mean ``p_fake`` of its 3 highest-scoring faces over all sampled frames (fewer
when fewer were found): one odd frame does not decide, a face that is fake throughout does. Its ``verdict``
compares that score with the threshold in p_fake units. ``faces`` lists those top faces, each with ``t``
(seconds) and ``frame``; a frame's ``p_fake`` is its highest face score (null without faces).
"""

from __future__ import annotations

import collections
import csv
import glob
import hashlib
import io
import itertools
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import IMAGE_EXTENSIONS
from .faces import Box, crop_face, detect_faces
from .transforms import Preprocess, _to_rgb, load_image, normalize

__all__ = [
    "ScanError",
    "VIDEO_EXTENSIONS",
    "VIDEO_TOP_K",
    "iter_inputs",
    "read_path_list",
    "iter_scan",
    "describe_error",
    "image_size",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"})
# A video's score is the mean p_fake of this many highest-scoring faces (see the module docstring).
VIDEO_TOP_K = 3
# Below this side (pixels) an image is mostly interpolation once brought to the model's input size.
MIN_RELIABLE_SIDE = 64
# Images decoded a worker task: large enough to amortise inter-process traffic, small for bounded memory.
DECODE_CHUNK = 16
_GLOB_CHARS = frozenset("*?[")


class ScanError(ValueError):
    """A scan that cannot start: bad options, nothing to scan, a model that cannot do what was asked."""


# ---------------------------------------------------------------------------------------------- inputs


def _is_media_name(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS


def _walk_media(top: str) -> Iterator[str]:
    """Image and video files below ``top``, sorted, hidden names skipped, each real folder walked once."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        # Sorting in place makes os.walk descend in sorted order too.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and _is_media_name(name):
                yield os.path.join(dirpath, name)


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


def input_label(item: Any, index: int) -> str:
    """The ``path`` reported for an input: the path itself, or a placeholder for in-memory images."""
    if isinstance(item, Image.Image):
        return f"<PIL image {index}>"
    if isinstance(item, np.ndarray):
        return f"<array {index}>"
    if isinstance(item, bytes):
        return f"<bytes {index}>"
    return os.fspath(item)


# -------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodeOptions:
    """What a worker needs to turn one input into framed faces."""

    preprocess: Preprocess
    detect: bool = True
    fallback_whole_image: bool = False
    fps: float = 1.0


@dataclass
class Face:
    """One face ready for the network: its box, the network's uint8 view and, in videos, its frame.

    ``view`` is the evaluation view (:meth:`Preprocess.finish` of the stored image, made contiguous) rather
    than the stored image: in crop mode it is a quarter of the pixels to send back from a decoding process.
    """

    box: Box
    view: np.ndarray
    frame: int | None = None
    t: float | None = None


@dataclass
class Decoded:
    """One input after decoding: its faces, or the reason it has none."""

    index: int
    path: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    video: dict[str, Any] | None = None  # fps, duration and the sampled (frame, t) list of a video


def describe_error(err: BaseException) -> str:
    """A one-line, user-facing reason why a file could not be read.

    Examples
    --------
    >>> describe_error(FileNotFoundError(2, "No such file or directory"))
    'cannot open: No such file or directory'
    """
    if isinstance(err, UnidentifiedImageError):  # its own message embeds a file object's repr
        return "not a recognised image format"
    if isinstance(err, Image.DecompressionBombError):
        return f"refused as a possible decompression bomb: {err}"
    if isinstance(err, IsADirectoryError):
        return "cannot open: it is a directory, not a file"
    if isinstance(err, OSError) and err.errno is not None:
        return f"cannot open: {err.strerror or err}"
    text = str(err).strip() or type(err).__name__
    if "truncated" in text:
        return f"truncated or corrupt image ({text})"
    return text if isinstance(err, OSError) else f"{type(err).__name__}: {text}"


def _open_rgb(item: Any, preprocess: Preprocess, detect: bool) -> tuple[np.ndarray | None, tuple[int, int]]:
    """Full-size RGB pixels (detection only) and the EXIF-corrected size of an input."""
    if isinstance(item, np.ndarray):
        rgb = np.asarray(_to_rgb(Image.fromarray(item)) if item.ndim == 2 or item.shape[-1] != 3 else item)
        return rgb.astype(np.uint8, copy=False), (rgb.shape[1], rgb.shape[0])
    if isinstance(item, Image.Image):
        image = _to_rgb(ImageOps.exif_transpose(item))
        return (np.asarray(image) if detect else None), image.size
    if detect:
        image = _to_rgb(ImageOps.exif_transpose(load_image(item, None, draft=False)))
        return np.asarray(image), image.size
    # Header only: the pixels are decoded once, by Preprocess.load, exactly as evaluate decodes them.
    return None, image_size(item)


def image_size(source: str | Path | bytes) -> tuple[int, int]:
    """Width and height of an image file once its EXIF orientation is applied, read from the header only."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as header:
        width, height = header.size
        if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # a quarter turn swaps the sides
            width, height = height, width
    return width, height


def network_view(stored: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """The evaluation view of a stored image, as its own contiguous array (cheap to pickle)."""
    return np.ascontiguousarray(preprocess.finish(stored))


def _whole(item: Any, rgb: np.ndarray | None, size: tuple[int, int], preprocess: Preprocess) -> Face:
    # Without pixels yet, Preprocess.load is the evaluate code path: same decode, draft mode and resize.
    stored = preprocess.prepare(Image.fromarray(rgb)) if rgb is not None else preprocess.load(item)
    return Face((0, 0, size[0], size[1]), network_view(stored, preprocess))


def _faces_in(rgb: np.ndarray, preprocess: Preprocess) -> list[Face]:
    return [
        Face(box, network_view(preprocess.prepare(Image.fromarray(crop_face(rgb, box))), preprocess))
        for box in detect_faces(rgb)
    ]


def decode_image(index: int, item: Any, options: DecodeOptions) -> Decoded:
    """Decode one image input into framed faces; never raises for a bad file."""
    result = Decoded(index, input_label(item, index))
    try:
        rgb, size = _open_rgb(item, options.preprocess, options.detect)
        if options.detect:
            result.faces = _faces_in(rgb, options.preprocess)
        if not options.detect or (not result.faces and options.fallback_whole_image):
            result.faces = [_whole(item, rgb, size, options.preprocess)]
            if options.detect:
                result.note = "no face found; the whole image was scored (--fallback-whole-image)"
        elif not result.faces:
            result.note = "no face found"
        if result.faces and min(size) < min(MIN_RELIABLE_SIDE, options.preprocess.size):
            result.note = (
                f"image is only {size[0]}x{size[1]} pixels, blown up to the model's "
                f"{options.preprocess.size}x{options.preprocess.size}: the score is unreliable"
            )
    except Exception as err:  # noqa: BLE001 - any failure is this file's error row, the scan goes on
        result.faces, result.note, result.error = [], None, describe_error(err)
    return result


def decode(index: int, item: Any, options: DecodeOptions) -> Decoded:
    """Decode any input (image, video, in-memory image) into framed faces; never raises."""
    if isinstance(item, str) and os.path.splitext(item)[1].lower() in VIDEO_EXTENSIONS:
        from .video import decode_video

        return decode_video(index, item, options)
    return decode_image(index, item, options)


def _decode_chunk(chunk: list[tuple[int, Any]], options: DecodeOptions) -> list[Decoded]:
    return [decode(index, item, options) for index, item in chunk]


def _init_worker() -> None:
    # The workers share the cores with the network in the main process: one thread each.
    import cv2

    cv2.setNumThreads(1)


def default_workers(detect: bool = True) -> int:
    """Decoding processes for a scan.

    With face detection (the Haar cascade costs more than the network) every core this process may use, at
    most 4. Without it, decoding a framed face is cheaper than shipping it between processes: on 2 cores the
    int8 default model scanned 865 img/s decoding in-process against 622 with 2 workers and 518 with one, so
    workers start only from 4 cores, one for every two.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    if not detect:
        return 0 if cores <= 2 else min(cores // 2, 4)
    return min(cores, 4)


def decoded_stream(
    items: Iterable[Any], options: DecodeOptions, *, workers: int | None = None
) -> Iterator[Decoded]:
    """Decode inputs in worker processes, yielding in input order with a bounded number in flight.

    At most ``2 * workers`` chunks of :data:`DECODE_CHUNK` inputs are decoded ahead of the consumer, so a
    huge folder streams through in constant memory. A short input (one chunk) is decoded in this process:
    starting workers would cost more than it saves.
    """
    numbered = enumerate(items)
    first = list(itertools.islice(numbered, DECODE_CHUNK))
    workers = default_workers(options.detect) if workers is None else workers
    if workers <= 0 or len(first) < DECODE_CHUNK:
        yield from _decode_chunk(first, options)
        for index, item in numbered:
            yield decode(index, item, options)
        return
    chunks = itertools.chain([first], iter(lambda: list(itertools.islice(numbered, DECODE_CHUNK)), []))
    # Not plain fork: forking this process, which already runs torch, onnxruntime and tqdm threads, can copy a
    # held lock into a worker and hang it (seen in CI). forkserver forks from a clean single-threaded server.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending: collections.deque = collections.deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_decode_chunk, chunk, options))
                while len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# --------------------------------------------------------------------------------------------- scoring


def _face_dict(face: Face, logit: float, p: float, verdict: str) -> dict[str, Any]:
    out: dict[str, Any] = {"box": [int(v) for v in face.box], "p_fake": p, "logit": logit, "verdict": verdict}
    if face.t is not None:
        out["t"], out["frame"] = round(face.t, 3), face.frame
    return out


@dataclass
class _Scorer:
    """Turns decoded faces into result dicts with one detector and one decision rule."""

    det: Any
    batch_size: int
    threshold: float | None
    prior: float | None
    explainer: Any = None

    def logits(self, faces: list[Face]) -> np.ndarray:
        pre = self.det.preprocess
        out = []
        for start in range(0, len(faces), self.batch_size):
            views = np.stack([f.view for f in faces[start : start + self.batch_size]])
            out.append(self.det.logits(normalize(views, pre.mean, pre.std)))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def verdict(self, logit: float, p: float) -> str:
        if self.threshold is None:
            return self.det.verdicts(np.array([logit]))[0]
        return "fake" if p >= self.threshold else "real"

    @property
    def threshold_p(self) -> float:
        """The decision threshold in p_fake units (for scores that are not a single face's)."""
        if self.threshold is not None:
            return self.threshold
        return float(self.det.p_fake(np.array([self.det.threshold_logit]), prior=self.prior)[0])

    def result(self, item: Decoded, logits: np.ndarray) -> dict[str, Any]:
        p_fake = self.det.p_fake(logits, prior=self.prior) if len(logits) else logits
        faces = [
            _face_dict(f, float(lo), float(p), self.verdict(float(lo), float(p)))
            for f, lo, p in zip(item.faces, logits, p_fake, strict=True)
        ]
        out: dict[str, Any] = {"path": item.path, "error": item.error, "verdict": None, "p_fake": None}
        if item.video is not None:
            from .video import video_summary

            out.update(video_summary(item, faces, self.threshold_p))
        elif faces:
            top = max(faces, key=lambda f: f["p_fake"])
            out["verdict"], out["p_fake"] = top["verdict"], top["p_fake"]
        out["faces"] = faces if item.video is None else out.pop("top_faces")
        out["model"] = self.det.model_info()
        if item.note:
            out["note"] = item.note
        if self.explainer is not None and faces:
            self.explainer.explain(item, faces, out)
        return out


def _check_options(fps: float, threshold: float | None, prior: float | None, batch_size: int) -> None:
    if fps <= 0:
        raise ScanError(f"fps must be positive, got {fps}")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ScanError(f"threshold is a p_fake and must be in (0, 1), got {threshold}")
    if prior is not None and not 0.0 < prior < 1.0:
        raise ScanError(f"prior must be in (0, 1), got {prior}")
    if batch_size < 1:
        raise ScanError(f"batch_size must be at least 1, got {batch_size}")


def iter_scan(
    det,
    inputs: Iterable[Any],
    *,
    detect: bool = True,
    fallback_whole_image: bool = False,
    threshold: float | None = None,
    prior: float | None = None,
    fps: float = 1.0,
    batch_size: int = 32,
    workers: int | None = None,
    backend: str = "auto",
    explain_dir: str | Path | None = None,
    explain_inline: bool = False,
    onnx_cache: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Judge the faces of photos, folders and videos: one result dict a input, in input order, streamed.

    Parameters
    ----------
    det : Detector
        From :func:`~deepfake_detect.inference.load_detector`.
    inputs : iterable
        Paths, folders (recursive, sorted), globs, ``-`` (paths on stdin), ``PIL.Image`` or ``(H, W, 3)``
        uint8 arrays; see :func:`iter_inputs`.
    detect : bool
        Find faces with the Haar cascade. False: each image is one already framed face.
    fallback_whole_image : bool
        Score the whole image when no face is found (instead of reporting no verdict).
    threshold : float, optional
        Decision threshold in p_fake units (at ``prior``); default: the model's stored threshold.
    prior : float, optional
        Expected share of fakes, for ``p_fake``; default: the calibration split's (50% for 140k).
    fps : float
        Frames sampled a second of video.
    batch_size : int
        Faces a forward pass.
    workers : int, optional
        Decoding processes; default :func:`default_workers` (none on 2 cores with ``detect=False``); 0
        decodes in this process.
    backend : {"auto", "onnx-int8", "onnx", "torch"}
        ``auto`` runs the float graph through ONNX Runtime (exported once to ``onnx_cache``), else torch; both
        give the scores ``evaluate`` gives. ``onnx-int8`` runs the int8 graph beside the weights (the default
        model ships one; ``export --quantize`` writes one for a run): about twice as fast, scores a little off.
    explain_dir : path, optional
        Write a Grad-CAM overlay PNG a face here (needs torch weights), and a timeline PNG a video.
    explain_inline : bool
        Instead of ``explain_dir``: put each overlay in the result as a PNG data URL, in memory only.
    onnx_cache : path, optional
        Folder of exported graphs; default ``~/.cache/deepfake-detect/onnx``.

    Returns
    -------
    iterator of dict
        The result schema of the module docstring, produced as the inputs are read.

    Raises
    ------
    ScanError
        At once (not on the first ``next``) for unusable options.
    """
    _check_options(fps, threshold, prior, batch_size)
    _select_backend(det, backend, onnx_cache)
    if explain_inline and explain_dir is not None:
        raise ScanError("choose one of explain_dir and explain_inline")
    explainer = None
    if explain_dir is not None or explain_inline:
        from .explain import Explainer

        explainer = Explainer(det, explain_dir)  # None: data URLs in the results
    scorer = _Scorer(det, batch_size, threshold, prior, explainer)
    options = DecodeOptions(det.preprocess, detect, fallback_whole_image, fps)
    # Options, backend and explainer are checked above, before the first result is asked for.
    return _results(scorer, decoded_stream(iter_inputs(inputs), options, workers=workers), batch_size)


def _results(scorer: _Scorer, stream: Iterator[Decoded], batch_size: int) -> Iterator[dict[str, Any]]:
    for group in _batched_by_faces(stream, batch_size):
        logits = scorer.logits([face for item in group for face in item.faces])
        offset = 0
        for item in group:
            yield scorer.result(item, logits[offset : offset + len(item.faces)])
            offset += len(item.faces)


def _batched_by_faces(stream: Iterator[Decoded], batch_size: int) -> Iterator[list[Decoded]]:
    """Group consecutive decoded inputs until they hold ``batch_size`` faces or inputs (full batches)."""
    group: list[Decoded] = []
    n_faces = 0
    for item in stream:
        group.append(item)
        n_faces += len(item.faces)
        if n_faces >= batch_size or len(group) >= batch_size:
            yield group
            group, n_faces = [], 0
    if group:
        yield group


BACKENDS = ("auto", "onnx-int8", "onnx", "torch")


def _select_backend(det, backend: str, onnx_cache: str | Path | None) -> None:
    if backend not in BACKENDS:
        raise ScanError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "torch":
        if det.model is None:
            raise ScanError("backend 'torch' needs torch weights; this model is an ONNX file")
        det.session = None
    elif backend == "onnx-int8":
        if not det.use_int8():
            raise ScanError(
                "backend 'onnx-int8' needs an int8 graph made from these weights: run "
                "`deepfake-detect export RUN --quantize`, which writes model.int8.onnx beside them"
            )
    elif backend == "onnx":
        if det.model is not None and det.backend != "onnx":
            det.session = None
        if not det.use_onnx(onnx_cache):
            raise ScanError("backend 'onnx' was asked for but the model could not run with ONNX Runtime")
    elif det.session is None:
        # auto: the float graph through ONNX Runtime, else torch. Never the int8 graph: its scores differ a little
        # from evaluate's, and by default a scan reproduces the model card exactly.
        det.use_onnx(onnx_cache)


def output_key(path: str) -> str:
    """Stable short id of a path, for file names of heatmaps and timelines."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
