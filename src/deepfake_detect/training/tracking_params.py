"""What a run tracked in MLflow logs and records: its config as params and tags, and its store's URI.

The params are the resolved config: where the config leaves a value to the run (``None``), the value the run
folder recorded (:func:`recorded_values`). The store's URI is recorded absolute (:func:`store_uri`) and without
credentials (:func:`without_credentials`). :mod:`deepfake_detect.training.tracking` logs them; nothing here imports
MLflow.

Examples
--------
>>> from deepfake_detect.core.config import TrainConfig
>>> params, tags = config_params_and_tags(TrainConfig(data="faces", num_workers=2), {"threads": 4})
>>> params["threads"], tags["num_workers"], "num_workers" in params
('4', '2', False)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from deepfake_detect.core.config import NEUTRAL_KEYS, TrainConfig
from deepfake_detect.core.runs import MLFLOW_STORE, RunDir, read_json

__all__ = [
    "RESOLVED_KEYS",
    "config_params_and_tags",
    "recorded_values",
    "local_store_uri",
    "store_uri",
    "without_credentials",
]

#: The config keys a run resolves when the config leaves them ``None``; the run folder records the values used.
RESOLVED_KEYS = ("image_size", "resize_mode", "threads")


def local_store_uri(runs_dir: Path) -> str:
    """The MLflow store used without a tracking URI: ``mlflow.db`` beside the run folders (absolute).

    Examples
    --------
    >>> local_store_uri(Path("/work/runs"))
    'sqlite:////work/runs/mlflow.db'
    """
    return "sqlite:///" + (Path(runs_dir).expanduser().resolve() / MLFLOW_STORE).as_posix()


def store_uri(uri: str) -> str:
    """``uri`` with a relative ``sqlite:///`` path made absolute (against the current folder), so that
    ``evaluate`` and ``report`` run from elsewhere find the same store; other URIs unchanged.

    Examples
    --------
    >>> store_uri("sqlite:///runs/mlflow.db") == "sqlite:///" + (Path.cwd() / "runs/mlflow.db").as_posix()
    True
    >>> store_uri("sqlite:////data/mlflow.db"), store_uri("http://127.0.0.1:5000")
    ('sqlite:////data/mlflow.db', 'http://127.0.0.1:5000')
    """
    path = uri.removeprefix("sqlite:///")
    if path == uri or Path(path).is_absolute() or path.startswith(":memory:"):
        return uri
    return "sqlite:///" + Path(path).expanduser().resolve().as_posix()


def without_credentials(uri: str) -> str:
    """``uri`` without the ``user:password@`` of an ``http(s)`` URI: what may be logged and recorded.

    Examples
    --------
    >>> without_credentials("https://me:secret@mlflow.internal:5000/path")
    'https://mlflow.internal:5000/path'
    >>> without_credentials("sqlite:////data/mlflow.db")
    'sqlite:////data/mlflow.db'
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def config_params_and_tags(
    cfg: TrainConfig, recorded: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The config as MLflow params, and as tags the keys a resumed run may change (params cannot change).

    ``recorded`` holds what the run folder recorded (:func:`recorded_values`): the values of
    :data:`RESOLVED_KEYS` the run used, which replace the config's ``None``, and ``data_root`` and
    ``data_sources``, logged as tags. The ``tracking_uri`` tag has no credentials.

    Examples
    --------
    >>> cfg = TrainConfig(data="faces", image_size=None, tracking_uri="http://me:pw@host:5000")
    >>> params, tags = config_params_and_tags(cfg, {"image_size": 220, "threads": 2, "data_root": "/d/faces"})
    >>> params["image_size"], params["threads"], tags["data_root"], tags["tracking_uri"]
    ('220', '2', '/d/faces', 'http://host:5000')
    >>> config_params_and_tags(cfg)[0]["image_size"]  # nothing recorded: as the config has it
    ''
    """
    recorded = recorded or {}
    resolved = {k: recorded[k] for k in RESOLVED_KEYS if recorded.get(k) is not None}
    values = {k: "" if v is None else str(v) for k, v in {**cfg.to_dict(), **resolved}.items()}
    values["tracking_uri"] = without_credentials(values["tracking_uri"])
    params = {k: v for k, v in values.items() if k not in NEUTRAL_KEYS}
    tags = {k: values[k] for k in NEUTRAL_KEYS}
    if recorded.get("data_root") is not None:
        tags["data_root"] = str(recorded["data_root"])
    if recorded.get("data_sources") is not None:
        tags["data_sources"] = json.dumps(recorded["data_sources"])
    return params, tags


def recorded_values(run: RunDir) -> dict[str, Any]:
    """What ``run``'s folder recorded of its resolved config: ``image_size`` and ``resize_mode`` (the
    ``preprocess`` of ``config.json``), ``threads`` (``environment.json``), ``data_root`` and ``data_sources``;
    None for what it lacks.

    Examples
    --------
    >>> recorded_values(RunDir(Path("/no/such/run")))["threads"] is None
    True
    """
    config = run.read_config()
    environment = read_json(run.environment) if run.environment.is_file() else {}
    preprocess = config.get("preprocess") or {}
    return {
        "image_size": preprocess.get("size"),
        "resize_mode": preprocess.get("resize_mode"),
        "threads": environment.get("torch_threads"),
        "data_root": config.get("data_root"),
        "data_sources": config.get("data_sources"),
    }
