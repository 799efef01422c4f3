"""Commands that inspect: ``data download``, ``data check``, ``runs list|show|compare``, ``models``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli._app import RunsDir, _example, _out, app, data_app, runs_app


@data_app.command("download", epilog=_example("deepfake-detect data download --dest ~/data"))
def data_download(
    dest: Annotated[
        Path | None,
        typer.Option(help="Folder to download into; default: kagglehub's cache (~/.cache/kagglehub)."),
    ] = None,
) -> None:
    """Download Kaggle's "140k Real and Fake Faces" (about 4 GB; needs `pip install kagglehub`) and check it.

    Prints the data folder to pass as --data. Kaggle credentials: ~/.kaggle/kaggle.json or KAGGLE_USERNAME and
    KAGGLE_KEY.
    """
    from deepfake_detect.data.download import download_dataset

    _out(str(download_dataset(dest)))


@data_app.command(
    "check",
    epilog=_example(
        "deepfake-detect data check ~/data/real_vs_fake",
        "deepfake-detect data check faces140k sources/sd21-sdfd sources/utkface",
    ),
)
def data_check(
    directory: Annotated[
        list[str] | None,
        typer.Argument(
            help="Data set folder with train/valid/test, or the Kaggle download. Several (each PATH[:WEIGHT], "
            "as train --data takes them) check a data mix, whose sources may hold one class each. "
            "photos:PATH is a folder of whole photos: its faces are found and framed as scan frames them. "
            "real:PATH or fake:PATH checks that one class of a folder."
        ),
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="A folder of the mix, as for train (repeatable).")
    ] = None,
    real_name: Annotated[str, typer.Option(help="Folder name of the real class (label 0).")] = "real",
    fake_name: Annotated[str, typer.Option(help="Folder name of the fake class (label 1).")] = "fake",
    workers: Annotated[int | None, typer.Option(help="Parallel readers; default: every core.")] = None,
    near_distance: Annotated[
        int | None,
        typer.Option(
            help="Near-duplicates: images whose perceptual hashes differ in at most this many of 256 bits "
            "(default 24; negative: no search)."
        ),
    ] = None,
    fail_on_near: Annotated[
        bool, typer.Option(help="Also exit 1 when near-duplicates cross splits (or sources' splits).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Count, decode and hash every image; report balance, sizes, bad files, duplicates and split leakage,
    by identical content and by near-duplicate (re-encoded, resized) images; for a mix, also between sources.

    Exits 1 when the same file is in two splits (leakage, inside a source or between two) or the layout is
    unusable (a mix: a split without one of the classes).
    """
    from deepfake_detect.data.near_duplicates import NEAR_DISTANCE

    specs = [*(directory or []), *(data or [])]
    if not specs:
        raise typer.BadParameter("give a data set folder, or several for a data mix")
    near = NEAR_DISTANCE if near_distance is None else (None if near_distance < 0 else near_distance)
    names = (real_name, fake_name)
    if len(specs) == 1:  # one folder: the report it always had
        from deepfake_detect.core.sources import parse_source
        from deepfake_detect.data import check_dataset, resolve_data_root

        source = parse_source(specs[0])
        root = resolve_data_root(source.root)
        only = None if source.only_label is None else names[source.only_label]
        report = check_dataset(root, class_names=names, workers=workers, near_distance=near, only=only)
        if source.kind == "photos":
            from deepfake_detect.data.photos import check_photos

            check_photos(source, report, class_names=names)
    else:
        from deepfake_detect.data.mix_check import check_mix

        report = check_mix(specs, class_names=names, workers=workers, near_distance=near)
    _out(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text())
    if report.has_leakage or not report.is_usable or (fail_on_near and report.has_near_leakage):
        raise typer.Exit(1)


@runs_app.command("list", epilog=_example("deepfake-detect runs list --runs-dir runs"))
def runs_list(runs_dir: RunsDir = Path("runs")) -> None:
    """One line a run from runs/index.jsonl: id, time, model, data fingerprint and main metrics."""
    from deepfake_detect.core.runs import read_index
    from deepfake_detect.reporting.tables import print_table

    rows = [
        [
            e["id"],
            e["time"],
            e["model"],
            e["data_fingerprint"][:12] + _mix_size(e),
            e["epochs"],
            e["val_roc_auc"],
            e["val_accuracy"],
        ]
        for e in read_index(runs_dir)
    ]
    print_table(
        ["id", "time", "model", "data", "epochs", "val AUC", "val acc"], rows, title=f"runs in {runs_dir}"
    )


def _mix_size(entry: dict) -> str:
    """`` (3 sources)`` for a run trained on a data mix, else ''."""
    sources = entry.get("data_fingerprints") or {}
    return f" ({len(sources)} sources)" if len(sources) > 1 else ""


@runs_app.command("show", epilog=_example("deepfake-detect runs show 20261125-101500-notebook-cnn-s42"))
def runs_show(
    run: Annotated[str, typer.Argument(help="Run folder or id.")], runs_dir: RunsDir = Path("runs")
) -> None:
    """Print a run's config, validation metrics and evaluations as JSON."""
    from deepfake_detect.core.runs import resolve_run, run_summary

    _out(json.dumps(run_summary(resolve_run(run, runs_dir)), indent=2))


@runs_app.command(
    "compare",
    epilog=_example(
        "deepfake-detect runs compare RUN_A RUN_B", "deepfake-detect runs compare RUN_A RUN_B --plot roc.png"
    ),
)
def runs_compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run folders or ids.")],
    split: Annotated[str, typer.Option(help="Evaluation split to compare when present.")] = "test",
    plot: Annotated[
        Path | None, typer.Option(help="Also save the runs' ROC curves on --split, overlaid, to this PNG.")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """A table of the runs' models, validation metrics and evaluation metrics, side by side."""
    from deepfake_detect.core.runs import resolve_run, run_summary
    from deepfake_detect.reporting.tables import print_table

    if plot is not None:  # first: it evaluates runs that have no scores yet, which the table then shows
        from deepfake_detect.reporting.report import compare_roc

        sys.stderr.write(f"ROC curves: {compare_roc(runs, plot, split=split, runs_dir=runs_dir)}\n")
    summaries = [run_summary(resolve_run(r, runs_dir)) for r in runs]
    names = ["model", "epochs", "val AUC", "val acc", f"{split} AUC", f"{split} acc", f"{split} F1"]
    rows = []
    for s in summaries:
        val, ev = s.get("metrics", {}).get("val", {}), s["evaluations"].get(split, {})
        rows.append(
            [
                s.get("config", {}).get("model"),
                s.get("metrics", {}).get("epochs_run"),
                val.get("roc_auc"),
                val.get("accuracy"),
                ev.get("roc_auc"),
                ev.get("accuracy"),
                ev.get("f1"),
            ]
        )
    print_table(names, rows, index=[s["id"] for s in summaries], title="run comparison")


@app.command("models", epilog=_example("deepfake-detect models"))
def models_list() -> None:
    """Every registered model with its input size, parameters and multiply-adds."""
    from deepfake_detect.models import count_macs, count_parameters, create_model, get_model_cfg, list_models
    from deepfake_detect.reporting.tables import print_table

    rows = []
    for name in list_models():
        cfg = get_model_cfg(name)
        net = create_model(name)
        rows.append(
            [
                name,
                cfg.input_size,
                cfg.resize_mode,
                f"{count_parameters(net):,}",
                f"{count_macs(net, cfg.input_size) / 1e6:,.1f}",
                cfg.description,
            ]
        )
    print_table(["model", "input", "mode", "params", "MMACs", "description"], rows, title="models")
