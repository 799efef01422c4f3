"""Load benchmark of ``deepfake-detect serve``: concurrent clients on loopback, latency, throughput and memory.

Starts ``deepfake-detect serve`` in a subprocess on a free loopback port and measures, on real face photos:

* the in-process baseline: ``Detector.scan`` of the same images one at a time, same options (no HTTP);
* 1 client sending sequential requests (the HTTP baseline);
* ``--clients`` concurrent clients (default 16) for ``--duration`` seconds (default 60).

Each request uploads one image to ``POST /v1/scan`` with the API's defaults (face detection on, the model's
default backend; a photo without a face gets no verdict). The load loop stops at the deadline or after
``--max-requests``, whichever comes first. The server's resident memory (VmRSS) is sampled every 0.25 s: at
the start of the load, its peak and at the end. A section with the machine, commit and date is appended to benchmarks/RESULTS.md; each figure
stands beside its ratio to a baseline of the same run.

    python benchmarks/bench_serve.py --data ../shared/data/faces140k/test --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from deepfake_detect.core.runs import code_version, environment_info
from results_md import RESULTS

DEFAULT_DATA = Path(os.environ.get("DEEPFAKE_DATA", "../shared/data/faces140k")) / "test"


def face_photos(folder: Path, limit: int) -> list[Path]:
    """``limit`` JPEGs spread evenly over the sorted files under ``folder`` (so both classes are in)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images under {folder}; pass --data or set DEEPFAKE_DATA")
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(rss_mib(self.pid))
            self.halt.wait(self.interval)


def start_server(args, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepfake_detect", "serve", "--model", args.model, "--port", str(port)]
    command += ["--backend", args.backend]
    if args.threads:
        command += ["--threads", str(args.threads)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see its log")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).raise_for_status()
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the server did not start in 300 s") from None
            time.sleep(0.5)


async def load(url: str, payloads: list[tuple[str, bytes]], clients: int, duration: float, max_requests: int):
    """Run ``clients`` concurrent request loops; returns (latencies in s, errors, wall seconds)."""
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker(offset: int) -> None:
            nonlocal sent
            i = offset
            # Bounded twice: by time and by count, so a fast server cannot make the loop run away.
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                name, data = payloads[i % len(payloads)]
                i += clients
                t0 = time.perf_counter()
                try:
                    answer = await client.post("/v1/scan", files=[("files", (name, data, "image/jpeg"))])
                    if answer.status_code != 200 or answer.json()["results"][0]["error"] is not None:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(k) for k in range(clients)))
        return latencies, errors, time.perf_counter() - start


def in_process_rate(args, paths: list[Path], duration: float) -> float:
    """Images a second of ``Detector.scan`` on the same images, one call an image, same options as the API."""
    import torch

    import deepfake_detect as dd

    if args.threads:
        torch.set_num_threads(args.threads)
    det = dd.load_detector(args.model, backend=args.backend)
    det.scan([paths[0].read_bytes()], fallback_whole_image=True, workers=0)  # warm-up
    payloads = [p.read_bytes() for p in paths]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        det.scan([payloads[n % len(payloads)]], fallback_whole_image=True, workers=0)
        n += 1
    return n / (time.perf_counter() - start)


def summary(latencies: list[float], errors: list[str], wall: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "wall": wall,
        "first_errors": errors[:5],
    }


def machine() -> str:
    return f"{environment_info(1)['cpu']}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of face photos")
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--backend", default="auto", help="serve --backend (default: the model's own default)"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the concurrent load")
    parser.add_argument("--baseline-duration", type=float, default=15.0, help="seconds of each baseline")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop the load after this many")
    parser.add_argument("--images", type=int, default=200, help="distinct photos cycled through")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: the cores)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="a sentence added to the section (e.g. what else ran)")
    args = parser.parse_args()

    paths = face_photos(args.data, args.images)
    payloads = [(p.name, p.read_bytes()) for p in paths]
    load_before = os.getloadavg()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        server = start_server(args, port, log)
        try:
            card = httpx.get(f"{url}/v1/model", timeout=10).json()
            asyncio.run(load(url, payloads, 1, 3.0, 20))  # warm-up: first requests allocate buffers
            inproc = in_process_rate(args, paths, args.baseline_duration)
            single = summary(*asyncio.run(load(url, payloads, 1, args.baseline_duration, args.max_requests)))
            sampler = RssSampler(server.pid)
            sampler.start()
            time.sleep(0.3)
            many = summary(*asyncio.run(load(url, payloads, args.clients, args.duration, args.max_requests)))
            sampler.halt.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(30)
    rss = sampler.samples
    report(args, card, paths, inproc, single, many, rss, load_before, os.getloadavg())


def report(args, card, paths, inproc, single, many, rss, load_before, load_after) -> None:
    start, peak, end = rss[0], max(rss), rss[-1]
    lines = [
        f"\n## Serve load: {args.clients} concurrent clients for {args.duration:.0f} s, `deepfake-detect serve` on loopback\n",
        f"`python benchmarks/bench_serve.py` on {machine()}; commit {code_version()}; "
        f"{time.strftime('%Y-%m-%d')}. Model {card['name']} ({card['version']}) on {card['backend']}, "
        f"1 server process, default threads and concurrency 1. Each request: one photo of `{args.data}` "
        f"({len(paths)} cycled, 256 px JPEG) to `POST /v1/scan` with the defaults (face detection; no verdict "
        f"when no face is found). Clients: one asyncio process with httpx, on the same cores as the server. "
        f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after. {args.note}\n",
        "| measure | value | ratio to baseline |",
        "|---|---|---|",
        f"| in-process `Detector.scan`, one image a call (baseline A) | {inproc:.1f} img/s | 1.00 |",
        f"| 1 client, sequential requests (baseline B) | {single['rps']:.1f} req/s | {single['rps'] / inproc:.2f} of A |",
        f"| {args.clients} clients: throughput | {many['rps']:.1f} req/s | {many['rps'] / single['rps']:.2f} of B, "
        f"{many['rps'] / inproc:.2f} of A |",
        f"| 1 client: latency p50 / p99 | {single['p50']:.1f} / {single['p99']:.1f} ms | 1.00 |",
        f"| {args.clients} clients: latency p50 / p99 | {many['p50']:.1f} / {many['p99']:.1f} ms | "
        f"{many['p50'] / single['p50']:.1f} / {many['p99'] / single['p99']:.1f} of 1 client |",
        f"| {args.clients} clients: requests, errors | {many['requests']:,}, {many['errors']} | |",
        f"| server RSS start / peak / end of the load | {start:.0f} / {peak:.0f} / {end:.0f} MiB | "
        f"end {end / start:.3f} of start, peak {peak / start:.3f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.results, "a") as handle:
        handle.write(text)
    if many["errors"] or single["errors"]:
        print("\n".join(many["first_errors"] + single["first_errors"]), file=sys.stderr)
        raise SystemExit(f"{many['errors'] + single['errors']} requests failed")


if __name__ == "__main__":
    main()
