"""The data set on disk: find it, list its splits, fingerprint it and check it.

:mod:`~deepfake_detect.data.samples` holds the naming rules, :mod:`~deepfake_detect.data.layout` the folder
layout, :mod:`~deepfake_detect.data.manifests` the Kaggle CSV manifests, :mod:`~deepfake_detect.data.fingerprint`
the content hashes and :mod:`~deepfake_detect.data.check` the data check. Torch datasets and transforms live in
:mod:`~deepfake_detect.data.dataset` and :mod:`~deepfake_detect.data.transforms` (not imported here: torch is
slow to import).
"""

from __future__ import annotations

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.check import DataReport, check_dataset
from deepfake_detect.data.fingerprint import data_fingerprint, fingerprint_dataset, hash_files
from deepfake_detect.data.layout import list_split, resolve_data_root, walk_files
from deepfake_detect.data.manifests import read_manifest
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, IMAGE_EXTENSIONS, SPLITS, Sample

__all__ = [
    "SPLITS",
    "IMAGE_EXTENSIONS",
    "DEFAULT_CLASS_NAMES",
    "DataError",
    "Sample",
    "DataReport",
    "resolve_data_root",
    "list_split",
    "walk_files",
    "read_manifest",
    "hash_files",
    "data_fingerprint",
    "fingerprint_dataset",
    "check_dataset",
]
