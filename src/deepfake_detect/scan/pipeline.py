"""Scan photos and videos in the wild: find the faces, frame them like the training data, judge each one.

>>> import deepfake_detect as dd                      # doctest: +SKIP
>>> det = dd.load_detector("default")                 # doctest: +SKIP
>>> det.scan(["holiday.jpg", "photos/"])              # doctest: +SKIP
[{'path': 'holiday.jpg', 'error': None, 'verdict': 'real', 'p_fake': 0.08, 'faces': [...], ...}, ...]

The models judge whole generated faces (GANs, diffusion), not face swaps or edits of a real photo.

Result schema (one dict a input, in input order; ``scan --json`` prints them as JSON Lines)::

    {"path": "a.jpg", "error": null, "verdict": "fake", "p_fake": 0.93,
     "faces": [{"box": [x, y, w, h], "landmarks": [[x, y], ...], "quad": [[x, y], ...],
                "p_fake": 0.93, "logit": 2.6, "verdict": "fake"}],
     "model": {"name": "...", "sha256": "...", "threshold_logit": 0.3, "temperature": 1.2}}

* ``box`` (the detector's box), ``landmarks`` (5 points: the eye centres, image-left first, the nose tip and
  the mouth corners) and ``quad`` (FFHQ's face square: top-left, bottom-left, bottom-right, top-right of the
  upright face) are in pixels of the EXIF-corrected image, points rounded to 0.1 px. ``framing="ffhq"``
  (default) finds faces with BlazeFace and the face mesh and resamples the quad to the training frame
  (:mod:`~deepfake_detect.faces.blazeface`, :mod:`~deepfake_detect.faces.align`); ``framing="dlib"`` takes the
  same square from dlib's 68 landmarks (:mod:`~deepfake_detect.faces.landmarks`); ``framing="box"`` keeps the
  Haar cascade and its calibrated box framing (:mod:`~deepfake_detect.faces.haar`), without ``landmarks`` and
  ``quad``. None falls back to another (:mod:`~deepfake_detect.faces.framing`).
* A face whose quad is under :data:`MIN_JUDGED_SIDE` px keeps its ``p_fake`` but gets ``"verdict": null`` and
  ``"note": "face too small to judge (N px)"``; it decides the photo only when no face could be judged.
* ``box`` is in pixels of the EXIF-corrected image. ``p_fake`` is calibrated (at ``prior``); ``verdict`` is
  one of ``"real"``, ``"fake"`` and ``"uncertain"``:

  - a model with an abstention band (``model.uncertain_band``, chosen on validation and stored with the
    weights) says ``"fake"`` when ``logit >= upper_logit``, ``"real"`` when ``logit < lower_logit`` and
    ``"uncertain"`` in between, where a verdict would be a coin toss;
  - a model without one, or a detector loaded with ``abstain=False`` (``--no-abstain``), says ``"fake"`` when
    ``logit >= threshold_logit``, else ``"real"``;
  - a ``threshold`` given to the scan is a two-way cut the caller chose: ``"fake"`` when
    ``p_fake >= threshold``, else ``"real"``, and the band (chosen around the stored threshold) does not apply.
* The image's ``verdict`` and ``p_fake`` are those of its face with the highest ``p_fake``: one fake face
  makes a fake photo, and when that face is "uncertain" so is the photo (even if another face is clearly
  real: the most suspicious face decides).
* No face found: ``"faces": []``, ``"verdict": null``, ``"p_fake": null`` and a ``"note"``; not an error.
  With ``fallback_whole_image`` the whole image is scored instead (and the note says so).
* ``detect=False`` treats each image as an already framed face (what the 140k crops are): one face whose box
  covers the whole image, scored exactly as ``evaluate`` scores it.
* A file that cannot be read: ``"error": "<message>"``, ``"faces": []``, verdict and p_fake null.
* ``provenance``: what the file's metadata says (C2PA, XMP, EXIF, PNG text, JPEG comments, with a panel of
  ``findings``), read from the bytes the pixels are decoded from; absent with ``provenance=False``, for videos
  and for in-memory pixels. When it declares generative AI the ``verdict`` is ``"fake"`` whether or not a face
  was found, ``"reason"`` names the evidence, and ``p_fake`` and the faces stay the pixels' own; metadata never
  makes a file "real" (:func:`~deepfake_detect.provenance.apply_provenance`).
* With ``explain`` (a folder), each face also has ``"heatmap"``: the path of its Grad-CAM overlay PNG; with
  ``explain_inline``, the same PNG as a ``data:image/png;base64,...`` URL (nothing written to disk).

Videos (``.mp4 .webm .mov .mkv .avi .m4v``) are sampled at ``fps`` frames a second with PyAV and add::

    {"kind": "video", "fps": 1.0, "duration": 12.0, "rule": "mean of the top-3 face p_fake",
     "frames": [{"t": 0.0, "frame": 0, "p_fake": 0.91, "faces": [{"box": ..., "p_fake": ..., ...}]}, ...]}

The video's ``p_fake`` is the mean ``p_fake`` of its 3 highest-scoring faces over all sampled frames (fewer
when fewer were found): one odd frame does not decide, a face that is fake throughout does. Its ``verdict``
compares that score with the threshold in p_fake units, or with the band's ends in p_fake units (at the same
prior) when the model has a band: "uncertain" when the score falls inside. ``faces`` lists those top faces,
each with ``t`` (seconds) and ``frame``; a frame's ``p_fake`` is its highest face score (null without faces).
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detect.core.deprecation import renamed_keyword
from deepfake_detect.core.exceptions import ScanError
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.data.transforms import normalize
from deepfake_detect.faces.framing import check_framing
from deepfake_detect.faces.landmarks import quad_side
from deepfake_detect.inference.network import BACKENDS
from deepfake_detect.metrics.calibration import band_verdicts, two_way_verdicts
from deepfake_detect.provenance import apply_provenance
from deepfake_detect.scan.decode import FRAMINGS, Decoded, DecodeOptions, Face, decode_image
from deepfake_detect.scan.explain import Explainer
from deepfake_detect.scan.inputs import is_video_path, iter_inputs
from deepfake_detect.scan.video import decode_video, video_summary

__all__ = ["BACKENDS", "iter_scan", "error_result", "decode", "decoded_stream", "default_workers"]

log = logging.getLogger(__name__)

# Images decoded a worker task: large enough to amortise inter-process traffic, small for bounded memory.
DECODE_CHUNK = 16
# A face whose FFHQ square is smaller than this (pixels of the photo) keeps its p_fake but gets no verdict.
# Measured: faces140k/test (500 faces) reduced to S px and brought back to 256 px, default model, AUC 0.998
# at 256 px; 0.977 at 192, 0.955 at 160, 0.903 at 128, 0.819 at 96, 0.713 at 80, 0.613 at 64, 0.554 at 48.
MIN_JUDGED_SIDE = 96


# -------------------------------------------------------------------------------------------- decoding


def decode(index: int, item: Any, options: DecodeOptions) -> Decoded:
    """Decode any input (image, video, in-memory image) into framed faces; never raises."""
    if is_video_path(item):
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
    cores = available_cores()
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


def _points(points: np.ndarray | None) -> list[list[float]] | None:
    return None if points is None else [[round(float(x), 1), round(float(y), 1)] for x, y in points]


def _face_dict(face: Face, logit: float, p: float, verdict: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"box": [int(v) for v in face.box]}
    if face.quad is not None:
        out["landmarks"], out["quad"] = _points(face.landmarks), _points(face.quad)
    out.update(p_fake=p, logit=logit, verdict=verdict)
    if face.quad is not None and (side := quad_side(face.quad)) < MIN_JUDGED_SIDE:
        out["verdict"], out["note"] = None, f"face too small to judge ({side:.0f} px)"
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

    def verdicts(self, logits: np.ndarray, p_fake: np.ndarray) -> list[str]:
        """The faces' verdicts: the detector's (band-aware) ones, or two-way at the scan's own threshold."""
        if self.threshold is None:
            return self.det.verdicts(logits)
        return two_way_verdicts(p_fake, self.threshold)

    def score_verdict(self, p: float) -> str:
        """The verdict of a score that is not a single face's (a video's), in p_fake units at the prior."""
        if self.threshold is not None:
            return two_way_verdicts([p], self.threshold)[0]
        if self.det.band is None:
            return two_way_verdicts([p], self._to_p(self.det.threshold_logit))[0]
        lower, upper = self.det.band
        return band_verdicts([p], self._to_p(lower), self._to_p(upper))[0]

    def _to_p(self, logit: float) -> float:
        if np.isinf(logit):  # a band end that decides nothing stays out of reach (sigmoid(inf) is 1.0)
            return float(logit)
        return float(self.det.p_fake(np.array([logit]), prior=self.prior)[0])

    def result(self, item: Decoded, logits: np.ndarray) -> dict[str, Any]:
        p_fake = self.det.p_fake(logits, prior=self.prior) if len(logits) else logits
        faces = [
            _face_dict(f, float(lo), float(p), verdict)
            for f, lo, p, verdict in zip(
                item.faces, logits, p_fake, self.verdicts(logits, p_fake), strict=True
            )
        ]
        out: dict[str, Any] = {"path": item.path, "error": item.error, "verdict": None, "p_fake": None}
        if item.video is not None:
            out.update(video_summary(item, faces, self.score_verdict))
        elif faces:
            # Faces too small to judge keep their p_fake but do not decide the photo's verdict.
            judged = [f for f in faces if f["verdict"] is not None] or faces
            top = max(judged, key=lambda f: f["p_fake"])
            out["verdict"], out["p_fake"] = top["verdict"], top["p_fake"]
        out["faces"] = faces if item.video is None else out.pop("top_faces")
        out["model"] = self.det.model_info()
        if item.note:
            out["note"] = item.note
        elif faces and item.video is None and out["verdict"] is None:
            out["note"] = faces[0]["note"]
        if self.explainer is not None and faces:
            self.explainer.explain(item, faces, out)
        return apply_provenance(out, item.provenance)  # the one point where metadata may decide the verdict


