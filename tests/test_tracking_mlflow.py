"""MLflow tracking (``tracking=mlflow``) against real stores, read back through ``MlflowClient``.

* a local sqlite store: a tiny training killed after its first epoch and resumed, then ``evaluate`` and ``report``;
* a real ``mlflow server --workers 1`` on 127.0.0.1, started here in its own process group;
* a server that is down (a port bound but not listening) or never answers (a socket that accepts and holds
  connections): connection attempts are counted, not timed; training finishes with one warning;
* MLflow missing (its import blocked in a subprocess): one line and exit 2.

"Warns once" means one warning record of any logger, and no Python warning at all. MLflow's HTTP settings are
set by each test (``monkeypatch``) before a tracker is made: a tracker only sets those not already set.

Connection attempts are counted with an audit hook on ``socket.connect`` (Python's own instrumentation; the
MLflow client and its HTTP stack run unchanged).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import hashlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import warnings
from pathlib import Path

import pytest

from deepfake_detect.core.config import (
    NEUTRAL_KEYS,
    ConfigError,
    TrainConfig,
    config_from_dict,
    load_config,
)
from deepfake_detect.core.runs import RunDir, read_index, write_json
from deepfake_detect.models import get_model_cfg
from deepfake_detect.training.state import config_differences, resume_config
from deepfake_detect.training.tracking import (
    DEFAULT_TIMEOUT,
    DEFAULT_TRIES,
    EXPERIMENT,
    MlflowTracker,
    config_params_and_tags,
    read_tracking_record,
    recorded_values,
    store_uri,
)
from deepfake_detect.training.train import train
from killing import train_until

needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="needs the [mlflow] extra"
)
TINY = dict(image_size=32, base_size=40, threads=1, tracking="mlflow")
REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ connection attempts, counted by port

CONNECTS: collections.Counter = collections.Counter()


def _count_connects(event: str, args: tuple) -> None:
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][:1] == ("127.0.0.1",):
        CONNECTS[args[1][1]] += 1


sys.addaudithook(_count_connects)  # for the session; it only counts


def _warnings(caplog) -> list[str]:
    """Every record at WARNING or above, of any logger (caplog on the root logger sees them all)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@contextlib.contextmanager
def _no_python_warnings():
    import mlflow  # noqa: F401 (its import-time warnings are not the tracker's)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []


def _http_settings(patch, tries: int = DEFAULT_TRIES, timeout: int = DEFAULT_TIMEOUT) -> None:
    """MLflow's HTTP settings for this test, whatever the environment had (restored after it)."""
    patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tries - 1))
    patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
    patch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    patch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


# ------------------------------------------------------------------ config (fast)


def test_tracking_is_none_or_mlflow():
    assert TrainConfig().tracking == "none" and TrainConfig().tracking_uri is None
    assert load_config(sets=["tracking=mlflow"]).tracking == "mlflow"
    with pytest.raises(ConfigError, match="tracking must be one of none, mlflow; got 'wandb'"):
        load_config(sets=["tracking=wandb"])


def test_the_tracking_uri_comes_from_the_environment_only_when_passed_tracked_and_not_set():
    env, tracked = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}, ["tracking=mlflow"]
    assert load_config(sets=tracked, env=env).tracking_uri == "http://127.0.0.1:5000"
    assert load_config(env=env).tracking_uri is None  # untracked: no URI stored in config.json
    given = [*tracked, "tracking_uri=sqlite:///x.db"]
    assert load_config(sets=given, env=env).tracking_uri == "sqlite:///x.db"
    assert (
        load_config(sets=tracked, env={}).tracking_uri is None
        and load_config(sets=tracked).tracking_uri is None
    )


def test_credentials_are_neither_tagged_nor_recorded_and_a_relative_store_is_made_absolute(tmp_path):
    cfg = TrainConfig(data="d", tracking="mlflow", tracking_uri="https://me:secret@mlflow.internal:5000")
    params, tags = config_params_and_tags(cfg)
    assert tags["tracking_uri"] == "https://mlflow.internal:5000"
    assert not [v for v in {**params, **tags}.values() if "secret" in v]
    assert store_uri("sqlite:///runs/x.db") == f"sqlite:///{Path.cwd() / 'runs/x.db'}"


def test_a_users_http_settings_win_and_a_tracker_never_restores_them(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'never-opened.db'}", tries=4, timeout=2)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's own
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"  # unset: the tracker's
    tracker.close()
    assert tracker.wait(0) and os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"  # set once, kept


