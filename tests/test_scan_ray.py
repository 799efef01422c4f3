"""``scan --ray`` and ``scan_dataset`` on a real Ray cluster started here: a head and two worker nodes.

The cluster is three ``ray start --block`` processes on 127.0.0.1, each in its own process group, with its own
ports and temporary folder, no dashboard and a small object store; it is torn down by killing those process
groups (never ``ray stop``, which would stop every Ray process on the machine). Each worker node has one CPU,
so a scan runs two actors, one a node. Only the tests that use the cluster are slow: the refusals stop before
Ray starts and run in ``make test-fast``.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.scan.parquet import part_files, read_results

RAY = Path(sys.executable).with_name("ray")
WORKER_NODES = 2
OBJECT_STORE_BYTES = 100_000_000  # a node; Ray's minimum is 75 MB
DEFAULT_BACKEND = "onnx-int8"  # the default model's int8 graph ships with it: nothing to export
# The nodes and the command-line drivers: no usage reporting, no cluster named by the caller's environment.
# Token authentication off: a loopback-only cluster, and a token a local ray.init once left in ~/.ray would
# otherwise switch some processes to token mode and not others.
NODE_ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
}


# --------------------------------------------------------------------------------------------- the cluster


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback now (held open together, so never the same one twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Cluster:
    address: str
    root: Path
    nodes: list[subprocess.Popen]


def start_node(root: Path, name: str, role: list[str]) -> subprocess.Popen:
    """``ray start --block`` for one node, in its own process group, its own folder and ports; waits until up."""
    ports = free_ports(6)
    folder = root / name
    folder.mkdir()
    cmd = [
        str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", str(folder),
        "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
        "--node-manager-port", str(ports[0]), "--object-manager-port", str(ports[1]),
        "--runtime-env-agent-port", str(ports[2]), "--metrics-export-port", str(ports[3]),
        "--dashboard-agent-listen-port", str(ports[4]), "--dashboard-agent-grpc-port", str(ports[5]), *role,
    ]  # fmt: skip
    log = folder / "start.log"
    with open(log, "w") as out:
        node = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=NODE_ENV, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray node {name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return node


def kill_group(node: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()


def processes_under(root: Path) -> list[int]:
    """Pids of live processes whose command line names ``root`` (this cluster's own folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(root).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def start_cluster(root: Path, nodes: list[subprocess.Popen]) -> Cluster:
    """A head that does no work (as on a real cluster) and the worker nodes the actors run on."""
    (head_port,) = free_ports(1)
    head = ["--head", "--port", str(head_port)]  # no Ray Client server: ray[client] is not installed
    nodes.append(start_node(root, "head", [*head, "--include-dashboard", "false", "--num-cpus", "0"]))
    for k in range(WORKER_NODES):
        nodes.append(start_node(root, f"w{k}", ["--address", f"127.0.0.1:{head_port}", "--num-cpus", "1"]))
    return Cluster(f"127.0.0.1:{head_port}", root, nodes)


def tear_down(root: Path, nodes: list[subprocess.Popen]) -> None:
    """Kill each node's process group; then any process still running from this cluster's folder."""
    for node in nodes:
        kill_group(node)
    # Workers a raylet started outside its group exit when it dies; wait for them, then make sure.
    deadline = time.monotonic() + 20
    while processes_under(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in processes_under(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    # Short: Ray puts Unix sockets under it, and a socket path may not exceed 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    nodes: list[subprocess.Popen] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # this process is a driver too: the nodes' mode
        env.delenv("RAY_ADDRESS", raising=False)
        try:
            yield start_cluster(root, nodes)
        finally:
            tear_down(root, nodes)


# ------------------------------------------------------------------------------------------------ the data


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """203 framed face crops (small random images), one file that is not an image and an empty one."""
    root = tmp_path_factory.mktemp("crops")
    folder = root / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(203):
        side = 40 if i % 5 else 24  # some smaller than the model's frame: rows with a note
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"c{i:03d}.png")
    (folder / "zz_not_an_image.jpg").write_bytes(b"not a jpeg at all")
    (folder / "zz_empty.png").write_bytes(b"")
    more = root / "bucket"  # read through pyarrow.fs by file:// URL, as an s3:// prefix would be
    more.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(more / f"u{i}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory, face_photo) -> Path:
    """80 photos of one face, each turned, scaled and cropped differently, for face finding (detect=True)."""
    folder = tmp_path_factory.mktemp("photos")
    image = Image.fromarray(face_photo)
    rng = np.random.default_rng(1)
    for i in range(80):
        turned = image.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
        side = int(rng.integers(320, 480))
        x, y = (int(v) for v in rng.integers(0, 32, 2))
        turned.crop((x, y, x + 480, y + 480)).resize((side, side)).save(folder / f"p{i:02d}.jpg", quality=92)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, untrained_checkpoint) -> Path:
    # An untrained network whose last layer is amplified just enough that p_fake spreads over noise crops
    return untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", gain=30)


def sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: row["path"])


def assert_same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    """Row for row: the same paths, errors, notes, verdicts, boxes and points; p_fake and logits within 1e-6."""
    assert [r["path"] for r in ray_rows] == [r["path"] for r in local_rows]
    for got, want in zip(ray_rows, local_rows, strict=True):
        assert abs((got["p_fake"] or 0.0) - (want["p_fake"] or 0.0)) <= 1e-6, got["path"]
        assert len(got["faces"]) == len(want["faces"]), got["path"]
        for face, local_face in zip(got["faces"], want["faces"], strict=True):
            for key in ("p_fake", "logit"):
                assert abs(face[key] - local_face[key]) <= 1e-6, got["path"]
            assert {**face, "p_fake": 0, "logit": 0} == {**local_face, "p_fake": 0, "logit": 0}, got["path"]
        assert {**got, "p_fake": 0, "faces": 0} == {**want, "p_fake": 0, "faces": 0}, got["path"]


# ----------------------------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_a_cluster_scan_gives_the_local_scan_row_for_row(cluster, crops, checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(crops)  # relative paths: the rows must keep them as given, though actors run elsewhere
    cache = tmp_path / "onnx"
    inputs = ["crops", "crops/missing.png"]
    urls = [(crops / "bucket").as_uri(), (crops / "bucket" / "gone.png").as_uri()]
    listed = tmp_path / "list.txt"  # --paths-from, with a path and a URL
    listed.write_text(f"{inputs[1]}\n{urls[1]}\n")
    out = tmp_path / "scan.parquet"

    summary = dd.scan_dataset(
        [inputs[0], urls[0]], paths_from=listed, output=out, model=checkpoint, detect=False,
        address=cluster.address, onnx_cache=cache, progress=False,
    )  # fmt: skip

    det = dd.load_detector(checkpoint, onnx_cache=cache)
    local = sorted_rows(det.scan(inputs, detect=False, workers=0))
    rows = read_results(out)
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(local) + 5  # one row a file: no duplicate, none lost
    assert_same_rows(sorted_rows([by_path[row["path"]] for row in local]), local)
    assert len({round(row["p_fake"], 6) for row in local if row["p_fake"] is not None}) > 150  # scores differ
    assert {row["error"] for row in local if row["error"]} >= {"not a recognised image format"}
    assert sum(bool(row.get("note")) for row in local) > 30  # the small crops' note, in both

    # The URL rows: each file's row is the local row of the same file, under its URL.
    local_urls = det.scan([str(crops / "bucket")], detect=False, workers=0)
    for row in local_urls:
        got = by_path[Path(row["path"]).as_uri()]
        assert_same_rows([{**got, "path": row["path"]}], [row])
    assert by_path[urls[1]]["error"].startswith("cannot open") and by_path[urls[1]]["model"] is not None

    assert (summary.n_files, summary.n_errors, summary.n_skipped, summary.actors) == (len(rows), 4, 0, 2)
    assert summary.n_faces == sum(len(row["faces"]) for row in rows)
    assert summary.n_parts == len(part_files(out)) >= 4 * summary.actors  # fine parts: both actors busy
    assert summary.images_per_second > 0


def first_part(folder: Path, timeout: float, process: subprocess.Popen | None = None) -> int:
    """Wait until ``folder`` holds a complete part; the number of parts then."""
    deadline = time.monotonic() + timeout
    while not part_files(folder):
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            raise AssertionError(f"no part was written to {folder}")
        time.sleep(0.02)
    return len(part_files(folder))


@pytest.mark.slow
def test_a_worker_killed_mid_scan_has_its_task_retried_and_loses_nothing(cluster, photos, tmp_path):
    """The call the killed actor was running runs again: a task of this job, on that actor, a later attempt.

    Read from Ray's private ``ray._private.state`` (the actor table and the task events in the cluster's
    control store): the public state API, ``ray.util.state``, serves the same records through the dashboard,
    which these nodes do not run (the issue rules it out). Ray is pinned to 2.60, where these calls exist.
    """
    import ray

    out = tmp_path / "faces.parquet"
    killed: dict = {}

    def kill_an_actor() -> None:
        """SIGKILL one scanning actor's process once the first part is written, while parts are left."""
        killed["parts_before"] = first_part(out, timeout=180)
        actors = [a for a in ray._private.state.actors().values() if "PartScanner" in a["ActorClassName"]]
        victim = next(a for a in actors if a["State"] == "ALIVE")
        os.kill(victim["Pid"], signal.SIGKILL)
        killed["actor"] = victim["ActorID"]

    ray.init(
        address=cluster.address, log_to_driver=False
    )  # scan_dataset joins this session and leaves it open
    try:
        killer = threading.Thread(target=kill_an_actor, daemon=True)
        killer.start()
        summary = dd.scan_dataset(
            [str(photos)], output=out, backend=DEFAULT_BACKEND, rows_per_part=4, progress=False
        )
        killer.join(timeout=5)
        assert "actor" in killed, "no actor was killed"
        assert killed["parts_before"] < summary.n_parts == math.ceil(80 / 4)  # killed mid-scan
        assert ray._private.state.actors()[killed["actor"]]["NumRestarts"] >= 1
        # The call the dead actor was running ran again: a task of this job on the killed actor, a later
        # attempt (events are flushed to the control store every second or so).
        job, actor = ray.get_runtime_context().get_job_id(), killed["actor"]
        deadline, retried = time.monotonic() + 30, []
        while not retried and time.monotonic() < deadline:
            retried = [
                event for event in ray._private.state.state._get_all_task_events()
                if event.attempt_number > 0 and event.job_id.hex() == job
                and event.task_info.actor_id.hex() == actor and "PartScanner" in event.task_info.name
            ]  # fmt: skip
            time.sleep(0.5)
        assert retried, f"no task of job {job} on the killed actor {actor} was retried"
    finally:
        ray.shutdown()

    rows = sorted_rows(read_results(out))
    assert [row["path"] for row in rows] == sorted(str(p) for p in photos.iterdir())  # complete, no duplicate
    assert summary.n_files == 80  # the dead attempt returned nothing: its part is counted once
    det = dd.load_detector("default", backend=DEFAULT_BACKEND)
    local = sorted_rows(det.scan([str(photos)], workers=0))
    assert_same_rows(rows, local)
    faces = [face for row in local for face in row["faces"]]
    assert len(faces) >= 80 and all(len(face["quad"]) == 4 for face in faces)  # landmarks framing throughout


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepfake_detect", "scan", *args]


@pytest.mark.slow
def test_a_killed_driver_resumed_finishes_the_scan_without_duplicates(cluster, photos, tmp_path):
    out = tmp_path / "resumed.parquet"
    env = {**NODE_ENV, "RAY_ADDRESS": cluster.address}  # the command joins the cluster RAY_ADDRESS names
    args = [str(photos), "--ray", "--output", str(out), "--backend", DEFAULT_BACKEND]
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(cli(*args, "-q"), env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
        try:
            parts_before = first_part(out, timeout=240, process=driver)
            running = driver.poll() is None
        except AssertionError as err:
            raise AssertionError(f"{err}:\n{(tmp_path / 'first.log').read_text()[-3000:]}") from None
        finally:
            kill_group(driver)
    assert running, (tmp_path / "first.log").read_text()[-3000:]
    assert 0 < parts_before < 8  # 80 photos, 2 actors: 8 parts of 10

    done = subprocess.run(cli(*args, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = [line for line in done.stderr.splitlines() if line.startswith("scanned ")]
    assert summary and "skipped (already in the output)" in summary[0] and "img/s" in summary[0], done.stderr
    rows = read_results(out)
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == 80 and set(paths) == {str(p) for p in photos.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


@pytest.mark.slow
def test_a_worker_that_cannot_load_the_model_fails_the_scan_with_its_own_one_line_error(cluster, tmp_path):
    """A model the driver loaded but a node cannot (not on a shared disk): the worker's error, not Ray's."""
    import ray

    from deepfake_detect.batch import ray_scan
    from deepfake_detect.core.exceptions import CheckpointError

    job = ray_scan._Job(
        model=str(tmp_path / "only-on-the-driver.safetensors"), backend="torch", abstain=True,
        runs_dir=str(tmp_path), onnx_cache=None, threads=1, output=str(tmp_path / "o.parquet"),
        scan_options={"detect": False}, cwd=str(tmp_path),
    )  # fmt: skip
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        with pytest.raises(
            CheckpointError, match=r"^no model at .*only-on-the-driver.* \(on a Ray worker\)$"
        ):
            ray_scan._run([["a.png"]], job, 1, False, ray_scan.DatasetScanSummary())
        # A scan asked to join another cluster while this process is connected here says where it runs.
        with (
            pytest.warns(UserWarning, match=r"already running in this process, .* not at 127\.0\.0\.1:1 "),
            ray_scan._connected(ray, "127.0.0.1:1", progress=False),
        ):
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the cluster it is connected to, named another way: no warning
            with ray_scan._connected(ray, cluster.address.replace("127.0.0.1", "localhost"), progress=False):
                pass
    finally:
        ray.shutdown()


def test_a_part_that_killed_its_actor_too_often_is_written_as_error_rows(tmp_path):
    """No cluster: the actor class scans here. After MAX_PART_CRASHES dead attempts a part is not scanned."""
    import cv2
    import pyarrow as pa
    import torch

    from deepfake_detect.batch import ray_scan
    from deepfake_detect.scan.parquet import part_name

    for i in range(4):
        Image.new("RGB", (40, 40), (i * 60, 90, 30)).save(tmp_path / f"f{i}.png")
    out = tmp_path / "o.parquet"
    job = ray_scan._Job(
        model="default", backend=DEFAULT_BACKEND, abstain=True, runs_dir=str(tmp_path), onnx_cache=None,
        threads=1, output=str(out), scan_options={"detect": False}, cwd=str(tmp_path),
    )  # fmt: skip
    poison, fine = ["f0.png", "f1.png"], ["f2.png", "f3.png"]
    out.mkdir()
    (out / f".{part_name(poison)}.attempts.tmp").write_text("f0.png\n" * ray_scan.MAX_PART_CRASHES)
    (out / f".{part_name(fine)}.attempts.tmp").write_text("f2.png\n")  # one crash: scanned again

    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        counts = ray_scan.PartScanner(job)(pa.table({"paths": [poison, fine]}))
    finally:  # the actor sets its thread counts: give this process its own back
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])

    assert counts["errors"].tolist() == [2, 0] and counts["files"].tolist() == [2, 2]
    rows = {row["path"]: row for row in read_results(out)}
    assert set(rows) == {*poison, *fine}
    for path in poison:
        assert rows[path]["error"] == (
            f"the Ray worker scanning this file's part (2 files from f0.png) died {ray_scan.MAX_PART_CRASHES} "
            "times: one of those files crashes the decoder; scan them without --ray to find which"
        )
    assert all(rows[path]["error"] is None and rows[path]["verdict"] for path in fine)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the markers are gone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "o.jsonl"], "--ray writes a folder of Parquet parts: give --output NAME.parquet"),
        (
            ["--output", "o.parquet", "--json"],
            "--ray writes Parquet parts to --output NAME.parquet, not --json",
        ),
        (["--output", "o.parquet", "--explain", "heat"], "--explain and --report cannot be used with --ray"),
        (
            ["--output", "s3://bucket/o.parquet"],
            "--ray writes its parts to a folder every node shares, not to",
        ),
        (
            ["clip.mp4", "--output", "o.parquet"],
            "videos are not scanned under --ray (1 found, e.g. clip.mp4)",
        ),
        (["--output", "o.parquet", "--ray-actors", "0"], "--ray-actors must be at least 1, got 0"),
        (["--output", "o.parquet", "--workers", "2"], "--workers and --fps do not apply under --ray"),
        (["--output", "o.parquet", "--fps", "1"], "--workers and --fps do not apply under --ray"),
    ],
)
def test_what_ray_cannot_do_stops_before_any_work_with_one_line(args, message, tmp_path, monkeypatch):
    """Refused before Ray starts: no cluster, so these run in ``make test-fast``."""
    import ray
    from typer.testing import CliRunner

    from deepfake_detect.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["scan", "a.png", "--ray", *args])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.parquet").exists()
    assert not ray.is_initialized()


