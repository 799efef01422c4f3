"""The faces layer: find faces in a photo and frame them like the training data, one way for every caller.

``blazeface`` (the default finder: BlazeFace and the face mesh on ONNX Runtime, with a second look on tiles for
small faces), ``landmarks`` (dlib's detector, 68 landmarks and FFHQ's square), ``align`` (one warp of the
square to the 256 px frame), ``haar`` (the Haar cascade's box framing) and ``framing`` (:func:`frame_faces`,
the function that ``scan`` and the data layer's photo sources both call). It sits below ``data``: it needs
only numpy, OpenCV, ONNX Runtime and dlib.
"""

from deepfake_detect.faces.align import FRAME_SIZE, crop_quad
from deepfake_detect.faces.framing import FRAMINGS, FramedFace, check_framing, frame_faces, smallest_face
from deepfake_detect.faces.landmarks import FoundFace, ffhq_quad, quad_side

__all__ = [
    "FRAME_SIZE",
    "FRAMINGS",
    "FoundFace",
    "FramedFace",
    "check_framing",
    "crop_quad",
    "ffhq_quad",
    "frame_faces",
    "quad_side",
    "smallest_face",
]
