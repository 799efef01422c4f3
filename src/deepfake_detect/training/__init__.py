"""Training a model: ``train(cfg)`` and the loop, state, ranks and tracking under it. No public surface here:
import from the modules (``deepfake_detect.training.train``); ``deepfake_detect.train`` is the public name.
"""
