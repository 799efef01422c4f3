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

from deepfake_detect.inference.network import Network, load_network
from deepfake_detect.scan.pipeline import iter_scan

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
        explain_dir: str | Path | None = None,
        explain_inline: bool = False,
        backend: str | None = None,
        onnx_cache: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """Find and judge the faces of photos, folders or videos; one result dict per input, in input order.

        The parameters and the result schema are those of :func:`deepfake_detect.scan.pipeline.iter_scan`
        (``backend`` is deprecated there and here: use :meth:`with_backend`).
        """
        return list(
            self.iter_scan(
                inputs, detect=detect, fallback_whole_image=fallback_whole_image, threshold=threshold,
                prior=prior, fps=fps, batch_size=batch_size, workers=workers, explain_dir=explain_dir,
                explain_inline=explain_inline, backend=backend, onnx_cache=onnx_cache,
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
        explain_dir: str | Path | None = None,
        explain_inline: bool = False,
        backend: str | None = None,
        onnx_cache: str | Path | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`scan`, but yields results one by one in input order, in bounded memory."""
        return iter_scan(
            self, inputs, detect=detect, fallback_whole_image=fallback_whole_image, threshold=threshold,
            prior=prior, fps=fps, batch_size=batch_size, workers=workers, explain_dir=explain_dir,
            explain_inline=explain_inline, backend=backend, onnx_cache=onnx_cache,
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
        writes beside it; such a detector scores images but cannot explain them (no torch weights).
    backend : {"auto", "onnx-int8", "onnx", "torch"}
        What runs the network, chosen once (see :mod:`deepfake_detect.inference.network`). ``auto``, the
        default, runs the float graph in ONNX Runtime (exported once to ``onnx_cache``), else torch: the scores
        ``evaluate`` gives. ``onnx-int8`` runs the int8 graph beside the weights (about twice as fast).
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
