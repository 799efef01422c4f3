"""Figures drawn from arrays. No public surface here: import from ``deepfake_detect.viz.plots``."""
