"""Screen training recipes for generalisation, choosing on VALIDATION only (issue 13).

Each recipe is a set of config overrides on top of a common base (the default model's recipe on the data mix).
For each one this trains a run, then scores the mix's validation split clean and laundered (seed 0), per source,
and appends one row to ``benchmarks/screening.jsonl``. Test splits and the StyleGAN3 probe are never read here:
choosing a recipe by them would make their figures meaningless.

    python benchmarks/screen_recipes.py --recipes base cnndet --epochs 4           # CPU, a short screen
    python benchmarks/screen_recipes.py --recipes all --device cuda --workers 12    # a GPU machine
    python benchmarks/screen_recipes.py --table        # rewrite the ablation table in RESULTS.md from the rows

On a GPU the runs are not bit-reproducible (some CUDA kernels have no deterministic version): screening only
ranks recipes, and the chosen recipe is then trained on the CPU, where the card's command reproduces it bit for bit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from deepfake_detect.core.config import load_config
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.training.train import train
from results_md import RESULTS, replace_block

HERE = Path(__file__).resolve().parent
ROWS = HERE / "screening.jsonl"
BEGIN, END = "<!-- screening:begin -->", "<!-- screening:end -->"
TRANSFER_BEGIN, TRANSFER_END = "<!-- transfer:begin -->", "<!-- transfer:end -->"
# The kind of screening row that bench_generalisation.py --screen appends: one diffusion model held out.
TRANSFER = "leave-one-diffusion-out"

# Every source beside faces140k. sdxl-sfhq (a second diffusion model) came with issue 21; the rows before it
# trained without it.
SOURCES = ("sd21-sdfd", "gan-boredhumans", "sdxl-sfhq", "utkface", "web-portraits")
# The default model's recipe: Lite0 truncated after stage 4, native 128 px crops, AdamW one-cycle.
BASE = {
    "model": "efficientnet-lite0-s4",
    "image_size": 128,
    "batch_size": 32,
    "lr": 1e-3,
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "schedule": "onecycle",
    "seed": 42,
}
# CNNDetection's processing augmentation, on both classes.
CNNDET = {
    "aug_blur_p": 0.5,
    "aug_blur_sigma": (0.0, 3.0),
    "aug_jpeg_p": 0.5,
    "aug_jpeg_quality": (30, 100),
    "aug_rescale_p": 0.5,
    "aug_rescale": (0.25, 2.0),
}
# SAFE's cheap augmentations and a random zoom against framing shortcuts.
SAFE = {
    "aug_zoom_p": 0.5,
    "aug_zoom_scale": (0.5, 1.0),
    "aug_rotate_p": 0.3,
    "aug_rotate_degrees": (-15.0, 15.0),
    "aug_color_p": 0.3,
    "aug_mask_p": 0.2,
}
# The shipped default's recipe: cnndet-light-f2 with its threshold at <= 2% FPR on each source of reals on
# validation (a pooled F1 threshold let FFHQ outvote the soft web portraits: 4.2% of them flagged).
DEFAULT_MIX = {
    **CNNDET,
    "aug_blur_p": 0.25,
    "aug_jpeg_p": 0.25,
    "aug_rescale_p": 0.25,
    "mix_weights": {"faces140k": 2.0},
    "threshold_max_fpr": 0.02,
}
# Issue 21: every source's compression and resizing history blurred into one distribution (double JPEG on
# aligned and shifted grids, resampling with random kernels), on both classes.
FINGERPRINT_FREE = {"aug_djpeg_p": 0.5, "aug_resample_p": 0.5}
RECIPES: dict[str, dict[str, Any]] = {
    "faces140k-only": {"mix": ("faces140k",)},
    "base": {},
    "cnndet": CNNDET,
    "cnndet-light": {**CNNDET, "aug_blur_p": 0.25, "aug_jpeg_p": 0.25, "aug_rescale_p": 0.25},
    # faces140k twice as likely within each class: mix training has cost clean faces140k AUC in every screen.
    "cnndet-light-f2": {
        **CNNDET,
        "aug_blur_p": 0.25,
        "aug_jpeg_p": 0.25,
        "aug_rescale_p": 0.25,
        "mix_weights": {"faces140k": 2.0},
    },
    "default-mix": DEFAULT_MIX,
    # Issue 21, transfer between diffusion models. Each is the default's recipe with one lever:
    # the sources' fingerprints removed (FINGERPRINT_FREE);
    "fingerprint-free": {**DEFAULT_MIX, **FINGERPRINT_FREE},
    # Keep the traces that resizing erases. efficientnet-lite0-s4 already takes a native-resolution 128 px
    # crop of the 256 px face (its resize_mode is "crop"), so "native-crop" (resize_mode crop) screened
    # bit-identical to default-mix and is gone (its row says so); the next step is a larger native crop, 192
    # px of the 256 (2.25x the pixels, so 2.25x the network's cost at scan time).
    "native-crop-192": {**DEFAULT_MIX, "image_size": 192},
    # a source head behind a gradient reversal (training/adversary.py): the features are pushed to stop telling
    # the sources of a class apart (FFHQ from UTKFace and the web portraits; StyleGAN from the other
    # generators), so what separates real from fake must be what the sources share. DANN raises the reversal
    # weight from 0 toward 1 with 2/(1+exp(-10p))-1 (the ramp, on by default); its ceiling here is 0.3, not
    # 1, because the two losses differ in size: the head starts at ln 3 = 1.1 nats (three sources a class in
    # the leave-one-diffusion-out mix) while default-mix's training loss goes from 0.63 to 0.32 over its
    # 5-epoch screen, so at 1 the reversed gradient would outweigh the detector's own. 0.3 rather than 0.1:
    # with the ramp, a 5-epoch screen spends its first epoch below 0.76 of the ceiling, and a screen should
    # show the lever if it has one.
    "source-adversarial": {**DEFAULT_MIX, "source_adversary": 0.3},
    # both levers that remove what identifies a source: the adversary on the features, and FINGERPRINT_FREE on
    # the pixels (the compression and resizing histories the adversary would otherwise have to fight alone).
    "source-adversarial+fingerprint-free": {**DEFAULT_MIX, **FINGERPRINT_FREE, "source_adversary": 0.3},
    "cnndet+safe": {**CNNDET, **SAFE},
    "cnndet+zoom": {**CNNDET, "aug_zoom_p": 0.5, "aug_zoom_scale": (0.5, 1.0)},
    "cnndet-sd2": {**CNNDET, "mix_weights": {"sd21-sdfd": 2.0}},
    "cnndet-s5": {**CNNDET, "model": "efficientnet-lite0-s5"},
    "cnndet-160": {**CNNDET, "image_size": 160},
    # Fine-tune the shipped default (already 0.993 on faces140k) on the mix, with light degradations: cheap on
    # a CPU, and it starts from weights that know StyleGAN faces.
    "ft-default-light": {
        **CNNDET,
        "aug_blur_p": 0.25,
        "aug_jpeg_p": 0.25,
        "aug_rescale_p": 0.25,
        "init": "default",
        "lr": 3e-4,
    },
}


# One class of faces140k as a source of its own (``real:PATH``/``fake:PATH``), so its StyleGAN fakes can be held
# out as a family while its FFHQ photos stay in training; each keeps faces140k's weight in the mix.
FACES140K_CLASSES = {"faces140k-real": "real", "faces140k-fake": "fake"}


def mix_specs(data: Path, names: tuple[str, ...], weights: dict[str, float]) -> list[str]:
    """``[real:|fake:]PATH[:WEIGHT]`` specs of the named sources under ``data`` (faces140k, one class of it, or
    sources/<name>)."""
    specs = []
    for name in names:
        only = FACES140K_CLASSES.get(name)
        base = "faces140k" if only else name
        root = data / base if base == "faces140k" else data / "sources" / base
        weight = weights.get(base, 1.0)
        spec = f"{root}:{weight:g}" if weight != 1.0 else str(root)
        specs.append(f"{only}:{spec}" if only else spec)
    return specs


def recipe_config(name: str, args: argparse.Namespace):
    """The full config of one recipe: base, recipe overrides, then the screen's budget."""
    overrides = dict(RECIPES[name])
    names = overrides.pop("mix", ("faces140k", *SOURCES))
    weights = overrides.pop("mix_weights", {})
    flags = {
        **BASE,
        **overrides,
        "data": mix_specs(args.data, names, weights),
        "epochs": args.epochs,
        "device": args.device,
        "num_workers": args.workers,
        "threads": args.threads,
        "runs_dir": str(args.runs_dir),
        "run_name": f"screen-{name}-e{args.epochs}",
    }
    if args.train_limit:
        flags["train_limit"] = args.train_limit
    if args.val_limit:  # smoke tests only: a screen scores the whole validation split
        flags["val_limit"] = args.val_limit
    return load_config(flags={k: list(v) if isinstance(v, tuple) else v for k, v in flags.items()})