def _check_options(
    fps: float, threshold: float | None, prior: float | None, batch_size: int, framing: str = "ffhq"
) -> None:
    if framing not in FRAMINGS:
        raise ScanError(f"framing must be one of {', '.join(FRAMINGS)}; got {framing!r}")
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
    explain: str | Path | None = None,
    explain_inline: bool = False,
    backend: str | None = None,
    onnx_cache: str | Path | None = None,
    framing: str = "ffhq",
    expand: bool = True,
    provenance: bool = True,
    explain_dir: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """``det.iter_scan(inputs, ...)``: judge the faces of photos, folders and videos, streamed in input order.

    The parameters after ``det`` (a :class:`~deepfake_detect.scan.detector.Detector`), the result schema and
    the errors are those of :meth:`Detector.scan <deepfake_detect.scan.detector.Detector.scan>`; the results
    are produced as the inputs are read, in bounded memory, and options are checked at once (not on the
    first ``next``). ``expand=False`` takes ``inputs`` as single files already listed (by
    :func:`~deepfake_detect.scan.inputs.iter_inputs`): no folder is walked and no glob matched again, so a
    file named ``a[1].jpg`` that vanished since it was listed is its own error row, one result an input.
    """
    det = apply_deprecated_backend(det, backend, onnx_cache, stacklevel=2)
    explain = renamed_keyword("explain_dir", explain_dir, "explain", explain)
    _check_options(fps, threshold, prior, batch_size, framing)
    if detect:
        check_framing(framing)  # a missing face model stops the scan now, not as one error row a file
    if explain_inline and explain is not None:
        raise ScanError("choose one of explain and explain_inline")
    explainer = None
    if explain is not None or explain_inline:
        explainer = Explainer(det, explain)  # None: data URLs in the results
    scorer = _Scorer(det, batch_size, threshold, prior, explainer)
    options = DecodeOptions(det.preprocess, detect, fallback_whole_image, fps, framing, provenance)
    # Options, backend and explainer are checked above, before the first result is asked for.
    items = iter_inputs(inputs) if expand else inputs
    return _results(scorer, decoded_stream(items, options, workers=workers), batch_size)


