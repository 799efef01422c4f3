"""Leave-one-out generalisation: train without one source, then score that source as an unseen one (issue 13).

The honest measure of "a generator it never saw" and of "real photos from elsewhere": for each held-out source,
a recipe is trained on the mix without it, and the run is scored on every source of the split. For a held-out
fake family the row is its AUC against the pooled reals; for a held-out real source, its false-positive rate at
the stored threshold (chosen on the training mix's validation split). Validation rows may guide the recipe;
test rows are reported.

    python benchmarks/bench_generalisation.py --recipe cnndet --epochs 12
    python benchmarks/bench_generalisation.py --recipe cnndet --held-out sd21-sdfd --device cuda --workers 12
    python benchmarks/bench_generalisation.py --recipe default-mix --held-out faces140k-fake --epochs 5
                                                    # faces140k's StyleGAN fakes held out, its FFHQ photos kept
    python benchmarks/bench_generalisation.py --table      # rewrite the table in RESULTS.md from the rows
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import mean
from typing import Any

from deepfake_detect.core.config import load_config
from deepfake_detect.core.runs import code_version
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.evaluation.evaluate import evaluate, resolved_sources
from deepfake_detect.training.train import train
from screen_recipes import (
    FACES140K_CLASSES,
    RECIPES,
    SOURCES,
    TRANSFER,
    mix_specs,
    per_source_figures,
    with_interval,
    write_section,
)
from screen_recipes import write_table as write_screening_table

HERE = Path(__file__).resolve().parent
ROWS = HERE / "generalisation.jsonl"
SCREEN_ROWS = HERE / "screening.jsonl"
BEGIN, END = "<!-- generalisation:begin -->", "<!-- generalisation:end -->"
# faces140k-fake: faces140k's StyleGAN fakes held out while its FFHQ photos stay in training (faces140k-real).
FAKE_FAMILIES = ("sd21-sdfd", "gan-boredhumans", "sdxl-sfhq", "faces140k-fake")
HELD_OUT_CHOICES = (*SOURCES, *FACES140K_CLASSES)
# Leave-one-diffusion-model-out: the screen that judges a recipe's transfer between families (issue 21).
DIFFUSION = ("sd21-sdfd", "sdxl-sfhq")


def scored_sources(held_out: str) -> tuple[str, ...]:
    """Every source a run is scored on: faces140k whole, or as its two classes when one of them is held out
    (so the held-out class gets a row of its own, scored against the pooled others)."""
    faces = tuple(FACES140K_CLASSES) if held_out in FACES140K_CLASSES else ("faces140k",)
    return (*faces, *SOURCES)


def train_sources(held_out: str) -> tuple[str, ...]:
    """The sources a run without ``held_out`` trains on, in the mix's order."""
    return tuple(n for n in scored_sources(held_out) if n != held_out)


def held_out_config(recipe: str, held_out: str, args: argparse.Namespace):
    overrides = dict(RECIPES[recipe])
    weights = overrides.pop("mix_weights", {})
    overrides.pop("mix", None)
    flags = {
        "model": "efficientnet-lite0-s4", "image_size": 128, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw",
        "weight_decay": 0.01, "schedule": "onecycle", "seed": 42,
        **overrides,
        "data": mix_specs(args.data, train_sources(held_out), weights),
        "epochs": args.epochs, "device": args.device, "num_workers": args.workers, "threads": args.threads,
        "runs_dir": str(args.runs_dir), "run_name": f"loo-{recipe}-without-{held_out}-e{args.epochs}",
    }  # fmt: skip
    if args.train_limit:  # smoke tests only
        flags["train_limit"] = args.train_limit
    return load_config(flags={k: list(v) if isinstance(v, tuple) else v for k, v in flags.items()})


