"""ONNX graphs of the detectors: export, ONNX Runtime sessions and logits, and int8 quantisation.

By default the TorchScript-based exporter is used (fast, exact opset); ``dynamo=True`` selects the
``torch.export``-based one. Either way the batch dimension is symbolic, so one ``.onnx`` file serves any batch
size, while the spatial size is fixed at export time (``input_size``), matching the serving pre-processing.

The int8 graph (:func:`quantize_onnx`) is static QOperator quantisation: QLinearConv with uint8 activations
and per-channel int8 weights, calibrated on real images. Its tail, from the global pooling to the logit, stays
float (:func:`float_tail`), so the logit is not rounded to an int8 step.

The files around a model's graphs are named here, and only here:

* :func:`float_graph_path`: ``<stem>.onnx`` beside the weights ``<stem>.safetensors``, where
  ``deepfake-detect export`` writes the float graph unless told otherwise (``model.onnx`` in a run folder);
* :func:`int8_graph_path`: ``<stem>.int8.onnx`` beside a float graph or the weights. ``export --quantize``
  writes the int8 graph beside the float one it quantises, and the ``onnx-int8`` backend looks for it beside
  the weights: the two meet when the float graph has its default place;
* :func:`metadata_path`: ``<graph>.json`` beside any graph, the checkpoint metadata that loading a graph
  without its weights needs (:func:`write_metadata`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint
from deepfake_detect.core.exceptions import CheckpointError

if TYPE_CHECKING:  # onnxruntime is imported when a session is made: importing the package stays fast
    import onnx
    import onnxruntime as ort

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "export_onnx",
    "float_graph_path",
    "float_tail",
    "int8_graph_path",
    "is_int8_graph",
    "metadata_path",
    "onnx_logits",
    "onnx_session",
    "quantize_onnx",
    "update_metadata",
    "write_metadata",
]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
INT8_SUFFIX = ".int8.onnx"


def float_graph_path(weights: str | os.PathLike) -> Path:
    """Where the float graph of ``weights`` goes unless the user names another: ``<stem>.onnx`` beside them.

    Examples
    --------
    >>> float_graph_path("runs/r1/model.safetensors").as_posix()
    'runs/r1/model.onnx'
    """
    return Path(weights).with_suffix(".onnx")


def int8_graph_path(path: str | os.PathLike) -> Path:
    """The int8 graph that belongs to ``path`` (weights or a float graph): ``<stem>.int8.onnx`` beside it.

    Examples
    --------
    >>> int8_graph_path("runs/r1/model.safetensors").as_posix()
    'runs/r1/model.int8.onnx'
    >>> int8_graph_path("dist/detector.onnx").as_posix()
    'dist/detector.int8.onnx'
    """
    path = Path(path)
    return path.with_name(path.stem + INT8_SUFFIX)


def is_int8_graph(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as an int8 graph (what :func:`int8_graph_path` gives).

    Examples
    --------
    >>> is_int8_graph("model.int8.onnx"), is_int8_graph("model.onnx")
    (True, False)
    """
    return Path(path).name.endswith(INT8_SUFFIX)


def metadata_path(onnx_path: str | os.PathLike) -> Path:
    """The metadata file of a graph: ``<graph>.json`` beside it (threshold, preprocessing, tensor hash...).

    Examples
    --------
    >>> metadata_path("dist/model.int8.onnx").as_posix()
    'dist/model.int8.onnx.json'
    """
    path = Path(onnx_path)
    return path.with_name(path.name + ".json")


def write_metadata(onnx_path: str | os.PathLike, metadata: dict) -> Path:
    """Write a checkpoint's metadata beside its graph (:func:`metadata_path`), as sorted, indented JSON.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> graph = Path(tempfile.mkdtemp()) / "m.onnx"
    >>> write_metadata(graph, {"model": "notebook-cnn"}).name
    'm.onnx.json'
    """
    path = metadata_path(onnx_path)
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return path


