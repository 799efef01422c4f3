"""The ``deepfake-detect`` command line: a thin layer over the Python API, one library call a command.

Results go to stdout; progress and logs go to stderr. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="deepfake-detect",
    help="Train, evaluate and run small CNNs that tell real face photos from GAN-generated faces, on a CPU. "
    "The models judge whole GAN-made faces (StyleGAN-like), not face swaps.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect a data set folder.", no_args_is_help=True)
runs_app = typer.Typer(help="List, show and compare training runs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder holding run folders and index.jsonl.")]


def _example(*lines: str) -> str:
    return "**Example:**\n\n" + "\n\n".join(f"`{line}`" for line in lines)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


@data_app.command("check", epilog=_example("deepfake-detect data check ~/data/real_vs_fake"))
def data_check(
    directory: Annotated[
        Path, typer.Argument(help="Data set folder with train/valid/test, or the Kaggle download.")
    ],
    real_name: Annotated[str, typer.Option(help="Folder name of the real class (label 0).")] = "real",
    fake_name: Annotated[str, typer.Option(help="Folder name of the fake class (label 1).")] = "fake",
    workers: Annotated[int | None, typer.Option(help="Parallel readers; default: every core.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Count, decode and hash every image; report balance, sizes, bad files, duplicates and split leakage.

    Exits 1 when the same image is in two splits (leakage) or the layout is unusable.
    """
    from .data import check_dataset, resolve_data_root

    report = check_dataset(resolve_data_root(directory), class_names=(real_name, fake_name), workers=workers)
    _out(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text())
    if report.has_leakage or not report.is_usable:
        raise typer.Exit(1)