def test_old_configs_load_and_tracking_may_change_on_resume():
    old = {k: v for k, v in TrainConfig(data="d").to_dict().items() if k not in ("tracking", "tracking_uri")}
    assert config_from_dict(old) == TrainConfig(data="d")
    changed = TrainConfig(data="d", tracking="mlflow", tracking_uri="http://h:1", num_workers=3)
    assert config_differences(TrainConfig(data="d"), changed) == ""
    assert {"num_workers", "tracking", "tracking_uri"} <= set(NEUTRAL_KEYS)


def test_what_may_change_on_resume_goes_in_as_tags_the_rest_as_params():
    cfg = TrainConfig(data="d", tracking="mlflow", num_workers=2, aug_jpeg_quality=(40, 90))
    params, tags = config_params_and_tags(cfg)
    assert set(params) | set(tags) == set(cfg.to_dict()) and not set(params) & set(tags)
    assert set(tags) == set(NEUTRAL_KEYS)
    assert (tags["num_workers"], tags["tracking"], tags["tracking_uri"]) == ("2", "mlflow", "")
    assert params["aug_jpeg_quality"] == "[40, 90]" and params["epochs"] == "20"


# ------------------------------------------------------------------ a local sqlite store (slow: trains)


@pytest.fixture(scope="module")
def tracked(tiny_dataset, tmp_path_factory) -> dict:
    """A 2-epoch run tracked in the default sqlite store: killed after epoch 1's checkpoint, resumed, evaluated
    and reported. Records what MLflow held after the kill."""
    runs = tmp_path_factory.mktemp("tracked-runs")
    cfg = TrainConfig(data=str(tiny_dataset), runs_dir=str(runs), run_name="r", epochs=2, **TINY)
    with pytest.MonkeyPatch.context() as patch:
        _http_settings(patch)
        train_until(cfg, 1)
        run = RunDir(runs / "r")
        killed = read_tracking_record(run)
        client = _client(killed["tracking_uri"])
        after_kill = {
            "status": client.get_run(killed["run_id"]).info.status,
            "steps": [m.step for m in client.get_metric_history(killed["run_id"], "val_loss")],
        }
        _, resumed_cfg = resume_config(
            run.path, sets=["num_workers=0", "tracking=mlflow"]
        )  # neutral: allowed
        train(resumed_cfg, progress=False, resume=run.path)

        from deepfake_detect.evaluation.evaluate import evaluate
        from deepfake_detect.reporting.report import report

        evaluate(run.path, progress=False, n_resamples=50)
        report(run.path)
    return {"run": run, "killed": killed, "after_kill": after_kill, "record": read_tracking_record(run)}


@needs_mlflow
@pytest.mark.slow
def test_the_run_folder_records_the_mlflow_run_in_the_local_store(tracked):
    run, record = tracked["run"], tracked["record"]
    runs_dir = run.path.parent.resolve()
    assert (
        record["tracking_uri"] == f"sqlite:///{runs_dir / 'mlflow.db'}" and record["experiment"] == EXPERIMENT
    )
    assert (runs_dir / "mlflow.db").is_file()
    mirrored = _client(record["tracking_uri"]).get_run(record["run_id"])
    assert mirrored.info.artifact_uri.startswith((runs_dir / "mlartifacts").as_uri())
    assert mirrored.info.run_name == run.name


@needs_mlflow
@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run_and_logs_each_epoch_once(tracked):
    run, record = tracked["run"], tracked["record"]
    assert tracked["killed"]["run_id"] == record["run_id"]
    assert tracked["after_kill"] == {"status": "FAILED", "steps": [1]}
    client = _client(record["tracking_uri"])
    assert client.get_run(record["run_id"]).info.status == "FINISHED"
    assert len(client.search_runs([record["experiment_id"]])) == 1
    with open(run.history) as handle:
        history = list(csv.DictReader(handle))
    for key in ("val_loss", "train_loss", "val_roc_auc", "lr"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(record["run_id"], key))
        assert logged == [(int(row["epoch"]), pytest.approx(float(row[key]))) for row in history], key


