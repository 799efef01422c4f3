"""Deprecated: the "uncertain" band moved to :mod:`deepfake_detect.metrics.calibration` (``band``).

Its names are still found here, each use with a ``DeprecationWarning``; import them from
``deepfake_detect.metrics.calibration`` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

from deepfake_detect.metrics.calibration import band as _moved

_MOVED = ("abstention_band", "band_verdicts", "coverage_and_precision")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"deepfake_detect.metrics.abstention.{name} moved to deepfake_detect.metrics.calibration.{name}; the old "
        "path will be removed",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_moved, name)
