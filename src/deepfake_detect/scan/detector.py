"""The detector users call: ``load_detector(...)`` and ``det.scan(...)``, the Python twin of ``deepfake-detect scan``.

>>> import deepfake_detect as dd                                   # doctest: +SKIP
>>> det = dd.load_detector("default")                              # doctest: +SKIP
>>> det.scan(["holiday.jpg", "photos/"])                           # doctest: +SKIP
[{'path': 'holiday.jpg', 'error': None, 'verdict': 'real', 'p_fake': 0.08, 'faces': [...], ...}, ...]
>>> fast = det.with_backend("onnx-int8")    # another detector; det keeps its backend  # doctest: +SKIP
>>> two_way = dd.load_detector("default", abstain=False)   # never "uncertain"        # doctest: +SKIP

It sits in the scan layer, above the network runtime it extends
(:class:`~deepfake_detect.inference.network.Network`), so that ``det.scan`` imports nothing from a layer above.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from deepfake_detect.core.deprecation import renamed_keyword
from deepfake_detect.inference.network import Network, load_network
from deepfake_detect.scan.pipeline import apply_deprecated_backend, iter_scan

__all__ = ["Detector", "load_detector"]


class Detector(Network):
    """A trained network that also finds and judges the faces in photos, folders and videos.

    See :class:`~deepfake_detect.inference.network.Network` for the parameters, the backend and the scores.
    """

    def scan(
        self,
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
        provenance: bool = True,
        explain_dir: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """Find and judge the faces of photos, folders and videos: one result dict per input, in input order.

        :meth:`iter_scan` takes the same parameters and streams the results instead.

        Parameters
        ----------
        inputs : iterable
            Paths, folders (recursive, sorted), globs, ``-`` (paths on stdin), ``PIL.Image`` or ``(H, W, 3)``
            uint8 arrays; see :func:`~deepfake_detect.scan.inputs.iter_inputs`.
        detect : bool
            Find faces (see ``framing``). False: each image is one already framed face.
        fallback_whole_image : bool
            Score the whole image when no face is found (instead of reporting no verdict).
        threshold : float, optional
            Decision threshold in p_fake units (at ``prior``), a two-way cut: the model's "uncertain" band
            does not apply. Default: the model's stored threshold, or its band (see :attr:`band`).
        prior : float, optional
            Expected share of fakes, for ``p_fake``; default: the calibration split's (50% for 140k).
        fps : float
            Frames sampled a second of video.
        batch_size : int
            Faces a forward pass.
        workers : int, optional
            Decoding processes; default :func:`~deepfake_detect.scan.pipeline.default_workers` (none on 2
            cores with ``detect=False``); 0 decodes in this process.
        explain : path, optional
            Write a Grad-CAM overlay PNG a face into this folder (needs torch weights), and a timeline PNG a
            video (``--explain DIR``).
        explain_inline : bool
            Instead of ``explain``: put each overlay in the result as a PNG data URL, in memory only.
        backend : str, optional
            Deprecated: choose the backend once with ``load_detector(..., backend=)`` or :meth:`with_backend`.
            Given here, this scan (only) runs ``self.with_backend(backend)`` and a ``DeprecationWarning`` says
            so; this detector is not changed.
        onnx_cache : path, optional
            Deprecated with ``backend``: the folder of exported graphs for it.
        framing : {"ffhq", "dlib", "box"}
            ``ffhq``: BlazeFace and the face mesh find the eyes and mouth, and FFHQ's own oriented square is
            resampled to the training frame; ``dlib``: the same square from dlib's 68 landmarks (slower, the
            previous default); ``box``: the Haar cascade's upright box with its calibrated offsets (for
            comparison).
        provenance : bool
            Read each file's metadata (C2PA, XMP, EXIF, PNG text, JPEG comments; offline) from the bytes it
            is decoded from, into the result's ``provenance``; a declaration of generative AI makes the
            verdict "fake", with a ``reason`` (:mod:`deepfake_detect.provenance.policy`). False: not read, and
            rows have no ``provenance``, as for in-memory pixels and videos.
        explain_dir : path, optional
            Deprecated: the old name of ``explain`` (a ``DeprecationWarning`` says so).

        Returns
        -------
        list of dict
            One a input, in input order, in the result schema of :mod:`deepfake_detect.scan.pipeline`
            (``path``, ``error``, ``verdict``, ``p_fake``, ``faces``, ``model``; ``provenance`` for a file read
            from bytes or a path; ``frames`` for a video).

        Raises
        ------
        ScanError
            For unusable options, before any input is read; ``FaceModelError`` (a ``ScanError``) when
            the framing's face models are not installed.
        ExplainError
            For ``explain`` or ``explain_inline`` with a model without torch weights (an ``.onnx`` file).
        BackendError
            For a deprecated ``backend`` this model cannot run.

        Examples
        --------
        >>> import numpy as np
        >>> det = load_detector("default", backend="torch")
        >>> result = det.scan([np.zeros((64, 64, 3), np.uint8)], detect=False)[0]
        >>> sorted(result)
        ['error', 'faces', 'model', 'p_fake', 'path', 'verdict']
        >>> result["verdict"] in ("real", "fake", "uncertain")
        True
        """
        det = apply_deprecated_backend(self, backend, onnx_cache, stacklevel=2)
        explain = renamed_keyword("explain_dir", explain_dir, "explain", explain)
        return list(
            iter_scan(
                det, inputs, detect=detect, fallback_whole_image=fallback_whole_image, threshold=threshold,
                prior=prior, fps=fps, batch_size=batch_size, workers=workers, explain=explain,
                explain_inline=explain_inline, framing=framing, provenance=provenance,
            )
        )  # fmt: skip

    def iter_scan(
        self,
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
        provenance: bool = True,
        explain_dir: str | Path | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`scan` (the same parameters and errors), but yields the results one by one in input
        order, in bounded memory; options are checked at once, not on the first ``next``.
        """
        det = apply_deprecated_backend(self, backend, onnx_cache, stacklevel=2)
        explain = renamed_keyword("explain_dir", explain_dir, "explain", explain)
        return iter_scan(
            det, inputs, detect=detect, fallback_whole_image=fallback_whole_image, threshold=threshold,
            prior=prior, fps=fps, batch_size=batch_size, workers=workers, explain=explain,
            explain_inline=explain_inline, framing=framing, provenance=provenance,
        )  # fmt: skip


