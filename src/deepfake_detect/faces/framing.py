"""The one framing of a face in a photo: find it and cut it out as the training data frames faces.

``scan`` scores the crops this returns, and a photo source of the data layer (training and evaluation on whole
photos) stores them, so a face is framed one way whether it is trained on, evaluated or scanned.

Framings (:data:`FRAMINGS`):

* ``ffhq`` (default): BlazeFace and MediaPipe's face mesh (:mod:`~deepfake_detect.faces.blazeface`) give the
  eyes and mouth, and FFHQ's oriented square is resampled to the 256 px training frame;
* ``dlib``: the same square from dlib's HOG detector and 68 landmarks (:mod:`~deepfake_detect.faces.landmarks`),
  the previous default: slower, and its square is a little closer to FFHQ's own (which dlib's points defined);
* ``box``: the Haar cascade's upright box and its two calibrated offsets (:mod:`~deepfake_detect.faces.haar`),
  kept for comparison.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from deepfake_detect.faces import blazeface, landmarks, model_files
from deepfake_detect.faces.align import crop_quad
from deepfake_detect.faces.haar import Box, crop_face, detect_faces

__all__ = [
    "FRAMINGS",
    "DEFAULT_FRAMING",
    "FramedFace",
    "frame_faces",
    "check_framing",
    "smallest_face",
    "framing_key",
]

FRAMINGS = ("ffhq", "dlib", "box")
# scan's framing unless told otherwise, and the framing of a photo source's crops.
DEFAULT_FRAMING = "ffhq"
# Raise when a framing's code or constants change what it crops: stored crops keyed by framing_key go stale.
FRAMING_VERSION = 3
# The face finders of the framings that resample FFHQ's square.
_FINDERS = {"ffhq": blazeface.find_faces, "dlib": landmarks.find_faces}


@dataclass
class FramedFace:
    """One face cut out of a photo.

    ``crop`` is the framed square (``ffhq``, ``dlib``: resampled to the 256 px training frame; ``box``: the
    photo's own pixels, not yet resized). ``landmarks`` (5 x 2: eye centres, nose tip, mouth corners) and
    ``quad`` (4 x 2: FFHQ's square) are in pixels of the photo, None in box framing.
    """

    box: Box
    crop: np.ndarray
    landmarks: np.ndarray | None = None
    quad: np.ndarray | None = None


def frame_faces(rgb: np.ndarray, framing: str = DEFAULT_FRAMING) -> list[FramedFace]:
    """The faces of a full-resolution RGB photo, each cut out the ``framing`` way (largest first).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The EXIF-corrected photo.
    framing : {"ffhq", "dlib", "box"}
        See :data:`FRAMINGS`.

    Returns
    -------
    list of FramedFace

    Examples
    --------
    >>> frame_faces(np.zeros((64, 64, 3), np.uint8), "box")
    []
    """
    if framing == "box":
        return [FramedFace(box, crop_face(rgb, box)) for box in detect_faces(rgb)]
    return [
        FramedFace(found.box, crop_quad(rgb, found.quad), found.landmarks5, found.quad)
        for found in _FINDERS[framing](rgb)
    ]


def check_framing(framing: str) -> None:
    """Raise :class:`~deepfake_detect.core.exceptions.FaceModelError` now if ``framing``'s models are missing.

    Examples
    --------
    >>> check_framing("ffhq")  # installed: no error
    """
    if framing == "ffhq":
        blazeface.check_models()
    elif framing == "dlib":
        landmarks.check_face_model()


def smallest_face(shape: tuple[int, ...], framing: str = "ffhq") -> int:
    """The smallest face (FFHQ square side, pixels) that ``framing`` looks for in a photo of ``shape``.

    Examples
    --------
    >>> smallest_face((2000, 3000)), smallest_face((2000, 3000), "dlib"), smallest_face((400, 300))
    (60, 255, 56)
    """
    if framing == "ffhq":
        return int(round(blazeface.smallest_face(shape)))
    if framing == "dlib":
        return int(round(landmarks.smallest_face(shape)))
    # Haar: its smallest box on the reduced search copy, framed.
    from deepfake_detect.faces.haar import DETECT_MAX_SIDE, FRAME_EXPAND, MIN_FACE_PX

    return int(round(MIN_FACE_PX * FRAME_EXPAND * max(1.0, max(shape[:2]) / DETECT_MAX_SIDE)))


@functools.cache
def framing_key(framing: str = DEFAULT_FRAMING) -> str:
    """A short name for what ``framing`` crops, for keying stored crops: the framing, :data:`FRAMING_VERSION`
    and its models (the ffhq framing's models.json, dlib's pinned packages).

    Examples
    --------
    >>> framing_key("ffhq").startswith("ffhq-"), len(framing_key("box"))
    (True, 16)
    """
    digest = hashlib.sha256(f"{framing}\t{FRAMING_VERSION}\n".encode())
    if framing == "ffhq":
        digest.update(model_files.RECORD.read_bytes())
    elif framing == "dlib":
        digest.update(f"{landmarks.DLIB_PACKAGE}\t{landmarks.MODEL_PACKAGE}".encode())
    return f"{framing}-{digest.hexdigest()[:12]}"
