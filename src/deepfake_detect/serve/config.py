"""What the service is started with: :class:`ServeConfig`, one field a ``deepfake-detect serve`` flag (but
``onnx_cache``, which only Python callers set)."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepfake_detect.core.exceptions import ServeError
from deepfake_detect.inference.network import BACKENDS
from deepfake_detect.scan.decode import FRAMINGS

__all__ = ["ServeConfig", "API_KEY_ENV", "MIB"]

# The environment variable the CLI reads the key from (named in the warning of an open service).
API_KEY_ENV = "DEEPFAKE_API_KEY"
MIB = 2**20


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs; each field but ``onnx_cache`` is a ``deepfake-detect serve`` flag of the same
    name.

    Parameters
    ----------
    host, port : str, int
        Address to listen on. Anything but loopback without ``api_key`` prints a warning.
    model : str
        ``default``, a run folder or id (under ``runs_dir``), a ``.safetensors`` or an ``.onnx`` file.
    workers : int
        uvicorn worker processes, each with its own copy of the model.
    concurrency : int
        Scans one process runs at the same time; more requests wait their turn.
    threads : int, optional
        Compute threads a process; default: the cores divided by ``workers``.
    max_request_mb : float
        Largest request body (all files plus multipart overhead), in MiB.
    max_files : int
        Most files a request.
    max_pixels : int
        Largest image, in pixels (width x height), checked from the header before decoding.
    api_key : str, optional
        Require ``Authorization: Bearer <key>`` on ``/v1/*``.
    keep_uploads : str, optional
        Folder to save every uploaded file in (named by content hash); default: nothing is written.
    onnx_cache : str, optional
        Folder of exported float ONNX graphs (``backend="onnx"`` or ``"auto"`` without an int8 default; the int8
        graph is read from beside the weights); default ``~/.cache/deepfake-detect/onnx``. No flag: the command
        line always uses the default.
    backend : {"auto", "onnx-int8", "onnx", "torch"}
        As for ``scan``: ``auto`` is the model's default backend (the int8 graph where its metadata makes it
        so, else float), whose scores ``evaluate`` gives; ``onnx-int8`` is about twice as fast as float.
    abstain : bool
        As for ``scan``: "uncertain" inside the model's abstention band; False (``--no-abstain``): always
        "real" or "fake".
    runs_dir : str
        Where run ids are looked up.
    framing : {"ffhq", "dlib", "box"}
        As for ``scan``: FFHQ's oriented square from BlazeFace and the face mesh, or from dlib's landmarks, or
        the Haar cascade's box.

    Raises
    ------
    ServeError
        When a limit is not positive, the port is out of range, the key is blank or the backend unknown.

    Examples
    --------
    >>> ServeConfig(max_request_mb=2).limits()
    {'max_request_bytes': 2097152, 'max_files': 16, 'max_pixels': 50000000}
    >>> ServeConfig(max_files=0)
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.ServeError: max-files must be positive, got 0
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "default"
    workers: int = 1
    concurrency: int = 1
    threads: int | None = None
    max_request_mb: float = 32.0
    max_files: int = 16
    max_pixels: int = 50_000_000
    api_key: str | None = field(default=None, repr=False)  # repr: a logged config does not leak the key
    keep_uploads: str | None = None
    onnx_cache: str | None = None
    backend: str = "auto"
    abstain: bool = True
    runs_dir: str = "runs"
    framing: str = "ffhq"

    def __post_init__(self):
        positive = ("workers", "concurrency", "max_request_mb", "max_files", "max_pixels")
        for name in positive + (("threads",) if self.threads is not None else ()):
            if getattr(self, name) <= 0:
                raise ServeError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"port must be in 0..65535 (0: any free port), got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise ServeError("api-key is empty")
        if self.backend not in BACKENDS:
            raise ServeError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.framing not in FRAMINGS:
            raise ServeError(f"framing must be one of {', '.join(FRAMINGS)}; got {self.framing!r}")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MIB)

    def limits(self) -> dict[str, int]:
        """The limits as the API reports them (``GET /healthz``)."""
        return {
            "max_request_bytes": self.max_request_bytes,
            "max_files": self.max_files,
            "max_pixels": self.max_pixels,
        }
