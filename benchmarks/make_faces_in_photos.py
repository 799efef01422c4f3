"""Make the "faces in photos" benchmark: each test face warped into a photo that shows no other face.

Every face of ``--data``'s test split (real and fake, 500 in the shared sample) is one photo:

* the 256 px face, the FFHQ-aligned training frame, is warped by a seeded similarity transform: rotation
  uniform in +-``--max-angle`` degrees (20; 30 for the second set), frame side uniform in 160-512 px;
* it is composited, with a feathered edge (a linear ramp over the outer 6% of the frame), onto a background
  cut from one of scikit-image's bundled photos that show no face (:data:`BACKGROUNDS`), cropped to an aspect
  of 0.6-1.0 and resized to 640-1,600 px on the long side (more when the rotated frame would not fit);
* the photo is saved as JPEG quality 90.

The TRUE quad is the training frame's 4 corners mapped through the transform, in FFHQ's order (top-left,
bottom-left, bottom-right, top-right of the upright face) and pixel-centre coordinates: the 256 px frame spans
-0.5 to 255.5, as in ``recreate_aligned_images``, whose ``quad + 0.5`` feeds PIL's edge coordinates.
``crop_quad(photo, quad)`` therefore gives the face back. ``manifest.jsonl`` holds one row a photo: ``path``
(relative to ``--out``), ``label``, ``source`` (the test file), ``quad``, ``angle``, ``side``, ``width``,
``height`` and ``background``.

Deterministic for a seed: face ``i`` (reals and fakes interleaved, each sorted by name) draws from
``default_rng([seed, i])``, so ``--limit N`` makes exactly the first N photos of the full set.

    python benchmarks/make_faces_in_photos.py --data ../shared/data/faces140k --out /tmp/fip20
    python benchmarks/make_faces_in_photos.py --data ../shared/data/faces140k --out /tmp/fip30 --max-angle 30
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FRAME = 256  # the training frame of faces140k (FFHQ-aligned, 256 px)
SIDE_RANGE = (160.0, 512.0)  # frame side in the photo, pixels
LONG_SIDE_RANGE = (640, 1600)  # photo long side, pixels
ASPECT_RANGE = (0.6, 1.0)  # photo short side / long side
FEATHER = 0.06  # share of the frame side over which the face fades into the background
MARGIN = 8  # pixels kept between the rotated frame and the photo's border
JPEG_QUALITY = 90
# scikit-image's bundled photos (no download) without a human face. Chelsea is a cat: a face finder should
# not take it for a person, and a false find there only costs nothing in this benchmark's matching.
BACKGROUNDS = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "stereo_motorcycle",
    "grass",
    "gravel",
    "brick",
    "moon",
)


@functools.cache
def background_image(name: str) -> np.ndarray:
    """One of :data:`BACKGROUNDS` as an RGB uint8 array (grey photos repeated over 3 channels)."""
    from skimage import data

    image = getattr(data, name)()
    if name == "stereo_motorcycle":
        image = image[0]  # (left, right, disparity): the left view
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def frame_corners(size: int = FRAME) -> np.ndarray:
    """The 4 corners of a ``size`` px frame in FFHQ's quad order and pixel-centre coordinates.

    Examples
    --------
    >>> frame_corners(256).tolist()
    [[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]]
    """
    lo, hi = -0.5, size - 0.5
    return np.array([[lo, lo], [lo, hi], [hi, hi], [hi, lo]])


def similarity(angle_deg: float, side: float, centre: tuple[float, float], size: int = FRAME) -> np.ndarray:
    """2x3 matrix taking frame pixel coordinates to photo coordinates: scale to ``side``, turn, centre.

    A positive angle turns the face counter-clockwise as seen on screen (y points down).

    Examples
    --------
    >>> m = similarity(90.0, 512.0, (300.0, 200.0))
    >>> np.round(map_points(m, [[127.5, 127.5], [255.5, 127.5]]), 6).tolist()
    [[300.0, 200.0], [300.0, -56.0]]
    """
    scale = side / size
    theta = math.radians(angle_deg)
    cos, sin = scale * math.cos(theta), scale * math.sin(theta)
    rot = np.array([[cos, sin], [-sin, cos]])
    mid = np.array([(size - 1) / 2, (size - 1) / 2])
    return np.hstack([rot, (np.asarray(centre, float) - rot @ mid)[:, None]])


def map_points(matrix: np.ndarray, points) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    pts = np.asarray(points, float)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def feather_mask(size: int = FRAME, feather: float = FEATHER) -> np.ndarray:
    """A float32 (size, size) alpha: 1 inside, a linear ramp to 0 over the outer ``feather`` of each side."""
    ramp_px = max(feather * size, 1.0)
    idx = np.arange(size, dtype=np.float32)
    edge = np.minimum(idx + 0.5, size - idx - 0.5)  # distance from the nearest border
    ramp = np.clip(edge / ramp_px, 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


def photo_canvas(rng: np.random.Generator, name: str, need: float) -> np.ndarray:
    """A random crop of a background, resized so its long side is 640-1,600 px and its short side >= need."""
    source = background_image(name)
    long_side = int(rng.integers(LONG_SIDE_RANGE[0], LONG_SIDE_RANGE[1] + 1))
    aspect = float(rng.uniform(*ASPECT_RANGE))
    aspect = max(aspect, min(1.0, need / long_side))
    long_side = max(long_side, math.ceil(need))
    height, width = source.shape[:2]
    landscape = width >= height
    # The crop keeps the photo's orientation and the drawn aspect, at 60-100% of what fits.
    fit_long = min(width if landscape else height, (height if landscape else width) / aspect)
    crop_long = fit_long * float(rng.uniform(0.6, 1.0))
    crop_short = crop_long * aspect
    cw, ch = (crop_long, crop_short) if landscape else (crop_short, crop_long)
    cw, ch = max(int(cw), 1), max(int(ch), 1)
    x0 = int(rng.integers(0, width - cw + 1))
    y0 = int(rng.integers(0, height - ch + 1))
    short = max(round(long_side * aspect), math.ceil(need))
    out_size = (long_side, short) if landscape else (short, long_side)
    crop = source[y0 : y0 + ch, x0 : x0 + cw]
    return cv2.resize(crop, out_size, interpolation=cv2.INTER_AREA if cw > out_size[0] else cv2.INTER_CUBIC)


def composite(canvas: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp ``face`` by ``matrix`` onto ``canvas`` through the feathered alpha; returns a new uint8 array."""
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpAffine(face, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(feather_mask(face.shape[0]), matrix, size, flags=cv2.INTER_LINEAR)[..., None]
    mixed = alpha * warped.astype(np.float32) + (1.0 - alpha) * canvas.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def make_photo(face: np.ndarray, rng: np.random.Generator, max_angle: float) -> tuple[np.ndarray, dict]:
    """One photo around one face, and its record (true quad, angle, side, size, background)."""
    angle = float(rng.uniform(-max_angle, max_angle))
    side = float(rng.uniform(*SIDE_RANGE))
    theta = math.radians(angle)
    extent = side * (abs(math.cos(theta)) + abs(math.sin(theta)))  # the rotated frame's bounding side
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = photo_canvas(rng, name, extent + 2 * MARGIN)
    height, width = canvas.shape[:2]
    low = extent / 2 + MARGIN
    centre = (float(rng.uniform(low, width - low)), float(rng.uniform(low, height - low)))
    matrix = similarity(angle, side, centre, face.shape[0])
    quad = map_points(matrix, frame_corners(face.shape[0]))
    record = {
        "quad": np.round(quad, 3).tolist(),
        "angle": round(angle, 4),
        "side": round(side, 3),
        "width": width,
        "height": height,
        "background": name,
    }
    return composite(canvas, face, matrix), record


def split_faces(data: Path) -> list[tuple[Path, str]]:
    """The test split's faces, reals and fakes interleaved (each sorted by name), so any prefix has both."""
    reals = sorted((data / "test" / "real").glob("*.jpg"))
    fakes = sorted((data / "test" / "fake").glob("*.jpg"))
    if not reals and not fakes:
        raise SystemExit(f"no faces under {data}/test/{{real,fake}}")
    out: list[tuple[Path, str]] = []
    for k in range(max(len(reals), len(fakes))):
        out += [(files[k], label) for files, label in ((reals, "real"), (fakes, "fake")) if k < len(files)]
    return out


def load_face(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        face = np.asarray(image.convert("RGB"))
    if face.shape[:2] != (FRAME, FRAME):
        face = cv2.resize(face, (FRAME, FRAME), interpolation=cv2.INTER_AREA)
    return face


def build(data: Path, out: Path, *, seed: int = 0, max_angle: float = 20.0, limit: int | None = None) -> Path:
    """Write the photos and ``manifest.jsonl`` under ``out``; returns the manifest's path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (path, label) in enumerate(split_faces(data)[:limit]):
        photo, record = make_photo(load_face(path), np.random.default_rng([seed, i]), max_angle)
        name = f"{i:04d}_{label}_{path.stem}.jpg"
        Image.fromarray(photo).save(out / name, quality=JPEG_QUALITY)
        rows.append({"path": name, "label": label, "source": f"{label}/{path.name}", **record})
    manifest = out / "manifest.jsonl"
    meta = {"seed": seed, "max_angle": max_angle, "data": str(data)}
    manifest.write_text("".join(json.dumps({**row, **{"set": meta}}) + "\n" for row in rows))
    return manifest


def read_manifest(manifest: Path) -> list[dict]:
    """The rows of a manifest, each with ``file``, the photo's absolute path, and ``quad`` as an array."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for row in rows:
        row["file"] = str(manifest.parent / row["path"])
        row["quad"] = np.asarray(row["quad"], float)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces140k"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-angle", type=float, default=20.0, help="rotation uniform in +-this (degrees)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    args = parser.parse_args()
    manifest = build(args.data, args.out, seed=args.seed, max_angle=args.max_angle, limit=args.limit)
    print(f"{sum(1 for _ in manifest.open())} photos and {manifest}")


if __name__ == "__main__":
    main()
