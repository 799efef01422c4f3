"""Leave-one-out generalisation: train without one source, then score that source as an unseen one (issue 13).

The honest measure of "a generator it never saw" and of "real photos from elsewhere": for each held-out source,
a recipe is trained on the mix without it, and the run is scored on every source of the split. For a held-out
fake family the row is its AUC against the pooled reals; for a held-out real source, its false-positive rate at
the stored threshold (chosen on the training mix's validation split). Validation rows may guide the recipe;
test rows are reported.

    python benchmarks/bench_generalisation.py --recipe cnndet --epochs 12
    python benchmarks/bench_generalisation.py --recipe cnndet --held-out sd21-sdfd --device cuda --workers 12
    python benchmarks/bench_generalisation.py --table      # rewrite the table in RESULTS.md from the rows
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from deepfake_detect.core.config import load_config
from deepfake_detect.core.runs import code_version
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.training.train import train
from screen_recipes import RECIPES, SOURCES, mix_specs, per_source_figures, write_section

HERE = Path(__file__).resolve().parent
ROWS = HERE / "generalisation.jsonl"
BEGIN, END = "<!-- generalisation:begin -->", "<!-- generalisation:end -->"
FAKE_FAMILIES = ("sd21-sdfd", "gan-boredhumans")


def held_out_config(recipe: str, held_out: str, args: argparse.Namespace):
    overrides = dict(RECIPES[recipe])
    weights = overrides.pop("mix_weights", {})
    overrides.pop("mix", None)
    names = tuple(n for n in ("faces140k", *SOURCES) if n != held_out)
    flags = {
        "model": "efficientnet-lite0-s4", "image_size": 128, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw",
        "weight_decay": 0.01, "schedule": "onecycle", "seed": 42,
        **overrides,
        "data": mix_specs(args.data, names, weights),
        "epochs": args.epochs, "device": args.device, "num_workers": args.workers, "threads": args.threads,
        "runs_dir": str(args.runs_dir), "run_name": f"loo-{recipe}-without-{held_out}-e{args.epochs}",
    }  # fmt: skip
    if args.train_limit:  # smoke tests only
        flags["train_limit"] = args.train_limit
    return load_config(flags={k: list(v) if isinstance(v, tuple) else v for k, v in flags.items()})


def leave_one_out(recipe: str, held_out: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train without ``held_out`` and score every source of validation and test (the held-out one included)."""
    cfg = held_out_config(recipe, held_out, args)
    start = time.perf_counter()
    run = train(cfg, progress=False).run_dir
    minutes = (time.perf_counter() - start) / 60
    everything = mix_specs(args.data, ("faces140k", *SOURCES), {})
    scored = {
        split: per_source_figures(
            evaluate(run, everything, split=split, n_resamples=200, num_workers=args.workers, progress=False)
        )
        for split in ("valid", "test")
    }
    return {
        "recipe": recipe,
        "held_out": held_out,
        "kind": "fake family" if held_out in FAKE_FAMILIES else "real source",
        "epochs": args.epochs,
        "device": args.device,
        "train_minutes": round(minutes, 2),
        "valid": scored["valid"][held_out],
        "test": scored["test"][held_out],
        "run": run.name,
        "code": code_version(),
    }


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | epochs | held out | kind | measure | valid | test | floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fake = row["kind"] == "fake family"
        key, floor = ("roc_auc", ">= 0.85 AUC") if fake else ("fpr", "<= 0.03 FPR")
        lines.append(
            f"| {row['recipe']} | {row['epochs']} | {row['held_out']} | {row['kind']} | {key} "
            f"| {_cell(row['valid'].get(key))} | {_cell(row['test'].get(key))} | {floor} |"
        )
    return "\n".join(lines)


def write_table(rows: list[dict[str, Any]]) -> None:
    write_section(table(rows), BEGIN, END, "Leave-one-out generalisation (issue 13)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="cnndet", choices=sorted(RECIPES))
    parser.add_argument("--held-out", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="holds faces140k/ and sources/"
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-limit", type=int, default=None, help="smoke tests only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument(
        "--table", action="store_true", help="only rewrite the RESULTS.md table from the rows"
    )
    args = parser.parse_args()
    if not args.table:
        for held_out in args.held_out:
            row = leave_one_out(args.recipe, held_out, args)
            with open(args.rows, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row))
    write_table([json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()])


if __name__ == "__main__":
    main()
