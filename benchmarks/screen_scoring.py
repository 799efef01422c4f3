"""Scoring-time levers of issue 21's transfer screen: each leave-one-diffusion-out run rescored, nothing trained.

The model judges a 128 px crop at native resolution from the centre of the 256 px face (``resize_mode`` crop):
it trained on random crops from the whole face, but scores only the middle. A generator's traces need not sit
there, so these levers look at more of the face, or at more than one model:

    centre        the model's own view, what ``evaluate`` scores (a check: it must reproduce the run's row)
    flip          the centre crop and its mirror image, logits averaged (2 views a face)
    grid-mean     a 3 x 3 grid of crops, 64 px apart, covering the whole face, logits averaged (9 views)
    grid-max      the same nine crops, the highest logit: one suspicious patch decides (9 views)
    ensemble:R    this run's centre logits averaged with those of recipe R's run without the same source

Each lever's threshold is refitted on the validation split of the sources the run trained on, by the rule its
training used (each source's reals at or under ``threshold_max_fpr``); the held-out source never sets it. The rows
go to screening.jsonl in the layout of bench_generalisation's transfer-screen rows, so the transfer table in
RESULTS.md lists them beside the recipes that were trained. Validation only: test splits and the probe are not read.

    python benchmarks/screen_scoring.py --runs-dir /work/runs --levers flip grid-mean grid-max \\
        ensemble:fingerprint-free ensemble:source-adversarial
    python benchmarks/screen_scoring.py --table      # rewrite the RESULTS.md tables from screening.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from deepfake_detect.core.runs import RunDir, code_version
from deepfake_detect.data.mix import list_mix_split
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Preprocess, normalize
from deepfake_detect.evaluation.evaluate import resolved_sources, scoring_detector
from deepfake_detect.metrics.calibration.fit import calibrate_on_validation
from deepfake_detect.metrics.per_source import per_source_rows
from screen_recipes import ROWS, TRANSFER, mix_specs, per_source_figures, write_table

DIFFUSION = ("sd21-sdfd", "sdxl-sfhq")
GRID = 3  # crops a side: 3 x 3 covers a 256 px face with 128 px crops, 64 px apart
CENTRE = GRID * GRID // 2  # the grid's middle crop is the model's own centre crop
MIRROR = GRID * GRID  # the mirrored centre crop comes after the grid
VIEWS = {"centre": 1, "flip": 2, "grid-mean": GRID * GRID, "grid-max": GRID * GRID, "ensemble": 2}
# What a corrupt or hostile file raises on decoding: it is reported and skipped, as evaluate does.
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)


def grid_origins(stored: int, size: int, per_side: int) -> list[tuple[int, int]]:
    """Top-left corners of a ``per_side`` x ``per_side`` grid of ``size`` crops spanning a ``stored`` square
    (floored, so that an odd grid's middle crop is the centre crop ``Preprocess.finish`` takes).

    Examples
    --------
    >>> grid_origins(256, 128, 3)[:4]
    [(0, 0), (0, 64), (0, 128), (64, 0)]
    >>> grid_origins(256, 128, 3)[4], grid_origins(259, 128, 3)[4]   # the middle one is the centre crop
    ((64, 64), (65, 65))
    """
    steps = [i * (stored - size) // (per_side - 1) for i in range(per_side)]
    return [(top, left) for top in steps for left in steps]


def views(stored: np.ndarray, size: int, *, centre_only: bool = False) -> np.ndarray:
    """The grid's crops of one stored ``(S, S, 3)`` face, then its mirrored centre crop: ``(GRID² + 1, size,
    size, 3)``; with ``centre_only``, the centre crop alone ``(1, size, size, 3)``.

    Examples
    --------
    >>> face = np.arange(256 * 256 * 3, dtype=np.uint32).reshape(256, 256, 3)
    >>> v = views(face, 128)
    >>> v.shape, bool((v[CENTRE] == face[64:192, 64:192]).all()), bool((v[MIRROR] == v[CENTRE][:, ::-1]).all())
    ((10, 128, 128, 3), True, True)
    """
    origins = grid_origins(stored.shape[0], size, GRID)
    if centre_only:
        origins = origins[CENTRE : CENTRE + 1]
    crops = [stored[t : t + size, left : left + size] for t, left in origins]
    if not centre_only:
        crops.append(crops[CENTRE][:, ::-1])
    return np.stack(crops)


def pool(view_logits: np.ndarray, lever: str) -> np.ndarray:
    """One logit a face from its views' logits ``(n, GRID² + 1)`` under a scoring lever.

    Examples
    --------
    >>> z = np.zeros((1, 10)); z[0, CENTRE], z[0, MIRROR], z[0, 0] = 1.0, 3.0, 9.0
    >>> [float(pool(z, lever)[0]) for lever in ("centre", "flip", "grid-mean", "grid-max")]
    [1.0, 2.0, 1.1111111111111112, 9.0]
    """
    grid = view_logits[:, :MIRROR]
    pooled = {
        "centre": lambda: view_logits[:, CENTRE],
        "flip": lambda: view_logits[:, [CENTRE, MIRROR]].mean(axis=1),
        "grid-mean": lambda: grid.mean(axis=1),
        "grid-max": lambda: grid.max(axis=1),
    }
    if lever not in pooled:
        raise ValueError(f"unknown lever {lever!r}; choose from {', '.join(pooled)}")
    return pooled[lever]()


def load_views(samples: list[Sample], prep: Preprocess, *, centre_only: bool) -> tuple[list, list[Sample]]:
    """The views of each readable face and the samples they belong to; an unreadable file is reported on
    stderr and left out, so one bad image does not stop the screen."""
    faces, kept = [], []
    for sample in samples:
        try:
            faces.append(views(prep.load(sample.path), prep.size, centre_only=centre_only))
            kept.append(sample)
        except UNREADABLE as err:
            print(f"skipped {sample.path}: {err}", file=sys.stderr)
    return faces, kept


def score_views(
    run: Path, held_out: str, data: Path, *, centre_only: bool = False, batch_size: int = 32
) -> dict[str, Any]:
    """Every view's logit (see :func:`views`) for each validation face of the run's mix and of its held-out
    source, with the faces' paths, labels and source names, and what the row needs from the run's config."""
    det = scoring_detector(RunDir(run).model)
    config = json.loads(RunDir(run).config.read_text())
    prep = det.preprocess
    if prep.resize_mode != "crop":
        raise SystemExit(
            f"{run.name} resizes the whole face (resize_mode {prep.resize_mode!r}): no crops to pool"
        )
    names = tuple(source["name"] for source in config["data_sources"])
    sources = resolved_sources(mix_specs(data, (*names, held_out), {}))
    samples = list_mix_split(sources, "valid", class_names=tuple(det.metadata["class_names"]))
    logits, kept = [], []
    for start in range(0, len(samples), batch_size):
        faces, readable = load_views(samples[start : start + batch_size], prep, centre_only=centre_only)
        kept += readable
        if faces:
            z = det.logits(normalize(np.concatenate(faces), prep.mean, prep.std))
            logits.append(z.reshape(len(faces), -1))
    return {
        "logits": np.concatenate(logits),
        "paths": [str(s.path) for s in kept],
        "labels": np.array([s.label for s in kept]),
        "names": np.array([s.source for s in kept], dtype=object),
        "n_unreadable": len(samples) - len(kept),
        "max_fpr": config["threshold_max_fpr"],
        "stored_threshold": det.threshold_logit,
        "train_sources": list(names),
        "epochs": config["epochs"],
    }


def lever_figures(z: np.ndarray, scored: dict[str, Any], held_out: str) -> tuple[float, list[dict[str, Any]]]:
    """The threshold refitted on the training sources' faces alone, by the rule training uses (each source's
    reals at or under ``max_fpr``), and every source's row at it.

    Examples
    --------
    >>> scored = {"labels": np.array([0, 0, 1, 0, 1]), "names": np.array(["a", "a", "a", "web", "new"]),
    ...           "max_fpr": 0.0}
    >>> threshold, rows = lever_figures(np.array([-2.0, -1.0, 2.0, 5.0, 0.0]), scored, "new")
    >>> threshold > -1.0, [r["source"] for r in rows]    # web's real at 5.0 sets it; "new" never does
    (True, ['a', 'web', 'new'])
    """
    y, names = scored["labels"], scored["names"]
    trained = names != held_out
    fitted = calibrate_on_validation(z[trained], y[trained], names[trained], scored["max_fpr"])
    threshold = fitted["threshold_logit"]
    return threshold, per_source_rows(y, z, names.tolist(), threshold, n_resamples=200, seed=0)


def lever_row(
    recipe: str, lever: str, held_out: str, run: Path, z: np.ndarray, scored: dict
) -> dict[str, Any]:
    """A transfer-screen row (bench_generalisation's layout) for one lever on one held-out source."""
    threshold, rows = lever_figures(z, scored, held_out)
    by_source = {row["source"]: {k: v for k, v in row.items() if k != "source"} for row in rows}
    views_a_face = VIEWS[lever.split(":", 1)[0]]
    return {
        "recipe": f"{recipe} + {lever} scoring",
        "held_out": held_out,
        "kind": "fake family",
        "train_sources": scored["train_sources"],
        "epochs": scored["epochs"],
        "device": "cpu",
        "train_minutes": 0.0,
        "valid": by_source[held_out],
        "valid_sources": per_source_figures({"per_source": rows}),
        "threshold_logit": threshold,
        "n_unreadable": scored["n_unreadable"],
        "lever": lever,
        "note": f"no training; {views_a_face} forward passes a face",
        "run": run.name,
        "code": code_version(),
        "screen": TRANSFER,
    }


def trained_row(rows: list[dict[str, Any]], run: Path, held_out: str) -> dict[str, Any] | None:
    """The latest row the run's own training wrote for ``held_out`` (not a scoring lever's row), if any."""
    own = [r for r in rows if r.get("run") == run.name and "lever" not in r and r.get("held_out") == held_out]
    return own[-1] if own else None


def check_centre(scored: dict[str, Any], held_out: str, run: Path, rows: list[dict[str, Any]]) -> None:
    """The centre lever must reproduce the run: its refitted threshold is the one training stored, and its
    held-out AUC is the one the run's row reports (the views are the crops ``evaluate`` scores)."""
    threshold, figures = lever_figures(pool(scored["logits"], "centre"), scored, held_out)
    if abs(threshold - scored["stored_threshold"]) > 1e-4:
        raise SystemExit(
            f"{run.name}: refitted threshold {threshold:.5f}, stored {scored['stored_threshold']:.5f}"
        )
    auc = next(r["roc_auc"] for r in figures if r["source"] == held_out)
    row = trained_row(rows, run, held_out)
    if row is None:
        print(f"{run.name}: centre AUC {auc:.4f}; no trained row to check it against", file=sys.stderr)
    elif abs(row["valid"]["roc_auc"] - auc) > 1e-6:
        raise SystemExit(f"{run.name}: centre AUC {auc:.6f}, but its row says {row['valid']['roc_auc']:.6f}")
    else:
        print(f"{run.name}: threshold {threshold:.4f} and centre AUC {auc:.4f}, as the run and its row say")


def ensemble_logits(scored: dict[str, Any], partner: dict[str, Any]) -> np.ndarray:
    """The two runs' centre logits averaged, face by face (the same faces in the same order, or an error)."""
    if partner["paths"] != scored["paths"]:
        raise SystemExit("the two runs of an ensemble read different faces; check their data sources")
    return (pool(scored["logits"], "centre") + partner["logits"][:, 0]) / 2


def screen_held_out(
    args: argparse.Namespace, held_out: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every lever's row for one held-out diffusion model (an ensemble whose partner run is missing is skipped)."""
    run = args.runs_dir / f"loo-{args.recipe}-without-{held_out}-e{args.epochs}"
    scored = score_views(run, held_out, args.data)
    check_centre(scored, held_out, run, rows)
    out = []
    for lever in args.levers:
        if lever.startswith("ensemble:"):
            other = args.runs_dir / f"loo-{lever.split(':', 1)[1]}-without-{held_out}-e{args.epochs}"
            if not RunDir(other).model.exists():
                print(f"skipped {lever} for {held_out}: no finished run {other}", file=sys.stderr)
                continue
            z = ensemble_logits(scored, score_views(other, held_out, args.data, centre_only=True))
        else:
            z = pool(scored["logits"], lever)
        out.append(lever_row(args.recipe, lever, held_out, run, z, scored))
        print(
            json.dumps(
                {"recipe": out[-1]["recipe"], "held_out": held_out, "auc": out[-1]["valid"]["roc_auc"]}
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="default-mix", help="the recipe whose runs are rescored")
    parser.add_argument("--levers", nargs="+", default=["flip", "grid-mean", "grid-max"])
    parser.add_argument("--held-out", nargs="+", default=list(DIFFUSION), choices=DIFFUSION)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="holds faces140k/ and sources/"
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=Path, default=ROWS, help="JSONL file the rows are appended to")
    parser.add_argument("--table", action="store_true", help="only rewrite the RESULTS.md tables")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    if not args.table:
        torch.set_num_threads(args.threads)
        for held_out in args.held_out:  # each held-out source's rows are kept as soon as they are made
            new = screen_held_out(args, held_out, rows)
            with open(args.rows, "a") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in new)
            rows += new
    write_table(rows)


if __name__ == "__main__":
    main()
