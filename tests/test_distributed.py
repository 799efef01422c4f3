"""Data-parallel training with gloo on this CPU: sharding, equivalence with one process, Ctrl-C, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from deepfake_detect.core.config import ConfigError, TrainConfig
from deepfake_detect.data.dataset import EpochShuffle, collate_skip_bad, make_loader
from deepfake_detect.training.distributed import DistContext, session, world_from_env
from deepfake_detect.training.launch import launch
from deepfake_detect.training.train import train

# Largest |w_ddp - w_single| allowed after 12 steps (2 epochs x 6 batches of 8) of notebook-cnn at 32 px. The
# runs differ only in float rounding (two means of 4 averaged vs one mean of 8); Adam scales gradients to
# about lr a step, so the differences stay near float32 epsilon times the weights (observed: 5e-7).
TOLERANCE = 1e-4
COMMON = dict(
    epochs=2, batch_size=8, image_size=32, base_size=40, threads=1, model="notebook-cnn", patience=10
)


@pytest.mark.parametrize("n", [48, 50, 7])
@pytest.mark.parametrize("world", [2, 3])
def test_shards_cover_every_sample_once_per_epoch(n, world):
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            sampler = EpochShuffle(n, seed=42, rank=rank, world_size=world)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        seen = [i for shard in shards for i in shard]
        assert {len(shard) for shard in shards} == {len(shards[0])}  # same number of steps on every rank
        assert sorted(set(seen)) == list(range(n))
        assert len(seen) - n == (-n) % world  # only the padding repeats

        whole = EpochShuffle(n, seed=42)
        whole.set_epoch(epoch)
        order, per_rank = list(whole), 2
        for j in range(len(shards[0]) // per_rank):  # rank batch j lies inside single-process batch j
            global_batch = set((order + order)[j * per_rank * world : (j + 1) * per_rank * world])
            for shard in shards:
                assert set(shard[j * per_rank : (j + 1) * per_rank]) <= global_batch


def test_skip_continues_a_shard_where_it_stopped():
    sampler = EpochShuffle(50, seed=1, rank=1, world_size=2)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_epoch(3, skip=8)
    assert list(sampler) == full[8:] and len(sampler) == len(full) - 8


class _Indices(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 50

    def __getitem__(self, index):
        return torch.zeros(1), 0, index


def _index_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    with session("cpu") as ctx:
        assert ctx.enabled and ctx.backend == "gloo" and ctx.world_size == world
        loader, sampler = make_loader(
            _Indices(), batch_size=ctx.local_batch(8), shuffle=True, seed=42, rank=ctx.rank, world_size=world
        )
        assert loader.collate_fn is collate_skip_bad
        seen = {}
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            seen[epoch] = [idx.tolist() for _, _, idx, _ in loader]
        gathered = [None] * world
        dist.all_gather_object(gathered, seen)
        if ctx.is_main:
            Path(out).write_text(json.dumps(gathered))
    assert not dist.is_initialized()  # session() leaves the group it joined


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_each_rank_of_a_real_process_group_sees_its_share(tmp_path):
    out = tmp_path / "seen.json"
    torch.multiprocessing.spawn(_index_worker, args=(2, _free_port(), str(out)), nprocs=2)
    per_rank = json.loads(out.read_text())
    for epoch in ("0", "1"):
        batches = [per_rank[r][epoch] for r in range(2)]
        assert len(batches[0]) == len(batches[1]) == 7  # ceil(25 / 4) steps on both ranks
        seen = [i for rank in batches for batch in rank for i in batch]
        assert sorted(set(seen)) == list(range(50)) and len(seen) == 50  # 50 divides by 2: no padding
        whole = EpochShuffle(50, seed=42)
        whole.set_epoch(int(epoch))
        assert sorted(batches[0][0] + batches[1][0]) == sorted(list(whole)[:8])


def _cli(data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepfake_detect",
        "train",
        f"--data={data}",
        f"--runs-dir={runs}",
        "--batch-size=8",
        "--image-size=32",
        "--set=base_size=40",
        "--set=threads=1",
        *extra,
        "-q",
    ]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, make_face_dataset):
    data = make_face_dataset(tmp_path / "d", per_class=(24, 6, 6))  # 48 images: 6 full global batches
    single = train(TrainConfig(data=str(data), runs_dir=str(tmp_path / "one"), **COMMON), progress=False)
    cmd = _cli(data, tmp_path / "two", "--epochs=2", "--nproc=2", "--set=patience=10")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = Path(done.stdout.strip().splitlines()[-1])
    environment = json.loads((run / "environment.json").read_text())
    assert environment["world_size"] == 2 and environment["backend"] == "gloo"
    ours, theirs = load_file(run / "model.safetensors"), load_file(single.run_dir / "model.safetensors")
    assert ours.keys() == theirs.keys()
    worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
    print(f"max |w_ddp - w_single| = {worst:.3g}")
    assert worst <= TOLERANCE
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == single.metrics["best_epoch"] and metrics["epochs_run"] == 2
    assert metrics["val"]["roc_auc"] == pytest.approx(single.metrics["val"]["roc_auc"], abs=1e-6)


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_saves(tmp_path, make_face_dataset):
    data = make_face_dataset(tmp_path / "d", per_class=(24, 4, 4))
    cmd = _cli(data, tmp_path / "runs", "--epochs=200", "--nproc=2", "--set=patience=200")
    # A shell that starts a job in the background makes it ignore SIGINT, and Python keeps an inherited
    # SIG_IGN: give the child the default disposition so Ctrl-C reaches it as it would from a terminal.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/history.csv")):
        time.sleep(0.2)
    assert list((tmp_path / "runs").glob("*/history.csv")), "no epoch finished"
    os.kill(proc.pid, signal.SIGINT)  # to the launcher only: it passes the Ctrl-C on to the ranks
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    run = Path(out.strip().splitlines()[-1])
    assert json.loads((run / "metrics.json").read_text())["interrupted"] is True
    assert "Traceback" not in err


def test_bad_setups_fail_before_spawning(tiny_dataset, tmp_path):
    cfg = TrainConfig(data=str(tiny_dataset), runs_dir=str(tmp_path), batch_size=9)
    with pytest.raises(ConfigError, match="batch_size 9 must divide by the 2 processes"):
        launch(cfg, 2)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs 2 GPUs"):
            launch(cfg.replace(batch_size=8, device="cuda"), 2)


def test_environment_is_read_like_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() is None
    with session("cpu") as ctx:
        assert not ctx.enabled and ctx.is_main and ctx.local_batch(8) == 8
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_env() == (3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        world_from_env()
    assert DistContext(world_size=4).local_batch(32) == 8


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 1, reason="no CUDA GPU here: the NCCL path needs one")
def test_nccl_on_gpus(tiny_dataset, tmp_path):
    n = torch.cuda.device_count()
    cfg = TrainConfig(
        data=str(tiny_dataset),
        runs_dir=str(tmp_path),
        device="cuda",
        batch_size=4 * n,
        **{k: v for k, v in COMMON.items() if k not in ("batch_size",)},
    )
    result = launch(cfg, n, progress=False)
    environment = json.loads((result.run_dir / "environment.json").read_text())
    assert environment["backend"] == "nccl" and environment["world_size"] == n


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
