"""The one framing of a face in a photo: find it and cut it out as the training data frames faces.

``scan`` scores the crops this returns, and a photo source of the data layer (training and evaluation on whole
photos) stores them, so a face is framed one way whether it is trained on, evaluated or scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepfake_detect.faces.align import crop_quad
from deepfake_detect.faces.haar import Box, crop_face, detect_faces
from deepfake_detect.faces.landmarks import find_faces, five_points

__all__ = ["FRAMINGS", "FramedFace", "frame_faces"]

# "ffhq": landmarks and FFHQ's oriented square (faces/landmarks.py, faces/align.py); "box": the Haar
# cascade's upright box and its two calibrated offsets (faces/haar.py), kept for comparison.
FRAMINGS = ("ffhq", "box")


@dataclass
class FramedFace:
    """One face cut out of a photo.

    ``crop`` is the framed square (``ffhq``: resampled to the 256 px training frame; ``box``: the photo's own
    pixels, not yet resized). ``landmarks`` (5 x 2: eye centres, nose tip, mouth corners) and ``quad`` (4 x 2:
    FFHQ's square) are in pixels of the photo, None in box framing.
    """

    box: Box
    crop: np.ndarray
    landmarks: np.ndarray | None = None
    quad: np.ndarray | None = None


def frame_faces(rgb: np.ndarray, framing: str = "ffhq") -> list[FramedFace]:
    """The faces of a full-resolution RGB photo, each cut out the ``framing`` way (largest first).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The EXIF-corrected photo.
    framing : {"ffhq", "box"}
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
        FramedFace(found.box, crop_quad(rgb, found.quad), five_points(found.landmarks68), found.quad)
        for found in find_faces(rgb)
    ]
