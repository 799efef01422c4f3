"""Commands that train and judge runs: ``train``, ``evaluate``, ``robustness``, ``report``, ``errors``, ``baselines``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli._app import RunsDir, _example, _out, app


@app.command(
    epilog=_example(
        "deepfake-detect train --data ../shared/data/faces140k --model notebook-cnn --epochs 5",
        "deepfake-detect train --data DIR --config my.toml --set optimizer=adamw --set weight_decay=0.05",
        "deepfake-detect train --data faces140k --data sources/sd21-sdfd:2 --data sources/utkface",
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 deepfake-detect train --data DIR --set tracking=mlflow",
    )
)
def train(
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="Data set folder (train/valid/test, real/fake). Repeat for a data mix, each PATH[:WEIGHT]: "
            "a source may hold one class; classes are drawn half and half, by weight within a class. "
            "photos:PATH is a folder of whole photos: each one's face is found and framed as scan frames it. "
            "real:PATH or fake:PATH takes that one class of a folder (reported as NAME-real or NAME-fake)."
        ),
    ] = None,
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
        data=data[0] if data and len(data) == 1 else data or None,  # one --data: the one-folder string
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

        resume, cfg = resume_config(
            resume, runs_dir=runs_dir or "runs", file=config, flags=flags, sets=set_, env=os.environ
        )
    else:
        # DEEPFAKE_DATA when --data is not given, MLFLOW_TRACKING_URI when tracking_uri is not
        cfg = load_config(config, flags, set_, env=os.environ)
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
        "deepfake-detect evaluate RUN --data ../shared/data/faces140k --data ../shared/data/sources/utkface",
        "deepfake-detect evaluate RUN --split valid --launder --launder-seed 0",
    )
)
def evaluate(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[
        list[str] | None,
        typer.Option(help="Data set folder (repeatable: a mix, one row per source); default: the run's."),
    ] = None,
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
    save_threshold: Annotated[
        bool, typer.Option("--save-threshold", help="Store the chosen threshold in the model.")
    ] = False,
    launder: Annotated[
        bool,
        typer.Option(
            help="Launder every image first (long side 128-1024 px, then JPEG q30-95) and write "
            "the results to the clean files' names plus _laundered (JSON, Markdown, scores CSV); the clean "
            "files are left alone."
        ),
    ] = False,
    launder_seed: Annotated[
        int,
        typer.Option(
            "--launder-seed", "--seed", help="Laundering seed (with --launder); --seed: its old name."
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score a split with the threshold chosen on validation: metrics, 95% bootstrap CIs, report, confusion,
    and one row per data source.

    Rules: the stored F1-optimal threshold by default; --cost-fp/--cost-fn pick the minimum expected cost;
    --target-fpr caps the false-positive rate. Cost and FPR thresholds are chosen on the validation split.
    """
    from deepfake_detect.evaluation.evaluate import evaluate as run_evaluation
    from deepfake_detect.evaluation.evaluate import format_markdown

    result = run_evaluation(
        run,
        data or None,
        split=split,
        cost_fp=cost_fp,
        cost_fn=cost_fn,
        target_fpr=target_fpr,
        prior=prior,
        save_threshold=save_threshold,
        launder_seed=launder_seed if launder else None,
        runs_dir=runs_dir,
        progress=not quiet and not as_json,
    )
    if as_json:
        _out(json.dumps(result))
    else:
        _out(format_markdown(result, str(run)))


