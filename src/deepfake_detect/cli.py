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
from typer.core import TyperGroup

from deepfake_detect.core.exceptions import DeepfakeDetectError

__all__ = ["app", "main"]


class _UserErrorsAsOneLine(TyperGroup):
    """The one place where an error the user caused becomes one line on stderr and an exit code, not a traceback.

    Every :class:`~deepfake_detect.core.exceptions.DeepfakeDetectError` (exit code 2, or the class's own) and a
    missing file (2) land here, from any command of any sub-group.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (DeepfakeDetectError, FileNotFoundError) as err:
            sys.stderr.write(f"error: {err}\n")
            raise typer.Exit(getattr(err, "exit_code", 2)) from None


app = typer.Typer(
    cls=_UserErrorsAsOneLine,
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
    from deepfake_detect.data.layout import check_dataset, resolve_data_root

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
    resume: Annotated[
        str | None,
        typer.Option(help="Continue a killed or interrupted run (folder or id) from its checkpoint."),
    ] = None,
    nproc: Annotated[
        int, typer.Option(help="Data-parallel processes (gloo on CPU, NCCL on GPUs); --batch-size is global.")
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a model and write a run folder; its absolute path is the last line on stdout.

    Any config field (see the TrainConfig docstring, or `config.json` of a run) can be given with --set.
    Ctrl-C stops cleanly: the best weights so far are calibrated and saved.
    """
    from deepfake_detect.core.config import load_config
    from deepfake_detect.training.train import train as run_training

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
    if resume is not None:  # the run's own config; flags may only change what does not alter results
        from deepfake_detect.training.state import resume_config

        resume, cfg = resume_config(resume, runs_dir=runs_dir or "runs", file=config, flags=flags, sets=set_)
    else:
        cfg = load_config(config, flags, set_)
    result = run_training(cfg, nproc=nproc, progress=not quiet, resume=resume)
    if result.rank:  # under torchrun every rank runs this command; rank 0 reports
        return
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
    from deepfake_detect.evaluation.evaluate import evaluate as run_evaluation
    from deepfake_detect.evaluation.evaluate import format_markdown

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
    from deepfake_detect.core.runs import read_index
    from deepfake_detect.reporting.tables import print_table

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


@app.command(
    epilog=_example(
        "deepfake-detect scan holiday.jpg photos/ --report scan.html",
        "find /photos -name '*.jpg' | deepfake-detect scan - --json --output scan.jsonl --resume",
        "deepfake-detect scan ../shared/data/faces140k/test --no-detect --csv --model RUN",
    )
)
def scan(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Images, videos, folders (recursive, sorted), globs, or - for paths on stdin."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="default, a run folder or id, a .safetensors or an .onnx file.")
    ] = "default",
    detect: Annotated[
        bool,
        typer.Option(
            "--detect/--no-detect",
            help="Find faces (Haar cascade). --no-detect: each image is already a face crop, like the 140k data.",
        ),
    ] = True,
    fallback_whole_image: Annotated[
        bool, typer.Option(help="Score the whole image when no face is found (default: no verdict).")
    ] = False,
    threshold: Annotated[
        float | None, typer.Option(help="Decision threshold as a p_fake in (0, 1); default: the model's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object a file.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: one row a face.")] = False,
    output: Annotated[Path | None, typer.Option(help="Write results to this file instead of stdout.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Append to --output and skip the paths already in it.")
    ] = False,
    paths_from: Annotated[
        Path | None, typer.Option(help="Text file of paths (one a line) or CSV (its path column).")
    ] = None,
    explain: Annotated[
        Path | None, typer.Option(help="Folder for a Grad-CAM overlay PNG a face (needs torch weights).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
    fps: Annotated[float, typer.Option(help="Video frames sampled a second.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Faces a forward pass.")] = 32,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Decoding processes (0: in this process); default: the cores (at most 4), or none on 2 cores with --no-detect."
        ),
    ] = None,
    prior: Annotated[
        float | None,
        typer.Option(help="Expected share of fakes, for p_fake (default: validation's, 50% for 140k)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (ONNX Runtime float, else torch: exactly evaluate's scores), onnx, torch, or onnx-int8: "
            "the int8 graph beside the weights, about 2x faster, scores a little off (the default model ships one)."
        ),
    ] = "auto",
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Find the faces in photos and videos and judge each one: a real photo or a GAN-generated face.

    The model judges whole GAN-made faces (StyleGAN-like), **not face swaps** or edits of real photos.
    Each face is cropped like the training faces and scored on its own; **a photo's verdict is that of
    its face with the highest p_fake**. No face found: no verdict and a note (not an error). A video
    (.mp4 .webm .mov ...) is sampled at --fps; its score is the mean p_fake of its top-3 faces.

    Exit codes: 0 every file was read (whatever the verdicts), 1 some files could not be read, 2 usage error.
    """
    from deepfake_detect.core.exceptions import ScanError
    from deepfake_detect.scan.output import scan_paths

    if as_json and as_csv:
        raise ScanError("choose one of --json and --csv")
    summary = scan_paths(
        paths or [], model=model, detect=detect, fallback_whole_image=fallback_whole_image,
        threshold=threshold, fmt="json" if as_json else "csv" if as_csv else None, output=output,
        resume=resume, paths_from=paths_from, explain=explain, report=report, fps=fps,
        batch_size=batch_size, workers=workers, prior=prior, backend=backend, runs_dir=runs_dir,
        progress=not quiet,
    )  # fmt: skip
    if not quiet:
        sys.stderr.write(summary.format_text() + "\n")
    raise typer.Exit(1 if summary.n_failed else 0)


@app.command(
    "export",
    epilog=_example(
        "deepfake-detect export runs/20261125-101500-notebook-cnn-s42 --format onnx",
        "deepfake-detect export RUN --output model.onnx --quantize",
    ),
)
def export_command(
    run: Annotated[str, typer.Argument(help="Run folder, run id, default or a .safetensors file.")],
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    output: Annotated[Path | None, typer.Option(help="Destination; default model.onnx in the run.")] = None,
    quantize: Annotated[
        bool,
        typer.Option(help="Also write an int8 model (static QOperator int8, calibrated on real images)."),
    ] = False,
    data: Annotated[Path | None, typer.Option(help="Data set for parity/calibration images.")] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Export a model to ONNX with its metadata (model.onnx.json) and check it against torch.

    Prints the largest |ONNX - torch| logit difference on real images (the run's validation split);
    fails (exit 1) above 1e-4. `scan --model model.onnx` then runs without torch weights.
    """
    from deepfake_detect.export import export_run

    result = export_run(run, format=format, output=output, quantize=quantize, data=data, runs_dir=runs_dir)
    _out(f"wrote {result['onnx']} and {result['metadata']}")
    _out(f"max |onnx - torch| logit difference: {result['max_abs_diff']:.2e} on {result['parity_images']}")
    if "int8" in result:
        q = result["int8"]
        _out(
            f"wrote {q['onnx']}: max |int8 - float| logit {q['max_abs_diff_vs_float']:.3f}, "
            f"verdict agreement {q['verdict_agreement']:.1%} (calibrated on {q['calibration_images']})"
        )


