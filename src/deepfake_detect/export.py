"""``deepfake-detect export``: write a run's ONNX graph (and int8 graph) with its metadata, checked against torch.

:func:`export_run` is ``deepfake-detect export RUN --format onnx``: it writes the float graph (by default
``model.onnx`` beside the run's ``model.safetensors``; ``<stem>.onnx`` beside any other weights) with its
metadata beside it (``model.onnx.json``, what ``scan --model model.onnx`` reads), checks that ONNX Runtime
gives the torch logits (max difference at most :data:`PARITY_TOLERANCE` on real images) and, with
``quantize``, writes an int8 copy beside the float graph, named after it (``model.int8.onnx``: static
QOperator quantisation: uint8 activations, per-channel int8 weights, calibrated on up to 150 real training images of each class of each source).
Without a data set, images made in code stand in for the real ones, with a warning.

Where the int8 graph is used: ``scan --model <graph>.int8.onnx`` loads it anywhere, while ``--backend
onnx-int8`` looks for it beside the weights, as ``<weights stem>.int8.onnx``. The default output meets that
place; ``--output elsewhere/x.onnx --quantize`` writes ``elsewhere/x.int8.onnx``, which the backend does not
find (a log line says so and how to load it). All these names come from :mod:`deepfake_detect.inference.onnx`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from deepfake_detect.core.exceptions import DataError, ExportError, ParityError
from deepfake_detect.core.runs import RunDir
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.data.transforms import normalize
from deepfake_detect.evaluation.evaluate import resolved_sources
from deepfake_detect.inference.network import load_network
from deepfake_detect.inference.onnx import (
    export_onnx,
    float_graph_path,
    int8_graph_path,
    onnx_logits,
    onnx_session,
    quantize_onnx,
    write_metadata,
)
from deepfake_detect.metrics.classification import is_fake

__all__ = ["PARITY_TOLERANCE", "export_run"]

log = logging.getLogger(__name__)

# Largest |ONNX - torch| logit accepted by export_run (float32 kernels differ in summation order only).
PARITY_TOLERANCE = 1e-4
# Images of each class used to check parity, and to calibrate int8 activation ranges.
N_PARITY_PER_CLASS = 16
N_CALIBRATION_PER_CLASS = 150


def _stored_images(det, data, split: str, per_class: int) -> tuple[np.ndarray, str]:
    """Stored uint8 images of a split, and a sentence saying where they come from.

    The images of ``data`` when given (it must be usable), else of the data the run recorded (every source of
    a mix). Without either, images made in code stand in, and a warning says so: parity and int8 ranges are
    then checked on images unlike the faces the model will see.
    """
    if data is not None:
        return _data_images(det, data, split, per_class)
    recorded = RunDir(det.path.parent).read_config().get("data") if det.path is not None else None
    reason = "no data set found"
    if recorded is not None:
        try:
            return _data_images(det, recorded, split, per_class)
        except DataError as err:
            reason = f"the run's data set cannot be used: {err}"
    made = _made_images(det.preprocess.stored_size, 2 * per_class)
    source = f"{len(made)} images made in code ({reason}; pass --data)"
    log.warning("export: %s checked on %s", "calibration" if split == "train" else "parity", source)
    return made, source


def _data_images(det, data, split: str, per_class: int) -> tuple[np.ndarray, str]:
    """Up to ``per_class`` images a class of one split of each source of ``data`` (a folder or a mix),
    preprocessed to their stored size: the int8 ranges then cover every kind of face the model was trained on.

    Raises
    ------
    DataError
        When a source cannot be listed or none of the images can be read.
    """
    names = tuple(det.metadata["class_names"])
    sources = resolved_sources(data)
    samples = list_mix_split(sources, split, class_names=names, limit_per_class=per_class)
    arrays = []
    for sample in samples:
        try:
            arrays.append(det.preprocess.load(sample.path))
        except Exception:  # noqa: BLE001 - a bad file is just not used
            continue
    where = ", ".join(source.root for source in sources)
    if not arrays:
        raise DataError(f"none of the {len(samples)} {split} images listed under {where} could be read")
    return np.stack(arrays), f"{len(arrays)} {split} images of {where}"


def _made_images(side: int, n: int) -> np.ndarray:
    """Smooth random images: like photos, unlike white noise, they exercise realistic activation ranges."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack(
        [np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.BICUBIC)) for a in small]
    )


def _inputs(det, stored: np.ndarray) -> np.ndarray:
    pre = det.preprocess
    return normalize(np.stack([pre.finish(a) for a in stored]), pre.mean, pre.std)