def source_rows(run: Path, split: str, held_out: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every source's full per-source row (figures and their 95% intervals) on ``split``, by source name."""
    everything = mix_specs(args.data, scored_sources(held_out), {})
    ev = evaluate(run, everything, split=split, n_resamples=200, num_workers=args.workers, progress=False)
    return {
        row["source"]: {k: v for k, v in row.items() if k != "source"} for row in ev.get("per_source", [])
    }


def leave_one_out(recipe: str, held_out: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train without ``held_out`` and score every source of validation (and of test, unless screening)."""
    cfg = held_out_config(recipe, held_out, args)
    if args.score_only:  # a run trained earlier, e.g. one finished with `deepfake-detect train --resume`
        run, minutes = Path(args.runs_dir) / cfg.run_name, None
    else:
        start = time.perf_counter()
        run = train(cfg, progress=False).run_dir
        minutes = round((time.perf_counter() - start) / 60, 2)
    splits = ("valid",) if args.screen else ("valid", "test")
    scored = {split: source_rows(run, split, held_out, args) for split in splits}
    row = {
        "recipe": recipe,
        "held_out": held_out,
        "kind": "fake family" if held_out in FAKE_FAMILIES else "real source",
        "train_sources": list(train_sources(held_out)),
        # An epoch has as many draws as the mix's train images: fewer when a large source gives up a class.
        "train_images": len(list_mix_split(resolved_sources(cfg.data), "train")),
        "epochs": args.epochs,
        "device": args.device,
        "train_minutes": minutes,
        **{split: scored[split][held_out] for split in splits},
        "valid_sources": per_source_figures(
            {"per_source": [{"source": k, **v} for k, v in scored["valid"].items()]}
        ),
        "run": run.name,
        "code": code_version(),
    }
    if args.screen:
        row["screen"] = TRANSFER
    return row


# The sources of issue 13's mix, for its rows, which predate train_sources.
ISSUE13_UNIVERSE = ("faces140k", "sd21-sdfd", "gan-boredhumans", "utkface", "web-portraits")


def universe(row: dict[str, Any]) -> tuple[str, ...]:
    """Every source of the mix a row's run left one out of (its train_sources and its held-out source), with
    faces140k's two classes counted as the one source they are."""
    trained = row.get("train_sources") or [n for n in ISSUE13_UNIVERSE if n != row["held_out"]]
    return tuple(sorted({"faces140k" if n in FACES140K_CLASSES else n for n in (*trained, row["held_out"])}))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown, the headline generalisation figure: per recipe, schedule and mix, each fake family held out
    in turn (AUC against the pooled reals, recall at 1% FPR of them and at the stored threshold, valid and test,
    95% intervals), their mean and worst; then each real source held out (FPR at the threshold)."""
    lines = [
        "| recipe | epochs | sources in the mix | held out | valid AUC | valid recall at 1% FPR "
        "| valid recall at threshold | test AUC | test recall at 1% FPR | test recall at threshold |",
        "|" + "---|" * 10,
    ]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["epochs"], universe(row)), []).append(row)
    for (recipe, epochs, names), members in groups.items():
        head = [recipe, str(epochs), str(len(names))]
        fakes = [r for r in members if r["kind"] == "fake family"]
        for row in fakes:
            cells = [row["held_out"]]
            for split in ("valid", "test"):
                cells += [with_interval(row[split], k) for k in ("roc_auc", "recall_at_1pct_fpr", "recall")]
            lines.append("| " + " | ".join(head + cells) + " |")
        if len(fakes) > 1:
            lines += [_summary_line(head, fakes, "mean", mean), _summary_line(head, fakes, "worst", min)]
        for row in (r for r in members if r["kind"] != "fake family"):
            cells = [f"{row['held_out']} (real): FPR at threshold", with_interval(row["valid"], "fpr")]
            cells += ["", "", with_interval(row["test"], "fpr"), "", ""]
            lines.append("| " + " | ".join(head + cells) + " |")
    return "\n".join(lines)


def _summary_line(head: list[str], fakes: list[dict[str, Any]], label: str, how) -> str:
    """The mean or worst of each column over the held-out fake families (intervals are per family only)."""
    cells = [f"**{label}** of {len(fakes)} families"]
    for split in ("valid", "test"):
        for key in ("roc_auc", "recall_at_1pct_fpr", "recall"):
            values = [r[split].get(key) for r in fakes]
            cells.append("—" if None in values else f"**{how(values):.3f}**")
    return "| " + " | ".join(head + cells) + " |"


def write_table(rows: list[dict[str, Any]]) -> None:
    write_section(table(rows), BEGIN, END, "Leave-one-family-out generalisation")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="cnndet", choices=sorted(RECIPES))
    parser.add_argument("--held-out", nargs="+", default=None, choices=HELD_OUT_CHOICES)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="holds faces140k/ and sources/"
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-limit", type=int, default=None, help="smoke tests only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--rows", type=Path, default=None, help="JSONL file the rows are appended to")
    parser.add_argument(
        "--screen",
        action="store_true",
        help="a recipe screen: validation only, rows to screening.jsonl, held out by default: "
        + " ".join(DIFFUSION),
    )
    parser.add_argument(
        "--score-only", action="store_true", help="score the runs already in --runs-dir instead of training"
    )
    parser.add_argument(
        "--table", action="store_true", help="only rewrite the RESULTS.md table from the rows"
    )
    args = parser.parse_args()
    args.rows = args.rows or (SCREEN_ROWS if args.screen else ROWS)
    if not args.table:
        for held_out in args.held_out or (DIFFUSION if args.screen else (*SOURCES, "faces140k-fake")):
            row = leave_one_out(args.recipe, held_out, args)
            with open(args.rows, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row))
    written = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    (write_screening_table if args.screen else write_table)(written)


if __name__ == "__main__":
    main()
