"""Detector accuracy benchmark: train a candidate, pick its threshold on valid, score test and the StyleGAN3 probe.

One model a call, since the whole table takes hours on 2 cores. Each call adds (or replaces) the model's row
in ``benchmarks/models.jsonl`` and rewrites the table between the markers in ``benchmarks/RESULTS.md``.

    python benchmarks/bench_models.py --model notebook-cnn --epochs 7 --image-size 220 --batch-size 22
    python benchmarks/bench_models.py --run runs/s4-128-e12 --label "default"     # score an existing run
    python benchmarks/bench_models.py --speed     # re-measure every row's img/s together, on a quiet machine
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepfake_detect.core.config import load_config
from deepfake_detect.core.runs import RunDir, code_version, environment_info
from deepfake_detect.evaluation.evaluate import evaluate, probe_generalisation
from deepfake_detect.export import export_run
from deepfake_detect.inference.onnx import onnx_logits, onnx_session
from deepfake_detect.models import count_macs, count_parameters
from deepfake_detect.scan.detector import load_detector
from deepfake_detect.training.train import train
from results_md import RESULTS, replace_block

HERE = Path(__file__).resolve().parent
ROWS = HERE / "models.jsonl"
BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"


def _images_per_second(session, size: int, batch: int) -> float:
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    onnx_logits(session, x)
    start = time.perf_counter()
    for _ in range(8):
        onnx_logits(session, x)
    return 8 * batch / (time.perf_counter() - start)


def model_speed(run_dir: Path, data: str, threads: int = 2, batch: int = 64) -> dict:
    """Model-only ONNX Runtime throughput of the float and the int8 graph (decoding excluded)."""
    det = load_detector(run_dir)
    torch.set_num_threads(threads)
    size = det.preprocess.size
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_run(run_dir, output=Path(tmp) / "model.onnx", quantize=True, data=data)
        return {
            "onnx_img_s": _images_per_second(onnx_session(exported["onnx"]), size, batch),
            "int8_img_s": _images_per_second(onnx_session(exported["int8"]["onnx"]), size, batch),
            "int8_agreement": exported["int8"]["verdict_agreement"],
        }


def remeasure_speed(rows: list[dict], data: str) -> None:
    """Measure every row whose run folder is here again, one after the other in this process.

    Speeds taken on different days under different loads do not compare; these do, and the ratio column is
    against notebook-cnn's float graph measured in the same call.
    """
    stamp = f"{time.strftime('%Y-%m-%d')} {code_version()}"
    for row in rows:
        run_dir = Path("runs") / row["run"]
        if "onnx_img_s" in row and RunDir(run_dir).model.is_file():
            row.update(model_speed(run_dir, data), speed_measured=stamp)
            print(f"{row['label']}: {row['onnx_img_s']:.0f} img/s float, {row['int8_img_s']:.0f} int8")


def score_run(run_dir: Path, data: str, probe: str, label: str) -> dict:
    """Everything the table needs from a finished run."""
    result = evaluate(run_dir, data, split="test", progress=False)
    probe_result = probe_generalisation(run_dir, probe, Path(data) / "test" / "real")
    det = load_detector(run_dir)
    metrics = RunDir(run_dir).read_metrics()
    config = RunDir(run_dir).read_config()
    return {
        "label": label,
        "model": det.name,
        "input": f"{det.preprocess.size} {det.preprocess.resize_mode}",
        "run": run_dir.name,
        "tensor_sha256": det.metadata["tensor_sha256"],
        "accuracy": result["accuracy"],
        "accuracy_ci": result["ci95"]["accuracy"],
        "roc_auc": result["roc_auc"],
        "roc_auc_ci": result["ci95"]["roc_auc"],
        "f1": result["f1"],
        "epochs": metrics["epochs_run"],
        "train_minutes": metrics["train_seconds"] / 60,
        "params": count_parameters(det.model),
        "macs": count_macs(det.model, det.preprocess.size),
        **model_speed(run_dir, data, threads=config.get("threads") or 2),
        "probe_auc": probe_result["roc_auc"],
        "probe_recall": probe_result["recall"],
        "commit": code_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def render_table(rows: list[dict]) -> str:
    base = next((r["onnx_img_s"] for r in rows if r["model"] == "notebook-cnn"), None)
    head = (
        "| model | input | test AUC [95% CI] | test accuracy [95% CI] | F1 | epochs | train min | params | MMACs "
        "| ONNX img/s float (x notebook-cnn) | ONNX img/s int8 | StyleGAN3 probe AUC | probe recall "
        "| run / commit |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: -r.get("onnx_img_s", 0)):
        if "onnx_img_s" not in r:  # a reference baseline of `deepfake-detect baselines`: no network to time
            lines.append(
                f"| {r['label']} | - | {r['roc_auc']:.4f} [{r['roc_auc_ci'][0]:.4f}, {r['roc_auc_ci'][1]:.4f}] "
                f"| {r['accuracy']:.4f} [{r['accuracy_ci'][0]:.4f}, {r['accuracy_ci'][1]:.4f}] | {r['f1']:.4f} "
                f"| - | - | - | - | - | - | - | - | {r['run']} / {r['commit']} |"
            )
            continue
        ratio = f" ({r['onnx_img_s'] / base:.1f}x)" if base else ""
        int8 = f"{r['int8_img_s']:.0f}" if "int8_img_s" in r else "-"
        lines.append(
            f"| {r['label']} | {r['input']} | {r['roc_auc']:.4f} [{r['roc_auc_ci'][0]:.4f}, {r['roc_auc_ci'][1]:.4f}] "
            f"| {r['accuracy']:.4f} [{r['accuracy_ci'][0]:.4f}, {r['accuracy_ci'][1]:.4f}] | {r['f1']:.4f} "
            f"| {r['epochs']} | {r['train_minutes']:.1f} | {r['params']:,} | {r['macs'] / 1e6:.1f} "
            f"| {r['onnx_img_s']:.0f}{ratio} | {int8} | {r['probe_auc']:.4f} | {r['probe_recall']:.3f} "
            f"| {r['run']} / {r['commit']} |"
        )
    return head + "\n".join(lines) + "\n"


def _speed_stamp(rows: list[dict]) -> str:
    stamps = sorted({r.get("speed_measured", f"{r['date']} {r['commit']}, with the training") for r in rows})
    return "; ".join(stamps)


def write_results(rows: list[dict]) -> None:
    """Rewrite the table between the markers in RESULTS.md (adding the section the first time)."""
    cpu = environment_info(2)["cpu"]
    section = (
        f"{BEGIN}\n## Detector accuracy benchmark (faces140k sample: 10,731 train, 500 valid, 500 test)\n\n"
        f"`benchmarks/bench_models.py`, on {cpu}, 2 cores. Threshold chosen on valid (F1 rule), scored on test; "
        "CIs are 95% stratified bootstrap. The StyleGAN3 probe pairs `stylegan3-probe/fake` (300) with "
        "`faces140k/test/real` (250); recall is at the stored threshold. ONNX img/s is the model alone at batch "
        "64 with 2 threads (no decoding), float and int8 graphs (`export --quantize`), rows fastest first; "
        f"speeds last measured together by `--speed` ({_speed_stamp(rows)}). End-to-end scan speed is in the scan "
        "benchmark. Train minutes are wall time and include any other load on the 2 cores at the time.\n\n"
        + render_table(rows)
        + END
    )
    replace_block(section, BEGIN, END, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/faces140k")
    parser.add_argument("--probe", default="../shared/data/stylegan3-probe/fake")
    parser.add_argument("--run", type=Path, help="score this finished run instead of training")
    parser.add_argument("--label", help="row name (default: the model name)")
    parser.add_argument("--model")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--set", action="append", default=[], help="any config field, name=value")
    parser.add_argument(
        "--speed",
        action="store_true",
        help="only re-measure the img/s of every row whose run is here, together",
    )
    args = parser.parse_args()
    if args.speed:
        rows = [json.loads(line) for line in ROWS.read_text().splitlines()]
        remeasure_speed(rows, args.data)
        ROWS.write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_results(rows)
        return
    run_dir = args.run
    if run_dir is None:
        flags = dict(
            data=args.data,
            model=args.model,
            epochs=args.epochs,
            image_size=args.image_size,
            batch_size=args.batch_size,
            lr=args.lr,
            runs_dir="runs",
        )
        run_dir = train(load_config(None, flags, args.set)).run_dir
    row = score_run(run_dir.resolve(), args.data, args.probe, args.label or load_detector(run_dir).name)
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.exists() else []
    rows = [r for r in rows if r["label"] != row["label"]] + [row]
    ROWS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_results(rows)
    print(render_table([row]))


if __name__ == "__main__":
    main()
