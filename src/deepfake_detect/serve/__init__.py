"""The web service, ``deepfake-detect serve``: a REST API and a web page over :meth:`Detector.scan`.

>>> from deepfake_detect.serve import ServeConfig, serve         # doctest: +SKIP
>>> serve(ServeConfig(port=8000, api_key="s3cret"))             # doctest: +SKIP

The modules, in the order a request meets them:

* ``config`` -- :class:`ServeConfig`, the flags of ``serve`` and their checks.
* ``server`` -- the listening socket and uvicorn: :func:`serve`, :func:`running_server` (tests, benchmarks).
* ``app`` -- :func:`create_app` and the endpoints (``POST /v1/scan``, ``GET /v1/model``, ``/healthz``, the
  page at ``/``, the docs at ``/docs``); they get the detector and the config as FastAPI dependencies.
* ``uploads`` -- the request size limit, the multipart body parsed in memory, content sniffing.
* ``scanning`` -- one request's files judged by the detector, one ``scan --json`` row each.
* ``model_card`` -- what ``GET /v1/model`` answers.
* ``schemas`` and ``errors`` -- the JSON of the answers and of the errors.

The page's files are package data in ``deepfake_detect/static``.
"""

from deepfake_detect.core.exceptions import ServeError
from deepfake_detect.serve.app import create_app
from deepfake_detect.serve.config import ServeConfig
from deepfake_detect.serve.model_card import model_card
from deepfake_detect.serve.server import app_from_environment, bind_warning, running_server, serve

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
