"""Ship a finished run as the package's default model, with everything a user of the default needs.

    python scripts/ship_default.py runs/s4-128-e12 --data ../shared/data/faces140k

Writes into ``src/deepfake_detect/weights/``:

* ``default.safetensors``: the run's weights (same tensor hash) whose metadata also holds ``test_metrics``, the
  run's test-split figures, so ``serve``'s ``/v1/model`` reports them on a machine without the run folder;
* ``default.int8.onnx`` (+ ``.json``): the int8 graph that ``scan --backend onnx-int8`` runs (``auto`` never
  does: it keeps evaluate's exact float scores), calibrated on the first 50 train images of each class, with its
  own test-split figures in the JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint
from deepfake_detect.core.runs import RunDir
from deepfake_detect.data import list_split, resolve_data_root
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.export import export_run
from deepfake_detect.scan.detector import load_detector
from deepfake_detect.serve.model_card import TEST_METRIC_KEYS

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "deepfake_detect" / "weights"
# What /v1/model shows of the test figures (serve's list), plus where they come from.
KEPT = ("split", "threshold", *TEST_METRIC_KEYS)


def test_metrics(run: Path, data: str) -> dict:
    """The run's test-split evaluation (threshold from valid), as ``evaluate`` reports it."""
    saved = RunDir(run).eval_json("test")
    result = (
        json.loads(saved.read_text())
        if saved.is_file()
        else evaluate(run, data, split="test", progress=False)
    )
    return {key: result[key] for key in KEPT if key in result}


def int8_test_metrics(weights: Path, data: str) -> dict:
    """Accuracy at the stored threshold and ROC AUC of the int8 graph beside ``weights`` on the test split."""
    det = load_detector(weights, backend="onnx-int8")
    samples = list_split(resolve_data_root(data), "test")
    results = det.scan([str(s.path) for s in samples], detect=False, workers=0)
    logits = np.array([r["faces"][0]["logit"] for r in results])
    labels = np.array([s.label for s in samples])
    return {
        "split": "test",
        "n": len(samples),
        "accuracy": float(np.mean((logits >= det.threshold_logit) == labels)),
        "roc_auc": float(roc_auc_score(labels, logits)),
        "backend": det.backend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="../shared/data/faces140k")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    state, meta = load_checkpoint(RunDir(args.run).model)
    meta["test_metrics"] = test_metrics(args.run, args.data)
    weights = args.out / "default.safetensors"
    save_checkpoint(weights, state, meta)
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_run(weights, output=Path(tmp) / "default.onnx", quantize=True, data=args.data)
        for name in ("default.int8.onnx", "default.int8.onnx.json"):
            shutil.copyfile(Path(tmp) / name, args.out / name)
    sidecar = args.out / "default.int8.onnx.json"
    info = json.loads(sidecar.read_text())
    info["test_metrics"] = int8_test_metrics(weights, args.data)
    sidecar.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(
        f"{weights}: tensor_sha256 {meta['tensor_sha256']}, test {json.dumps(meta['test_metrics']['accuracy'])} acc"
    )
    print(
        f"int8: {json.dumps(info['test_metrics'])}; vs float on valid images: {json.dumps(exported['int8'])}"
    )


if __name__ == "__main__":
    main()