@app.command(
    epilog=_example(
        "deepfake-detect robustness runs/s4-128-e12 --data ../shared/data/faces140k",
        "deepfake-detect robustness RUN --limit-per-class 20 --json",
    )
)
def robustness(
    run: Annotated[str, typer.Argument(help="Run folder, or a run id under --runs-dir.")],
    data: Annotated[
        list[str] | None, typer.Option(help="Data set folder (repeatable: a mix); default: the run's.")
    ] = None,
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
        data or None,
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
    data: Annotated[
        list[str] | None,
        typer.Option(help="Data set folder (repeatable: a mix); default: the evaluated ones."),
    ] = None,
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
    before and after temperature scaling, metrics with 95% CIs, one row per data source, the laundered
    evaluation when `evaluate --launder` wrote one, cost curve, config and environment. Runs `evaluate` first
    when the split has not been evaluated.
    """
    from deepfake_detect.reporting.report import report as write_report

    path = write_report(
        run,
        data or None,
        split=split,
        cost_fp=cost_fp,
        cost_fn=cost_fn,
        runs_dir=runs_dir,
        progress=not quiet,
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
    data: Annotated[
        list[str] | None,
        typer.Option(help="Data set folder (repeatable: a mix); default: the evaluated ones."),
    ] = None,
    split: Annotated[str, typer.Option(help="Evaluated split to analyse.")] = "test",
    top_k: Annotated[int, typer.Option(help="False positives and false negatives shown, each.")] = 16,
    n_bins: Annotated[int, typer.Option(help="Quantile bins for continuous attributes.")] = 4,
    workers: Annotated[int | None, typer.Option(help="Threads reading images; default: up to 4.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Galleries of the most confident errors and the error rate by brightness, contrast, saturation,
    sharpness, JPEG quality, size and (on a data mix) source, in the run's errors/ folder; prints the bucket
    table.

    A bucket is flagged "worse" only when its 95% Wilson interval lies above the overall error rate.
    """
    from deepfake_detect.reporting.error_analysis import error_analysis

    result = error_analysis(
        run,
        data or None,
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
    "calibrate-abstention",
    epilog=_example(
        "deepfake-detect calibrate-abstention runs/20261125-101500-notebook-cnn-s42",
        "deepfake-detect calibrate-abstention RUN --precision 0.995 --json",
        "deepfake-detect calibrate-abstention default --data ../shared/data/faces140k --output band.safetensors",
    ),
)
def calibrate_abstention(
    run: Annotated[str, typer.Argument(help="Run folder, run id, default or a .safetensors file.")],
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="Data set folder whose valid split is scored (repeatable: a mix); default: the run's."
        ),
    ] = None,
    precision: Annotated[
        float | None,
        typer.Option(
            help="Precision each decided verdict must reach (default: the run's abstain_precision, 0.99)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the weights with the band here instead of rewriting them.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Choose a model's "uncertain" band on its validation split and store it with the weights.

    The validation images are scored clean and laundered once (seed 0: random resize, then JPEG q30-95), and
    the band around the stored threshold is the narrowest one outside which each verdict, real or fake, reaches
    the target precision on them. Training does this by itself; this command is for older runs and the shipped
    model. Only the metadata is rewritten: the tensors and their hash do not change. `scan` and `serve` then say
    "uncertain" inside the band (`--no-abstain` turns it off).
    """
    from deepfake_detect.evaluation.abstain import calibrate_abstention as fit_band

    result = fit_band(
        run, data or None, target_precision=precision, output=output, runs_dir=runs_dir,
        progress=not quiet and not as_json,
    )  # fmt: skip
    if as_json:
        _out(json.dumps(result))
        return
    lower, upper = result["abstain_lower_logit"], result["abstain_upper_logit"]
    fitted = result["abstain_validation"]
    _out(
        f'"real" below logit {_end(lower)}, "fake" from {_end(upper)}, "uncertain" in between '
        f"(threshold {result['threshold_logit']:.4f}); decides {result['abstain_coverage']:.1%} of "
        f"{fitted['n']} validation faces ({fitted['n_laundered']} laundered) at precision "
        f"{result['abstain_target_precision']:g}; written into {result['weights']}"
    )


def _end(logit: float | None) -> str:
    """A band end for the terminal: None decides nothing."""
    return "never" if logit is None else f"{logit:.4f}"
