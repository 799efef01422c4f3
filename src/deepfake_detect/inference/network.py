"""The network runtime: a trained model's weights, its preprocessing and calibration, and a backend to run it.

>>> from deepfake_detect.inference.network import load_network             # doctest: +SKIP
>>> net = load_network("runs/20261125-120000-notebook-cnn-s42", backend="onnx")  # doctest: +SKIP
>>> net.p_fake(net.logits(batch))                                          # doctest: +SKIP

The backend is chosen once, when a network is made (:func:`load_network`, :meth:`Network.with_backend`), and
never changes afterwards:

* ``torch``: the safetensors weights in torch;
* ``onnx``: the float graph in ONNX Runtime, exported once to a cache keyed by the weights' tensor hash (the same
  scores as torch up to 1e-4), or an ``.onnx`` file loaded with its ``.onnx.json`` metadata;
* ``onnx-int8``: the int8 graph beside the weights (``<stem>.int8.onnx``, named by
  :func:`~deepfake_detect.inference.onnx.int8_graph_path`), about twice as fast, scores a little off the float
  weights';
* ``auto``: the model's own default. That is the int8 graph when the weights' metadata says
  ``"default_backend": "onnx-int8"`` (set when shipping, only where int8's validation AUC was measured within
  0.002 of float, see :data:`INT8_DEFAULT_KEY`) and the graph sits beside them; otherwise ``onnx`` when the
  export works, else ``torch``. ``evaluate`` scores with the same choice (:attr:`Network.scoring_backend`), so
  a default scan reproduces ``evaluate``.

Verdicts are "real", "fake" or, for a model that stores an abstention band (``abstain_lower_logit`` and
``abstain_upper_logit`` in its metadata, chosen on validation, see :mod:`deepfake_detect.metrics.calibration`),
"uncertain" inside the band. Like the backend, whether the band is used is chosen once, when a network is made
(``abstain=``, :meth:`Network.with_abstain`); a model without a band always gives the two-way verdict.

Users call :func:`deepfake_detect.load_detector`, whose :class:`~deepfake_detect.scan.detector.Detector` adds
``scan()`` to this class.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_detect.core.checkpoint import load_checkpoint, resolve_weights
from deepfake_detect.core.exceptions import BackendError, CheckpointError
from deepfake_detect.core.runtime import predict_logits, resolve_device
from deepfake_detect.data import Sample
from deepfake_detect.data.dataset import FaceDataset, make_loader
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.inference.onnx import (
    export_onnx,
    int8_graph_path,
    is_int8_graph,
    metadata_path,
    onnx_logits,
    onnx_session,
)
from deepfake_detect.metrics import calibration as calibrate
from deepfake_detect.metrics.calibration import band_verdicts, two_way_verdicts
from deepfake_detect.models import create_model

__all__ = ["BACKENDS", "BAND_KEYS", "Network", "Predictions", "load_network", "ONNX_CACHE_DIR"]

log = logging.getLogger(__name__)

# Exported graphs of safetensors models, one file per tensor hash and input size.
ONNX_CACHE_DIR = Path("~/.cache/deepfake-detect/onnx")
BACKENDS = ("auto", "onnx-int8", "onnx", "torch")
# The metadata key that makes the int8 graph a model's default (``auto``) backend, and the one that records why.
INT8_DEFAULT_KEY = "default_backend"
INT8_CHECK_KEY = "int8_validation"
# The metadata keys of the "uncertain" band; null for an end that decides nothing (no cut met the precision).
BAND_KEYS = ("abstain_lower_logit", "abstain_upper_logit")


@dataclass
class Predictions:
    """Raw logits of the samples that decoded, with their labels and positions in the input list."""

    logits: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    n_unreadable: int


class Network:
    """A trained model plus everything needed to use it: preprocessing, threshold, calibration and a backend.

    Make one with :func:`load_network` (or :func:`deepfake_detect.load_detector`); the backend it runs is fixed
    for its lifetime, and :meth:`with_backend` returns another network for another backend.

    Parameters
    ----------
    model : torch.nn.Module or None
        The torch weights; None for a network loaded from an ``.onnx`` file.
    metadata : dict
        The checkpoint's metadata (see :mod:`deepfake_detect.core.checkpoint`).
    path : Path, optional
        Where the weights came from.
    device : str
        ``cpu`` or ``cuda`` for the torch backend.
    session : onnxruntime.InferenceSession, optional
        Run the network with ONNX Runtime instead of torch.
    int8 : bool
        ``session`` runs the int8 graph.
    abstain : bool
        Say "uncertain" inside the model's abstention band, when it has one; False: always "real" or "fake".
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        metadata: dict[str, Any],
        path: Path | None = None,
        device="cpu",
        session=None,
        int8: bool = False,
        abstain: bool = True,
    ):
        self.device = resolve_device(device) if isinstance(device, str) else device
        if model is not None:
            model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.model = model
        self.session = session
        self.metadata = metadata
        self.path = path
        self.preprocess = Preprocess.from_dict(metadata["preprocess"])
        self._int8 = session is not None and int8
        self._abstain = abstain

    @property
    def backend(self) -> str:
        """``onnx-int8`` or ``onnx`` when ONNX Runtime runs the network (quantised or float), else ``torch``."""
        if self.session is None:
            return "torch"
        return "onnx-int8" if self._int8 else "onnx"

    @property
    def int8_by_default(self) -> bool:
        """True when the metadata makes the int8 graph this model's default backend and the graph is there."""
        return self.metadata.get(INT8_DEFAULT_KEY) == "onnx-int8" and self.int8_path is not None

    @property
    def scoring_backend(self) -> str:
        """What ``evaluate`` scores with: the int8 graph when it is the default, else the torch weights (whose
        scores the float graph of ``auto`` gives to 1e-4)."""
        return "onnx-int8" if self.int8_by_default else "torch"

    @property
    def int8_path(self) -> Path | None:
        """The int8 graph beside the weights (``<stem>.int8.onnx``, written by ``export --quantize``), or None.

        Only a graph whose metadata carries these weights' tensor hash counts: a stale one is ignored.
        """
        if self.path is None or self.path.suffix != ".safetensors":
            return None
        graph = int8_graph_path(self.path)
        sidecar = metadata_path(graph)
        if not (graph.is_file() and sidecar.is_file()):
            return None
        try:
            made_from = json.loads(sidecar.read_text()).get("tensor_sha256")
        except (OSError, ValueError):
            return None
        return graph if made_from == self.metadata.get("tensor_sha256") else None

    @property
    def name(self) -> str:
        return str(self.metadata["model"])

    @property
    def threshold_logit(self) -> float:
        return float(self.metadata["threshold_logit"])

    @property
    def temperature(self) -> float:
        return float(self.metadata["temperature"])

    def p_fake(self, logits: np.ndarray, prior: float | None = None) -> np.ndarray:
        """Calibrated probability of "fake" for raw logits.

        ``prior`` is the share of fakes expected where the detector is used; ``None`` keeps the share of the
        validation split the calibration was fitted on (50% for the 140k data set).
        """
        base_rate = float(self.metadata.get("base_rate", 0.5))
        prior = base_rate if prior is None else prior
        return calibrate.calibrated_p_fake(
            np.asarray(logits), self.temperature, prior=prior, base_rate=base_rate
        )

    @property
    def band(self) -> tuple[float, float] | None:
        """The "uncertain" band ``[lower, upper)`` in logits, or None (no band stored, or ``abstain=False``).

        An end stored as null (no cut met the target precision on that side) is infinite. The band is widened,
        if need be, to hold the stored threshold (``evaluate --save-threshold`` may move it after the band was
        chosen), so that a decided verdict never contradicts the two-way one.
        """
        if not self._abstain or any(key not in self.metadata for key in BAND_KEYS):
            return None
        lower, upper = (self.metadata[key] for key in BAND_KEYS)
        lower = -np.inf if lower is None else float(lower)
        upper = np.inf if upper is None else float(upper)
        return min(lower, self.threshold_logit), max(upper, self.threshold_logit)

    def verdicts(self, logits: np.ndarray, threshold_logit: float | None = None) -> list[str]:
        """The verdict of each raw logit: "fake", "real", or "uncertain" inside :attr:`band`.

        With ``threshold_logit`` the verdict is two-way at that threshold (a cut the caller chose, to which the
        band, chosen around the stored threshold, does not apply); without it, two-way at the stored
        threshold when the network has no :attr:`band`.

        Examples
        --------
        >>> from deepfake_detect.data.transforms import Preprocess
        >>> meta = {"preprocess": Preprocess(size=32).to_dict(), "threshold_logit": 0.0, "temperature": 1.0,
        ...         "abstain_lower_logit": -1.0, "abstain_upper_logit": 2.0}
        >>> Network(None, meta).verdicts([-3.0, 0.5, 3.0])
        ['real', 'uncertain', 'fake']
        >>> Network(None, meta, abstain=False).verdicts([-3.0, 0.5, 3.0])
        ['real', 'fake', 'fake']
        """
        if threshold_logit is None and self.band is not None:
            return band_verdicts(logits, *self.band)
        threshold = self.threshold_logit if threshold_logit is None else threshold_logit
        return two_way_verdicts(logits, threshold)

    def with_abstain(self, abstain: bool):
        """The same network with the "uncertain" verdict on or off; this one is left as it is.

        Returns
        -------
        Network
            Of this network's own class, on the same backend; ``self`` when nothing changes.
        """
        if abstain == self._abstain:
            return self
        return self._copy(session=self.session, int8=self._int8, abstain=abstain)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits of a normalised ``(B, 3, S, S)`` float32 batch, with this network's backend.

        Returns
        -------
        ndarray of shape (B,), float32
        """
        if self.session is not None:
            return onnx_logits(self.session, batch)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
            return self.model(x.to(self.device, memory_format=torch.channels_last)).float().cpu().numpy()

    def with_backend(self, backend: str, *, onnx_cache: str | Path | None = None):
        """The same network run by ``backend``; this one is left as it is.

        Parameters
        ----------
        backend : {"auto", "onnx-int8", "onnx", "torch"}
            See the module docstring. ``auto`` keeps an ONNX backend this network already has.
        onnx_cache : path, optional
            Folder of exported float graphs; default :data:`ONNX_CACHE_DIR`.

        Returns
        -------
        Network
            Of this network's own class (a :class:`~deepfake_detect.scan.detector.Detector` stays one); ``self``
            when it already runs ``backend``.

        Raises
        ------
        BackendError
            For an unknown name, or a backend this model cannot run (no torch weights, no int8 graph, no ONNX
            Runtime).
        """
        if backend not in BACKENDS:
            raise BackendError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        if backend == "auto" and self.int8_by_default:
            backend = "onnx-int8"
        if backend == self.backend or (backend == "auto" and self.session is not None and not self._int8):
            return self
        if backend == "torch":
            if self.model is None:
                raise BackendError("backend 'torch' needs torch weights; this model is an ONNX file")
            return self._copy(session=None, int8=False)
        if backend == "onnx-int8":
            return self._copy(session=self._int8_session(), int8=True)
        session = self._float_session(onnx_cache, required=backend == "onnx")
        return self._copy(session=session, int8=False) if session is not None else self.with_backend("torch")

    def _copy(self, *, session, int8: bool, abstain: bool | None = None):
        """Another network over the same (read-only) weights and metadata, with another session (or choice of
        the "uncertain" verdict)."""
        abstain = self._abstain if abstain is None else abstain
        meta, path = self.metadata, self.path
        return type(self)(self.model, meta, path, self.device, session=session, int8=int8, abstain=abstain)

    def _int8_session(self):
        path = self.int8_path
        if path is None:
            raise BackendError(
                "backend 'onnx-int8' needs an int8 graph made from these weights: run "
                f"`deepfake-detect export RUN --quantize`, which writes {self._int8_name()} beside them"
            )
        try:
            return onnx_session(path)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendError(
                f"the int8 graph {path} cannot be loaded ({type(err).__name__}: {err})"
            ) from None

    def _int8_name(self) -> str:
        """The file name :attr:`int8_path` looks for, for messages."""
        weights = self.path if self.path is not None and self.path.suffix == ".safetensors" else None
        return int8_graph_path(weights).name if weights is not None else "<weights stem>.int8.onnx"

    def _float_session(self, cache_dir: str | Path | None, *, required: bool):
        """An ONNX Runtime session of the float graph, exported once to ``cache_dir``; None when it fails.

        The file is ``<cache_dir>/<tensor sha256>-<input size>px.onnx``: a later network, or a later process,
        reuses it. ``required``: raise instead of returning None.
        """
        if self.model is None:  # an .onnx file: its own session is the float graph
            return self.session
        try:
            folder = Path(cache_dir or ONNX_CACHE_DIR).expanduser()
            target = folder / f"{self.metadata['tensor_sha256']}-{self.preprocess.size}px.onnx"
            if not target.is_file():
                # Export beside the target and rename, so a parallel scan never reads half a file.
                folder.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                export_onnx(self.model, tmp, self.preprocess.size)
                os.replace(tmp, target)
            return onnx_session(target)
        except Exception as err:  # noqa: BLE001 - any failure here only costs speed: torch still works
            if required:
                raise BackendError(
                    f"backend 'onnx' was asked for but the model could not run with ONNX Runtime "
                    f"({type(err).__name__}: {err})"
                ) from None
            log.warning("ONNX Runtime not used (%s: %s); running with torch", type(err).__name__, err)
            return None

    def predict_samples(
        self, samples: list[Sample], *, batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> Predictions:
        """Logits for face images already framed like the training data (the 140k crops), with this network's
        backend (through the same data loader either way)."""
        if self.model is None and self.session is None:
            raise CheckpointError("predict_samples needs the torch weights or an ONNX session")
        dataset = FaceDataset(samples, self.preprocess, train=False)
        loader, _ = make_loader(
            dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers
        )
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc="score", unit="batch", leave=False)
        return Predictions(*self.predict_loader(loader))

    def predict_loader(self, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """:func:`~deepfake_detect.core.runtime.predict_logits` over a loader of ``(x, y, index, n_bad)``
        batches, with this network's backend: logits, labels, indices and the count of unreadable images."""
        if self.session is None:
            return predict_logits(self.model, loader, self.device)
        return predict_logits(_SessionModule(self.session), loader, "cpu", channels_last=False)

    def model_info(self) -> dict[str, Any]:
        """Name, hash, threshold and temperature, as reported beside every result; and the band in use."""
        info = {
            "name": self.name,
            "sha256": self.metadata["tensor_sha256"],
            "threshold_logit": self.threshold_logit,
            "temperature": self.temperature,
            "backend": self.backend,
        }
        if self.band is not None:
            info["uncertain_band"] = self.band_info()
        return info

    def band_info(self) -> dict[str, Any] | None:
        """The band in use as JSON: its ends in logits (null when infinite) and the precision it was chosen for."""
        if self.band is None:
            return None
        lower, upper = (float(v) if np.isfinite(v) else None for v in self.band)
        return {
            "lower_logit": lower,
            "upper_logit": upper,
            "target_precision": self.metadata.get("abstain_target_precision"),
        }


