"""Fetch the full Kaggle "140k Real and Fake Faces" data set and check it is usable.

The download goes through ``kagglehub``, an optional dependency imported only here and only when a download
starts (``pip install kagglehub``). The network call is a parameter of :func:`download_dataset`, so everything
around it (finding credentials, explaining failures, locating and validating the result) is testable offline.

The archive (about 4 GB) unpacks to ``real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg`` plus
``train.csv``, ``valid.csv`` and ``test.csv`` manifests; :func:`~deepfake_detect.data.resolve_data_root` and
:func:`~deepfake_detect.data.list_split` read either.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from deepfake_detect.core.exceptions import DataError, DownloadError
from deepfake_detect.data.layout import list_split, resolve_data_root
from deepfake_detect.data.samples import SPLITS

__all__ = ["KAGGLE_DATASET", "DownloadError", "download_dataset", "kaggle_credentials", "validate_download"]

log = logging.getLogger(__name__)

KAGGLE_DATASET = "xhlulu/140k-real-and-fake-faces"
_TOKEN_HELP = (
    "create an API token at https://www.kaggle.com/settings (API, Create New Token) and save it as "
    "~/.kaggle/kaggle.json, or set KAGGLE_USERNAME and KAGGLE_KEY"
)
# Words in an exception's type or message that mean the server refused who we are, not that the network failed.
_AUTH_MARKERS = ("401", "403", "unauthenticated", "unauthorized", "forbidden", "credential", "permission")

Downloader = Callable[[str, Path | None], str | os.PathLike[str]]


def kaggle_credentials(env: Mapping[str, str] | None = None, home: str | Path | None = None) -> str | None:
    """Say where Kaggle credentials would be read from, or None when there are none.

    Parameters
    ----------
    env : mapping, optional
        Environment variables; defaults to ``os.environ``.
    home : path, optional
        Home folder; defaults to ``~``.

    Returns
    -------
    str or None
        ``"KAGGLE_USERNAME/KAGGLE_KEY"``, ``"KAGGLE_API_TOKEN"`` or the credentials file found.

    Examples
    --------
    >>> kaggle_credentials({"KAGGLE_USERNAME": "me", "KAGGLE_KEY": "k"}, home="/nonexistent")
    'KAGGLE_USERNAME/KAGGLE_KEY'
    >>> kaggle_credentials({}, home="/nonexistent") is None
    True
    """
    env = os.environ if env is None else env
    home = Path(home if home is not None else Path.home())
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    folders = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    folders += [home / ".kaggle", home / ".config" / "kaggle"]
    for folder in folders:
        for name in ("kaggle.json", "access_token"):
            if (folder / name).is_file():
                return str(folder / name)
    return None


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Set one environment variable for the body (a no-op for None), then restore it."""
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def kagglehub_download(handle: str, dest: Path | None) -> str:
    """Download ``handle`` with kagglehub, into ``dest`` when given (else kagglehub's cache); return its folder."""
    try:
        import kagglehub
    except ImportError:
        raise DownloadError("downloading the data set needs kagglehub: pip install kagglehub") from None
    # KAGGLEHUB_CACHE moves kagglehub's cache; every kagglehub version honours it.
    with _environment("KAGGLEHUB_CACHE", str(dest) if dest is not None else None):
        return kagglehub.dataset_download(handle)


def _explain(err: Exception, handle: str, credentials: str | None) -> str:
    """One message saying what went wrong and what to do, for a failed download."""
    text = f"{type(err).__name__}: {err}".lower()
    if any(marker in text for marker in _AUTH_MARKERS):
        if credentials is None:
            return (
                f"Kaggle refused the download of {handle} and no Kaggle credentials were found; {_TOKEN_HELP}"
            )
        return (
            f"Kaggle refused the download of {handle} with the credentials from {credentials} ({err}); check "
            "that the token is current and that you accepted the data set's terms on kaggle.com"
        )
    hint = "" if credentials is not None else f" (no Kaggle credentials were found either; {_TOKEN_HELP})"
    return f"downloading {handle} failed: {err}{hint}"


def validate_download(path: str | os.PathLike[str]) -> tuple[Path, dict[str, int]]:
    """Find the data root inside a download and count its images per split.

    Returns
    -------
    root : Path
        The folder holding ``train/``, ``valid/`` and ``test/`` (what ``--data`` takes).
    counts : dict of str to int
        Images per split.

    Raises
    ------
    DownloadError
        When a split or class folder is missing or empty.
    """
    try:
        root = resolve_data_root(path)
        counts = {split: len(list_split(root, split)) for split in SPLITS}
    except DownloadError:
        raise
    except DataError as err:
        raise DownloadError(f"the download at {path} is not the expected 140k layout: {err}") from None
    return root, counts


def download_dataset(
    dest: str | os.PathLike[str] | None = None,
    *,
    handle: str = KAGGLE_DATASET,
    download: Downloader | None = None,
    env: Mapping[str, str] | None = None,
    home: str | Path | None = None,
) -> Path:
    """Download the 140k data set (or reuse kagglehub's cached copy) and return its validated data root.

    Parameters
    ----------
    dest : path, optional
        Folder to download into; default: kagglehub's cache (``~/.cache/kagglehub``).
    handle : str
        Kaggle data set handle.
    download : callable, optional
        ``download(handle, dest) -> folder``; default: :func:`kagglehub_download`. Tests pass a fake.
    env, home : optional
        Where to look for credentials when explaining a failure (default: the process's).

    Returns
    -------
    Path
        The folder to pass as ``--data``.

    Raises
    ------
    DownloadError
        Without kagglehub, when Kaggle refuses or the network fails (saying which and what to do), or when the
        result is not the expected layout.
    """
    download = download or kagglehub_download
    target = Path(dest).expanduser() if dest is not None else None
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
    try:
        folder = download(handle, target)
    except DownloadError:
        raise
    except Exception as err:  # noqa: BLE001 - kagglehub raises many types; each becomes one clear message
        raise DownloadError(_explain(err, handle, kaggle_credentials(env, home))) from err
    root, counts = validate_download(folder)
    log.info("%s: %s", root, ", ".join(f"{split} {n:,}" for split, n in counts.items()))
    return root