def per_source_figures(ev: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Source -> AUC, FPR (real-only) and recall (fake-only) at the stored threshold, from an evaluation."""
    return {
        row["source"]: {k: row.get(k) for k in ("roc_auc", "fpr", "recall", "recall_at_1pct_fpr")}
        for row in ev.get("per_source", [])
    }


def screen(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = recipe_config(name, args)
    start = time.perf_counter()
    result = train(cfg, progress=False)
    minutes = (time.perf_counter() - start) / 60
    scoring = {"split": "valid", "n_resamples": 200, "num_workers": args.workers, "progress": False}
    clean = evaluate(result.run_dir, **scoring)
    laundered = evaluate(result.run_dir, launder_seed=0, **scoring)
    return {
        "recipe": name,
        "overrides": RECIPES[name],
        "epochs": args.epochs,
        "train_limit": args.train_limit,
        "device": args.device,
        "train_minutes": round(minutes, 2),
        "valid_clean": per_source_figures(clean),
        "valid_laundered": per_source_figures(laundered),
        "abstention": clean.get("abstention"),
        "run": result.run_dir.name,
        "code": code_version(),
        "machine": environment_info(cfg.threads or 1)["cpu"],
    }


def _cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def ablation_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per recipe, the validation columns that decide (AUC of faces140k and the fake families,
    FPR of the real sources, faces140k's FFHQ reals included), clean and laundered."""
    head = (
        "| recipe | epochs | device | faces140k AUC | laundered | sd21 AUC | laundered | gan AUC | laundered "
        "| ffhq FPR | laundered | utk FPR | laundered | web FPR | laundered | band coverage |\n|"
        + "---|"
        * 16
    )
    lines = [head]
    for row in rows:
        c, w = row["valid_clean"], row["valid_laundered"]
        cells = [row["recipe"], str(row["epochs"]), row["device"]]
        for source, key in (
            ("faces140k", "roc_auc"),
            ("sd21-sdfd", "roc_auc"),
            ("gan-boredhumans", "roc_auc"),
        ):
            cells += [_cell(c.get(source, {}).get(key)), _cell(w.get(source, {}).get(key))]
        for source in ("faces140k", "utkface", "web-portraits"):
            cells += [_cell(c.get(source, {}).get("fpr")), _cell(w.get(source, {}).get("fpr"))]
        band = row.get("abstention") or {}
        cells.append(_cell(band.get("coverage"), 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(body: str, begin: str, end: str, heading: str) -> None:
    """Put ``body`` between the ``begin``/``end`` markers of RESULTS.md, or append it under ``heading``."""
    replace_block(f"{begin}\n{body}\n{end}", begin, end, RESULTS, heading)


def with_interval(figures: dict[str, Any], key: str) -> str:
    """``0.912 [0.88, 0.94]``: a figure and its 95% interval when the row has one, else the figure or a dash."""
    value, interval = figures.get(key), figures.get(f"{key}_ci95")
    if value is None or not interval:
        return _cell(value)
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def transfer_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per recipe of the leave-one-diffusion-out screen (issue 21), validation only: each
    diffusion model's AUC against the pooled reals when the other one is in training, then the run's figures on
    the sources it trained on (the run without SD 2.1 for the GAN and real columns)."""
    held = {(r["recipe"], r["epochs"], r["held_out"]): r for r in rows if r.get("screen") == TRANSFER}
    lines = [
        "| recipe | epochs | SD 2.1 held out: AUC | recall at 1% FPR | SDXL held out: AUC | recall at 1% FPR "
        "| faces140k AUC | gan AUC | SDXL AUC (seen) | SD 2.1 AUC (seen) | FFHQ FPR | UTK FPR | web FPR |",
        "|" + "---|" * 13,
    ]
    for recipe, epochs in dict.fromkeys((r, e) for r, e, _ in held):
        no_sd, no_xl = held.get((recipe, epochs, "sd21-sdfd")), held.get((recipe, epochs, "sdxl-sfhq"))
        seen = (no_sd or no_xl)["valid_sources"]
        notes = {row["note"] for row in (no_sd, no_xl) if row is not None and row.get("note")}
        cells = [" ".join([recipe, *(f"({note})" for note in sorted(notes))]), str(epochs)]
        for row in (no_sd, no_xl):
            cells += ["—", "—"] if row is None else [
                with_interval(row["valid"], "roc_auc"), with_interval(row["valid"], "recall_at_1pct_fpr")
            ]  # fmt: skip
        cells += [_cell(seen.get(name, {}).get("roc_auc")) for name in ("faces140k", "gan-boredhumans")]
        cells.append(_cell(no_sd["valid_sources"]["sdxl-sfhq"]["roc_auc"]) if no_sd else "—")
        cells.append(_cell(no_xl["valid_sources"]["sd21-sdfd"]["roc_auc"]) if no_xl else "—")
        cells += [_cell(seen.get(name, {}).get("fpr")) for name in ("faces140k", "utkface", "web-portraits")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(rows: list[dict[str, Any]]) -> None:
    plain = [row for row in rows if "screen" not in row]
    write_section(ablation_table(plain), BEGIN, END, "Recipe screening (validation only)")
    if any(row.get("screen") == TRANSFER for row in rows):
        heading = "Recipe screening for transfer between diffusion models (issue 21, validation only)"
        write_section(transfer_table(rows), TRANSFER_BEGIN, TRANSFER_END, heading)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", nargs="+", default=["base"], help=f"names, or all: {', '.join(RECIPES)}")
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="holds faces140k/ and sources/"
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, default=None, help="images a class of each train split")
    parser.add_argument("--val-limit", type=int, default=None, help="smoke tests only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--rows", type=Path, default=ROWS, help="JSONL file the rows are appended to")
    parser.add_argument(
        "--table", action="store_true", help="only rewrite the RESULTS.md table from the rows"
    )
    args = parser.parse_args()
    if not args.table:
        names = list(RECIPES) if args.recipes == ["all"] else args.recipes
        for name in names:
            row = screen(name, args)
            with open(args.rows, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps({"recipe": name, "minutes": row["train_minutes"], "valid": row["valid_clean"]}))
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    write_table(rows)


if __name__ == "__main__":
    main()
