"""Run folders: where each training run keeps what made it, and the index that lists them.

:class:`RunDir` owns every file name inside a run folder and how a run is found (a path, a run id, or a unique
prefix of one); no other module spells those names. ``runs/index.jsonl`` has one line a run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, ClassVar

from deepfake_detect.core.exceptions import RunError
from deepfake_detect.core.version import __version__

__all__ = [
    "RunDir",
    "RunError",
    "resolve_run",
    "environment_info",
    "code_version",
    "append_index",
    "read_index",
    "write_json",
    "read_json",
]

INDEX_FILE = "index.jsonl"
# Beside the run folders: the local MLflow store used when tracking=mlflow is given no tracking URI, and the
# folder of its artifacts (see deepfake_detect.training.tracking).
MLFLOW_STORE, MLFLOW_ARTIFACTS = "mlflow.db", "mlartifacts"
_PACKAGES = ("torch", "numpy", "pillow", "onnxruntime", "scikit-learn", "safetensors", "scipy")


@dataclass(frozen=True)
class RunDir:
    """One run folder and the names of the files in it.

    Examples
    --------
    >>> run = RunDir(Path("runs/20261125-120000-notebook-cnn-s42"))
    >>> run.model.name, run.eval_json("test").name, run.scores_csv("valid").name
    ('model.safetensors', 'eval_test.json', 'scores_valid.csv')
    >>> run.eval_json("test", laundered=True).name
    'eval_test_laundered.json'
    """

    path: Path

    MODEL: ClassVar[str] = "model.safetensors"
    CONFIG: ClassVar[str] = "config.json"
    ENVIRONMENT: ClassVar[str] = "environment.json"
    HISTORY: ClassVar[str] = "history.csv"
    METRICS: ClassVar[str] = "metrics.json"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    REPORT: ClassVar[str] = "report.html"
    PLOTS: ClassVar[str] = "plots"
    ROBUSTNESS: ClassVar[str] = "robustness.json"
    ERRORS: ClassVar[str] = "errors"
    MLFLOW_RUN: ClassVar[str] = "mlflow_run.json"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> Path:
        """The weights, ``model.safetensors``: a run folder is complete once it exists."""
        return self.path / self.MODEL

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def environment(self) -> Path:
        return self.path / self.ENVIRONMENT

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoints(self) -> Path:
        """Folder of the resumable training states, while a run is unfinished or was interrupted."""
        return self.path / self.CHECKPOINTS

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def plots(self) -> Path:
        return self.path / self.PLOTS

    @property
    def robustness(self) -> Path:
        return self.path / self.ROBUSTNESS

    @property
    def errors(self) -> Path:
        """Folder written by the error analysis."""
        return self.path / self.ERRORS

    @property
    def mlflow_run(self) -> Path:
        """Which MLflow run mirrors this one (run id, experiment, tracking URI), when it is tracked."""
        return self.path / self.MLFLOW_RUN

    @property
    def onnx(self) -> Path:
        """The exported float graph, ``model.onnx`` (and its ``model.onnx.json`` metadata)."""
        return self.path / "model.onnx"

    def eval_json(self, split: str, *, laundered: bool = False) -> Path:
        return self.path / f"eval_{split}{'_laundered' if laundered else ''}.json"

    def eval_md(self, split: str, *, laundered: bool = False) -> Path:
        return self.path / f"eval_{split}{'_laundered' if laundered else ''}.md"

    def scores_csv(self, split: str, *, laundered: bool = False) -> Path:
        return self.path / f"scores_{split}{'_laundered' if laundered else ''}.csv"

    def evaluations(self) -> list[Path]:
        """Every ``eval_*.json`` of the run, sorted."""
        return sorted(self.path.glob("eval_*.json"))

    def read_config(self) -> dict[str, Any]:
        """The run's resolved config, or ``{}`` when it has none (a bare weights folder)."""
        return read_json(self.config) if self.config.is_file() else {}

    def read_metrics(self) -> dict[str, Any]:
        """What training recorded at the end, or ``{}`` for a run that has not finished."""
        return read_json(self.metrics) if self.metrics.is_file() else {}

    @property
    def finished(self) -> bool:
        """Training ran to its end (its metrics are written and it was not interrupted)."""
        return self.metrics.is_file() and not self.read_metrics().get("interrupted", False)

    @classmethod
    def find(cls, run: str | os.PathLike[str] | RunDir, runs_dir: str | os.PathLike[str] = "runs") -> RunDir:
        """The complete run (one with weights) at a path, or with this id (or unique id prefix) under ``runs_dir``.

        Raises
        ------
        RunError
            When none, or several, match.
        """
        if isinstance(run, RunDir):
            run = run.path
        path = Path(run).expanduser()
        root = Path(runs_dir).expanduser()
        for candidate in (path, root / str(run)):
            if (candidate / cls.MODEL).is_file():
                return cls(candidate.resolve())
        # A unique prefix of a run id works; a path that led nowhere is not a prefix (glob refuses absolute ones).
        is_id = "/" not in str(run) and not path.is_absolute()
        matches = (
            sorted(p for p in root.glob(f"{run}*") if (p / cls.MODEL).is_file())
            if root.is_dir() and is_id
            else []
        )
        if len(matches) == 1:
            return cls(matches[0].resolve())
        if len(matches) > 1:
            raise RunError(f"run id {run!r} is ambiguous: {', '.join(p.name for p in matches)}")
        raise RunError(
            f"no run folder with a {cls.MODEL} at {run!r} or under {root}/; see `deepfake-detect runs list`"
        )

    @classmethod
    def find_resumable(cls, run: str | os.PathLike[str], runs_dir: str | os.PathLike[str] = "runs") -> RunDir:
        """An unfinished run, at a path or with this id under ``runs_dir``, that has checkpoints to resume from.

        Raises
        ------
        RunError
            When no such folder exists, it has no checkpoints, or the run already finished.
        """
        candidates = [cls(Path(run).expanduser()), cls(Path(runs_dir).expanduser() / str(run))]
        found = next((c for c in candidates if c.config.is_file()), None)
        if found is None:
            raise RunError(f"no run folder with a {cls.CONFIG} at {run!r} or under {runs_dir}/")
        if found.finished:
            raise RunError(f"run {found.name} already finished; there is nothing to resume")
        if not found.checkpoints.is_dir():
            raise RunError(
                f"{found.path} has no {cls.CHECKPOINTS}/ folder: it was not trained with checkpoints"
            )
        return cls(found.path.resolve())

    @classmethod
    def create(
        cls, runs_dir: str | os.PathLike[str], model: str, seed: int, run_name: str | None = None
    ) -> RunDir:
        """Create a fresh run folder ``runs_dir/<time>-<model>-s<seed>`` (suffixed when the name is taken)."""
        base = run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-s{seed}"
        root = Path(runs_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            candidate = root / (base if n == 0 else f"{base}-{n}")
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                continue
        raise RunError(f"cannot create a new run folder under {root}")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON readably and atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def resolve_run(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The folder of a complete run from a path or a run id (see :meth:`RunDir.find`)."""
    return RunDir.find(run, runs_dir).path


def code_version() -> str:
    """The package version plus the git commit (and ``-dirty``) when running from a checkout."""
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
    run = RunDir(Path(run_dir))
    summary: dict[str, Any] = {"id": run.name, "path": str(run.path)}
    if run.config.is_file():
        summary["config"] = run.read_config()
    if run.metrics.is_file():
        summary["metrics"] = run.read_metrics()
    summary["evaluations"] = {p.stem.removeprefix("eval_"): read_json(p) for p in run.evaluations()}
    return summary