def export_onnx(
    model: nn.Module, path: str | os.PathLike, input_size: int, *, opset: int = 17, dynamo: bool = False
) -> Path:
    """Export a model to a self-contained ONNX file with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        Model mapping ``(B, 3, S, S)`` float images to ``(B,)`` logits. It is exported in eval
        mode (dropout off, BatchNorm running statistics) and its mode is restored afterwards.
    path : str or os.PathLike
        Destination ``.onnx`` file; parent folders are created.
    input_size : int
        Square input side ``S`` baked into the graph.
    opset : int
        ONNX opset version (the dynamo exporter needs at least 18 and raises lower values).
    dynamo : bool
        Use the ``torch.export``-based exporter instead of the TorchScript one. The default
        TorchScript exporter (deprecated, still shipped in torch 2.13) is 10-40x faster here
        and writes the requested opset exactly; both give identical logits.

    Returns
    -------
    pathlib.Path
        The written file. Input is named ``"images"`` ``(batch, 3, S, S)``, output ``"logits"``.

    Examples
    --------
    >>> from deepfake_detect.models import create_model
    >>> export_onnx(create_model("compact-npr"), "model.onnx", 224)  # doctest: +SKIP
    PosixPath('model.onnx')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters(), None)
    # Batch 2, not 1: torch.export specialises dimensions of size 1 to constants.
    example = torch.randn(2, 3, input_size, input_size, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            (_export_dynamo if dynamo else _export_torchscript)(model, example, path, opset)
    finally:
        model.train(was_training)
    return path


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        # The deprecation notice and the tracer's "shape used as constant" notes are expected:
        # spatial size is fixed by design, only the batch axis is dynamic.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TF-SAME pads of the EfficientNets become constant slices, which the folder notes it leaves as they are.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    if opset < 18:
        # Its down-conversion to 17 fails on Pad/Resize and silently keeps 18: refuse instead.
        raise ValueError(f"the dynamo ONNX exporter needs opset >= 18, got {opset}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal pytree deprecation noise
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    program.save(str(path), external_data=False)  # weights inside the file: easy to ship


def onnx_session(path: str | os.PathLike) -> ort.InferenceSession:
    """Open an ONNX model for CPU inference.

    Parameters
    ----------
    path : str or os.PathLike
        ``.onnx`` file written by :func:`export_onnx`.

    Returns
    -------
    onnxruntime.InferenceSession
        CPU session using as many intra-op threads as torch (``torch.get_num_threads()``).

    Examples
    --------
    >>> sess = onnx_session("model.onnx")  # doctest: +SKIP
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1  # the graphs are sequential; extra pools only oversubscribe cores
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_logits(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    """Run a normalised image batch through an ONNX session.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        Session from :func:`onnx_session`.
    batch : numpy.ndarray
        ``(B, 3, S, S)`` images, already normalised like the model's cfg.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` float32 logits (positive = fake).

    Examples
    --------
    >>> onnx_logits(sess, np.zeros((4, 3, 224, 224), np.float32)).shape  # doctest: +SKIP
    (4,)
    """
    feed = {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}
    return session.run([OUTPUT_NAME], feed)[0]


class _QuantiserNotes(logging.Filter):
    """Drops the records below ERROR that onnxruntime's quantiser logs (on the root logger, not its own).

    It logs a line for each weight scale it widens to fit a bias (some twenty for the default model) and a
    warning for each integer tensor it leaves in float: expected, and nothing a user can act on.
    """

    def __init__(self, package_dir: Path):
        super().__init__()
        self.package_dir = str(package_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(self.package_dir)


@contextlib.contextmanager
def _without_quantiser_notes(package_dir: Path):
    """Keep the notes logged from the modules under ``package_dir`` off the root logger while in the block."""
    notes = _QuantiserNotes(package_dir)
    root = logging.getLogger()
    root.addFilter(notes)
    try:
        yield
    finally:
        root.removeFilter(notes)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over an in-memory batch (fed 10 images at a time)."""

    def __init__(self, x: np.ndarray):
        self.batches = iter(np.array_split(x, max(1, len(x) // 10)))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch)}


#: Where a network's head begins: its global pooling (every registered model pools before its classifier).
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool")


def float_tail(graph: onnx.ModelProto) -> list[str]:
    """The names of the nodes an int8 graph keeps in float: the global pooling and everything after it.

    Quantised, the classifier's output is a uint8 code: the default model's logits came in steps of 0.14 (180
    distinct values over 500 test faces), so nearby faces tied and the ranking lost resolution. Kept in float,
    the last convolution's int8 output is dequantised once and averaged, and the logit is a float. The tail is
    a few hundred multiply-adds against millions in the convolutions, so it costs no measurable time.

    Examples
    --------
    >>> import tempfile
    >>> import onnx
    >>> from deepfake_detect.models import create_model
    >>> graph = export_onnx(create_model("notebook-cnn"), Path(tempfile.mkdtemp()) / "m.onnx", 32)
    >>> float_tail(onnx.load(graph))
    ['/pool/GlobalAveragePool', '/Flatten', '/fc1/Gemm', '/act/Relu', '/fc2/Gemm', '/Constant', '/Squeeze']
    """
    nodes = list(graph.graph.node)
    start = next((i for i, node in enumerate(nodes) if node.op_type in GLOBAL_POOLS), len(nodes))
    return [node.name for node in nodes[start:]]


def quantize_onnx(model_path: str | os.PathLike, output: str | os.PathLike, calibration: np.ndarray) -> Path:
    """Static int8 quantisation: uint8 activations, per-channel int8 weights, min-max calibration; the global
    pooling and the classifier after it stay float (:func:`float_tail`).

    The operator format (QLinearConv) with unsigned activations is what ONNX Runtime's x86 kernels are
    fastest at: on a 2-core AVX-512 machine the default model runs 2.3x faster than float with one thread,
    while QDQ with signed activations ran no faster than float.

    Weights use 7 of their 8 bits (``reduce_range``), so that every x86 CPU computes the same integers. Without
    VNNI (AVX2, or AVX-512 without VNNI) ONNX Runtime multiplies uint8 by int8 with ``vpmaddubsw``, whose
    pairwise int16 sums saturate with 8-bit weights but cannot with 7-bit ones (2 x 255 x 64 < 32767). A graph
    with 8-bit weights built and checked on an AVX-512 VNNI machine (test AUC 0.9914) scored 0.9718 on an
    AVX2-only one.

    Parameters
    ----------
    model_path : path
        Float ONNX model from :func:`export_onnx`.
    output : path
        Destination ``.onnx`` file.
    calibration : ndarray of shape (N, 3, S, S)
        Normalised real images whose activation ranges fix the int8 scales.

    Returns
    -------
    pathlib.Path
        ``output``. Name it with :func:`int8_graph_path` for the ``onnx-int8`` backend to find it.

    Examples
    --------
    >>> import tempfile
    >>> from deepfake_detect.models import create_model
    >>> graph = export_onnx(create_model("notebook-cnn"), Path(tempfile.mkdtemp()) / "m.onnx", 32)
    >>> images = np.random.default_rng(0).normal(size=(20, 3, 32, 32)).astype(np.float32)
    >>> quantize_onnx(graph, int8_graph_path(graph), images).name
    'm.int8.onnx'
    """
    import onnx
    from onnxruntime import quantization
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp, _without_quantiser_notes(Path(quantization.__file__).parent):
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(output),
            _Calibration(calibration),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,
            nodes_to_exclude=float_tail(onnx.load(str(prepared))),
        )
    return output


def update_metadata(source: Path, target: Path, updates: dict[str, Any]) -> str:
    """Write ``source``'s weights with ``updates`` (any metadata keys: a band, a threshold) merged into their
    metadata to ``target``, and return the tensor hash, which must not move.

    In place, the ONNX metadata files beside the weights made from the same tensors get the keys too, so that
    loading ``model.onnx`` or ``model.int8.onnx`` directly decides alike.
    """
    state, meta = load_checkpoint(source)
    sha = save_checkpoint(target, state, {**meta, **updates})
    if sha != meta["tensor_sha256"]:  # save_checkpoint hashes what it wrote: the weights must be the same
        raise CheckpointError(f"{target}: the weights changed while their metadata was rewritten")
    if target == source:
        for sidecar in _onnx_sidecars(source, sha):
            merged = {**json.loads(sidecar.read_text()), **updates}
            sidecar.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return sha


def _onnx_sidecars(weights: Path, sha: str) -> list[Path]:
    """The ``.onnx.json`` files of the float and int8 graphs beside ``weights`` exported from these tensors."""
    graphs = (float_graph_path(weights), int8_graph_path(weights))
    found = []
    for graph in graphs:
        sidecar = metadata_path(graph)
        try:
            if sidecar.is_file() and json.loads(sidecar.read_text()).get("tensor_sha256") == sha:
                found.append(sidecar)
        except (OSError, ValueError):  # an unreadable sidecar is left alone; loading it reports the problem
            continue
    return found
