"""``deepfake-detect export``: write a run's ONNX graph (and int8 graph) with its metadata, checked against torch.

:func:`export_run` is ``deepfake-detect export RUN --format onnx``: it writes ``model.onnx`` with its
metadata beside it (``model.onnx.json``, what ``scan --model model.onnx`` reads), checks that ONNX Runtime
gives the torch logits (max difference at most :data:`PARITY_TOLERANCE` on real images) and, with
``quantize``, writes an int8 copy (``model.int8.onnx``: static QOperator quantisation: uint8
activations, per-channel int8 weights, calibrated on ~100 real training images).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfake_detect.core.exceptions import ExportError, ParityError
from deepfake_detect.inference.network import load_network
from deepfake_detect.inference.onnx import export_onnx, onnx_logits, onnx_session, quantize_onnx

__all__ = ["PARITY_TOLERANCE", "export_run"]

# Largest |ONNX - torch| logit accepted by export_run (float32 kernels differ in summation order only).
PARITY_TOLERANCE = 1e-4
# Images of each class used to check parity, and to calibrate int8 activation ranges.
N_PARITY_PER_CLASS = 16
N_CALIBRATION_PER_CLASS = 50


def _stored_images(det, data, split: str, per_class: int) -> tuple[np.ndarray, str]:
    """Stored uint8 images of a split of the run's data set, else images made in code; and their source."""
    from deepfake_detect.core.runs import read_json
    from deepfake_detect.data.layout import DataError, list_split, resolve_data_root

    config = det.path.parent / "config.json" if det.path is not None else None
    root = data or (read_json(config).get("data_root") if config is not None and config.is_file() else None)
    try:
        samples = list_split(resolve_data_root(root), split, limit_per_class=per_class) if root else []
    except DataError:
        samples = []
    arrays = []
    for sample in samples:
        try:
            arrays.append(det.preprocess.load(sample.path))
        except Exception:  # noqa: BLE001 - a bad file is just not used
            continue
    if arrays:
        return np.stack(arrays), f"{len(arrays)} {split} images of {root}"
    # Smooth random images: like photos, unlike white noise, they exercise realistic activation ranges.
    rng = np.random.default_rng(0)
    side = det.preprocess.stored_size
    small = rng.integers(0, 256, (2 * per_class, 8, 8, 3), dtype=np.uint8)
    from PIL import Image

    made = [np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.BICUBIC)) for a in small]
    return np.stack(made), f"{len(made)} images made in code (no data set found)"


def _inputs(det, stored: np.ndarray) -> np.ndarray:
    from deepfake_detect.data.transforms import normalize

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
    data: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike = "runs",
) -> dict:
    """Export a trained run to ONNX with its metadata, and check it against torch.

    Parameters
    ----------
    run : path or str
        Run folder, run id, ``default`` or a ``.safetensors`` file.
    format : {"onnx"}
    output : path, optional
        Default: ``model.onnx`` beside the checkpoint.
    quantize : bool
        Also write ``<output stem>.int8.onnx`` (see :func:`quantize_onnx`).
    data : path, optional
        Data set for parity and calibration images; default the run's (images made in code if none).

    Returns
    -------
    dict
        ``onnx``, ``metadata``, ``max_abs_diff``, ``parity_images``, and with ``quantize`` an ``int8``
        entry (path, max |int8 - float| logit, verdict agreement with float on the parity images).

    Raises
    ------
    ExportError
        Unknown format, or ONNX logits further than :data:`PARITY_TOLERANCE` from torch.
    """
    import json

    if format != "onnx":
        raise ExportError(f"unknown export format {format!r}; supported: onnx")
    det = load_network(run, runs_dir=runs_dir, backend="torch")
    output = Path(output) if output is not None else det.path.with_name("model.onnx")
    export_onnx(det.model, output, det.preprocess.size)
    meta_path = output.with_name(output.name + ".json")
    meta_path.write_text(json.dumps(det.metadata, indent=2, sort_keys=True) + "\n")
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


def _quantize_run(det, float_path: Path, x: np.ndarray, float_logits: np.ndarray, data) -> dict:
    import json

    calibration, source = _stored_images(det, data, "train", N_CALIBRATION_PER_CLASS)
    int8_path = float_path.with_name(float_path.name.removesuffix(".onnx") + ".int8.onnx")
    quantize_onnx(float_path, int8_path, _inputs(det, calibration))
    int8_path.with_name(int8_path.name + ".json").write_text(
        json.dumps(det.metadata, indent=2, sort_keys=True)
    )
    int8_logits = onnx_logits(onnx_session(int8_path), x)
    threshold = det.threshold_logit
    agree = float(np.mean((int8_logits >= threshold) == (float_logits >= threshold)))
    return {
        "onnx": str(int8_path),
        "calibration_images": source,
        "max_abs_diff_vs_float": float(np.abs(int8_logits - float_logits).max()),
        "verdict_agreement": agree,
    }