class _SessionModule(torch.nn.Module):
    """An ONNX Runtime session with the call of a torch module, for :func:`predict_logits`."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(onnx_logits(self.session, x.numpy()))


def load_network(
    name_or_path: str | Path = "default",
    *,
    device: str = "cpu",
    runs_dir: str | Path = "runs",
    backend: str = "torch",
    onnx_cache: str | Path | None = None,
    cls: type[Network] = Network,
    abstain: bool = True,
) -> Network:
    """Load a network from ``default``, a run folder, a run id, a ``.safetensors`` or an ``.onnx`` file.

    An ``.onnx`` file needs the ``.onnx.json`` metadata file that ``deepfake-detect export`` writes beside
    it; such a detector scores images but cannot explain them (no torch weights).

    Parameters
    ----------
    name_or_path : str or Path
        What to load.
    device : str
        ``cpu`` (default) or ``cuda``.
    runs_dir : str or Path
        Where run ids are looked up.
    backend : {"torch", "auto", "onnx", "onnx-int8"}
        What runs it (see the module docstring); an ``.onnx`` file always runs in ONNX Runtime.
    onnx_cache : path, optional
        Folder of exported float graphs (``onnx`` and ``auto``).
    cls : type
        The class to make: :class:`Network`, or a subclass such as the scan layer's ``Detector``.
    abstain : bool
        Use the model's "uncertain" band when it has one (see :attr:`Network.band`).

    Returns
    -------
    Network

    Raises
    ------
    CheckpointError
        When nothing loadable is found or the file fails validation.
    """
    if str(name_or_path).lower().endswith(".onnx"):
        return _load_onnx(Path(name_or_path).expanduser(), device, cls).with_abstain(abstain)
    path = resolve_weights(name_or_path, runs_dir)
    state, meta = load_checkpoint(path)
    model = create_model(meta["model"], pretrained=False, **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit model {meta['model']!r}: {err}") from None
    network = cls(model, meta, path=path, device=device, abstain=abstain)
    return network.with_backend(backend, onnx_cache=onnx_cache)


def _load_onnx(path: Path, device: str, cls: type[Network]) -> Network:
    sidecar = metadata_path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    if not sidecar.is_file():
        raise CheckpointError(
            f"{path} has no metadata file {sidecar.name} beside it (threshold, preprocessing); "
            "export it with `deepfake-detect export RUN --format onnx`"
        )
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {sidecar}: {err}") from None
    missing = [
        k for k in ("model", "preprocess", "threshold_logit", "temperature", "tensor_sha256") if k not in meta
    ]
    if missing:
        raise CheckpointError(f"{sidecar} lacks {', '.join(missing)}; re-export the model")
    try:
        session = onnx_session(path)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path} is not a loadable ONNX model: {err}") from None
    return cls(None, meta, path=path, device=device, session=session, int8=is_int8_graph(path))
