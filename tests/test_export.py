"""ONNX export parity for every registered model, with a dynamic batch axis; which images export checks on."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
import torch

from deepfake_detect.core.exceptions import BackendError, DataError
from deepfake_detect.core.runs import RunDir
from deepfake_detect.export import export_run
from deepfake_detect.inference.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    float_graph_path,
    int8_graph_path,
    metadata_path,
    onnx_logits,
    onnx_session,
    quantize_onnx,
)
from deepfake_detect.models import create_model, list_models
from deepfake_detect.scan.detector import load_detector

SIZE = 64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _parity(model, path, batch_sizes=(3, 1, 5)):
    session = onnx_session(path)
    for batch in batch_sizes:  # differs from the export batch (2): checks the dynamic axis
        x = torch.randn(batch, 3, SIZE, SIZE)
        with torch.no_grad():
            ref = model(x).numpy()
        out = onnx_logits(session, x.numpy())
        assert out.shape == (batch,) and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 1e-4


@pytest.mark.parametrize("name", list_models())
def test_onnx_parity(name, tmp_path):
    model = create_model(name).train()  # export must switch to eval itself
    path = export_onnx(model, tmp_path / "sub" / f"{name}.onnx", SIZE)
    assert model.training  # and restore the caller's mode
    _parity(model.eval(), path)


def test_onnx_graph_contract(tmp_path):
    path = export_onnx(create_model("notebook-cnn"), tmp_path / "m.onnx", SIZE, opset=17)
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.graph.output] == [OUTPUT_NAME]
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # weights inside, no side file


def test_onnx_session_threads(tmp_path):
    session = onnx_session(export_onnx(create_model("notebook-cnn"), tmp_path / "m.onnx", SIZE))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == torch.get_num_threads()


@pytest.mark.slow
def test_dynamo_exporter(tmp_path):
    model = create_model("notebook-cnn").eval()
    with pytest.raises(ValueError, match="18"):
        export_onnx(model, tmp_path / "old.onnx", SIZE, opset=17, dynamo=True)
    path = export_onnx(model, tmp_path / "m.onnx", SIZE, opset=18, dynamo=True)
    _parity(model, path, batch_sizes=(3, 4))


def test_export_without_data_warns_that_its_images_were_made_in_code(tmp_path, caplog, untrained_checkpoint):
    weights = untrained_checkpoint(
        tmp_path / "m.safetensors"
    )  # a bare weights file: no run, no recorded data
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.export"):
        result = export_run(weights, quantize=True)
    assert "images made in code (no data set found; pass --data)" in result["parity_images"]
    assert "images made in code" in result["int8"]["calibration_images"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("made in code" in m and "pass --data" in m for m in warned)


def test_export_with_data_checks_on_its_images_without_warning(
    tmp_path, tiny_dataset, caplog, untrained_checkpoint
):
    weights = untrained_checkpoint(tmp_path / "m.safetensors")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.export"):
        result = export_run(weights, data=tiny_dataset)
    assert result["parity_images"] == f"12 valid images of {tiny_dataset}"  # 6 a class in the tiny set
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(DataError, match="no such folder"):  # a data set asked for must be usable
        export_run(weights, data=tmp_path / "nowhere")


def test_export_of_a_mix_checks_and_calibrates_on_every_source(tmp_path, tiny_dataset, untrained_checkpoint):
    import shutil

    generator = tmp_path / "generator"  # a fake-only source: the tiny set's fakes, re-filed
    for split in ("train", "valid"):
        shutil.copytree(tiny_dataset / split / "fake", generator / split / "fake")
    n_train = len(list((tiny_dataset / "train").rglob("*.png"))) + len(
        list((generator / "train").rglob("*.png"))
    )
    weights = untrained_checkpoint(tmp_path / "m.safetensors")
    result = export_run(weights, data=[str(tiny_dataset), f"{generator}:2"], quantize=True)
    assert result["parity_images"] == f"18 valid images of {tiny_dataset}, {generator}"  # 6 a class a source
    assert result["int8"]["calibration_images"] == f"{n_train} train images of {tiny_dataset}, {generator}"


def test_graph_names_of_a_run_folder_agree_with_the_run_folder(tmp_path):
    run = RunDir(tmp_path)
    assert float_graph_path(run.model) == run.onnx  # export's default output is the run's model.onnx
    assert int8_graph_path(run.onnx) == int8_graph_path(run.model) == tmp_path / "model.int8.onnx"
    assert metadata_path(run.onnx) == tmp_path / "model.onnx.json"


def test_int8_graph_is_found_by_the_backend_unless_written_elsewhere(tmp_path, caplog, untrained_checkpoint):
    weights = untrained_checkpoint(tmp_path / "m.safetensors")  # not a run: named m, not model
    result = export_run(weights, quantize=True)
    assert (result["onnx"], result["metadata"]) == (str(tmp_path / "m.onnx"), str(tmp_path / "m.onnx.json"))
    assert result["int8"]["onnx"] == str(tmp_path / "m.int8.onnx")
    assert metadata_path(result["int8"]["onnx"]).is_file()
    assert load_detector(weights, backend="onnx-int8").int8_path == tmp_path / "m.int8.onnx"

    elsewhere = tmp_path / "dist" / "x.onnx"
    for name in ("m.onnx", "m.onnx.json", "m.int8.onnx", "m.int8.onnx.json"):
        (tmp_path / name).unlink()
    with caplog.at_level(logging.INFO, logger="deepfake_detect.export"):
        moved = export_run(weights, output=elsewhere, quantize=True)
    assert moved["int8"]["onnx"] == str(tmp_path / "dist" / "x.int8.onnx")
    told = [r.getMessage() for r in caplog.records if "onnx-int8" in r.getMessage()]
    assert len(told) == 1 and f"--model {moved['int8']['onnx']}" in told[0]
    with pytest.raises(BackendError, match="writes m.int8.onnx beside them"):
        load_detector(weights, backend="onnx-int8")
    assert load_detector(moved["int8"]["onnx"]).backend == "onnx-int8"


def test_quantising_keeps_onnxruntimes_notes_out_of_the_log(tmp_path, caplog):
    graph = export_onnx(create_model("compact-npr"), tmp_path / "m.onnx", SIZE)
    images = np.random.default_rng(0).normal(size=(20, 3, SIZE, SIZE)).astype(np.float32)
    root = logging.getLogger()
    with caplog.at_level(logging.DEBUG):
        filters, level = list(root.filters), root.level
        quantize_onnx(graph, int8_graph_path(graph), images)  # it warns of integer tensors it leaves alone
        assert (root.filters, root.level) == (filters, level)
    assert not [r for r in caplog.records if "onnxruntime" in r.pathname]


@pytest.mark.parametrize(
    "name", ["notebook-cnn", "compact-npr", "efficientnet-lite0-s4"]
)  # s4: the default's
def test_the_int8_graph_keeps_pooling_and_head_float_so_its_logits_are_not_rounded(tmp_path, name):
    """The convolutions are int8 and everything from the global pooling on is float: nearby images no longer
    tie on a 0.14-logit step (the shipped default had 180 distinct values over 500 test faces)."""
    model = create_model(name)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(1000)  # untrained, the logits barely move: make them spread as a trained net's do
    graph = export_onnx(model, tmp_path / "m.onnx", SIZE)
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(20, 3, SIZE, SIZE)).astype(np.float32)
    int8 = quantize_onnx(graph, int8_graph_path(graph), calibration)
    ops = [node.op_type for node in onnx.load(int8).graph.node]
    assert "QLinearConv" in ops and "GlobalAveragePool" in ops and "Gemm" in ops  # int8 body, float tail
    assert not {"QLinearGlobalAveragePool", "QGemm", "QLinearMatMul"} & set(ops)
    base = rng.normal(size=(1, 3, SIZE, SIZE)).astype(np.float32)
    nearby = base + 0.05 * rng.normal(size=(64, 3, SIZE, SIZE)).astype(np.float32)  # tiny differences
    logits = onnx_logits(onnx_session(int8), nearby)
    assert len(np.unique(logits)) >= 60  # quantised at the output, most of these would tie
