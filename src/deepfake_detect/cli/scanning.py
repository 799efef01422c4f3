"""Commands that use a trained model: ``scan``, ``export``, ``serve``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli._app import RunsDir, _example, _out, app

# The face-finding flags get a panel of their own: in the one Options table, the longest flag
# (--fallback-whole-image) was cut at 80 columns.
FACES_PANEL = "Finding faces"


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
            rich_help_panel=FACES_PANEL,
            help="Find faces (see --framing). --no-detect: each image is already a face crop, like the 140k data.",
        ),
    ] = True,
    framing: Annotated[
        str,
        typer.Option(
            rich_help_panel=FACES_PANEL,
            help="ffhq: BlazeFace and the face mesh, then FFHQ's oriented square (the training framing); dlib: "
            "the same square from dlib's 68 landmarks (slower); box: the Haar cascade's upright box, for "
            "comparison. None falls back to another.",
        ),
    ] = "ffhq",
    fallback_whole_image: Annotated[
        bool,
        typer.Option(
            "--fallback-whole-image",
            rich_help_panel=FACES_PANEL,
            help="Score the whole image when no face is found (default: no verdict).",
        ),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Decision threshold as a p_fake in (0, 1): a two-way cut, so the model's uncertain band does "
            "not apply; default: the model's threshold (and band)."
        ),
    ] = None,
    abstain: Annotated[
        bool,
        typer.Option(
            "--abstain/--no-abstain",
            help="Say 'uncertain' for a face whose score lies in the model's abstention band (chosen on "
            "validation; models without one are two-way anyway). --no-abstain: always real or fake.",
        ),
    ] = True,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance/--no-provenance",
            help="Read each file's metadata (C2PA Content Credentials, offline; XMP, EXIF, PNG text) into its "
            "'provenance'; a declaration of generative AI makes it fake. --no-provenance: pixels only.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object a file.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: one row a face.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write results to this file instead of stdout; NAME.parquet: a folder of Parquet part files."
        ),
    ] = None,
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
    fps: Annotated[
        float | None, typer.Option(help="Video frames sampled a second; default 1. Not with --ray.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Faces a forward pass.")] = 32,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Decoding processes (0: in this process); default: the cores (at most 4), or none on 2 cores with --no-detect. Not with --ray (each Ray actor decodes its own files)."
        ),
    ] = None,
    prior: Annotated[
        float | None,
        typer.Option(help="Expected share of fakes, for p_fake (default: validation's, 50% for 140k)."),
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            help="Largest image, width x height from its header; larger ones are error rows (possible "
            "decompression bombs). Default 90,000,000; at most 178,956,970 (Pillow's own limit).",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (the model's default: its int8 graph where its metadata says so, else the float graph "
            "in ONNX Runtime; either way evaluate's scores), onnx (float), torch, or "
            "onnx-int8: the int8 graph beside the weights, about 2x faster than float, scores a little off."
        ),
    ] = "auto",
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Scan on a Ray cluster (Ray Data, one model a worker) into --output NAME.parquet; inputs may "
            "also be s3:// or gs:// URLs. Photos only; needs the ray extra: pip install deepfake-detect[ray].",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --ray: the cluster to join (host:6379); default $RAY_ADDRESS, else a local one."
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(
            help="With --ray: scanning workers; default the cluster's CPUs when the scan starts (one thread "
            "each). On an autoscaling cluster (a head without CPUs) give it: the default is then too few."
        ),
    ] = None,
) -> None:
    """Find the faces in photos and videos and judge each one: a real photo or a generated face.

    The model judges whole generated faces (GANs, diffusion), **not face swaps** or edits of real photos.
    Each face is cropped like the training faces and scored on its own; **a photo's verdict is that of
    its face with the highest p_fake**. No face found: no verdict and a note (not an error). A video
    (.mp4 .webm .mov ...) is sampled at --fps; its score is the mean p_fake of its top-3 faces.

    Verdicts are real, fake or **uncertain**: a model with an abstention band (chosen on validation, see
    `calibrate-abstention`) says uncertain where its score is a coin toss; --no-abstain turns that off.

    Exit codes: 0 every file was read (whatever the verdicts), 1 some files could not be read, 2 usage error.
    """
    from deepfake_detect.core.exceptions import ScanError
    from deepfake_detect.scan.output import scan_paths

    if as_json and as_csv:
        raise ScanError("choose one of --json and --csv")
    if ray:
        from deepfake_detect.batch.ray_scan import scan_dataset

        if as_json or as_csv:
            raise ScanError("--ray writes Parquet parts to --output NAME.parquet, not --json or --csv")
        if workers is not None or fps is not None:
            raise ScanError(
                "--workers and --fps do not apply under --ray: each Ray actor decodes its own files (set "
                "--ray-actors instead), and videos are not scanned under --ray"
            )
        if ray_actors is not None and ray_actors < 1:
            raise ScanError(f"--ray-actors must be at least 1, got {ray_actors}")
        if explain is not None or report is not None:
            raise ScanError(
                "--explain and --report cannot be used with --ray: scan the few files you want explained or "
                "reported without --ray"
            )
        summary = scan_dataset(
            paths or [], output=output, paths_from=paths_from, model=model, detect=detect, framing=framing,
            fallback_whole_image=fallback_whole_image, threshold=threshold, prior=prior, backend=backend,
            abstain=abstain, batch_size=batch_size, address=ray_address or os.environ.get("RAY_ADDRESS"),
            actors=ray_actors, resume=resume, progress=not quiet, runs_dir=runs_dir, provenance=provenance,
            max_pixels=max_pixels,
        )  # fmt: skip
    elif ray_address is not None or ray_actors is not None:
        raise ScanError("--ray-address and --ray-actors need --ray")
    else:
        summary = scan_paths(
            paths or [], model=model, detect=detect, fallback_whole_image=fallback_whole_image,
            threshold=threshold, fmt="json" if as_json else "csv" if as_csv else None, output=output,
            resume=resume, paths_from=paths_from, explain=explain, report=report, fps=1.0 if fps is None else fps,
            batch_size=batch_size, workers=workers, prior=prior, backend=backend, abstain=abstain,
            runs_dir=runs_dir, framing=framing, provenance=provenance, progress=not quiet, max_pixels=max_pixels,
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
    output: Annotated[
        Path | None,
        typer.Option(
            help="Destination; default <weights stem>.onnx beside the weights (model.onnx in a run folder)."
        ),
    ] = None,
    quantize: Annotated[
        bool,
        typer.Option(
            help="Also write an int8 graph beside the float one, <stem>.int8.onnx (static QOperator int8, calibrated on real images)."
        ),
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
            help="As for scan: auto (the model's default backend, evaluate's scores), onnx, torch or onnx-int8."
        ),
    ] = "auto",
    abstain: Annotated[
        bool,
        typer.Option(
            "--abstain/--no-abstain",
            help="As for scan: 'uncertain' inside the model's abstention band; --no-abstain: always real or fake.",
        ),
    ] = True,
    framing: Annotated[
        str,
        typer.Option(help="As for scan: ffhq (BlazeFace and the mesh, FFHQ's square), dlib or box (Haar)."),
    ] = "ffhq",
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Serve the detector over HTTP: a REST API (POST /v1/scan, GET /v1/model, /healthz, docs at /docs) and a
    web page at / to drop photos on and see each face's verdict, p_fake and heatmap.

    The model is loaded once and runs on ONNX Runtime when it works. Uploads are sniffed (not trusted to their
    name), kept in memory and not written anywhere unless --keep-uploads is given. Ctrl-C stops the server.
    """
    from deepfake_detect.serve import ServeConfig
    from deepfake_detect.serve import serve as run_server

    config = ServeConfig(
        host=host, port=port, model=model, workers=workers, concurrency=concurrency, threads=threads,
        max_request_mb=max_request_mb, max_files=max_files, max_pixels=max_pixels, api_key=api_key,
        keep_uploads=None if keep_uploads is None else str(keep_uploads), backend=backend, abstain=abstain,
        runs_dir=str(runs_dir), framing=framing,
    )  # fmt: skip
    run_server(config)