@needs_mlflow
@pytest.mark.slow
def test_params_tags_and_final_figures_mirror_the_run_folder(tracked):
    run, record = tracked["run"], tracked["record"]
    data = _client(record["tracking_uri"]).get_run(record["run_id"]).data
    recorded = run.read_config()
    config = {k: v for k, v in recorded.items() if k not in ("data_root", "data_sources", "preprocess")}
    params, tags = config_params_and_tags(config_from_dict(config), recorded_values(run))
    assert data.params == params
    assert {k: data.tags[k] for k in tags} == tags and data.tags["tracking"] == "mlflow"
    # the resolved values, not the config's None: the model's resize mode, the threads environment.json records
    assert (
        config["resize_mode"] is None
        and data.params["resize_mode"] == get_model_cfg("notebook-cnn").resize_mode
    )
    assert (data.params["image_size"], data.params["threads"]) == ("32", "1")
    assert data.tags["data_root"] == recorded["data_root"]
    assert json.loads(data.tags["data_sources"]) == recorded["data_sources"]
    metrics = run.read_metrics()
    entry = read_index(run.path.parent)[-1]
    assert data.tags["tensor_sha256"] == metrics["tensor_sha256"]
    assert data.tags["data_fingerprint"] == entry["data_fingerprint"]
    for name, fingerprint in entry["data_fingerprints"].items():
        assert data.tags[f"data_fingerprint.{name}"] == fingerprint
    assert data.metrics["final_val_roc_auc"] == pytest.approx(metrics["val"]["roc_auc"])
    assert data.metrics["final_temperature"] == pytest.approx(metrics["temperature"])


@needs_mlflow
@pytest.mark.slow
def test_weights_metrics_evaluation_and_report_are_artifacts(tracked, tmp_path):
    run, record = tracked["run"], tracked["record"]
    client = _client(record["tracking_uri"])
    names = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"model.safetensors", "metrics.json", "history.csv", "eval_test.json", "report.html"} <= names
    copy = Path(client.download_artifacts(record["run_id"], "model.safetensors", str(tmp_path)))
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(run.model.read_bytes()).digest()
    evaluation = json.loads(run.eval_json("test").read_text())
    logged = client.get_run(record["run_id"]).data.metrics
    assert logged["eval_test_roc_auc"] == pytest.approx(evaluation["roc_auc"])


# ------------------------------------------------------------------ a real MLflow server on loopback (slow)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server --workers 1`` on a free loopback port, in its own process group; killed at teardown."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "art"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        _wait_for_health(server, port, root / "server.log")
        yield {"uri": f"http://127.0.0.1:{port}", "artifacts": root / "art"}
    finally:
        os.killpg(
            server.pid, signal.SIGKILL
        )  # the whole group (uvicorn, its job runner); its files are temporary
        server.wait()
        log.close()


