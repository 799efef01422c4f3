"""Deprecated: the Ray driver moved to :mod:`deepfake_detect.batch.ray_scan` (``deepfake_detect.batch``).

Its public names are still found here, each use with a ``DeprecationWarning``; ``dd.scan_dataset`` and
``deepfake-detect scan --ray`` are unchanged. This is the scan layer's one import of a layer above it, allowed by
name in ``pyproject.toml``'s import contract until this module is removed.
"""

from __future__ import annotations

import warnings
from typing import Any

from deepfake_detect.batch import ray_scan as _moved

_MOVED = ("DatasetScanSummary", "scan_dataset")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"deepfake_detect.scan.ray_scan.{name} moved to deepfake_detect.batch.{name} (scan_dataset is also "
        "deepfake_detect.scan_dataset); the old path will be removed",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_moved, name)
