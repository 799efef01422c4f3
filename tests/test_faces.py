"""Face finding and the training framing: Haar boxes, the measured expand factor, mirror padding."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepfake_detect.faces.haar import FRAME_EXPAND, FRAME_SHIFT_Y, crop_face, detect_faces, face_frame


def test_frame_is_an_expanded_square_shifted_up():
    left, top, side = face_frame((100, 200, 60, 60))
    assert side == round(60 * FRAME_EXPAND)
    assert left + side / 2 == pytest.approx(130, abs=1)  # centred horizontally
    assert top + side / 2 == pytest.approx(230 + FRAME_SHIFT_Y * 60, abs=1)  # raised: room for the hair


def test_crop_inside_is_a_plain_slice_and_outside_is_mirror_padded():
    image = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    left, top, side = face_frame((40, 40, 30, 30))
    inner = crop_face(image, (40, 40, 30, 30))
    assert np.array_equal(inner, image[top : top + side, left : left + side])
    corner = crop_face(image, (0, 0, 50, 50))  # the frame starts above and left of the image
    left, top, side = face_frame((0, 0, 50, 50))
    assert corner.shape == (side, side, 3) and left < 0 and top < 0
    assert np.array_equal(corner[-top, -left], image[0, 0])  # the image sits where the frame says
    assert np.array_equal(corner[-top - 1, -left], image[0, 0])  # mirrored row above it
    huge = crop_face(np.zeros((10, 10, 3), np.uint8), (2, 2, 6, 6))  # pads wider than the image
    assert huge.shape[:2] == (face_frame((2, 2, 6, 6))[2],) * 2


def test_detects_the_astronaut_face_and_nothing_in_flat_images(face_photo):
    boxes = detect_faces(face_photo)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170 and 70 < w < 130  # her face, not the flag
    assert detect_faces(np.full((300, 400, 3), 128, np.uint8)) == []
    assert detect_faces(np.zeros((8, 8, 3), np.uint8)) == []


def test_large_photos_are_searched_reduced_and_boxes_mapped_back(face_photo):
    photo = np.asarray(Image.fromarray(face_photo).resize((2048, 2048)))
    x, y, w, h = detect_faces(photo)[0]  # largest first (Haar may add small false hits at this scale)
    assert 4 * 150 < x + w / 2 < 4 * 260 and 4 * 70 < w < 4 * 130


def test_framing_matches_the_measured_training_crops(shared_data):
    """On real 140k crops the Haar box, expanded, must give back (nearly) the whole 256 px frame."""
    files = sorted((shared_data / "test" / "real").glob("*.jpg"))[:40]
    sides, centres = [], []
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        boxes = detect_faces(rgb)
        if boxes:
            left, top, side = face_frame(boxes[0])
            sides.append(side / rgb.shape[0])
            centres.append((left + side / 2, top + side / 2))
    assert len(sides) >= 30
    assert np.median(sides) == pytest.approx(1.0, abs=0.06)
    assert np.median(centres, axis=0) == pytest.approx((128, 128), abs=8)