def _wait_for_health(server: subprocess.Popen, port: int, log: Path, attempts: int = 240) -> None:
    for _ in range(attempts):
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited ({server.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            threading.Event().wait(0.5)
    pytest.fail(f"mlflow server did not answer /health: {log.read_text()[-2000:]}")


@needs_mlflow
@pytest.mark.slow
def test_training_logs_to_a_real_mlflow_server(mlflow_server, tiny_dataset, tmp_path, caplog, monkeypatch):
    _http_settings(monkeypatch)
    cfg = TrainConfig(
        data=str(tiny_dataset), runs_dir=str(tmp_path), epochs=2, tracking_uri=mlflow_server["uri"],
        **{**TINY, "threads": None},
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = train(cfg, progress=False)
    assert not _warnings(caplog)
    record = read_tracking_record(RunDir(result.run_dir))
    assert record["tracking_uri"] == mlflow_server["uri"]
    client = _client(mlflow_server["uri"])
    with open(RunDir(result.run_dir).history) as handle:
        history = list(csv.DictReader(handle))
    logged = sorted((m.step, m.value) for m in client.get_metric_history(record["run_id"], "val_roc_auc"))
    assert logged == [(int(r["epoch"]), pytest.approx(float(r["val_roc_auc"]))) for r in history]
    mirrored = client.get_run(record["run_id"])
    assert mirrored.info.status == "FINISHED" and mirrored.data.params["epochs"] == "2"
    threads = json.loads(RunDir(result.run_dir).environment.read_text())["torch_threads"]
    assert mirrored.data.params["threads"] == str(threads) and threads >= 1  # resolved, not the config's None
    assert mirrored.data.tags["tensor_sha256"] == result.metrics["tensor_sha256"]
    assert "model.safetensors" in {a.path for a in client.list_artifacts(record["run_id"])}
    uploaded = list(mlflow_server["artifacts"].rglob("model.safetensors"))  # through the server's proxy
    assert (
        len(uploaded) == 1 and uploaded[0].read_bytes() == (result.run_dir / "model.safetensors").read_bytes()
    )


@needs_mlflow
@pytest.mark.slow
def test_only_rank_0_logs_and_the_cli_takes_the_uri_from_the_environment(
    mlflow_server, tiny_dataset, tmp_path
):
    command = [
        sys.executable, "-m", "deepfake_detect", "train", f"--data={tiny_dataset}", f"--runs-dir={tmp_path}",
        "--epochs=2", "--batch-size=8", "--image-size=32", "--nproc=2", "--set=base_size=40", "--set=threads=1",
        "--set=tracking=mlflow", "-q",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server["uri"], "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    run = RunDir(Path(done.stdout.strip().splitlines()[-1]))
    record = read_tracking_record(run)
    assert record["tracking_uri"] == mlflow_server["uri"] == run.read_config()["tracking_uri"]
    client = _client(mlflow_server["uri"])
    named = client.search_runs([record["experiment_id"]], filter_string=f"attributes.run_name = '{run.name}'")
    assert [r.info.run_id for r in named] == [record["run_id"]]  # one MLflow run for the two ranks
    assert [m.step for m in client.get_metric_history(record["run_id"], "val_loss")] == [1, 2]


@needs_mlflow
@pytest.mark.slow
def test_a_run_started_untracked_and_resumed_tracked_logs_to_the_uri_of_the_environment(
    mlflow_server, tiny_dataset, tmp_path
):
    untracked = {**TINY, "tracking": "none"}
    train_until(
        TrainConfig(data=str(tiny_dataset), runs_dir=str(tmp_path), run_name="u", epochs=2, **untracked), 1
    )
    run = RunDir(tmp_path / "u")
    assert run.read_config()["tracking_uri"] is None and read_tracking_record(run) is None
    command = [
        sys.executable,
        "-m",
        "deepfake_detect",
        "train",
        f"--resume={run.path}",
        "--set=tracking=mlflow",
        "-q",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server["uri"], "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    record = read_tracking_record(run)
    assert record["tracking_uri"] == mlflow_server["uri"] and not (tmp_path / "mlflow.db").exists()
    client = _client(mlflow_server["uri"])
    assert [m.step for m in client.get_metric_history(record["run_id"], "val_loss")] == [1, 2]
    assert client.get_run(record["run_id"]).info.status == "FINISHED"


@needs_mlflow
@pytest.mark.slow
def test_a_failed_call_turns_tracking_off_yet_close_still_ends_the_run(
    mlflow_server, tmp_path, caplog, monkeypatch
):
    _http_settings(monkeypatch)
    run = RunDir(tmp_path)
    with caplog.at_level(logging.WARNING), _no_python_warnings():
        tracker = MlflowTracker(mlflow_server["uri"])
        tracker.start_run(run, params={"lr": "0.1"}, tags={})
        tracker.log_metrics({"bad!name": 1.0})  # the server refuses the name: the call fails, tracking is off
        tracker.log_epochs([{"epoch": 1, "train_loss": 0.5}])  # dropped
        tracker.close()
    assert tracker.wait(0) and tracker.dropped >= 1
    assert len(_warnings(caplog)) == 1 and mlflow_server["uri"] in _warnings(caplog)[0]
    record = read_tracking_record(run)
    client = _client(mlflow_server["uri"])
    assert client.get_run(record["run_id"]).info.status == "FINISHED"  # not left RUNNING
    assert client.get_metric_history(record["run_id"], "train_loss") == []


# ------------------------------------------------------------------ a server that is down or never answers


@needs_mlflow
@pytest.mark.slow
def test_a_closed_port_costs_a_few_attempts_and_one_warning(tiny_dataset, tmp_path, caplog, monkeypatch):
    _http_settings(monkeypatch)
    with socket.socket() as bound:  # bound, never listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        cfg = TrainConfig(
            data=str(tiny_dataset), runs_dir=str(tmp_path), epochs=2, tracking_uri=f"http://127.0.0.1:{port}",
            **TINY,
        )  # fmt: skip
        with caplog.at_level(logging.WARNING), _no_python_warnings():
            result = train(cfg, progress=False)
    run = RunDir(result.run_dir)
    assert run.finished and run.model.is_file() and not run.mlflow_run.exists()
    logged = _warnings(caplog)
    assert len(logged) == 1 and f"127.0.0.1:{port}" in logged[0]
    # The first call fails its tries; tracking is then off: every later call (2 epochs, artifacts, end) is dropped.
    assert 1 <= CONNECTS[port] <= DEFAULT_TRIES


class _BlackHole:
    """A loopback server that accepts connections, counts them and never answers; ``release()`` closes them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted, self.held = 0, []
        self.first = threading.Event()
        self.released = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed by release()
                return
            self.accepted += 1
            self.held.append(connection)
            self.first.set()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        for connection in [self.listener, *self.held]:
            with contextlib.suppress(OSError):  # shutdown wakes the accept() blocked in the other thread
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


@needs_mlflow
@pytest.mark.slow
def test_a_server_that_never_answers_costs_bounded_attempts_and_one_warning(tmp_path, caplog, monkeypatch):
    server, tries, calls = _BlackHole(), 2, 6
    _http_settings(monkeypatch, tries=tries, timeout=1)
    try:
        with caplog.at_level(logging.WARNING), _no_python_warnings():
            tracker = MlflowTracker(f"http://127.0.0.1:{server.port}", tries=tries, timeout=1)
            tracker.start_run(RunDir(tmp_path), params={"lr": "0.1"}, tags={})
            for epoch in range(1, calls):
                tracker.log_epochs([{"epoch": epoch, "train_loss": 0.5}])
            tracker.close()  # waits for the timeouts of the first call, then the rest is dropped
        assert tracker.wait(0)
        assert 1 <= server.accepted <= tries * calls and server.accepted <= tries  # one call failed its tries
        assert len(_warnings(caplog)) == 1 and tracker.dropped >= calls - 1
        assert not (tmp_path / RunDir.MLFLOW_RUN).exists()
    finally:
        server.release()


@needs_mlflow
@pytest.mark.slow
def test_logging_and_close_never_wait_for_a_server_that_holds_the_request(tmp_path, caplog, monkeypatch):
    server = _BlackHole()
    _http_settings(monkeypatch, tries=2, timeout=60)
    try:
        with caplog.at_level(logging.WARNING), _no_python_warnings():
            tracker = MlflowTracker(f"http://127.0.0.1:{server.port}", tries=2, timeout=60, close_timeout=0.2)
            tracker.start_run(RunDir(tmp_path), params={}, tags={})
            assert server.first.wait(60)  # the thread is now inside a request the server holds
            tracker.log_epochs([{"epoch": 1, "train_loss": 0.5}])
            tracker.log_finished_run(RunDir(tmp_path), {"tensor_sha256": "0" * 64})
            tracker.close()
            assert not server.released and not tracker.wait(0)  # returned while the request still hangs
            assert len(_warnings(caplog)) == 1
            server.release()  # now the request fails; the thread drops what is left and ends
            assert tracker.wait(60)
        assert len(_warnings(caplog)) == 1 and server.accepted <= 2
    finally:
        server.release()


# ------------------------------------------------------------------ MLflow not installed (subprocesses)


def _env_without_a_store() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.slow
def test_without_mlflow_tracking_is_one_line_and_exit_2(tiny_dataset, tmp_path, run_without):
    args = [
        "train",
        f"--data={tiny_dataset}",
        f"--runs-dir={tmp_path}",
        "--epochs=1",
        "--set=tracking=mlflow",
    ]
    done = run_without("mlflow", *args, "-q", cwd=REPO, env=_env_without_a_store())
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: tracking=mlflow needs the optional 'mlflow' dependencies: pip install 'deepfake-detect[mlflow]'\n"
    )
    assert not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.slow
def test_without_mlflow_a_tracked_run_is_still_evaluated_with_a_warning(tmp_path, run_without):
    write_json(tmp_path / RunDir.MLFLOW_RUN, {"run_id": "abc", "tracking_uri": "sqlite:///x.db"})
    code = (
        "import logging\nlogging.basicConfig()\n"
        "from pathlib import Path\nfrom deepfake_detect.core.runs import RunDir\n"
        "from deepfake_detect.training.tracking import attach_to_tracked_run\n"
        "attach_to_tracked_run(RunDir(Path(sys.argv[1])), [Path('eval_test.json')])\n"
    )
    done = run_without("mlflow", str(tmp_path), code=code, cwd=REPO, env=_env_without_a_store())
    assert done.returncode == 0, done.stderr
    assert (
        "pip install 'deepfake-detect[mlflow]'" in done.stderr
        and "not attached: eval_test.json" in done.stderr
    )


@pytest.mark.slow
def test_nothing_imports_mlflow_until_tracking_is_asked_for():
    code = (
        "import deepfake_detect, deepfake_detect.cli, deepfake_detect.training.tracking\n"
        "import deepfake_detect.training.train, deepfake_detect.evaluation.evaluate\n"
        "import deepfake_detect.reporting.report\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
