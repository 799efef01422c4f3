"""FFHQ's alignment geometry (``ffhq_quad``) and the one-warp resampling of a quad (``crop_quad``)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_detect.faces.align import crop_quad, quad_matrix
from deepfake_detect.faces.landmarks import ffhq_quad, five_points, quad_side


def _template() -> np.ndarray:
    """68 points of an upright face: eyes 40 px apart at y=50, mouth corners 30 px apart at y=100."""
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 120, (68, 2))  # the points the recipe does not read may be anywhere
    lm[36:42] = [40, 50] + rng.normal(0, 2, (6, 2))
    lm[36:42] -= lm[36:42].mean(axis=0) - [40, 50]  # eye centres exactly where the quad below needs them
    lm[42:48] = [80, 50] + rng.normal(0, 2, (6, 2))
    lm[42:48] -= lm[42:48].mean(axis=0) - [80, 50]
    lm[48], lm[54] = (45, 100), (75, 100)
    return lm


# By hand from the recipe: eye_avg (60, 50), eye_to_mouth (0, 50), x = (90, 0) (1.8 x 50 beats 2 x 40),
# y = (0, 90), c = (60, 55).
TEMPLATE_QUAD = np.array([[-30, -35], [-30, 145], [150, 145], [150, -35]], np.float64)


def _similarity(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), shift[0]], [np.sin(a), np.cos(a), shift[1]]]) * [scale, scale, 1]


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_the_template_quad_is_the_recipe_by_hand():
    assert ffhq_quad(_template()) == pytest.approx(TEMPLATE_QUAD, abs=1e-9)
    assert quad_side(TEMPLATE_QUAD) == pytest.approx(180)


@pytest.mark.parametrize(
    ("degrees", "scale", "shift"),
    [(0, 1, (0, 0)), (17, 2.5, (300, -40)), (-35, 0.7, (12.5, 80)), (90, 3, (0, 0))],
)
def test_a_similarity_transform_of_the_landmarks_moves_the_quad_alike(degrees, scale, shift):
    matrix = _similarity(degrees, scale, shift)
    quad = ffhq_quad(_apply(matrix, _template()))
    assert quad == pytest.approx(_apply(matrix, TEMPLATE_QUAD), abs=1e-6)
    assert quad_side(quad) == pytest.approx(180 * scale)


def test_a_long_face_is_sized_by_the_eyes_when_they_are_far_apart():
    lm = _template()
    lm[36:42] += [-40, 0]  # eyes 120 px apart: 2 x 120 beats 1.8 x 50
    lm[42:48] += [40, 0]
    assert quad_side(ffhq_quad(lm)) == pytest.approx(2 * 2 * 120, rel=1e-6)


def test_five_points_are_the_eye_centres_the_nose_tip_and_the_mouth_corners():
    lm = _template()
    lm[30] = (60, 75)
    assert five_points(lm) == pytest.approx(np.array([[40, 50], [80, 50], [60, 75], [45, 100], [75, 100]]))


# --------------------------------------------------------------------------------------------- crop_quad


def _ramp(height=80, width=100) -> np.ndarray:
    """An image whose pixels name their place: R = column, G = row (both < 256), B = 7."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols, rows, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


# A quad's corners are in pixel-index coordinates, as FFHQ's ``quad + 0.5`` to PIL says: corner (9.5, 19.5)
# is the outer corner of pixel (10, 20), so the quads below cover whole pixels.


def test_an_axis_aligned_quad_of_the_output_size_copies_the_pixels():
    image = _ramp()
    quad = np.array([[10, 20], [10, 52], [42, 52], [42, 20]], np.float64) - 0.5  # pixels 10..41 x 20..51
    assert np.array_equal(crop_quad(image, quad, size=32), image[20:52, 10:42])
    shifted = crop_quad(image, quad + 0.5, size=32)  # half a pixel off: the bilinear mean of two neighbours
    assert np.array_equal(shifted[1:-1, 1:-1, 0], image[21:51, 11:41, 0].astype(int) + 1)


def test_a_quarter_turned_quad_gives_the_turned_pixels():
    image = _ramp()
    # A face lying on its side, its top towards +x: the corners top-left, bottom-left, bottom-right, top-right
    # of the face are the region's top-right, top-left, bottom-left and bottom-right.
    quad = np.array([[42, 20], [10, 20], [10, 52], [42, 52]], np.float64) - 0.5
    assert np.array_equal(crop_quad(image, quad, size=32), np.rot90(image[20:52, 10:42], k=1))


def test_a_larger_quad_is_area_averaged_to_the_output():
    image = _ramp()
    quad = np.array([[0, 0], [0, 64], [64, 64], [64, 0]], np.float64) - 0.5
    out = crop_quad(image, quad, size=32).astype(float)
    expected = image[:64, :64].astype(float).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(out - expected).max() <= 1.0  # the mean of each 2 x 2 block (rounding aside)


def test_past_the_border_the_image_is_reflected():
    image = _ramp()
    quad = np.array([[-10, -6], [-10, 26], [22, 26], [22, -6]], np.float64) - 0.5  # 10 px left, 6 px up
    out = crop_quad(image, quad, size=32).astype(int)
    assert out[6, 10].tolist() == [0, 0, 7]  # the image's corner sits where the quad puts it
    assert out[6, 9].tolist() == [1, 0, 7] and out[6, 0].tolist() == [10, 0, 7]  # columns -1, -10 -> 1, 10
    assert out[0, 10].tolist() == [0, 6, 7]  # row -6 -> 6
    assert np.array_equal(out[6:, 10:], image[:26, :22])


def test_the_quad_matrix_maps_output_centres_to_the_quad():
    quad = np.array([[5, 5], [5, 25], [25, 25], [25, 5]], np.float64)
    matrix = quad_matrix(quad, 10)
    assert (matrix @ [0, 0, 1]).tolist() == [6.0, 6.0]  # output pixel (0, 0): half an output pixel in
    assert (matrix @ [9, 9, 1]).tolist() == [24.0, 24.0]
