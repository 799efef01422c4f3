"""The default face finder: BlazeFace and the face mesh (ONNX), the second look on tiles, the one framing function."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from deepfake_detect.faces import frame_faces, smallest_face
from deepfake_detect.faces.blazeface import Looks, find_faces, tile_sides
from deepfake_detect.faces.landmarks import find_faces as dlib_faces
from deepfake_detect.faces.landmarks import quad_side

pytestmark = pytest.mark.usefixtures("face_models")  # the models are converted from that package at first use


def _rotated(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderValue=(128, 128, 128)), matrix


def _pasted(face: np.ndarray, canvas_side: int, side: int, at: tuple[int, int]) -> np.ndarray:
    """``face`` resized to ``side`` px on a plain grey-noise canvas at ``at`` (x, y)."""
    rng = np.random.default_rng(0)
    canvas = (110 + rng.integers(0, 30, (canvas_side, canvas_side, 3))).astype(np.uint8)
    x, y = at
    canvas[y : y + side, x : x + side] = np.asarray(Image.fromarray(face).resize((side, side), Image.LANCZOS))
    return canvas


def test_the_astronaut_has_one_face_framed_as_dlib_frames_it(face_photo):
    faces = find_faces(face_photo)
    assert len(faces) == 1
    face = faces[0]
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks5
    assert left_eye[0] < nose[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 10  # upright
    assert nose[1] < mouth_left[1] and mouth_left[0] < mouth_right[0]
    assert face.landmarks68 is None
    reference = dlib_faces(face_photo)[0].quad  # the previous default's square
    assert np.abs(face.quad - reference).max() < 0.06 * quad_side(reference)
    assert find_faces(np.full((300, 400, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("degrees", [-30, 20, 35])
def test_rolled_heads_are_found_and_their_quads_turn_with_them(face_photo, degrees):
    upright = find_faces(face_photo)[0].quad
    photo, matrix = _rotated(face_photo, degrees)
    faces = find_faces(photo)
    assert len(faces) == 1
    expected = upright @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(faces[0].quad - expected).max() < 0.06 * quad_side(upright)


def test_a_small_face_in_a_large_photo_is_found_by_the_second_look_and_counted(face_photo):
    # Her quad is about 0.35 of the 512 px photo: pasted at 240 px it is about 84 px in a 2,000 px photo,
    # 4% of the side, too small for one look at the whole photo (14%).
    photo = _pasted(face_photo, 2000, 240, (1500, 300))
    first = Looks()
    assert find_faces(photo, second_look=False, looks=first) == [] and first.calls == 1
    looks = Looks()
    (face,) = find_faces(photo, looks=looks)
    assert 60 < quad_side(face.quad) < 110 and 1500 < face.quad[:, 0].mean() < 1740
    assert looks.tiles == tile_sides(photo.shape) == [300, 900]
    assert looks.calls == 1 + 9 * 9 + 3 * 3  # the whole photo, then tiles of 300 and 900 px
    assert looks.pixels == looks.calls * 192 * 192


def test_a_photo_without_a_face_pays_for_every_look_and_says_how_small_it_searched():
    looks = Looks()
    assert find_faces(np.full((4000, 3000, 3), 90, np.uint8), looks=looks) == []
    assert looks.tiles == [300, 900, 2700] and looks.calls == 1 + 18 * 13 + 6 * 5 + 2 * 2
    assert smallest_face((4000, 3000)) == 60 and smallest_face((300, 200)) == 42  # one look: 14% of the side


def test_every_framing_gives_training_frames(face_photo):
    for framing in ("ffhq", "dlib"):
        (face,) = frame_faces(face_photo, framing)
        assert (
            face.crop.shape == (256, 256, 3) and face.quad.shape == (4, 2) and face.landmarks.shape == (5, 2)
        )
    (boxed,) = frame_faces(face_photo, "box")
    assert boxed.quad is None and boxed.crop.shape[0] == boxed.crop.shape[1]


def test_aligned_training_faces_give_back_their_own_frame(shared_data):
    """The 140k crops are FFHQ's alignment: their quad must be (nearly) the whole 256 px image."""
    files = sorted((shared_data / "valid" / "real").glob("*.jpg"))[:30]
    errors = []
    for path in files:
        faces = find_faces(np.asarray(Image.open(path).convert("RGB")))
        if faces:
            errors.append(np.abs(faces[0].quad - [[0, 0], [0, 256], [256, 256], [256, 0]]).mean())
    assert len(errors) >= 29
    assert np.median(errors) < 6.0  # pixels, mean over the corners


def test_no_face_in_a_large_photo_says_the_smallest_face_searched_for():
    from deepfake_detect.data.transforms import Preprocess
    from deepfake_detect.scan.decode import DecodeOptions, decode_image

    options = DecodeOptions(Preprocess(size=64))
    large = decode_image(0, np.full((1500, 2000, 3), 90, np.uint8), options)
    assert large.faces == [] and large.note == "no face found (looked for faces of 60 px and up)"
    assert decode_image(0, np.full((600, 800, 3), 90, np.uint8), options).note == "no face found"
    dlib = decode_image(
        0, np.full((1500, 2000, 3), 90, np.uint8), DecodeOptions(Preprocess(size=64), framing="dlib")
    )
    assert dlib.note == "no face found (looked for faces of 170 px and up)"  # dlib's last look, 1,600 px


@pytest.mark.slow
def test_real_faces_of_60_and_100_px_in_a_2000_px_photo_are_found(shared_data):
    """bench_small_faces.py's protocol on a few faces (the benchmark runs 250 a size)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_small_faces as bench
    from bench_faces_in_photos import quad_iou

    faces = [bench.maker.load_face(p) for p in sorted((shared_data / "test" / "real").glob("*.jpg"))[:12]]
    for side in (60, 100):
        found = 0
        for i, face in enumerate(faces):
            photo, quad = bench.make_photo(face, side, np.random.default_rng([0, side, i]), 15.0)
            found += any(quad_iou(f.quad, quad) >= 0.5 for f in find_faces(photo))
        assert found >= 10, f"{found} of {len(faces)} faces of {side} px found"


@pytest.mark.slow
def test_a_photo_over_4000_px_is_tiled_reduced_and_its_faces_come_back_in_its_pixels(face_photo):
    photo = np.repeat(
        np.repeat(_pasted(face_photo, 2000, 240, (1500, 300)), 3, axis=0), 3, axis=1
    )  # 6,000 px
    looks = Looks()
    face = find_faces(photo, looks=looks)[0]  # largest first (blown up 3x, her suit may hold a tiny "face")
    assert looks.calls == 1 + 18 * 18 + 6 * 6 + 2 * 2  # the whole photo, then tiles of a 4,000 px copy
    assert 3 * 1500 < face.quad[:, 0].mean() < 3 * 1740 and 180 < quad_side(face.quad) < 330
    assert smallest_face(photo.shape) == 90  # 60 px at 4,000 px


def test_a_small_face_found_by_the_second_look_is_too_small_to_judge(det, face_photo):
    photo = _pasted(face_photo, 2000, 240, (1500, 300))  # her square is about 84 px
    (row,) = det.with_backend("torch").scan([photo], workers=0)
    (face,) = row["faces"]
    side = quad_side(np.array(face["quad"]))
    assert (
        face["verdict"] is None and face["note"] == f"face too small to judge ({side:.0f} px)" and side < 96
    )
    assert row["verdict"] is None and row["note"] == face["note"]
