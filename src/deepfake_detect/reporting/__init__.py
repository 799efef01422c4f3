"""Reports of an evaluation: ``report.html``, error galleries, terminal tables. No public surface here: import
from the modules (``deepfake_detect.reporting.report``).
"""
