"""Training throughput of a model on real images, against a baseline measured in the same run.

Runs the real training pipeline (decode, seeded augmentation, forward, backward, optimiser step) over a capped
number of steps of the train split, once with the project's settings (channels_last) and once with plain
NCHW eager torch (the baseline), and appends a table to benchmarks/RESULTS.md.

    python benchmarks/bench_train.py --data ../shared/data/faces140k --model notebook-cnn --steps 40
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from deepfake_detect.core.config import TrainConfig
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.core.runtime import make_deterministic
from deepfake_detect.data import list_split
from deepfake_detect.data.dataset import FaceDataset, make_loader
from deepfake_detect.models import create_model
from deepfake_detect.training.loop import preprocess_for, train_one_epoch
from results_md import RESULTS


def measure(cfg: TrainConfig, steps: int, channels_last: bool) -> float:
    """Images per second over ``steps`` training steps (after one warm-up step)."""
    make_deterministic(cfg.seed, cfg.threads)
    preprocess = preprocess_for(cfg)
    samples = list_split(cfg.data, "train", limit_per_class=(steps + 1) * cfg.batch_size // 2 + 1)
    dataset = FaceDataset(samples[: (steps + 1) * cfg.batch_size], preprocess, train=True, seed=cfg.seed)
    loader, _ = make_loader(dataset, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    model = create_model(cfg.model)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warm = FaceDataset(samples[: cfg.batch_size], preprocess, train=True, seed=cfg.seed)
    train_one_epoch(
        model,
        make_loader(warm, batch_size=cfg.batch_size, shuffle=False, seed=0)[0],
        optimizer,
        None,
        torch.device("cpu"),
        channels_last=channels_last,
        progress=False,
    )
    stats = train_one_epoch(
        model, loader, optimizer, None, torch.device("cpu"), channels_last=channels_last, progress=False
    )
    return stats["train_img_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/faces140k")
    parser.add_argument("--model", default="notebook-cnn")
    parser.add_argument("--image-size", type=int, default=220, help="the notebook used 220 px")
    parser.add_argument("--batch-size", type=int, default=22, help="the notebook used 22")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cfg = TrainConfig(
        data=args.data,
        model=args.model,
        image_size=args.image_size,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    n_train = len(list_split(args.data, "train"))
    ours = measure(cfg, args.steps, channels_last=True)
    base = measure(cfg, args.steps, channels_last=False)
    env = environment_info(args.threads)
    commit = code_version()
    rows = [
        f"\n## Training throughput: {args.model} at {args.image_size} px, batch {args.batch_size}\n",
        f"Machine: {env['cpu']}, {args.threads} threads, {platform.system()}; "
        f"torch {env['packages']['torch']}; "
        f"commit {commit}; {time.strftime('%Y-%m-%d')}. {args.steps} steps of real decode + augmentation + "
        f"forward/backward/Adam on `{args.data}/train`; epoch time = {n_train:,} images / img/s.\n",
        "| setting | img/s | epoch time (min) | ratio to baseline |",
        "|---|---|---|---|",
        f"| eager NCHW (baseline, the notebook's setup) | {base:.1f} | {n_train / base / 60:.1f} | 1.00 |",
        f"| channels_last (project default) | {ours:.1f} | {n_train / ours / 60:.1f} | {ours / base:.2f} |",
    ]
    text = "\n".join(rows) + "\n"
    print(text)
    with open(RESULTS, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
