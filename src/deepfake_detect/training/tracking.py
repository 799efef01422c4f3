"""Experiment tracking: a run folder mirrored into MLflow (``tracking="mlflow"``), never holding training up.

The run folder stays the source of truth; MLflow gets a copy. What one training run logs:

* the resolved config as params: the values the run folder recorded where the config left them to the run
  (``image_size`` and ``resize_mode`` from ``config.json``'s ``preprocess``, ``threads`` from
  ``environment.json``), except the :data:`~deepfake_detect.core.config.NEUTRAL_KEYS` (``num_workers``,
  ``tracking``, ``tracking_uri``, ... : those a resumed run may change), which go in as tags, as do
  ``data_root``, ``data_sources`` and the data fingerprints (``data_fingerprint``, the mix's, and
  ``data_fingerprint.<source>``, one a source). A URI's ``user:password@`` is never logged nor recorded;
* each epoch's history row as metrics, with ``step`` = the epoch (rows already in MLflow are not sent again, so a
  resumed run's history has each epoch once);
* at the end, ``model.safetensors``, ``metrics.json``, ``config.json``, ``environment.json`` and ``history.csv``
  as artifacts, the final figures as ``final_*`` metrics and the weights' ``tensor_sha256`` as a tag.

``evaluate`` and ``report`` attach their outputs (``eval_*.json``, ``report.html``) to the same MLflow run, found
through the run folder's ``mlflow_run.json`` (:attr:`RunDir.mlflow_run <deepfake_detect.core.runs.RunDir>`).
The tracker lives in the training layer, which logs through it; evaluation and reporting sit above training and
call :func:`attach_to_tracked_run` from here.

A tracking server that is down or slow costs a training nothing but a warning: every MLflow call runs in one
background thread fed by a bounded queue (a full queue drops the newest entry and counts it); each call gets
``tries`` connection attempts with a ``timeout`` in seconds; the first call that fails them all turns tracking off
for the rest of the tracker's life, with one warning, except the end: :meth:`MlflowTracker.close` still tries once
to mark the run ended (so a server back by then does not show it running for ever), and waits at most
``close_timeout`` seconds for the thread.

MLflow takes its HTTP retry count, timeout and backoff only from environment variables
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``..._BACKOFF_FACTOR``,
``..._BACKOFF_JITTER``): a tracker sets those not already set when it starts, for the whole process, and never
changes or restores them (see :class:`MlflowTracker`). Nothing here imports MLflow until a tracker is made.

Examples
--------
>>> from deepfake_detect.core.config import TrainConfig
>>> params, tags = config_params_and_tags(TrainConfig(data="faces", num_workers=2))
>>> params["lr"], tags["num_workers"], "num_workers" in params
('0.001', '2', False)
"""

from __future__ import annotations

import logging
import numbers
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from deepfake_detect.core.config import ConfigError, TrainConfig
from deepfake_detect.core.exceptions import MissingExtraError
from deepfake_detect.core.extras import import_extra
from deepfake_detect.core.runs import MLFLOW_ARTIFACTS, RunDir, read_json, write_json
from deepfake_detect.training.tracking_params import (
    config_params_and_tags,
    local_store_uri,
    recorded_values,
    store_uri,
    without_credentials,
)

__all__ = [
    "Tracker",
    "NullTracker",
    "MlflowTracker",
    "open_tracker",
    "check_tracking",
    "attach_to_tracked_run",
    "read_tracking_record",
    "config_params_and_tags",
    "local_store_uri",
    "recorded_values",
    "store_uri",
    "without_credentials",
    "EXPERIMENT",
]

log = logging.getLogger(__name__)

#: The MLflow experiment runs are logged under.
EXPERIMENT = "deepfake-detect"
THREAD_NAME = "deepfake-detect-mlflow"
FEATURE = "tracking=mlflow"
# Short enough that a dead server costs seconds, not MLflow's default of minutes (7 retries, 120 s each).
DEFAULT_TRIES, DEFAULT_TIMEOUT, DEFAULT_QUEUE, DEFAULT_CLOSE_TIMEOUT = 3, 5, 1000, 60.0
_STOP = object()


