"""The data set on disk: find it, list its splits, fingerprint it and check it.

:mod:`~deepfake_detect.data.samples` holds the naming rules, :mod:`~deepfake_detect.data.layout` the folder
layout, :mod:`~deepfake_detect.data.manifests` the Kaggle CSV manifests, :mod:`~deepfake_detect.data.fingerprint`
the content hashes, :mod:`~deepfake_detect.data.near_duplicates` the perceptual hashes, and
:mod:`~deepfake_detect.data.check` and :mod:`~deepfake_detect.data.mix_check` the data check of a folder and of
a data mix. Torch datasets and transforms live in
:mod:`~deepfake_detect.data.dataset` and :mod:`~deepfake_detect.data.transforms` (not imported here: torch is
slow to import).
"""

from __future__ import annotations

from deepfake_detect.core.exceptions import DataError
from deepfake_detect.data.check import DataReport, check_dataset
from deepfake_detect.data.fingerprint import (
    combine_fingerprints,
    data_fingerprint,
    fingerprint_dataset,
    fingerprint_sources,
    hash_files,
)
from deepfake_detect.data.layout import list_split, resolve_data_root, walk_files
from deepfake_detect.data.manifests import read_manifest
from deepfake_detect.data.mix_check import MixReport, check_mix
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
    "fingerprint_sources",
    "combine_fingerprints",
    "check_dataset",
    "MixReport",
    "check_mix",
]
