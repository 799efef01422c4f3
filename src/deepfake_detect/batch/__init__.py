"""Batch scans over a cluster: ``deepfake-detect scan --ray`` and :func:`scan_dataset` (needs the ``ray`` extra).

Like :mod:`deepfake_detect.serve`, this is a driver over the scan layer's
:func:`~deepfake_detect.scan.pipeline.iter_scan`: Ray Data actors each run the local scan on a part of the inputs
and write it as a Parquet part file. See :mod:`~deepfake_detect.batch.ray_scan`.
"""

from deepfake_detect.batch.ray_scan import DatasetScanSummary, scan_dataset

__all__ = ["DatasetScanSummary", "scan_dataset"]
