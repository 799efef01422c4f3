"""evaluate and the CLI contract, through the real console script.

That the threshold is chosen on validation, not on the evaluated split, is tested in test_threshold_choice.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_detect.core.checkpoint import read_metadata
from deepfake_detect.core.config import TrainConfig
from deepfake_detect.evaluation.evaluate import evaluate, probe_generalisation
from deepfake_detect.export import export_run
from deepfake_detect.inference.onnx import metadata_path
from deepfake_detect.training.train import train

CLI = [sys.executable, "-m", "deepfake_detect"]

pytestmark = pytest.mark.slow  # the tests train a run or start the CLI in a subprocess


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    proc = cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--model",
        "notebook-cnn",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--runs-dir",
        str(runs),
        "--image-size",
        "32",
        "--set",
        "base_size=40",
        "--set",
        "threads=1",
        "-q",
    )
    run = Path(proc.stdout.strip().splitlines()[-1])
    assert run.is_absolute() and len(list(run.glob("*.safetensors"))) == 1
    return run


def test_evaluate_json_is_one_object_with_the_contract_keys(trained_run):
    proc = cli("evaluate", str(trained_run), "--split", "test", "--json")
    result = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert result["split"] == "test" and result["n"] == 12
    assert set(result["threshold"]) >= {"rule", "logit", "p_fake"} and result["threshold"]["rule"] == "f1"
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= result[key] <= 1.0
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    assert tn + fp == 6 and fn + tp == 6
    assert result["ci95"]["accuracy"][0] <= result["accuracy"] <= result["ci95"]["accuracy"][1]
    assert {"real", "fake", "macro avg", "weighted avg"} <= set(result["classification_report"])
    assert (trained_run / "eval_test.json").is_file() and (trained_run / "eval_test.md").is_file()


def test_save_threshold_writes_into_the_model(trained_run, tiny_dataset, tmp_path):
    run = train(
        TrainConfig(
            data=str(tiny_dataset), runs_dir=str(tmp_path), epochs=1, image_size=32, base_size=40, threads=1
        ),
        progress=False,
    ).run_dir
    before = read_metadata(run / "model.safetensors")
    result = evaluate(run, target_fpr=0.0, save_threshold=True, progress=False)
    after = read_metadata(run / "model.safetensors")
    assert after["threshold_logit"] == pytest.approx(result["threshold"]["logit"])
    assert after["threshold_rule"] == "target_fpr" and after["tensor_sha256"] == before["tensor_sha256"]


def test_save_threshold_reaches_the_exported_graph(tiny_dataset, tmp_path):
    run = train(
        TrainConfig(
            data=str(tiny_dataset), runs_dir=str(tmp_path), epochs=1, image_size=32, base_size=40, threads=1
        ),
        progress=False,
    ).run_dir
    graph = Path(export_run(run / "model.safetensors")["onnx"])
    result = evaluate(run, target_fpr=0.0, save_threshold=True, progress=False)
    sidecar = json.loads(metadata_path(graph).read_text())
    assert sidecar["threshold_logit"] == pytest.approx(result["threshold"]["logit"])
    assert sidecar["threshold_rule"] == "target_fpr"


def test_runs_list_show_compare(trained_run):
    runs_dir = str(trained_run.parent)
    assert trained_run.name in cli("runs", "list", "--runs-dir", runs_dir).stdout
    shown = json.loads(cli("runs", "show", trained_run.name, "--runs-dir", runs_dir).stdout)
    assert shown["config"]["model"] == "notebook-cnn"
    table = cli("runs", "compare", trained_run.name, str(trained_run), "--runs-dir", runs_dir).stdout
    assert table.count(" notebook-cnn ") == 2  # the model column, once a run


def test_probe_scores_every_image_below_its_folders_except_hidden_ones(
    tmp_path, make_face_dataset, untrained_checkpoint
):
    data = make_face_dataset(tmp_path / "faces", per_class=(1, 1, 3), size=32)
    fakes, reals = data / "test" / "fake", data / "test" / "real"
    image = (fakes / "test_fake_000.png").read_bytes()
    for rel in ("nested/deeper/a.png", ".ipynb_checkpoints/b.png", "._c.png"):  # 1 image, 2 hidden
        (fakes / rel).parent.mkdir(parents=True, exist_ok=True)
        (fakes / rel).write_bytes(image)
    (fakes / "nested" / "up").symlink_to(fakes, target_is_directory=True)  # a loop: walked once
    result = probe_generalisation(
        untrained_checkpoint(tmp_path / "m.safetensors"), fakes, reals, n_resamples=50
    )
    assert (result["n_fake"], result["n_real"]) == (4, 3)
    for name in ("roc_auc", "recall", "false_positive_rate"):  # each figure inside its own interval
        low, high = result["ci95"][name]
        assert 0.0 <= low <= result[name] <= high <= 1.0


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["data", "check"],
        ["train"],
        ["evaluate"],
        ["runs", "list"],
        ["runs", "show"],
        ["runs", "compare"],
        ["models"],
    ],
)
def test_every_help_shows_an_example(command):
    assert "Example" in cli(*command, "--help").stdout or command == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/no/such/folder"], "no such folder"),
        (["train", "--data", ".", "--model", "resnet-9000"], "resnet-9000"),
        (["train", "--set", "epochz=2"], "unknown config key"),
        (["evaluate", "/no/such/run"], "no run folder"),
    ],
)
def test_user_errors_are_one_line_not_a_traceback(args, message):
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_seed_is_the_deprecated_old_name_of_bootstrap_seed(tmp_path):
    from deepfake_detect.core.exceptions import ConfigError, RunError

    with pytest.raises(ConfigError, match="give bootstrap_seed= only"):
        evaluate(tmp_path / "no-run", seed=1, bootstrap_seed=2)
    # The old name is taken (and warned about) before the run is looked for.
    warned = pytest.warns(DeprecationWarning, match="seed= is deprecated .* use bootstrap_seed=")
    with warned, pytest.raises(RunError):
        evaluate(tmp_path / "no-run", seed=1)
