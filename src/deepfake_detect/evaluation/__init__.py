"""Scoring a trained model on a split: evaluation, robustness, baselines, the band of an existing model, the
backend choice. No public surface here: import from the modules; ``deepfake_detect.evaluate`` is the public name.
"""