def error_result(det, path: str, error: str) -> dict[str, Any]:
    """The result row of an input that could not be read: what a scan writes for a file it cannot decode.

    Examples
    --------
    >>> from deepfake_detect.scan.detector import load_detector
    >>> row = error_result(load_detector("default", backend="torch"), "gone.jpg", "No such file")
    >>> {key: row[key] for key in ("path", "error", "verdict", "p_fake", "faces")}
    {'path': 'gone.jpg', 'error': 'No such file', 'verdict': None, 'p_fake': None, 'faces': []}
    """
    scorer = _Scorer(det, batch_size=1, threshold=None, prior=None)
    return scorer.result(Decoded(0, path, error=error), np.zeros(0, np.float32))


def apply_deprecated_backend(det, backend: str | None, onnx_cache: str | Path | None, *, stacklevel: int):
    """``det`` run by the deprecated ``backend`` argument of a scan, with a ``DeprecationWarning``.

    Parameters
    ----------
    det : Detector
        Left as it is.
    backend, onnx_cache
        The scan's deprecated arguments; both None: ``det`` itself, and no warning. ``onnx_cache`` alone
        changes nothing (it only ever served ``backend``) but is warned about too.
    stacklevel : int
        Where the warning points, counted from the caller as :func:`warnings.warn` counts it: 2 for the
        caller's caller, the user's line when the caller is the scan method the user called.

    Returns
    -------
    Detector
        ``det.with_backend(backend, onnx_cache=onnx_cache)``, or ``det``.
    """
    if backend is None and onnx_cache is None:
        return det
    warnings.warn(
        "scan(backend=..., onnx_cache=...) and iter_scan(backend=..., onnx_cache=...) are deprecated and "
        "will be removed in the next release; choose the backend once with load_detector(..., backend=, "
        "onnx_cache=) or det.with_backend(name, onnx_cache=)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return det if backend is None else det.with_backend(backend, onnx_cache=onnx_cache)


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
