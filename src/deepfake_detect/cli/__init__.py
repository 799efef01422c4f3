"""The ``deepfake-detect`` command line: a thin layer over the Python API, one library call a command.

Results go to stdout; progress and logs go to stderr. Errors a user can cause print one line and exit 2 (see
:class:`~deepfake_detect.cli._app._UserErrorsAsOneLine`). Each command module imports the library lazily, inside
its commands, so that ``deepfake-detect --help`` starts without loading torch.
"""

from __future__ import annotations

import logging
import sys

from deepfake_detect.cli._app import app

# Importing the command modules registers their commands on the app; the order is the help's: the workflow's.
# isort: split
from deepfake_detect.cli import training  # noqa: F401, E402

# isort: split
from deepfake_detect.cli import data_runs  # noqa: F401, E402

# isort: split
from deepfake_detect.cli import scanning  # noqa: F401, E402

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: run the app (user errors become one line, see ``cli._app``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