@app.command(
    epilog=_example(
        "deepfake-detect train --data ../shared/data/faces140k --model notebook-cnn --epochs 5",
        "deepfake-detect train --data DIR --config my.toml --set optimizer=adamw --set weight_decay=0.05",
    )
)
def train(
    data: Annotated[str | None, typer.Option(help="Data set folder (train/valid/test, real/fake).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name; see `deepfake-detect models`.")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON or TOML file of config keys.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (early stopping may end sooner).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Input size in pixels; default: the model's.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for everything random (default 42).")] = None,
    runs_dir: Annotated[str | None, typer.Option(help="Parent of the run folder (default ./runs).")] = None,
    init: Annotated[
        str | None, typer.Option(help="Start from weights: default, a run or a .safetensors.")
    ] = None,
    cache: Annotated[bool | None, typer.Option(help="Cache decoded images on disk for later epochs.")] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Cache folder (default ~/.cache/deepfake-detect).")
    ] = None,
    strict: Annotated[
        bool | None, typer.Option(help="Fail on an unreadable image instead of skipping it.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any config field: name=value (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a model and write a run folder; its absolute path is the last line on stdout.

    Any config field (see the TrainConfig docstring, or `config.json` of a run) can be given with --set.
    Ctrl-C stops cleanly: the best weights so far are calibrated and saved.
    """
    from .config import load_config
    from .train import train as run_training

    flags = dict(
        data=data,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        seed=seed,
        runs_dir=runs_dir,
        init=init,
        cache=cache,
        cache_dir=cache_dir,
        strict=strict,
    )
    cfg = load_config(config, flags, set_)
    result = run_training(cfg, progress=not quiet)
    val = result.metrics["val"]
    _out(
        json.dumps(
            {
                "val_roc_auc": val["roc_auc"],
                "val_accuracy": val["accuracy"],
                "val_f1": val["f1"],
                "threshold_logit": result.metrics["threshold_logit"],
                "temperature": result.metrics["temperature"],
                "epochs": result.metrics["epochs_run"],
                "tensor_sha256": result.metrics["tensor_sha256"],
            }
        )
    )
    _out(str(result.run_dir))
    if result.interrupted:
        raise typer.Exit(130)


@app.command(
    epilog=_example(
        "deepfake-detect evaluate runs/20261125-101500-notebook-cnn-s42 --split test",
        "deepfake-detect evaluate RUN --cost-fp 1 --cost-fn 5 --json",
        "deepfake-detect evaluate RUN --target-fpr 0.01 --save-threshold",
    )
)
def evaluate(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[Path | None, typer.Option(help="Data set folder; default: the one the run used.")] = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = "test",
    cost_fp: Annotated[float | None, typer.Option(help="Cost of calling a real photo fake.")] = None,
    cost_fn: Annotated[float | None, typer.Option(help="Cost of missing a fake.")] = None,
    target_fpr: Annotated[
        float | None, typer.Option(help="Keep the false-positive rate at or under this.")
    ] = None,
    prior: Annotated[
        float | None,
        typer.Option(
            help="Expected share of fakes where the model is used (default: validation's, 50% for 140k). "
            "p_fake is calibrated on validation; if fakes are rarer, say 1%, the same logit means a much "
            "lower probability: p 0.9 at 50% becomes 0.083 at 1%."
        ),
    ] = None,
    save_threshold: Annotated[bool, typer.Option(help="Store the chosen threshold in the model.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score a split with the threshold chosen on validation: metrics, 95% bootstrap CIs, report, confusion.

    Rules: the stored F1-optimal threshold by default; --cost-fp/--cost-fn pick the minimum expected cost;
    --target-fpr caps the false-positive rate. Cost and FPR thresholds are chosen on the validation split.
    """
    from .evaluate import evaluate as run_evaluation
    from .evaluate import format_markdown

    result = run_evaluation(
        run,
        data,
        split=split,
        cost_fp=cost_fp,
        cost_fn=cost_fn,
        target_fpr=target_fpr,
        prior=prior,
        save_threshold=save_threshold,
        runs_dir=runs_dir,
        progress=not quiet and not as_json,
    )
    if as_json:
        _out(json.dumps(result))
    else:
        _out(format_markdown(result, str(run)))


@runs_app.command("list", epilog=_example("deepfake-detect runs list --runs-dir runs"))
def runs_list(runs_dir: RunsDir = Path("runs")) -> None:
    """One line a run from runs/index.jsonl: id, time, model, data fingerprint and main metrics."""
    from .runs import read_index
    from .tables import print_table

    rows = [
        [
            e["id"],
            e["time"],
            e["model"],
            e["data_fingerprint"][:12],
            e["epochs"],
            e["val_roc_auc"],
            e["val_accuracy"],
        ]
        for e in read_index(runs_dir)
    ]
    print_table(
        ["id", "time", "model", "data", "epochs", "val AUC", "val acc"], rows, title=f"runs in {runs_dir}"
    )


@runs_app.command("show", epilog=_example("deepfake-detect runs show 20261125-101500-notebook-cnn-s42"))
def runs_show(
    run: Annotated[str, typer.Argument(help="Run folder or id.")], runs_dir: RunsDir = Path("runs")
) -> None:
    """Print a run's config, validation metrics and evaluations as JSON."""
    from .runs import resolve_run, run_summary

    _out(json.dumps(run_summary(resolve_run(run, runs_dir)), indent=2))


@runs_app.command("compare", epilog=_example("deepfake-detect runs compare RUN_A RUN_B"))
def runs_compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run folders or ids.")],
    split: Annotated[str, typer.Option(help="Evaluation split to compare when present.")] = "test",
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """A table of the runs' models, validation metrics and evaluation metrics, side by side."""
    from .runs import resolve_run, run_summary
    from .tables import print_table

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
    from .models import count_macs, count_parameters, create_model, get_model_cfg, list_models
    from .tables import print_table

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


def _user_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .dataset import BadImageError
    from .models import UnknownModelError
    from .runs import RunError

    return (
        CheckpointError,
        ConfigError,
        DataError,
        BadImageError,
        UnknownModelError,
        RunError,
        FileNotFoundError,
    )


def main() -> None:
    """Console entry point: run the app, turning known user errors into one clear line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        app()
    except _user_errors() as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
