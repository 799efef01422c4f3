"""Running the service: the listening socket, uvicorn with one or several worker processes, a test server.

>>> from deepfake_detect.serve import ServeConfig, serve       # doctest: +SKIP
>>> serve(ServeConfig(port=8000, api_key="s3cret"))            # doctest: +SKIP

The detector is loaded once a process and runs on ONNX Runtime when it works. With ``workers > 1`` uvicorn
starts each worker from the import string :data:`APP_FACTORY`; the worker reads the config from the
environment variable :data:`CONFIG_ENV` (see :func:`app_from_environment`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import uvicorn
from fastapi import FastAPI

from deepfake_detect.core.exceptions import ServeError
from deepfake_detect.core.runtime import available_cores
from deepfake_detect.inference.network import load_network
from deepfake_detect.serve.app import create_app
from deepfake_detect.serve.config import API_KEY_ENV, ServeConfig

__all__ = ["serve", "running_server", "bind_warning", "app_from_environment", "listening_socket"]

log = logging.getLogger(__name__)

# The config of `serve --workers N`: uvicorn starts each worker process from an import string, not an object.
CONFIG_ENV = "DEEPFAKE_SERVE_CONFIG"
APP_FACTORY = "deepfake_detect.serve:app_from_environment"


def bind_warning(host: str, api_key: str | None) -> str | None:
    """The warning printed when the service listens beyond this machine without a key; None otherwise.

    Examples
    --------
    >>> bind_warning("127.0.0.1", None) is None and bind_warning("0.0.0.0", "k") is None
    True
    >>> bind_warning("0.0.0.0", None)[:8]
    'warning:'
    """
    if api_key is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a host name other than localhost: it may resolve to anything
        pass
    return (
        f"warning: listening on {host} without an API key: anyone who can reach this port can use the "
        f"service; pass --api-key (or set {API_KEY_ENV}) or bind to 127.0.0.1"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port), for uvicorn to listen on.

    Raises
    ------
    ServeError
        When the address cannot be bound (in use, not this machine's).

    Examples
    --------
    >>> with listening_socket("127.0.0.1", 0) as sock:
    ...     sock.proto == socket.IPPROTO_TCP
    True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only when the proto
    # says TCP, and without it Nagle's algorithm and delayed ACKs add about 40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def _prepare_process(config: ServeConfig) -> None:
    """Compute threads for this process: the cores shared out between the workers."""
    torch.set_num_threads(config.threads or max(1, available_cores() // config.workers))


def app_from_environment() -> FastAPI:
    """App factory for ``serve --workers N``: each uvicorn worker builds its app from :data:`CONFIG_ENV`."""
    config = ServeConfig(**json.loads(os.environ[CONFIG_ENV]))
    _prepare_process(config)
    return create_app(config)


def _serve_in_this_process(config: ServeConfig, sock: socket.socket) -> None:
    threads = torch.get_num_threads()
    _prepare_process(config)
    try:
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        log.info("serving %s on http://%s:%d (Ctrl-C stops)", config.model, config.host, config.port)
        server.run(sockets=[sock])
    finally:
        torch.set_num_threads(threads)  # the caller's again once the service stops


def _serve_with_workers(config: ServeConfig) -> None:
    load_network(config.model, runs_dir=config.runs_dir)  # a bad model fails here, not in every worker
    with config_in_environment(config):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            log_level="info",
            timeout_graceful_shutdown=5,
        )


@contextmanager
def config_in_environment(config: ServeConfig) -> Iterator[None]:
    """Set :data:`CONFIG_ENV` to ``config`` for the body (the worker processes started in it inherit it), and
    put back whatever the variable held before (or remove it) after.

    Examples
    --------
    >>> with config_in_environment(ServeConfig(port=8123)):
    ...     json.loads(os.environ[CONFIG_ENV])["port"]
    8123
    >>> CONFIG_ENV in os.environ
    False
    """
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous


def serve(config: ServeConfig) -> None:
    """Load the model and run the service until interrupted (Ctrl-C stops it cleanly).

    Parameters
    ----------
    config : ServeConfig

    Raises
    ------
    ServeError
        When the address cannot be bound.
    CheckpointError
        When the model cannot be loaded.
    """
    warning = bind_warning(config.host, config.api_key)
    if warning:
        sys.stderr.write(warning + "\n")
    sock = listening_socket(config.host, config.port)  # fail early, before minutes of model loading
    if config.workers == 1:
        _serve_in_this_process(config, sock)
        return
    sock.close()  # uvicorn's supervisor binds its own socket for the workers to share
    _serve_with_workers(config)


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free port; yields its base URL.

    For tests and benchmarks: the server is real (sockets, HTTP parsing), only the process is shared.

    Raises
    ------
    ServeError
        When the server does not start within 30 s.
    """
    sock = listening_socket(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
