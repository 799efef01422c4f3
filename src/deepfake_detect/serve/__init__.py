"""The web service: ``deepfake-detect serve`` (see :mod:`deepfake_detect.serve.app`)."""

from deepfake_detect.serve.app import (
    ServeConfig,
    ServeError,
    app_from_environment,
    bind_warning,
    create_app,
    model_card,
    running_server,
    serve,
)

__all__ = [
    "ServeConfig",
    "ServeError",
    "app_from_environment",
    "bind_warning",
    "create_app",
    "model_card",
    "running_server",
    "serve",
]