@app.command(
    epilog=_example(
        "deepfake-detect robustness runs/s4-128-e12 --data ../shared/data/faces140k",
        "deepfake-detect robustness RUN --limit-per-class 20 --json",
    )
)
def robustness(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[Path | None, typer.Option(help="Data set folder; default: the one the run used.")] = None,
    split: Annotated[str, typer.Option(help="Split to perturb and score.")] = "test",
    limit_per_class: Annotated[
        int | None, typer.Option(help="At most this many images a class, of the split and of validation.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    workers: Annotated[
        int | None, typer.Option(help="Threads decoding and perturbing; default: every core.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Torch threads; 1 is faster on cores busy with other jobs.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the per-image noise.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score a split under JPEG, downscaling, blur, noise, crops, brightness and contrast; write
    robustness.json and plots/robustness.png in the run folder.

    Each perturbation is applied to the decoded photo before the model's preprocessing. Accuracy uses the
    stored threshold; recall uses the threshold giving 1% FPR on the clean validation reals.
    """
    from deepfake_detect.evaluation.robustness import format_markdown
    from deepfake_detect.evaluation.robustness import robustness as run_robustness

    result = run_robustness(
        run,
        data,
        split=split,
        limit_per_class=limit_per_class,
        batch_size=batch_size,
        workers=workers,
        threads=threads,
        seed=seed,
        runs_dir=runs_dir,
        progress=not quiet and not as_json,
    )
    _out(json.dumps(result) if as_json else format_markdown(result, str(run)))


@app.command(
    epilog=_example(
        "deepfake-detect report runs/20261125-101500-notebook-cnn-s42",
        "deepfake-detect report RUN --split valid --cost-fp 1 --cost-fn 5",
    )
)
def report(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[Path | None, typer.Option(help="Data set folder; default: the one evaluated.")] = None,
    split: Annotated[str, typer.Option(help="Evaluated split to report on.")] = "test",
    cost_fp: Annotated[
        float | None, typer.Option(help="Cost of calling a real photo fake, for the cost curve (default 1).")
    ] = None,
    cost_fn: Annotated[float | None, typer.Option(help="Cost of missing a fake (default 1).")] = None,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Write a self-contained report.html (and plots/*.png) in the run folder; prints its path.

    Sample faces, learning curves, ROC and PR curves, confusion matrix, score histograms, reliability diagram
    before and after temperature scaling, metrics with 95% CIs, cost curve, config and environment. Runs
    `evaluate` first when the split has not been evaluated.
    """
    from deepfake_detect.reporting.report import report as write_report

    path = write_report(
        run, data, split=split, cost_fp=cost_fp, cost_fn=cost_fn, runs_dir=runs_dir, progress=not quiet
    )
    _out(str(path))


@app.command(
    epilog=_example(
        "deepfake-detect errors runs/20261125-101500-notebook-cnn-s42 --top-k 16",
        "deepfake-detect errors RUN --split valid --json",
    )
)
def errors(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[Path | None, typer.Option(help="Data set folder; default: the one evaluated.")] = None,
    split: Annotated[str, typer.Option(help="Evaluated split to analyse.")] = "test",
    top_k: Annotated[int, typer.Option(help="False positives and false negatives shown, each.")] = 16,
    n_bins: Annotated[int, typer.Option(help="Quantile bins for continuous attributes.")] = 4,
    workers: Annotated[int | None, typer.Option(help="Threads reading images; default: up to 4.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Galleries of the most confident errors and the error rate by brightness, contrast, saturation,
    sharpness, JPEG quality and size, in the run's errors/ folder; prints the bucket table.

    A bucket is flagged "worse" only when its 95% Wilson interval lies above the overall error rate.
    """
    from deepfake_detect.reporting.error_analysis import error_analysis

    result = error_analysis(
        run,
        data,
        split=split,
        top_k=top_k,
        n_bins=n_bins,
        workers=workers,
        runs_dir=runs_dir,
        progress=not quiet and not as_json,
    )
    _out(json.dumps(result.to_dict()) if as_json else result.format_text())


@app.command(
    epilog=_example(
        "deepfake-detect baselines --data ../shared/data/faces140k",
        "deepfake-detect baselines --data DIR --limit-per-class 200 --json",
    )
)
def baselines(
    data: Annotated[Path, typer.Option(help="Data set folder (train/valid/test, real/fake).")],
    limit_per_class: Annotated[
        int | None, typer.Option(help="At most this many images a class in each split.")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="chance, majority, fourier_logreg or colour_logreg (repeatable); default: all."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Threads computing features; default: every core.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of chance scores, regressions and bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
) -> None:
    """Reference baselines on test: chance, majority class, logistic regression on the Fourier spectrum and
    on colour statistics; fitted on train, thresholds chosen on valid (F1 rule)."""
    from deepfake_detect.evaluation.baselines import baselines as run_baselines
    from deepfake_detect.evaluation.baselines import format_table

    result = run_baselines(data, limit_per_class=limit_per_class, methods=method, workers=workers, seed=seed)
    _out(json.dumps(result) if as_json else format_table(result))


@app.command(
    epilog=_example(
        "deepfake-detect serve",
        'deepfake-detect serve --host 0.0.0.0 --port 8080 --api-key "$(openssl rand -hex 16)"',
        "curl -F files=@photo.jpg http://127.0.0.1:8000/v1/scan",
    )
)
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback, set an --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[
        str, typer.Option(help="default, a run folder or id, a .safetensors or an .onnx file.")
    ] = "default",
    workers: Annotated[int, typer.Option(help="Server processes, each with its own copy of the model.")] = 1,
    concurrency: Annotated[
        int, typer.Option(help="Scans a process runs at once; further requests wait their turn.")
    ] = 1,
    threads: Annotated[
        int | None, typer.Option(help="Compute threads a process; default: the cores / --workers.")
    ] = None,
    max_request_mb: Annotated[
        float, typer.Option(help="Largest request (all its files), in MiB; larger gets 413.")
    ] = 32.0,
    max_files: Annotated[int, typer.Option(help="Most files a request; more gets 413.")] = 16,
    max_pixels: Annotated[
        int, typer.Option(help="Largest image, width x height, read from its header; larger gets 413.")
    ] = 50_000_000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="DEEPFAKE_API_KEY",
            show_default=False,
            help="Require 'Authorization: Bearer KEY' on /v1/* (the page, /healthz and /docs stay open).",
        ),
    ] = None,
    keep_uploads: Annotated[
        Path | None, typer.Option(help="Save every upload here (named by content hash); default: none kept.")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="As for scan: auto (evaluate's exact scores) or onnx-int8 (the model's int8 graph, ~2x faster)."
        ),
    ] = "auto",
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Serve the detector over HTTP: a REST API (POST /v1/scan, GET /v1/model, /healthz, docs at /docs) and a
    web page at / to drop photos on and see each face's verdict, p_fake and heatmap.

    The model is loaded once and runs on ONNX Runtime when it works. Uploads are sniffed (not trusted to their
    name), kept in memory and not written anywhere unless --keep-uploads is given. Ctrl-C stops the server.
    """
    from deepfake_detect.serve.app import ServeConfig
    from deepfake_detect.serve.app import serve as run_server

    config = ServeConfig(
        host=host, port=port, model=model, workers=workers, concurrency=concurrency, threads=threads,
        max_request_mb=max_request_mb, max_files=max_files, max_pixels=max_pixels, api_key=api_key,
        keep_uploads=None if keep_uploads is None else str(keep_uploads), backend=backend,
        runs_dir=str(runs_dir),
    )  # fmt: skip
    run_server(config)


def main() -> None:
    """Console entry point: run the app (user errors become one line, see :class:`_UserErrorsAsOneLine`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
