"""``data download``: everything around the network call, with the download function injected."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from deepfake_detect.data.download import (
    KAGGLE_DATASET,
    DownloadError,
    download_dataset,
    kaggle_credentials,
    kagglehub_download,
)

NO_CREDENTIALS = dict(env={}, home="/nonexistent")


def fake_kaggle(write_dataset, top: Path) -> Path:
    """The Kaggle download's nesting under ``top``, with a tiny data set written by ``write_dataset``."""
    write_dataset(top / "real_vs_fake" / "real-vs-fake", per_class=(2, 1, 1))
    return top


def test_download_locates_and_validates_the_data_root(tmp_path, make_face_dataset):
    calls = []

    def download(handle, dest):
        calls.append((handle, dest))
        return str(fake_kaggle(make_face_dataset, dest / "datasets" / "xhlulu" / "versions" / "3"))

    root = download_dataset(tmp_path / "dest", download=download)
    assert calls == [(KAGGLE_DATASET, tmp_path / "dest")]
    assert (
        root == tmp_path / "dest" / "datasets" / "xhlulu" / "versions" / "3" / "real_vs_fake" / "real-vs-fake"
    )


def test_an_incomplete_download_is_reported(tmp_path, make_face_dataset):
    top = fake_kaggle(make_face_dataset, tmp_path / "dl")
    for image in (top / "real_vs_fake" / "real-vs-fake" / "test" / "fake").iterdir():
        image.unlink()
    with pytest.raises(DownloadError, match="not the expected 140k layout: no images in .*test/fake"):
        download_dataset(download=lambda handle, dest: top)


def test_missing_kagglehub_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # makes `import kagglehub` fail
    with pytest.raises(DownloadError, match="pip install kagglehub"):
        download_dataset()


def test_kagglehub_downloads_into_dest_and_restores_the_environment(monkeypatch, tmp_path, make_face_dataset):
    seen = {}

    def dataset_download(handle):
        seen["cache"] = os.environ.get("KAGGLEHUB_CACHE")
        return str(fake_kaggle(make_face_dataset, tmp_path / "cache" / "x"))

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))
    monkeypatch.delenv("KAGGLEHUB_CACHE", raising=False)
    assert Path(kagglehub_download(KAGGLE_DATASET, tmp_path / "cache")).is_dir()
    assert seen["cache"] == str(tmp_path / "cache") and "KAGGLEHUB_CACHE" not in os.environ


class UnauthenticatedError(Exception):
    """Named like kagglehub's own."""


def _refuse(handle, dest):
    raise UnauthenticatedError("401 Client Error: Unauthorized for url")


def test_missing_credentials_give_a_clear_message():
    with pytest.raises(
        DownloadError, match=r"no Kaggle credentials were found; create an API token.*kaggle.json"
    ):
        download_dataset(download=_refuse, **NO_CREDENTIALS)


def test_refused_credentials_name_where_they_came_from(tmp_path):
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    with pytest.raises(DownloadError, match=r"credentials from .*kaggle.json .*401"):
        download_dataset(download=_refuse, env={}, home=tmp_path)


def test_network_failure_is_reported_as_such():
    def offline(handle, dest):
        raise ConnectionError("Name or service not known")

    with pytest.raises(DownloadError, match=r"downloading xhlulu/.* failed: Name or service not known"):
        download_dataset(download=offline, env={"KAGGLE_API_TOKEN": "t"})


def test_where_credentials_are_found(tmp_path):
    assert (
        kaggle_credentials({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, tmp_path)
        == "KAGGLE_USERNAME/KAGGLE_KEY"
    )
    assert kaggle_credentials({"KAGGLE_USERNAME": "u"}, tmp_path) is None
    assert kaggle_credentials({"KAGGLE_API_TOKEN": "t"}, tmp_path) == "KAGGLE_API_TOKEN"
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "kaggle.json").write_text("{}")
    assert kaggle_credentials({"KAGGLE_CONFIG_DIR": str(tmp_path / "conf")}, tmp_path).endswith("kaggle.json")
    (tmp_path / ".config" / "kaggle").mkdir(parents=True)
    (tmp_path / ".config" / "kaggle" / "access_token").write_text("t")
    assert kaggle_credentials({}, tmp_path) == str(tmp_path / ".config" / "kaggle" / "access_token")


@pytest.mark.slow
def test_cli_without_kagglehub_prints_one_line_and_exits_2(tmp_path):
    code = "import sys; sys.modules['kagglehub'] = None; sys.argv[0] = 'deepfake-detect'; "
    code += "from deepfake_detect.cli import main; main()"
    cmd = [sys.executable, "-c", code, "data", "download", "--dest", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: downloading the data set needs kagglehub: pip install kagglehub"
