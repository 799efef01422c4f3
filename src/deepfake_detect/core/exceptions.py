"""Every error a user can cause, in one place, under one base class.

The CLI catches :class:`DeepfakeDetectError` once and prints its message as one line (exit code 2); library
callers can catch the base class or a specific one. Each keeps the built-in type it had before
(``ValueError`` or ``RuntimeError``), so existing ``except ValueError`` code still works.

Examples
--------
>>> issubclass(ScanError, DeepfakeDetectError) and issubclass(ScanError, ValueError)
True
>>> str(DataError("no such folder: x"))
'no such folder: x'
"""

from __future__ import annotations

from PIL import Image, UnidentifiedImageError

__all__ = [
    "DeepfakeDetectError",
    "ConfigError",
    "RunError",
    "CheckpointError",
    "DataError",
    "DownloadError",
    "BadImageError",
    "UnknownModelError",
    "DistributedError",
    "ExplainError",
    "ScanError",
    "FaceModelError",
    "BackendError",
    "ExportError",
    "ParityError",
    "ServeError",
    "MissingExtraError",
    "describe_error",
]


class DeepfakeDetectError(Exception):
    """Base class of the errors this package raises for bad input, options or files.

    ``exit_code`` is what the command line exits with after printing the message: 2 (a usage error) unless a
    subclass says otherwise.
    """

    exit_code = 2


class ConfigError(DeepfakeDetectError, ValueError):
    """A configuration value or key that cannot be used."""


class RunError(DeepfakeDetectError, ValueError):
    """A run folder or id that cannot be found or used."""


class CheckpointError(DeepfakeDetectError, ValueError):
    """A checkpoint that is missing, unreadable or does not match what it claims to be."""


class DataError(DeepfakeDetectError, ValueError):
    """A data set on disk is missing, misplaced or malformed; the message says what was expected."""


class DownloadError(DataError):
    """The data set could not be downloaded, or the download is not the expected layout."""


class BadImageError(DeepfakeDetectError, RuntimeError):
    """An image could not be read while ``strict`` was set."""


class UnknownModelError(DeepfakeDetectError, ValueError):
    """Raised by :func:`create_model` / :func:`get_model_cfg` for a name that is not registered."""


class DistributedError(DeepfakeDetectError, RuntimeError):
    """A rank of a distributed run failed; its own message or traceback was printed above."""


class ExplainError(DeepfakeDetectError, ValueError):
    """An explanation was asked for that this model cannot give."""


class ScanError(DeepfakeDetectError, ValueError):
    """A scan that cannot start: bad options, nothing to scan, a model that cannot do what was asked."""


class FaceModelError(ScanError):
    """A face finder's models cannot be had (dlib and its 68-point model, or the package the BlazeFace models are
    converted from, not installed): says what to install."""


class BackendError(ScanError):
    """A network backend (torch, onnx, onnx-int8) that does not exist or cannot run this model."""


class ExportError(DeepfakeDetectError, ValueError):
    """An export that cannot be done or does not reproduce the torch model."""


class ParityError(ExportError):
    """An exported graph whose scores differ from the torch model's beyond the tolerance (exit code 1)."""

    exit_code = 1


class MissingExtraError(DeepfakeDetectError, ImportError):
    """An optional feature whose extra (``pip install 'deepfake-detect[ray]'``, ``[mlflow]``) is not installed."""


class ServeError(DeepfakeDetectError, ValueError):
    """A service that cannot start: bad limits, an address that cannot be bound."""


def describe_error(err: BaseException) -> str:
    """A one-line, user-facing reason why a file could not be read.

    Examples
    --------
    >>> describe_error(FileNotFoundError(2, "No such file or directory"))
    'cannot open: No such file or directory'
    """
    if isinstance(err, UnidentifiedImageError):  # its own message embeds a file object's repr
        return "not a recognised image format"
    if isinstance(err, Image.DecompressionBombError):
        return f"refused as a possible decompression bomb: {err}"
    if isinstance(err, IsADirectoryError):
        return "cannot open: it is a directory, not a file"
    if isinstance(err, OSError) and err.errno is not None:
        return f"cannot open: {err.strerror or err}"
    text = str(err).strip() or type(err).__name__
    if "truncated" in text:
        return f"truncated or corrupt image ({text})"
    return text if isinstance(err, OSError) else f"{type(err).__name__}: {text}"