def load_detector(
    name_or_path: str | Path = "default",
    *,
    backend: str = "auto",
    device: str = "cpu",
    runs_dir: str | Path = "runs",
    onnx_cache: str | Path | None = None,
    abstain: bool = True,
) -> Detector:
    """Load a detector from ``default``, a run folder, a run id, a ``.safetensors`` or an ``.onnx`` file.

    Parameters
    ----------
    name_or_path : str or Path
        What to load. An ``.onnx`` file needs the ``.onnx.json`` metadata that ``deepfake-detect export``
        writes beside it (:func:`~deepfake_detect.inference.onnx.metadata_path`); such a detector scores
        images but cannot explain them (no torch weights).
    backend : {"auto", "onnx-int8", "onnx", "torch"}
        What runs the network, chosen once (see :mod:`deepfake_detect.inference.network`). ``auto``, the
        default, is the model's own default: the int8 graph beside the weights where their metadata makes it so
        (as for the shipped default model), else the float graph in ONNX Runtime (exported once to
        ``onnx_cache``), else torch; either way the scores ``evaluate`` gives. ``onnx-int8`` runs the int8 graph
        (about twice as fast as float), ``onnx`` the float graph.
    device : str
        ``cpu`` (default) or ``cuda``, for torch.
    runs_dir : str or Path
        Where run ids are looked up.
    onnx_cache : path, optional
        Folder of exported float graphs; default ``~/.cache/deepfake-detect/onnx``.
    abstain : bool
        Say "uncertain" for a face whose score lies in the model's abstention band (chosen on validation and
        stored with the weights; see :attr:`~deepfake_detect.inference.network.Network.band`). False: always
        "real" or "fake" (``--no-abstain``). A model without a band is two-way either way.

    Returns
    -------
    Detector

    Raises
    ------
    CheckpointError
        When nothing loadable is found or the file fails validation.
    BackendError
        When ``backend`` cannot run this model.
    """
    return load_network(
        name_or_path, device=device, runs_dir=runs_dir, backend=backend, onnx_cache=onnx_cache, cls=Detector,
        abstain=abstain,
    )  # fmt: skip
