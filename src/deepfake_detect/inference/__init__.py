"""The network runtime: weights, preprocessing, calibration and a backend (torch, ONNX float, ONNX int8).

:class:`Network` runs a trained model on framed faces; :mod:`~deepfake_detect.inference.onnx` exports and runs
its graphs; :mod:`~deepfake_detect.inference.gradcam` explains a verdict. Nothing here knows about photos,
folders or results: that is the scan layer above.
"""

from deepfake_detect.inference.network import BACKENDS, Network, load_network

__all__ = ["BACKENDS", "Network", "load_network"]