def test_ray_address_without_ray_is_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    from deepfake_detect.cli import app

    result = CliRunner().invoke(app, ["scan", "x.png", "--ray-address", "10.0.0.1:6379"])
    assert result.exit_code == 2 and result.stderr == "error: --ray-address and --ray-actors need --ray\n"


@pytest.mark.slow
def test_without_ray_the_command_says_what_to_install_in_one_line(crops, tmp_path, run_without):
    out = tmp_path / "o.parquet"
    done = run_without("ray", "scan", str(crops / "crops"), "--ray", "--output", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: scan --ray needs the optional 'ray' dependencies: pip install 'deepfake-detect[ray]'"
    ]
    assert not out.exists()


def test_the_old_import_path_of_the_ray_driver_still_works_with_a_deprecation_warning():
    from deepfake_detect import batch

    with pytest.warns(DeprecationWarning, match="moved to deepfake_detect.batch.scan_dataset"):
        from deepfake_detect.scan.ray_scan import scan_dataset
    with pytest.warns(DeprecationWarning, match="moved to deepfake_detect.batch.DatasetScanSummary"):
        from deepfake_detect.scan.ray_scan import DatasetScanSummary
    assert scan_dataset is batch.scan_dataset is dd.scan_dataset
    assert DatasetScanSummary is batch.DatasetScanSummary
    with pytest.raises(ImportError):
        from deepfake_detect.scan.ray_scan import no_such_name  # noqa: F401
