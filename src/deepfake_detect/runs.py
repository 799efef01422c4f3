"""Run folders: where each training run keeps what made it, and the index that lists them.

``runs/<run-id>/`` holds ``config.json``, ``environment.json``, ``history.csv``, ``metrics.json`` and
``model.safetensors``; ``runs/index.jsonl`` has one line a run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RunError",
    "new_run_dir",
    "resolve_run",
    "environment_info",
    "code_version",
    "append_index",
    "read_index",
    "write_json",
    "read_json",
    "MODEL_FILE",
]

MODEL_FILE = "model.safetensors"
INDEX_FILE = "index.jsonl"
_PACKAGES = ("torch", "numpy", "pillow", "onnxruntime", "scikit-learn", "safetensors", "scipy")


class RunError(ValueError):
    """A run folder or id that cannot be found or used."""


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON readably and atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def new_run_dir(runs_dir: str | Path, model: str, seed: int, run_name: str | None = None) -> Path:
    """Create and return a fresh run folder ``runs_dir/<time>-<model>-s<seed>`` (suffixed when taken)."""
    base = run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-s{seed}"
    root = Path(runs_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        candidate = root / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"cannot create a new run folder under {root}")


def resolve_run(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """Find a run folder from a path or a run id under ``runs_dir`` (a unique prefix is enough)."""
    path = Path(run).expanduser()
    if (path / MODEL_FILE).is_file():
        return path.resolve()
    root = Path(runs_dir).expanduser()
    if (root / str(run) / MODEL_FILE).is_file():
        return (root / str(run)).resolve()
    # A unique prefix of a run id works; a path that led nowhere is not a prefix (glob refuses absolute ones).
    is_id = "/" not in str(run) and not path.is_absolute()
    matches = (
        sorted(p for p in root.glob(f"{run}*") if (p / MODEL_FILE).is_file())
        if root.is_dir() and is_id
        else []
    )
    if len(matches) == 1:
        return matches[0].resolve()
    if len(matches) > 1:
        raise RunError(f"run id {run!r} is ambiguous: {', '.join(p.name for p in matches)}")
    raise RunError(
        f"no run folder with a {MODEL_FILE} at {run!r} or under {root}/; see `deepfake-detect runs list`"
    )


def code_version() -> str:
    """The package version plus the git commit (and ``-dirty``) when running from a checkout."""
    from . import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{__version__}+{commit}{'-dirty' if dirty else ''}" if commit else __version__


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def environment_info(threads: int) -> dict[str, Any]:
    """What the run ran on: Python, library versions, CPU, threads and OS."""
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "packages": versions,
        "torch_threads": threads,
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "code_version": code_version(),
    }


def append_index(runs_dir: str | Path, entry: dict[str, Any]) -> None:
    """Append one run's summary line to ``runs_dir/index.jsonl``."""
    path = Path(runs_dir).expanduser() / INDEX_FILE
    with open(path, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def read_index(runs_dir: str | Path) -> list[dict[str, Any]]:
    """All runs listed in the index whose folders still exist, oldest first."""
    path = Path(runs_dir).expanduser() / INDEX_FILE
    if not path.is_file():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if (Path(runs_dir).expanduser() / e["id"]).is_dir()]


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """Config, metrics and evaluation results of one run, for ``runs show`` and ``runs compare``."""
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {"id": run_dir.name, "path": str(run_dir)}
    for name in ("config", "metrics"):
        if (run_dir / f"{name}.json").is_file():
            summary[name] = read_json(run_dir / f"{name}.json")
    summary["evaluations"] = {
        p.stem.removeprefix("eval_"): read_json(p) for p in sorted(run_dir.glob("eval_*.json"))
    }
    return summary
