"""benchmarks/make_faces_in_photos.py: the photos are deterministic for a seed and the true quad is the face's.

The faces are 256 px images made in code (four solid quadrants), so no shared data is needed.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MAKER = Path(__file__).resolve().parents[1] / "benchmarks" / "make_faces_in_photos.py"
# Top-left, bottom-left, bottom-right, top-right quadrant colours: FFHQ's quad order.
CORNER_COLOURS = np.array([[230, 30, 30], [30, 200, 30], [30, 30, 230], [240, 240, 240]])


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_faces_in_photos", MAKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quadrant_face() -> np.ndarray:
    face = np.zeros((256, 256, 3), np.uint8)
    face[:128, :128], face[128:, :128] = CORNER_COLOURS[0], CORNER_COLOURS[1]
    face[128:, 128:], face[:128, 128:] = CORNER_COLOURS[2], CORNER_COLOURS[3]
    return face


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A test split of 3 real and 3 fake faces (the same pattern, each shifted in brightness)."""
    root = tmp_path_factory.mktemp("faces")
    for label in ("real", "fake"):
        (root / "test" / label).mkdir(parents=True)
        for k in range(3):
            face = np.clip(quadrant_face().astype(int) - 8 * k, 0, 255).astype(np.uint8)
            Image.fromarray(face).save(root / "test" / label / f"{label}{k}.jpg", quality=95)
    return root


def test_the_same_seed_makes_the_same_photos_and_another_seed_others(maker, data, tmp_path):
    first = maker.build(data, tmp_path / "a", seed=3, max_angle=20)
    again = maker.build(data, tmp_path / "b", seed=3, max_angle=20)
    other = maker.build(data, tmp_path / "c", seed=4, max_angle=20)
    assert first.read_text() == again.read_text()
    rows = maker.read_manifest(first)
    assert len(rows) == 6 and {r["label"] for r in rows[:2]} == {"real", "fake"}  # a prefix has both
    for row in rows:
        assert (tmp_path / "a" / row["path"]).read_bytes() == (tmp_path / "b" / row["path"]).read_bytes()
    assert other.read_text() != first.read_text()
    # --limit makes exactly the first photos of the full set.
    prefix = maker.build(data, tmp_path / "d", seed=3, max_angle=20, limit=2)
    assert prefix.read_text().splitlines() == first.read_text().splitlines()[:2]


def test_photos_respect_the_drawn_ranges(maker, data, tmp_path):
    rows = maker.read_manifest(maker.build(data, tmp_path / "p", seed=0, max_angle=30))
    for row in rows:
        with Image.open(row["file"]) as photo:
            assert photo.format == "JPEG" and photo.size == (row["width"], row["height"])
        assert abs(row["angle"]) <= 30 and 160 <= row["side"] <= 512
        assert 640 <= max(row["width"], row["height"]) <= 1600
        quad = row["quad"]
        assert quad.min() >= 0 and quad[:, 0].max() < row["width"] and quad[:, 1].max() < row["height"]
        sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
        np.testing.assert_allclose(sides, row["side"], rtol=1e-4)  # a square of the drawn side
        top = quad[3] - quad[0]  # along the face's top edge, left to right
        assert math.degrees(math.atan2(-top[1], top[0])) == pytest.approx(row["angle"], abs=1e-3)


def test_the_true_quad_sits_on_the_face_corners(maker, data, tmp_path):
    rows = maker.read_manifest(maker.build(data, tmp_path / "q", seed=1, max_angle=20))
    for row in rows:
        photo = np.asarray(Image.open(row["file"]).convert("RGB")).astype(int)
        quad = row["quad"]
        centre = quad.mean(axis=0)
        for corner, colour in zip(quad, CORNER_COLOURS, strict=True):
            # A quarter of the way in from each corner: inside that corner's quadrant, clear of the feather.
            x, y = np.rint(corner + 0.25 * (centre - corner)).astype(int)
            patch = photo[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
            brightness_shift = 8 * int(row["source"][-5])
            assert np.abs(patch - (colour - brightness_shift)).max() < 25, (row["path"], corner)


def test_crop_quad_of_the_true_quad_gives_the_face_back(maker, data, tmp_path):
    align = pytest.importorskip("deepfake_detect.faces.align", reason="the FFHQ alignment path is not in yet")
    rows = maker.read_manifest(maker.build(data, tmp_path / "r", seed=2, max_angle=20))
    for row in rows:
        photo = np.asarray(Image.open(row["file"]).convert("RGB"))
        crop = align.crop_quad(photo, row["quad"], 256).astype(int)
        face = np.clip(quadrant_face().astype(int) - 8 * int(row["source"][-5]), 0, 255)
        inner = (slice(40, 216), slice(40, 216))  # the face, away from the feathered edge and quadrant seams
        seams = np.abs(np.arange(40, 216) - 127.5) < 6
        diff = np.abs(crop[inner] - face[inner]).max(axis=2)
        assert np.median(diff) < 6 and np.mean(diff[~seams][:, ~seams] < 25) > 0.98, row["path"]
