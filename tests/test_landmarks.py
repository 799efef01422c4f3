"""Face finding with dlib (``--framing dlib``): its HOG detector and 68-point model, the rotated looks, a missing model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from deepfake_detect.faces.landmarks import find_faces, quad_side


def _rotated(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    # A flat border: a mirrored border could hold a mirrored second face.
    return cv2.warpAffine(image, matrix, (w, h), borderValue=(128, 128, 128)), matrix


def test_the_astronaut_has_one_face_with_its_landmarks_and_quad(face_photo):
    faces = find_faces(face_photo)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170 and 70 < w < 130  # her face, not the flag
    assert face.landmarks68.shape == (68, 2) and face.quad.shape == (4, 2)
    left_eye, right_eye = face.landmarks68[36:42].mean(axis=0), face.landmarks68[42:48].mean(axis=0)
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 10  # upright
    assert face.quad.mean(axis=0) == pytest.approx([225, 107], abs=15)
    assert 150 < quad_side(face.quad) < 200
    assert find_faces(np.full((300, 400, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("degrees", [-40, -25, 30, 45])
def test_rolled_heads_are_found_and_their_quads_turn_with_them(face_photo, degrees):
    """Beyond what the upright search finds, the rotated looks and the upright re-look recover the quad."""
    upright = find_faces(face_photo)[0].quad
    photo, matrix = _rotated(face_photo, degrees)
    faces = find_faces(photo)
    assert len(faces) == 1
    expected = upright @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(faces[0].quad - expected).max() < 0.05 * quad_side(upright)


def test_a_large_photo_is_searched_reduced_and_the_landmarks_come_from_full_resolution(face_photo):
    small = find_faces(face_photo)[0]
    large = find_faces(np.asarray(Image.fromarray(face_photo).resize((2048, 2048), Image.BICUBIC)))[0]
    # Landmarks of the 4x photo: 4x the small ones (to the predictor's pixel precision, not the search's).
    assert large.quad == pytest.approx(small.quad * 4 + 1.5, abs=0.04 * quad_side(large.quad))


def test_a_small_face_in_a_large_photo_is_found_by_the_last_look(face_photo):
    canvas = np.full((1500, 1500, 3), 120, np.uint8)
    canvas[800:1440, 800:1440] = np.asarray(Image.fromarray(face_photo).resize((640, 640)))
    # In the first, 640 px search her face is 47 px: too small for HOG's 80 px window; at full size, 110 px.
    faces = find_faces(canvas)
    assert len(faces) == 1 and 800 + 180 * 1.25 < faces[0].quad[:, 0].mean() < 800 + 270 * 1.25


def test_aligned_training_faces_give_back_their_own_frame(shared_data):
    """The 140k crops are FFHQ's alignment: their quad must be (nearly) the whole 256 px image."""
    files = sorted((shared_data / "test" / "real").glob("*.jpg"))[:30]
    errors = []
    for path in files:
        faces = find_faces(np.asarray(Image.open(path).convert("RGB")))
        if faces:
            errors.append(np.abs(faces[0].quad - [[0, 0], [0, 256], [256, 256], [256, 0]]).mean())
    assert len(errors) >= 29
    assert np.median(errors) < 3.0  # pixels, mean over the corners (seen: 1.6)


BLOCK = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {blocked!r}:
            raise ImportError("blocked for the test: " + name)
        return None

sys.meta_path.insert(0, Block())
import numpy as np
from deepfake_detect.core.exceptions import FaceModelError
from deepfake_detect.faces.landmarks import check_face_model, find_faces
for call in (check_face_model, lambda: find_faces(np.zeros((120, 120, 3), np.uint8))):
    try:
        call()
    except FaceModelError as err:
        print("FaceModelError:", err)
    else:
        print("no error")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("blocked", "advice"),
    [
        ("face_recognition_models", "pip install face-recognition-models==0.3.0"),
        ("dlib", "pip install dlib-bin==20.0.1.post1"),
    ],
)
def test_a_missing_landmark_model_says_what_to_install(blocked, advice):
    code = textwrap.dedent(BLOCK).format(blocked=blocked)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stderr
    assert len(lines) == 2 and all(line.startswith("FaceModelError:") for line in lines), out.stdout
    assert all(advice in line and "make" in line for line in lines)


@pytest.mark.slow
def test_a_scan_without_the_model_stops_at_once_with_the_advice(tmp_path, untrained_checkpoint):
    code = textwrap.dedent(BLOCK).format(blocked="face_recognition_models").split("import numpy")[0] + (
        "import numpy as np\nimport deepfake_detect as dd\n"
        "from deepfake_detect.core.exceptions import FaceModelError\n"
        f"det = dd.load_detector({str(tmp_path / 'm.safetensors')!r})\n"
        "try:\n    det.scan([np.zeros((64, 64, 3), np.uint8)], framing='dlib')\nexcept FaceModelError as err:\n"
        "    print('stop:', err)\nprint(det.scan([np.zeros((64, 64, 3), np.uint8)])[0]['note'])\n"
    )
    untrained_checkpoint(tmp_path / "m.safetensors")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    stop, box = out.stdout.strip().splitlines()[-2:]
    assert stop.startswith("stop:") and "face-recognition-models==0.3.0" in stop
    assert box == "no face found"  # the default framing (BlazeFace) needs no dlib model


@pytest.mark.slow
def test_a_service_without_the_model_refuses_to_start_with_the_advice(tmp_path, untrained_checkpoint):
    untrained_checkpoint(tmp_path / "m.safetensors")
    code = textwrap.dedent(BLOCK).format(blocked="face_recognition_models").split("import numpy")[0] + (
        "from deepfake_detect.core.exceptions import ServeError\n"
        "from deepfake_detect.serve import ServeConfig, create_app\n"
        f"model = {str(tmp_path / 'm.safetensors')!r}\n"
        "try:\n    create_app(ServeConfig(model=model, framing='dlib'))\nexcept ServeError as err:\n"
        "    print('refused:', err)\ncreate_app(ServeConfig(model=model))\nprint('ffhq starts')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    refused, box = out.stdout.strip().splitlines()[-2:]
    assert refused.startswith("refused:") and "face-recognition-models==0.3.0" in refused
    assert box == "ffhq starts"  # the default framing (BlazeFace) needs no dlib model