def _torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return torch.cat(
            [model(torch.from_numpy(b)) for b in np.array_split(x, max(1, len(x) // 16))]
        ).numpy()


def export_run(
    run: str | os.PathLike,
    *,
    format: str = "onnx",
    output: str | os.PathLike | None = None,
    quantize: bool = False,
    data: str | os.PathLike | list[str] | None = None,
    runs_dir: str | os.PathLike = "runs",
) -> dict:
    """Export a trained run to ONNX with its metadata, and check it against torch.

    Parameters
    ----------
    run : path or str
        Run folder, run id, ``default`` or a ``.safetensors`` file.
    format : {"onnx"}
    output : path, optional
        The float graph. Default: ``<weights stem>.onnx`` beside the weights (``model.onnx`` in a run folder).
    quantize : bool
        Also write the int8 graph ``<output stem>.int8.onnx`` beside ``output`` (see :func:`quantize_onnx`).
        The ``onnx-int8`` backend finds it only beside the weights, where the default ``output`` puts it;
        elsewhere, load the graph itself (``load_detector("x.int8.onnx")``).
    data : path or list of str, optional
        Data set (a folder, or a mix's ``PATH[:WEIGHT]`` specs) for parity and calibration images, taken from
        each source; default the data the run recorded. With neither, images made in code stand in: a warning is logged and ``parity_images`` (and ``calibration_images``) say
        so.
    runs_dir : path
        Where run ids are looked up.

    Returns
    -------
    dict
        ``onnx``, ``metadata``, ``max_abs_diff``, ``parity_images`` (which images parity was checked on), and
        with ``quantize`` an ``int8`` entry (path, ``calibration_images``, max |int8 - float| logit, verdict
        agreement with float on the parity images).

    Raises
    ------
    ExportError
        Unknown format, or ONNX logits further than :data:`PARITY_TOLERANCE` from torch.
    DataError
        When ``data`` is given but has no readable images of the split needed.

    Examples
    --------
    >>> import tempfile
    >>> from deepfake_detect.core.checkpoint import save_checkpoint
    >>> from deepfake_detect.data.transforms import Preprocess
    >>> from deepfake_detect.models import create_model
    >>> weights = Path(tempfile.mkdtemp()) / "untrained.safetensors"
    >>> meta = {"model": "notebook-cnn", "preprocess": Preprocess(size=32).to_dict(), "temperature": 1.0,
    ...         "class_names": ["real", "fake"], "threshold_logit": 0.0}
    >>> _ = save_checkpoint(weights, create_model("notebook-cnn"), meta)
    >>> result = export_run(weights)  # no data set: parity is checked on images made in code
    >>> result["max_abs_diff"] <= PARITY_TOLERANCE, result["parity_images"]
    (True, '32 images made in code (no data set found; pass --data)')
    """
    if format != "onnx":
        raise ExportError(f"unknown export format {format!r}; supported: onnx")
    det = load_network(run, runs_dir=runs_dir, backend="torch")
    output = Path(output) if output is not None else float_graph_path(det.path)
    export_onnx(det.model, output, det.preprocess.size)
    meta_path = write_metadata(output, det.metadata)
    stored, source = _stored_images(det, data, "valid", N_PARITY_PER_CLASS)
    x = _inputs(det, stored)
    ref = _torch_logits(det.model, x)
    onnx_out = onnx_logits(onnx_session(output), x)
    diff = float(np.abs(onnx_out - ref).max())
    if diff > PARITY_TOLERANCE:
        raise ParityError(f"ONNX logits differ from torch by {diff:.2e} (> {PARITY_TOLERANCE}) on {source}")
    result = {"onnx": str(output), "metadata": str(meta_path), "max_abs_diff": diff, "parity_images": source}
    if quantize:
        result["int8"] = _quantize_run(det, output, x, onnx_out, data)
    return result


def _say_how_to_use(int8_path: Path, weights: Path) -> None:
    """Log how to run an int8 graph written where the ``onnx-int8`` backend does not look."""
    if int8_path.resolve() != int8_graph_path(weights).resolve():
        log.info(
            "export: --backend onnx-int8 looks for %s, not %s: load this one with --model %s "
            "(or export without --output)",
            int8_graph_path(weights), int8_path, int8_path,
        )  # fmt: skip


def _quantize_run(det, float_path: Path, x: np.ndarray, float_logits: np.ndarray, data) -> dict:
    calibration, source = _stored_images(det, data, "train", N_CALIBRATION_PER_CLASS)
    int8_path = int8_graph_path(float_path)
    quantize_onnx(float_path, int8_path, _inputs(det, calibration))
    write_metadata(int8_path, det.metadata)
    _say_how_to_use(int8_path, det.path)
    int8_logits = onnx_logits(onnx_session(int8_path), x)
    threshold = det.threshold_logit
    agree = float(np.mean(is_fake(int8_logits, threshold) == is_fake(float_logits, threshold)))
    return {
        "onnx": str(int8_path),
        "calibration_images": source,
        "max_abs_diff_vs_float": float(np.abs(int8_logits - float_logits).max()),
        "verdict_agreement": agree,
    }
