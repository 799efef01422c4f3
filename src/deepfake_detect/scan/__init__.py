"""The scan layer: find the faces in photos and videos, frame them like the training data, judge each one.

Its public surface is the detector (:func:`load_detector`, :meth:`Detector.scan`), :func:`scan_paths` (the
``deepfake-detect scan`` command as a function) and the input helpers; the modules below it are one stage each:
``inputs`` (what to read), ``urls`` (``s3://`` and ``gs://`` inputs), ``landmarks`` and ``faces`` (finding:
dlib's 68 landmarks, or the Haar box), ``align`` (warping FFHQ's quad to the training frame), ``decode`` and
``video`` (framing), ``pipeline`` (batching and scoring), ``explain`` (heatmaps in results), ``parquet`` (a folder
of Parquet part files), ``output`` (JSONL, CSV, HTML report, :func:`scan_paths`), ``detector`` (the user-facing
class). ``ray_scan`` is the deprecated old path of :mod:`deepfake_detect.batch`, the Ray driver.
"""

from deepfake_detect.scan.detector import Detector, load_detector
from deepfake_detect.scan.inputs import iter_inputs, read_path_list
from deepfake_detect.scan.output import ScanSummary, scan_paths
from deepfake_detect.scan.pipeline import iter_scan

__all__ = [
    "Detector",
    "load_detector",
    "scan_paths",
    "ScanSummary",
    "iter_scan",
    "iter_inputs",
    "read_path_list",
]
