"""The cost of reading provenance: ``scan --no-detect`` with and without ``--no-provenance``, in the same run.

Scans the JPEGs under ``--data`` (e.g. the 10,731 files of ``faces140k/train``) as ``deepfake-detect scan DIR
--no-detect`` does, alternately with provenance read (the default) and off, ``--rounds`` times each (the
order flips every round, so a machine that speeds up or slows down during the run favours neither), and
reports images a second for each and the slowdown, median and range over the rounds. The issue's bound: at
most 5% slower.

Beside the wall clock, which on busy cores is noisy, it reports what reading costs on its own: the CPU time of
:func:`~deepfake_detect.provenance.read_provenance` over the same files' bytes (already read, as the scan
reads them once for both), and whether c2pa was loaded (it should not be: these files carry no manifest).

Rows are appended to benchmarks/RESULTS.md (``--results``) with the machine, commit and date.

    python benchmarks/bench_provenance.py --data ../shared/data/faces140k/train --rounds 5
    python benchmarks/bench_provenance.py --limit 300 --rounds 1 --results /tmp/check.md   # does it work?
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import deepfake_detect as dd
from bench_scan import RESULTS, jpegs
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.provenance import read_provenance
from deepfake_detect.scan.pipeline import default_workers


def scan_rate(det, files: list[str], *, provenance: bool, workers: int, batch_size: int) -> float:
    """Images a second of one ``scan --no-detect`` pass over ``files``."""
    start = time.perf_counter()
    results = det.iter_scan(
        files, detect=False, workers=workers, batch_size=batch_size, provenance=provenance
    )
    n = sum(1 for _ in results)
    return n / (time.perf_counter() - start)


def read_cost(files: list[str]) -> float:
    """CPU microseconds of :func:`read_provenance` a file (the bytes read beforehand, not timed)."""
    blobs = [Path(f).read_bytes() for f in files]
    start = time.process_time()
    for data in blobs:
        read_provenance(data)
    return 1e6 * (time.process_time() - start) / len(blobs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/faces140k/train")
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=None, help="scan only the first N files")
    parser.add_argument("--rounds", type=int, default=3, help="passes with provenance and without, each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: what scan --no-detect uses")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="Markdown file the rows are appended to"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workers = default_workers(detect=False) if args.workers is None else args.workers
    files = jpegs(args.data, args.limit)
    if not files:
        raise SystemExit(f"no JPEG files under {args.data}")
    det = dd.load_detector(args.model)
    det.scan(files[: args.batch_size], detect=False, workers=0)  # warm-up: graph loaded, caches filled
    rates: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for provenance in (True, False) if r % 2 == 0 else (False, True):
            rate = scan_rate(det, files, provenance=provenance, workers=workers, batch_size=args.batch_size)
            rates[provenance].append(rate)
            print(f"round {r + 1}: provenance {'on ' if provenance else 'off'} {rate:.1f} img/s", flush=True)
    slowdowns = [off / on - 1 for on, off in zip(rates[True], rates[False], strict=True)]
    cost = read_cost(files)
    report(args, det, len(files), workers, rates, slowdowns, cost, "c2pa" in sys.modules)


def report(args, det, n_files, workers, rates, slowdowns, cost_us, c2pa_loaded) -> None:
    env = environment_info(args.threads)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    lines = [
        f"\n## Provenance cost: {det.name} ({args.model}), scan --no-detect, {n_files:,} files of `{args.data}`\n",
        f"Machine: {env['cpu']}, {args.threads} threads, {workers} decode workers, {platform.system()}; commit "
        f"{code_version()}; {time.strftime('%Y-%m-%d')}. {args.rounds} rounds of each, alternating.\n",
        "| setting | img/s (median) | img/s (each round) |",
        "|---|---|---|",
        f"| provenance read (default) | {on:.1f} | {', '.join(f'{r:.1f}' for r in rates[True])} |",
        f"| --no-provenance | {off:.1f} | {', '.join(f'{r:.1f}' for r in rates[False])} |",
        "",
        f"Slowdown with provenance: median {100 * statistics.median(slowdowns):+.1f}% (rounds "
        f"{100 * min(slowdowns):+.1f}% to {100 * max(slowdowns):+.1f}%; the bound is +5%). "
        f"read_provenance alone: {cost_us:.0f} µs CPU a file; c2pa loaded: {'yes' if c2pa_loaded else 'no'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.results, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