class Tracker(Protocol):
    """What training, evaluation and reports tell a tracker; every method returns at once and never raises."""

    def log_epochs(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def log_metrics(self, values: Mapping[str, Any], step: int = 0) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_artifacts(self, paths: Iterable[Path]) -> None: ...

    def log_finished_run(self, run: RunDir, summary: Mapping[str, Any]) -> None: ...

    def close(self, status: str | None = None) -> None: ...

    def __enter__(self) -> Tracker: ...

    def __exit__(self, kind, error, traceback) -> None: ...


class NullTracker:
    """The tracker of ``tracking="none"`` and of the ranks other than 0: it does nothing.

    Examples
    --------
    >>> with NullTracker() as tracker:
    ...     tracker.log_epochs([{"epoch": 1, "train_loss": 0.5}])
    """

    def log_epochs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        pass

    def log_metrics(self, values: Mapping[str, Any], step: int = 0) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifacts(self, paths: Iterable[Path]) -> None:
        pass

    def log_finished_run(self, run: RunDir, summary: Mapping[str, Any]) -> None:
        pass

    def close(self, status: str | None = None) -> None:
        pass

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        pass


class MlflowTracker:
    """Logs to one MLflow run from one background thread; see the module's notes on a server that is down.

    Parameters
    ----------
    uri : str
        The MLflow tracking URI (``http://host:port``, ``sqlite:///path.db``, ...).
    tries : int
        Connection attempts per MLflow call (MLflow's retries plus one).
    timeout : int
        Seconds to wait for a connection, and for each answer.
    queue_size : int
        Calls waiting for the thread at most; a call made while it is full is dropped and counted.
    close_timeout : float
        Seconds :meth:`close` waits for the thread to finish before it gives up on it (with the warning).

    Raises
    ------
    MissingExtraError
        When MLflow is not installed.

    Notes
    -----
    MLflow reads its HTTP retries and timeout only from the environment, so making a tracker sets
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (``tries - 1``), ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (``timeout``),
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` (1) and ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` (0) in this process
    unless already set: a value the user set wins, as does the first tracker's, and none is ever restored
    (``tries`` and ``timeout`` of later trackers in the same process then have no effect).

    Examples
    --------
    >>> tracker = MlflowTracker("http://127.0.0.1:5000")                          # doctest: +SKIP
    >>> tracker.start_run(RunDir(Path("runs/r1")), params={"lr": "0.001"}, tags={})  # doctest: +SKIP
    >>> tracker.log_epochs([{"epoch": 1, "val_roc_auc": 0.91}])                    # doctest: +SKIP
    >>> tracker.close()                                                           # doctest: +SKIP
    """

    def __init__(
        self,
        uri: str,
        *,
        tries: int = DEFAULT_TRIES,
        timeout: int = DEFAULT_TIMEOUT,
        queue_size: int = DEFAULT_QUEUE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if tries < 1 or timeout < 1 or queue_size < 1:
            raise ConfigError(
                f"tracker tries, timeout and queue_size must be at least 1: {tries}, {timeout}, {queue_size}"
            )
        # Imported here, so a missing extra fails before training starts.
        self._mlflow = import_extra("mlflow", "mlflow", FEATURE)
        self._entities = import_extra("mlflow.entities", "mlflow", FEATURE)
        self.uri, self.run_id = uri, None
        self.close_timeout, self.queue_size = close_timeout, queue_size
        for key, value in _request_settings(tries, timeout).items():
            os.environ.setdefault(key, value)  # once, before the thread starts; the user's own value wins
        self._queue: queue.Queue = queue.Queue()  # bounded by _put, so close() can always add its last calls
        self._client = None
        self._logged_steps: set[int] = set()
        self._status: str | None = None  # how close() ends the run; None: it does not own the run
        self._off, self._warned, self._closed, self._abandoned = False, False, False, False
        self._warn_lock = threading.Lock()  # close() and the thread may both want to warn
        self._refused, self._skipped = 0, 0  # calls dropped by the caller's side and by the thread
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- what callers do (never blocks, never raises)

    def start_run(
        self,
        run: RunDir,
        *,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        artifact_location: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Open the MLflow run of a training run (continue ``run_id``, or create one and record it in ``run``).

        ``artifact_location`` is given to the experiment when this call creates it.
        """
        self._status = "FINISHED"
        self._put(lambda: self._open(run, dict(params), dict(tags), artifact_location, run_id))

    def use_run(self, run_id: str) -> None:
        """Log into an existing run without changing its status (evaluations and reports)."""
        self._put(lambda: self._use(run_id))

    def log_epochs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """History rows as metrics with ``step`` = their ``epoch``; rows already logged are skipped."""
        snapshot = [dict(row) for row in rows]
        self._put(lambda: self._log_rows(snapshot))

    def log_metrics(self, values: Mapping[str, Any], step: int = 0) -> None:
        """The numbers among ``values`` as metrics at ``step``."""
        found = _numbers(values)
        self._put(lambda: self._log_batch(metrics=[self._metric(k, v, step) for k, v in found.items()]))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        tags = {k: str(v) for k, v in tags.items()}
        self._put(lambda: self._log_batch(tags=[self._entities.RunTag(k, v) for k, v in tags.items()]))

    def log_artifacts(self, paths: Iterable[Path]) -> None:
        """Copy these files (those that exist when the thread gets to them) into the run's artifacts."""
        paths = [Path(p) for p in paths]
        self._put(lambda: self._upload(paths))

    def log_finished_run(self, run: RunDir, summary: Mapping[str, Any]) -> None:
        """The end of training: the run folder's files, the final figures and the weights' hash."""
        files = [run.model, run.metrics, run.config, run.environment, run.history, run.report]
        self.log_artifacts([*files, *run.evaluations()])
        finals = {f"final_{k}": v for k, v in summary.items()}
        finals.update({f"final_val_{k}": v for k, v in summary.get("val", {}).items()})
        self.log_metrics(finals)
        self.set_tags(
            {"tensor_sha256": summary.get("tensor_sha256"), "interrupted": summary.get("interrupted")}
        )
        if summary.get("interrupted"):
            self._status = "KILLED"

    def close(self, status: str | None = None) -> None:
        """End the run (with ``status``, else as training went) and wait at most ``close_timeout`` seconds.

        The run is marked ended even when a failure turned tracking off earlier (one more call, with the same
        tries and timeout), so a server that has recovered does not show it running. A tracker that did not
        start the run (:meth:`use_run`) leaves its status alone.
        """
        if self._closed:
            return
        self._closed = True
        status = status or self._status
        if self._status is not None:
            self._queue.put((lambda: self._end_run(status), True))
        self._queue.put(_STOP)
        if not self.wait(self.close_timeout):
            self._abandoned = True  # the thread finishes its current call, then drops the rest
            self._warn_once(f"no answer within {self.close_timeout:g} s")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to finish (after :meth:`close`); True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def dropped(self) -> int:
        """Calls not made: the queue was full, or tracking was off after a failure."""
        return self._refused + self._skipped

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:  # training stopped by an exception: the MLflow run says so
            self.close("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    # ---------------------------------------------------------------- the background thread

    def _put(self, call: Callable[[], None]) -> None:
        if self._closed or self._off or self._queue.qsize() >= self.queue_size:
            self._refused += 1
            return
        self._queue.put((call, False))

    def _work(self) -> None:
        quiet = _ThreadRetries(threading.get_ident())
        retries_log = logging.getLogger("urllib3.connectionpool")
        retries_log.addFilter(quiet)  # for as long as this thread runs: the tracker warns once itself
        try:
            while (item := self._queue.get()) is not _STOP:
                call, even_when_off = item
                if self._abandoned or (self._off and not even_when_off):
                    self._skipped += 1
                    continue
                try:
                    call()
                except Exception as err:  # whatever MLflow or its store raise: training goes on without it
                    self._off = True
                    self._warn_once(_first_line(err))
        finally:
            retries_log.removeFilter(quiet)

    def _warn_once(self, reason: str) -> None:
        with self._warn_lock:
            if self._warned:
                return
            self._warned = True
        log.warning(
            "MLflow tracking at %s stopped (%s); the run folder has everything, MLflow misses the rest of it",
            without_credentials(self.uri),
            reason,
        )

    def _client_(self):
        if self._client is None:  # made in the thread: a new sqlite store creates its tables here
            self._client = self._mlflow.MlflowClient(tracking_uri=self.uri)
        return self._client

    def _metric(self, key: str, value: float, step: int):
        return self._entities.Metric(key, value, int(time.time() * 1000), step)

    def _use(self, run_id: str) -> None:
        self.run_id = run_id

    def _end_run(self, status: str) -> None:
        if self.run_id is not None:  # None: the run was never opened, there is nothing to end
            self._client_().set_terminated(self.run_id, status)

    def _open(self, run: RunDir, params, tags, artifact_location: str | None, run_id: str | None) -> None:
        client = self._client_()
        if run_id is not None:  # --resume: the same MLflow run, running again
            client.update_run(run_id, status="RUNNING")
            self._logged_steps = {m.step for m in client.get_metric_history(run_id, "epoch")}
        else:
            experiment_id = self._experiment_id(client, artifact_location)
            run_id = client.create_run(experiment_id, run_name=run.name).info.run_id
            record = {"run_id": run_id, "experiment": EXPERIMENT, "experiment_id": experiment_id}
            write_json(run.mlflow_run, {**record, "tracking_uri": without_credentials(self.uri)})
        self.run_id = run_id
        self._log_batch(
            params=[self._entities.Param(k, v) for k, v in params.items()],
            tags=[self._entities.RunTag(k, v) for k, v in tags.items()],
        )

    def _experiment_id(self, client, artifact_location: str | None) -> str:
        found = client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=artifact_location)
        except Exception:  # another process created it in between
            found = client.get_experiment_by_name(EXPERIMENT)
            if found is None:
                raise
            return found.experiment_id

    def _log_rows(self, rows: list[dict[str, Any]]) -> None:
        new = [row for row in rows if int(row["epoch"]) not in self._logged_steps]
        metrics = [self._metric(k, v, int(r["epoch"])) for r in new for k, v in _numbers(r).items()]
        if metrics:
            self._log_batch(metrics=metrics)
        self._logged_steps.update(int(row["epoch"]) for row in new)

    def _log_batch(self, *, metrics=(), params=(), tags=()) -> None:
        if metrics or params or tags:
            self._client_().log_batch(self.run_id, metrics=metrics, params=params, tags=tags)

    def _upload(self, paths: list[Path]) -> None:
        for path in paths:
            if path.is_file():
                self._client_().log_artifact(self.run_id, str(path))


# ---------------------------------------------------------------- what training, evaluate and report call


def check_tracking(cfg: TrainConfig) -> None:
    """Fail now, with the one line that says what to install, when ``cfg`` asks for tracking it cannot have.

    Examples
    --------
    >>> check_tracking(TrainConfig())  # tracking="none" needs nothing
    """
    if cfg.tracking == "mlflow":
        import_extra("mlflow", "mlflow", FEATURE)


def read_tracking_record(run: RunDir) -> dict[str, Any] | None:
    """The run folder's ``mlflow_run.json`` (run id, experiment, tracking URI), or None when untracked.

    Examples
    --------
    >>> import tempfile
    >>> run = RunDir(Path(tempfile.mkdtemp()))
    >>> read_tracking_record(run) is None  # untracked
    True
    >>> write_json(run.mlflow_run, {"run_id": "abc", "tracking_uri": "sqlite:////data/mlflow.db"})
    >>> read_tracking_record(run)["run_id"]
    'abc'
    """
    if not run.mlflow_run.is_file():
        return None
    try:
        record = read_json(run.mlflow_run)
    except ValueError:
        log.warning("%s is not JSON; MLflow tracking of this run is skipped", run.mlflow_run)
        return None
    return record if isinstance(record, dict) and {"run_id", "tracking_uri"} <= set(record) else None


def open_tracker(
    cfg: TrainConfig, run: RunDir, data_ids: Mapping[str, Any], *, enabled: bool = True, **settings: Any
) -> Tracker:
    """The tracker of one training run: a started :class:`MlflowTracker` when ``cfg.tracking`` asks for it (and
    ``enabled``: rank 0), else a :class:`NullTracker`.

    Without ``cfg.tracking_uri`` the store is :func:`local_store_uri` of the folder holding ``run``, with the
    artifacts in its ``mlartifacts/``; a relative ``sqlite:///`` URI is made absolute (:func:`store_uri`). A run
    folder that records an MLflow run in the same store (a resumed run) continues that run. The params are the
    config as the run folder recorded it resolved (:func:`recorded_values`). ``data_ids`` holds
    ``data_fingerprint`` and ``data_fingerprints`` (one a source), logged as tags; ``settings`` go to
    :class:`MlflowTracker`.

    Examples
    --------
    >>> open_tracker(TrainConfig(), RunDir(Path("runs/r1")), {})  # doctest: +ELLIPSIS
    <deepfake_detect.training.tracking.NullTracker object at ...>
    """
    if cfg.tracking != "mlflow" or not enabled:
        return NullTracker()
    runs_dir = run.path.parent
    uri = store_uri(cfg.tracking_uri) if cfg.tracking_uri else local_store_uri(runs_dir)
    record = read_tracking_record(run)
    same_store = record is not None and record["tracking_uri"] == without_credentials(uri)
    run_id = record["run_id"] if same_store else None
    params, tags = config_params_and_tags(cfg, recorded_values(run))
    tags.update(_fingerprint_tags(data_ids))
    tags["run_folder"] = str(run.path)
    artifacts = None if cfg.tracking_uri else (runs_dir.resolve() / MLFLOW_ARTIFACTS).as_uri()
    tracker = MlflowTracker(uri, **settings)
    tracker.start_run(run, params=params, tags=tags, artifact_location=artifacts, run_id=run_id)
    return tracker


def attach_to_tracked_run(
    run: RunDir, paths: Iterable[Path], *, metrics: Mapping[str, Any] | None = None, **settings: Any
) -> None:
    """Add files (and metrics) to the MLflow run that mirrors ``run``, when it has one; else do nothing.

    The store is the one ``mlflow_run.json`` records (given with its credentials when ``config.json`` has
    them). A missing MLflow extra or a store that is down is a warning: the files are in the run folder either
    way.

    Examples
    --------
    >>> attach_to_tracked_run(RunDir(Path("/no/such/run")), [Path("eval_test.json")])  # untracked: nothing
    """
    record = read_tracking_record(run)
    if record is None:
        return
    try:
        tracker = MlflowTracker(_uri_with_credentials(run, record["tracking_uri"]), **settings)
    except MissingExtraError as err:
        log.warning("%s is tracked in MLflow, but %s; not attached: %s", run.name, err, _names(paths))
        return
    with tracker:
        tracker.use_run(record["run_id"])
        tracker.log_artifacts(paths)
        if metrics:
            tracker.log_metrics(metrics)


# ---------------------------------------------------------------- helpers


def _fingerprint_tags(data_ids: Mapping[str, Any]) -> dict[str, str]:
    """``data_fingerprint`` (the mix's) and ``data_fingerprint.<source>`` (one a source)."""
    tags = {"data_fingerprint": str(data_ids["data_fingerprint"])} if "data_fingerprint" in data_ids else {}
    for name, fingerprint in (data_ids.get("data_fingerprints") or {}).items():
        tags[f"data_fingerprint.{name}"] = str(fingerprint)
    return tags


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries that are numbers (NumPy's too, not flags), as floats; NaN stays NaN, as MLflow allows.

    Examples
    --------
    >>> _numbers({"a": 1, "b": True, "c": "x", "d": float("nan"), "e": None})
    {'a': 1.0, 'd': nan}
    """
    return {k: float(v) for k, v in values.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(Path(p).name for p in paths)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def _uri_with_credentials(run: RunDir, recorded: str) -> str:
    """The URI ``config.json`` gives, when it is ``recorded`` plus credentials (recorded without them)."""
    try:
        given = run.read_config().get("tracking_uri")
    except ValueError:
        return recorded
    return given if given and store_uri(without_credentials(given)) == recorded else recorded


def _request_settings(tries: int, timeout: int) -> dict[str, str]:
    """MLflow's HTTP settings for ``tries`` connection attempts and ``timeout`` seconds, without backoff jitter.

    Examples
    --------
    >>> _request_settings(3, 5)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    '2'
    """
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(tries - 1),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(timeout)),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }


class _ThreadRetries(logging.Filter):
    """Drops urllib3's "Retrying ..." warnings of one tracker thread's requests; the others' pass."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread
