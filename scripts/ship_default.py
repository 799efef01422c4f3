"""Ship a finished run as the package's default model, with everything a user of the default needs.

    python scripts/ship_default.py runs/mix-f2-e20        # the data the run recorded (every source of its mix)
    python scripts/ship_default.py runs/s4-128-e12 --data ../shared/data/faces140k
    python scripts/ship_default.py src/deepfake_detect/weights/default.safetensors   # rebuild from the shipped

A ``.safetensors`` file instead of a run folder (the shipped default's own weights, say) is copied into a
scratch run folder first (``--scratch``, default ``ship-scratch/``) and shipped from there: the int8 graph, the
backend check and the refit are made again from the same float weights, without retraining, on the data its
metadata records (its config's ``data``) unless ``--data`` is given.

Writes into ``src/deepfake_detect/weights/``:

* ``default.safetensors``: the run's weights (same tensor hash) whose metadata also holds ``test_metrics``, the
  run's test-split figures (pooled, and one row a source), so ``serve``'s ``/v1/model`` reports them on a
  machine without the run folder;
* ``default.int8.onnx`` (+ ``.json``): the int8 graph that ``scan --backend onnx-int8`` runs, calibrated on
  train images of each class of each source, with its own (and the float weights') test-split figures in the
  JSON, as ``scan`` scores the files.

Before any test figure it writes the int8 graph beside the run's weights and compares it with float on the
validation split (:func:`~deepfake_detect.evaluation.backend_choice.compare_int8`); where the pooled AUC drop is
within 0.002, clean and laundered, the int8 graph becomes the model's default backend (metadata
``default_backend``), and ``evaluate`` and ``scan`` both score with it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint
from deepfake_detect.core.runs import RunDir
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.evaluation.backend_choice import compare_int8, make_int8_default
from deepfake_detect.evaluation.evaluate import evaluate, resolved_sources
from deepfake_detect.export import export_run
from deepfake_detect.inference.onnx import metadata_path
from deepfake_detect.metrics.per_source import per_source_rows
from deepfake_detect.scan.detector import load_detector
from deepfake_detect.serve.model_card import TEST_METRIC_KEYS

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "deepfake_detect" / "weights"
# What /v1/model shows of the test figures (serve's list), plus where they come from.
KEPT = ("split", "threshold", *TEST_METRIC_KEYS, "per_source", "data_sources")


def test_metrics(run: Path, data) -> dict:
    """The run's test-split evaluation (threshold from valid), as ``evaluate`` reports it."""
    result = evaluate(run, data, split="test", progress=False)
    return {key: result[key] for key in KEPT if key in result}


def scanned_test_metrics(weights: Path, data, backend: str) -> dict:
    """Accuracy at the stored threshold and ROC AUC of ``weights`` run by ``backend`` on the test split, as
    ``scan`` scores the files, pooled and a row a source (as ``evaluate`` lays them out, without intervals)."""
    det = load_detector(weights, backend=backend, abstain=False)
    samples = list_mix_split(resolved_sources(data), "test", class_names=tuple(det.metadata["class_names"]))
    results = det.scan([str(s.path) for s in samples], detect=False, workers=0)
    logits = np.array([r["faces"][0]["logit"] for r in results])
    labels = np.array([s.label for s in samples])
    rows = per_source_rows(labels, logits, [s.source for s in samples], det.threshold_logit, n_resamples=0)
    return {
        "split": "test",
        "n": len(samples),
        "accuracy": float(np.mean((logits >= det.threshold_logit) == labels)),
        "roc_auc": float(roc_auc_score(labels, logits)),
        "backend": det.backend,
        "per_source": [{k: v for k, v in row.items() if not k.endswith("_ci95")} for row in rows],
    }


def run_folder(source: Path, scratch: Path) -> RunDir:
    """The run folder to ship from: ``source`` itself, or a scratch one holding a copy of the weights file
    ``source`` (its tensors and metadata unchanged: the steps below refit what they need)."""
    if source.suffix != ".safetensors":
        return RunDir(source)
    scratch.mkdir(parents=True, exist_ok=True)
    run = RunDir(scratch)
    shutil.copyfile(source, run.model)
    return run


def recorded_data(run: RunDir) -> list[str]:
    """The data a run recorded: its config.json's, else (a scratch folder) its weights' config."""
    config = run.read_config() or load_checkpoint(run.model)[1].get("config") or {}
    return config["data"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--data",
        action="append",
        help="a folder or PATH[:WEIGHT], repeated for a mix; default: the run's data",
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument(
        "--scratch", type=Path, default=Path("ship-scratch"), help="run folder for a .safetensors source"
    )
    args = parser.parse_args()
    run = run_folder(args.run, args.scratch)
    data = args.data or recorded_data(run)
    # The int8 graph beside the run's weights, then the backend choice on validation (it may make int8 the
    # default), before any test figure: the test split is scored once, with the backend users will get.
    exported = export_run(run.model, quantize=True, data=data)
    check = compare_int8(run.path, data)
    make_int8_default(run.model, check, data)
    state, meta = load_checkpoint(run.model)
    meta["test_metrics"] = test_metrics(run.path, data)
    weights = args.out / "default.safetensors"
    save_checkpoint(weights, state, meta)
    graph = Path(exported["int8"]["onnx"])
    shutil.copyfile(graph, args.out / "default.int8.onnx")
    shutil.copyfile(metadata_path(graph), args.out / "default.int8.onnx.json")  # what finds the graph
    info = json.loads(metadata_path(graph).read_text())
    info["test_metrics"] = scanned_test_metrics(weights, data, "onnx-int8")
    info["float_test_metrics"] = scanned_test_metrics(weights, data, "torch")
    (args.out / "default.int8.onnx.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(
        f"{weights}: tensor_sha256 {meta['tensor_sha256']}; default backend {meta.get('default_backend', 'auto')}"
    )
    print(f"int8 vs float AUC on valid (float - int8): {json.dumps(check['gap'])}")
    print(
        f"test (default backend): {json.dumps({k: meta['test_metrics'].get(k) for k in ('roc_auc', 'accuracy')})}"
    )
    print(f"int8 on test: {json.dumps(info['test_metrics'])}")
    print(f"float on test: {json.dumps(info['float_test_metrics'])}")


if __name__ == "__main__":
    main()
