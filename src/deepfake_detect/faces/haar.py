"""Face finding for photos in the wild: OpenCV's Haar cascade, then a crop framed like the training faces.

The 140k training faces are FFHQ-style aligned crops: the face sits in the middle of a loose square, with
hair, ears and some background around it. A model trained on them only knows that framing, so a face found
in a larger photo is cut out the same way before it is scored.

How the framing was measured: the Haar detector below (``scaleFactor 1.1``, ``minNeighbors 5``) was run on
the 250 real 256 px images of ``faces140k/test``. It found a face in 234 of them. The Haar box is square;
its side is a median 0.672 of the frame (10th-90th percentile 0.613-0.727), and its centre sits at a median
(0.502, 0.549) of the frame's width and height, i.e. slightly below the middle (the box covers brows to
chin, the frame also holds the hair). The 250 fakes give the same picture (248 found, side 0.684, centre
(0.498, 0.549)). Inverting the real-image medians:

* frame side = box side x 1/0.672 = box side x :data:`FRAME_EXPAND` (1.49);
* frame centre = box centre + :data:`FRAME_SHIFT_Y` (-0.074) x box side vertically, no horizontal shift.

:func:`face_frame` applies this; :func:`crop_face` cuts the square out of the photo, mirror-padding where it
runs past the border (FFHQ's own alignment also pads by reflection), so the face stays centred.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "FRAME_EXPAND",
    "FRAME_SHIFT_Y",
    "DETECT_MAX_SIDE",
    "MIN_FACE_PX",
    "Box",
    "detect_faces",
    "face_frame",
    "crop_face",
]

# Measured on faces140k/test/real (see the module docstring): Haar box side / training frame side = 0.672.
FRAME_EXPAND = 1.49
# Training frame centre minus Haar box centre, in box sides (negative = the frame extends further up).
FRAME_SHIFT_Y = -0.074
# Photos are searched at most this many pixels on their long side: Haar's cost grows with the area, and a
# face smaller than MIN_FACE_PX there is too small to judge anyway. Boxes are mapped back to full size.
DETECT_MAX_SIDE = 1024
# Smallest Haar box searched for, in pixels of the (possibly reduced) search image.
MIN_FACE_PX = 32

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the EXIF-corrected image


@functools.cache
def _cascade():
    """The frontal-face cascade, loaded once per process (workers load their own)."""
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its Haar cascade from {path}")
    return cascade


def detect_faces(
    rgb: np.ndarray, *, max_side: int = DETECT_MAX_SIDE, min_face: int = MIN_FACE_PX
) -> list[Box]:
    """Find frontal faces in an RGB image with OpenCV's Haar cascade.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The EXIF-corrected image.
    max_side : int
        The search runs on a copy reduced to at most this long side.
    min_face : int
        Smallest face searched for, in pixels of the reduced copy.

    Returns
    -------
    list of (x, y, w, h)
        Boxes in pixels of ``rgb``, largest first (ties: top-left first).

    Examples
    --------
    >>> detect_faces(np.zeros((64, 64, 3), np.uint8))
    []
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        # At least 1 px a side: a 1 x 4000 strip would round to 0 wide, which OpenCV refuses.
        reduced = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, reduced, interpolation=cv2.INTER_AREA)
    if min(gray.shape) < min_face:
        return []
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_face, min_face))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in np.asarray(found).reshape(-1, 4)]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def face_frame(box: Box) -> tuple[int, int, int]:
    """The square training framing around a Haar box: ``(left, top, side)``, possibly past the borders.

    Examples
    --------
    >>> face_frame((100, 100, 100, 100))
    (76, 68, 149)
    """
    x, y, w, h = box
    side = max(w, h) * FRAME_EXPAND
    cx = x + w / 2
    cy = y + h / 2 + FRAME_SHIFT_Y * max(w, h)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))


def crop_face(rgb: np.ndarray, box: Box) -> np.ndarray:
    """Cut the training-framed square around ``box`` out of ``rgb``, mirror-padding past the borders.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    box : (x, y, w, h)
        A face box from :func:`detect_faces`.

    Returns
    -------
    ndarray of shape (S, S, 3), uint8
        ``S`` is the framed side (not yet resized to the model's framing).

    Examples
    --------
    >>> crop_face(np.zeros((50, 80, 3), np.uint8), (0, 0, 40, 40)).shape
    (60, 60, 3)
    """
    left, top, side = face_frame(box)
    height, width = rgb.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    inside = rgb[y0:y1, x0:x1]
    pads = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
    if not any(p for pair in pads for p in pair):
        return np.ascontiguousarray(inside)
    # "symmetric" repeats the reflection when a pad is wider than the image (a face at a tiny photo's edge).
    return np.pad(inside, pads, mode="symmetric")
