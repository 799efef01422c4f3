"""The bottom layer: config, run folders, checkpoints, exceptions, runtime settings. No public surface here:
import from the modules (``deepfake_detect.core.config``); ``deepfake_detect`` re-exports ``TrainConfig``,
``load_config`` and ``DeepfakeDetectError``.
"""
