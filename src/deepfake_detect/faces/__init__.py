"""The faces layer: find faces in a photo and frame them like the training data, one way for every caller.

``landmarks`` (dlib's detector, 68 landmarks, FFHQ's square), ``align`` (one warp of the square to the
256 px frame), ``haar`` (the Haar cascade's box framing, ``--framing box``) and ``framing`` (the function that
``scan`` and the data layer's photo sources both call). It sits below ``data``: it needs only numpy, OpenCV
and dlib.
"""

from deepfake_detect.faces.align import FRAME_SIZE, crop_quad
from deepfake_detect.faces.framing import FRAMINGS, FramedFace, frame_faces
from deepfake_detect.faces.landmarks import FoundFace, check_face_model, ffhq_quad, find_faces, quad_side

__all__ = [
    "FRAME_SIZE",
    "FRAMINGS",
    "FoundFace",
    "FramedFace",
    "check_face_model",
    "crop_quad",
    "ffhq_quad",
    "find_faces",
    "frame_faces",
    "quad_side",
]
