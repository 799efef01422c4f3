"""The Ray scan's overhead on one machine: ``scan`` against ``scan --ray`` with 1 and 2 actors (issue 14).

Scans the images under ``--data`` (the 10,731 files of ``faces140k/train``) with ``--no-detect``, all in one
run, into a ``.parquet`` folder each time:

* the local scan (``scan_paths``: what ``deepfake-detect scan DIR --no-detect --output X.parquet`` runs);
* ``scan_dataset`` on a Ray instance started here on this machine's cores, with 1 actor holding every core
  (its ONNX threads) and with one actor a core.

Each figure is end to end (model loading, actor start-up, decoding, scoring, writing the parts); every file is
read once before the first timed row, so that each row finds the files in the page cache (else the first row,
the local scan, would pay the disk for all of them); the Ray instance is started once, before the Ray rows, and
its start-up is reported apart. The Ray rows are checked
against the local rows (the largest p_fake difference, the verdicts). A section with the machine, commit and
date replaces the previous one in benchmarks/RESULTS.md. Run it on a quiet machine:

    python benchmarks/bench_ray.py --data ../shared/data/faces140k/train
    python benchmarks/bench_ray.py --limit 300 --no-write          # a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import deepfake_detect as dd
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.scan.inputs import iter_inputs
from deepfake_detect.scan.output import scan_paths
from deepfake_detect.scan.parquet import read_results
from screen_recipes import write_section

BEGIN, END = "<!-- ray-scan:begin -->", "<!-- ray-scan:end -->"


def _one_machine_verdict(rows: list[dict], local: float, cores: int) -> str:
    """What the Ray rows say about one machine, from the measured ratios (not a fixed claim)."""
    ratios = {row["setting"]: row["files"] / row["seconds"] / local for row in rows[1:]}
    best_setting = max(ratios, key=ratios.get)
    worst_setting = min(ratios, key=ratios.get)
    costs = (
        "Ray adds a driver, a raylet and an object store on the same cores, a start-up of each actor (a Python "
        "process that imports torch and ONNX Runtime and loads the model, paid once a job) and the scheduling "
        "of each part"
    )
    if ratios[best_setting] <= 1.0:
        return (
            f"On {cores} cores Ray is not faster (best {ratios[best_setting]:.2f}x the local scan): {costs}."
        )
    return (
        f"On {cores} cores, {best_setting} ran at {ratios[best_setting]:.2f}x the local scan and "
        f"{worst_setting} at {ratios[worst_setting]:.2f}x. The gain is not Ray's: the local scan decodes and "
        "scores in turn in one process (on 2 cores decode workers cost more in pickling than they save, see "
        "`scan.default_workers`), while two single-thread actors overlap one's decoding with the other's "
        f"scoring. Against that, {costs}, which is what the one-actor row pays."
    )


def files_under(folder: Path, limit: int | None) -> list[str]:
    """The scan's inputs: the image files under ``folder`` in the order ``scan`` walks them."""
    files = list(iter_inputs([str(folder)]))
    return files[:limit] if limit else files


def warm_up(files: list[str]) -> float:
    """Read every file once, so that every timed row reads them from the page cache; the seconds it took."""
    start = time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    return time.perf_counter() - start


