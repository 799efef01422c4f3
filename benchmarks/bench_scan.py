"""End-to-end scanning throughput (decode, preprocessing, network) with --no-detect, against baselines.

Scans the JPEGs under ``--data`` (e.g. the 10,731 files of ``faces140k/train``) the way ``deepfake-detect scan
DIR --no-detect`` does, and reports images a second for:

* the given model's int8 graph, when it ships one (``scan --backend onnx-int8``; the scan default when the
  model's metadata makes it so);
* the same model's float graph with ONNX Runtime (``--backend onnx``; otherwise the scan default);
* the same model with torch eager, decoding in the main process (the plain baseline);
* the notebook-cnn baseline architecture (untrained weights, speed only) through ONNX Runtime.

Rows are appended to benchmarks/RESULTS.md with the machine, commit and date.

    python benchmarks/bench_scan.py --data ../shared/data/faces140k/train --model default --limit 200
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

import deepfake_detect as dd
from deepfake_detect.core.checkpoint import save_checkpoint
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.models import create_model, get_model_cfg
from deepfake_detect.scan.pipeline import default_workers
from results_md import RESULTS


def jpegs(folder: str, limit: int | None) -> list[str]:
    """Sorted JPEG paths under ``folder`` (recursive), the first ``limit`` of them."""
    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    return files[:limit] if limit else files


def measure(det, files: list[str], *, backend: str, workers: int, batch_size: int, cache: Path) -> float:
    """Images a second over ``files`` (after a one-batch warm-up that also exports the ONNX graph)."""
    det = det.with_backend(backend, onnx_cache=cache)
    det.scan(files[:batch_size], detect=False, workers=0)
    start = time.perf_counter()
    n = sum(1 for _ in det.iter_scan(files, detect=False, workers=workers, batch_size=batch_size))
    return n / (time.perf_counter() - start)


def baseline_detector(folder: Path) -> dd.Detector:
    """notebook-cnn with untrained weights and its registry preprocessing (only its speed matters)."""
    cfg = get_model_cfg("notebook-cnn")
    meta = {
        "model": "notebook-cnn",
        "preprocess": Preprocess(cfg.input_size, cfg.resize_mode, mean=cfg.mean, std=cfg.std).to_dict(),
        "class_names": ["real", "fake"],
        "threshold_logit": 0.0,
        "temperature": 1.0,
    }
    path = folder / "notebook-cnn.safetensors"
    save_checkpoint(path, create_model("notebook-cnn"), meta)
    return dd.load_detector(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/faces140k/train")
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=None, help="scan only the first N files")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: what scan --no-detect uses)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="Markdown file the rows are appended to"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.workers is None:
        args.workers = default_workers(detect=False)
    files = jpegs(args.data, args.limit)
    if not files:
        raise SystemExit(f"no JPEG files under {args.data}")
    det = dd.load_detector(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        common = dict(batch_size=args.batch_size, cache=cache)
        default = det.with_backend("auto", onnx_cache=cache).backend
        label = {"onnx-int8": "int8 graph", "onnx": "float graph", "torch": "torch"}
        rows = []
        if det.int8_path is not None:
            rows.append(
                (
                    f"{det.name}: int8 graph, ONNX Runtime, {args.workers} decode workers (--backend onnx-int8"
                    f"{'; the scan default' if default == 'onnx-int8' else ''})",
                    measure(det, files, backend="onnx-int8", workers=args.workers, **common),
                )
            )
        rows += [
            (f"{det.name}: float graph, ONNX Runtime, {args.workers} decode workers (--backend onnx"
             f"{'; the scan default' if default == 'onnx' else ''})",
             measure(det, files, backend="onnx", workers=args.workers, **common)),
            (f"{det.name}: torch eager, decoding in-process (baseline)",
             measure(det, files, backend="torch", workers=0, **common)),
            ("notebook-cnn 220 px, untrained: ONNX Runtime float, same workers (baseline architecture)",
             measure(baseline_detector(cache), files, backend="onnx", workers=args.workers, **common)),
        ]  # fmt: skip
        print(f"scan's default backend for {det.name}: {label[default]}")
    report(args, det, len(files), rows)


def report(args, det, n_files: int, rows: list[tuple[str, float]]) -> None:
    env = environment_info(args.threads)
    commit = code_version()
    base = next(rate for name, rate in rows if "torch eager" in name)
    lines = [
        f"\n## Scan throughput: {det.name} ({args.model}), --no-detect, {n_files:,} files of `{args.data}`\n",
        f"Machine: {env['cpu']}, {args.threads} threads, {platform.system()}; torch {env['packages']['torch']}, "
        f"onnxruntime {env['packages'].get('onnxruntime')}; commit {commit}; {time.strftime('%Y-%m-%d')}. "
        f"End to end: JPEG decode (draft mode), preprocessing, network, result dicts; batch {args.batch_size}. "
        f"Input size {det.preprocess.size} px ({det.preprocess.resize_mode}).\n",
        "| setting | img/s | ratio to torch eager |",
        "|---|---|---|",
        *[f"| {name} | {rate:.1f} | {rate / base:.2f} |" for name, rate in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.results, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
