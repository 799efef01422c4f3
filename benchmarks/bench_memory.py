"""Peak memory of training on 100,000 images against a baseline of 1,000, in the same run.

Generates two data sets of small JPEGs under /tmp (reused when already there): 100,000 images (98,000 train,
1,000 valid, 1,000 test) and 1,000 images (800 / 100 / 100). Each is trained on in its own process for the same
capped number of steps (``max_steps_per_epoch``) with the same validation subset, so the difference in peak
resident memory (``ru_maxrss``) is what the full-size file lists, fingerprint and data order cost. Appends a
table to benchmarks/RESULTS.md.

    nice -n 10 python benchmarks/bench_memory.py --steps 25
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from results_md import RESULTS

LARGE = {"train": 49_000, "valid": 500, "test": 500}  # per class: 100,000 images in all
SMALL = {"train": 400, "valid": 50, "test": 50}  # per class: 1,000 images in all


def _face(rng: np.random.Generator, size: int, fake: bool) -> np.ndarray:
    """A smooth random image (it compresses like a photo); fakes carry a periodic trace."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), dtype=np.int16)
    pixels += rng.integers(-12, 13, pixels.shape, dtype=np.int16)
    if fake:
        pixels[::2, ::2] += 40
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_dataset(root: Path, per_class: dict[str, int], size: int) -> Path:
    """Write ``root/{split}/{real,fake}/*.jpg``, or reuse it when a previous run completed it."""
    marker = root / ".complete.json"
    spec = {"per_class": per_class, "size": size}
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for label, name in enumerate(("real", "fake")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_face(rng, size, bool(label))).save(folder / f"{i:06d}.jpg", quality=90)
    marker.write_text(json.dumps(spec))
    return root


def child(data: str, steps: int, image_size: int, batch_size: int) -> None:
    """Train once and print peak RSS and timings as JSON (runs in its own process)."""
    from deepfake_detect.core.config import TrainConfig
    from deepfake_detect.training.train import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        cfg = TrainConfig(
            data=data,
            model="notebook-cnn",
            epochs=1,
            batch_size=batch_size,
            image_size=image_size,
            base_size=image_size,
            threads=1,
            val_limit=50,
            max_steps_per_epoch=steps,
            runs_dir=runs,
        )
        result = train(cfg, progress=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    summary = {"peak_mib": peak_kib / 1024, "seconds": time.perf_counter() - start}
    summary["train_seconds"] = result.metrics["train_seconds"]
    print(json.dumps(summary))


def measure(data: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(data), "--steps", str(args.steps)]
    cmd += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _images(per_class: dict[str, int]) -> int:
    return 2 * sum(per_class.values())


def report(large: dict, small: dict, args: argparse.Namespace, gen_seconds: float) -> str:
    from deepfake_detect.core.runs import code_version, environment_info

    env = environment_info(1)
    commit = code_version()
    n_large, n_small = _images(LARGE), _images(SMALL)
    per_image = (large["peak_mib"] - small["peak_mib"]) * 2**20 / (n_large - n_small)
    rows = [
        f"\n## Peak memory: training on {n_large:,} images vs {n_small:,}\n",
        f"Machine: {env['cpu']}, 1 torch thread, {platform.system()}; torch {env['packages']['torch']}; "
        f"commit {commit} (plus this change's uncommitted files); {time.strftime('%Y-%m-%d')}. "
        f"`nice -n 10 python benchmarks/bench_memory.py --steps {args.steps}`: notebook-cnn at "
        f"{args.image_size} px, batch {args.batch_size}, {args.steps} steps (`max_steps_per_epoch`), 50 validation "
        f"images a class, no decoded cache, `num_workers=0`; each run in a fresh process (peak = `ru_maxrss`). "
        f"Data: {args.image_size}x{args.image_size} JPEGs made by the script ({gen_seconds:.0f} s to write, or reused).\n",
        "| data set | images | peak RSS (MiB) | wall time (s) | ratio to baseline |",
        "|---|---|---|---|---|",
        f"| baseline | {n_small:,} | {small['peak_mib']:.0f} | {small['seconds']:.1f} | 1.00 |",
        f"| full size | {n_large:,} | {large['peak_mib']:.0f} | {large['seconds']:.1f} | "
        f"{large['peak_mib'] / small['peak_mib']:.2f} |",
        "",
        f"100x the images cost {large['peak_mib'] - small['peak_mib']:.0f} MiB more at peak, about "
        f"{per_image:.0f} bytes an image (file lists, fingerprint hashes, the epoch order); model, optimiser and "
        "batches do not grow with the data set, and the decoded cache, when on, is a memory-mapped file on disk.",
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=25, help="training steps in each run")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--root", default="/tmp/deepfake-detect-bench-memory", help="where the data sets go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.image_size, args.batch_size)
        return
    start = time.perf_counter()
    large_data = make_dataset(Path(args.root) / "100k", LARGE, args.image_size)
    small_data = make_dataset(Path(args.root) / "1k", SMALL, args.image_size)
    gen_seconds = time.perf_counter() - start
    small = measure(small_data, args)
    large = measure(large_data, args)
    text = report(large, small, args, gen_seconds)
    print(text)
    with open(RESULTS, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