def local_row(files: list[str], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    summary = scan_paths(
        files, output=out, model=args.model, backend=args.backend, detect=False, progress=False
    )
    seconds = time.perf_counter() - start
    return {
        "setting": "local scan (scan_paths, decoding in-process)",
        "files": summary.n_scanned,
        "seconds": seconds,
    }


def ray_row(
    files: list[str], out: Path, actors: int, threads: int, args: argparse.Namespace
) -> dict[str, Any]:
    start = time.perf_counter()
    summary = dd.scan_dataset(
        files, output=out, model=args.model, backend=args.backend, detect=False, actors=actors,
        threads_per_actor=threads, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {
        "setting": f"Ray Data, {actors} actor(s) x {threads} thread(s)",
        "files": summary.n_files,
        "seconds": seconds,
        "job_seconds": summary.seconds,
        "parts": summary.n_parts,
    }


def agreement(local: Path, ray: Path) -> dict[str, Any]:
    """How the Ray rows compare with the local rows of the same files."""
    want = {row["path"]: row for row in read_results(local)}
    got = {row["path"]: row for row in read_results(ray)}
    assert got.keys() == want.keys(), "the Ray scan did not write one row a file"
    diffs = [abs((got[p]["p_fake"] or 0.0) - (want[p]["p_fake"] or 0.0)) for p in want]
    return {
        "max_p_fake_diff": max(diffs, default=0.0),
        "same_verdicts": all(got[p]["verdict"] == want[p]["verdict"] for p in want),
    }


def section(
    rows: list[dict[str, Any]], checks: list[dict[str, Any]], ray_start: float, warm: float, args
) -> str:
    cores = available_cores()
    local = rows[0]["files"] / rows[0]["seconds"]
    lines = [
        f"`python benchmarks/bench_ray.py --data {args.data}` on {environment_info(1)['cpu']}, {cores} cores; "
        f"commit {code_version()}; {datetime.date.today()}; ray {importlib.metadata.version('ray')}, "
        f"onnxruntime {importlib.metadata.version('onnxruntime')}. Model {args.model}, backend {args.backend}, "
        f"--no-detect, batch 32; {rows[0]['files']:,} files; every figure end to end (model loading, actor "
        "start-up, decoding, scoring, Parquet parts), each reading the files from the page cache (all read "
        f"once before the first row, {warm:.1f} s, not counted). The Ray instance ran on this machine's "
        f"cores, started once before the Ray rows ({ray_start:.1f} s, not counted).",
        "",
        "| setting | img/s | ratio to the local scan | wall s | of which the Ray job s | parts |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        rate = row["files"] / row["seconds"]
        job = f"{row['job_seconds']:.1f}" if "job_seconds" in row else "—"
        lines.append(
            f"| {row['setting']} | {rate:.1f} | {rate / local:.2f} | {row['seconds']:.1f} | {job} "
            f"| {row.get('parts', '—')} |"
        )
    worst = max(check["max_p_fake_diff"] for check in checks)
    same = all(check["same_verdicts"] for check in checks)
    lines += [
        "",
        f"Every Ray row matched the local row of its file: largest |Δp_fake| {worst:.1e}, verdicts "
        f"{'identical' if same else 'NOT identical'}. {_one_machine_verdict(rows, local, cores)} What Ray buys "
        "is more machines: each node runs its own actors (its CPUs divided by the threads an actor), each "
        "actor decodes and scores its part and writes it to the shared output without sending pixels or "
        "results through the cluster (a part is a list of paths out, a few counts back), so a cluster scans "
        "at about the sum of its nodes' local rates, less the fixed start-up, until the shared storage "
        "(NFS, S3) or the driver's listing of the inputs becomes the limit.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces140k/train"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="auto", help="as scan --backend (default: the float ONNX graph)")
    parser.add_argument("--limit", type=int, default=None, help="scan only the first N files (smoke tests)")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    args = parser.parse_args()
    import ray

    files = files_under(args.data, args.limit)
    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dd.load_detector(args.model, backend=args.backend)  # the ONNX export, once, outside every timing
        warm = warm_up(files)  # the same page cache for every row, the first one included
        rows = [local_row(files, folder / "local.parquet", args)]
        start = time.perf_counter()
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        checks = []
        try:
            for actors, threads in ((1, cores), (min(2, cores), max(1, cores // 2))):
                out = folder / f"ray-{actors}.parquet"
                rows.append(ray_row(files, out, actors, threads, args))
                checks.append(agreement(folder / "local.parquet", out))
                print(rows[-1], checks[-1], flush=True)
        finally:
            ray.shutdown()
    text = section(rows, checks, ray_start, warm, args)
    print(text)
    if not args.no_write:
        write_section(text, BEGIN, END, "Scanning on Ray (issue 14): the overhead on one machine")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
