"""Small faces in large photos: are faces of about 60 and 100 px found in 2,000 px photos, and at what cost?

Each real face of ``--data``'s test split (the FFHQ-aligned 256 px frame) is warped by a seeded similarity
transform (rotation uniform in +-``--max-angle`` degrees, 15 by default) to a frame of ``--sides`` px (its FFHQ
square side, the size ``scan`` reports as "face too small to judge (N px)"), feathered onto one of the faceless
scikit-image backgrounds of ``make_faces_in_photos.py`` stretched to 2,000 x 1,500 px, at a random place. A face
is found when a detection's quad has IoU >= 0.5 with the true quad (as in ``bench_faces_in_photos.py``).

Per framing and size: faces found (with a 95% Wilson interval), found by the first look alone (the whole photo,
``ffhq`` only), and the cost of the second look as counts, not time: detector calls and input pixels a photo,
against the first look's one call. Full runs rewrite the section between the markers in benchmarks/RESULTS.md.

    python benchmarks/bench_small_faces.py --limit 20         # a quick check (stdout only)
    python benchmarks/bench_small_faces.py                    # 250 faces a size, ffhq and dlib
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.faces import blazeface
from deepfake_detect.faces.landmarks import find_faces as dlib_faces
from deepfake_detect.reporting.error_analysis import wilson_interval

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_faces_in_photos as maker  # noqa: E402 - the sibling script, importable once its folder is on the path
from bench_faces_in_photos import FOUND_IOU, quad_iou  # noqa: E402
from results_md import RESULTS, replace_block  # noqa: E402

BEGIN, END = "<!-- small-faces:begin -->", "<!-- small-faces:end -->"
PHOTO = (1500, 2000)  # height, width
SIDES = (60, 100)
FLOORS = {60: 0.90, 100: 0.95}


def make_photo(face: np.ndarray, side: float, rng: np.random.Generator, max_angle: float):
    """A 2,000 x 1,500 px photo holding ``face`` at an FFHQ square side of ``side`` px, and its true quad."""
    import cv2

    name = maker.BACKGROUNDS[int(rng.integers(len(maker.BACKGROUNDS)))]
    canvas = cv2.resize(maker.background_image(name), PHOTO[::-1], interpolation=cv2.INTER_CUBIC)
    angle = float(rng.uniform(-max_angle, max_angle))
    extent = side * math.sqrt(2) / 2 + maker.MARGIN
    centre = (float(rng.uniform(extent, PHOTO[1] - extent)), float(rng.uniform(extent, PHOTO[0] - extent)))
    matrix = maker.similarity(angle, side, centre, face.shape[0])
    return maker.composite(canvas, face, matrix), maker.map_points(matrix, maker.frame_corners(face.shape[0]))


def search(framing: str, photo: np.ndarray) -> tuple[list[np.ndarray], blazeface.Looks]:
    """The quads a framing finds in ``photo`` and, for ffhq, the looks it took."""
    looks = blazeface.Looks()
    faces = blazeface.find_faces(photo, looks=looks) if framing == "ffhq" else dlib_faces(photo)
    return [f.quad for f in faces], looks


def measure(framing: str, side: int, faces: list[np.ndarray], args) -> dict:
    found, false, first, calls, pixels = [], [], [], [], []
    start = time.perf_counter()
    for i, face in enumerate(faces):
        photo, quad = make_photo(face, side, np.random.default_rng([args.seed, side, i]), args.max_angle)
        quads, looks = search(framing, photo)
        found.append(max((quad_iou(q, quad) for q in quads), default=0.0) >= FOUND_IOU)
        false.append(sum(quad_iou(q, quad) < 0.1 for q in quads))  # the backgrounds show no face
        if framing == "ffhq":
            whole = blazeface.detect(photo)  # the first look alone: did it already see the face?
            first.append(any(quad_iou(_square(d), quad) > 0.2 for d in whole))
            calls.append(looks.calls)
            pixels.append(looks.pixels)
    n, k = len(found), int(np.sum(found))
    low, high = wilson_interval(k, n)
    row = {"framing": framing, "side": side, "photos": n, "found": k, "share": k / n, "ci95": [low, high]}
    row["false_faces"] = int(np.sum(false))
    if framing == "ffhq":
        row |= {
            "found_first_look": int(np.sum(first)),
            "calls_per_photo": float(np.mean(calls)),
            "pixels_per_photo": float(np.mean(pixels)),
            "first_look_pixels": blazeface.FULL.size**2,
        }
    row["seconds"] = time.perf_counter() - start
    return row


def _square(detection: blazeface.Detection) -> np.ndarray:
    """A detector box as a quad (for matching the first look's hits only; its box is not FFHQ's square)."""
    x0, y0, x1, y1 = detection.box
    return np.array([[x0, y0], [x0, y1], [x1, y1], [x1, y0]])


def table(rows: list[dict]) -> str:
    lines = [
        "| framing | face (FFHQ square side) | found [95% CI] | floor | faces found elsewhere | found by the first "
        "look | detector calls a photo | input pixels a photo (first look alone) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cost = (
            (f"{r['found_first_look']}/{r['photos']}", f"{r['calls_per_photo']:.1f}", f"{r['pixels_per_photo'] / 1e6:.2f} M ({r['first_look_pixels'] / 1e6:.3f} M)")
            if "calls_per_photo" in r
            else ("-", "-", "-")
        )  # fmt: skip
        lines.append(
            f"| {r['framing']} | {r['side']} px | {r['found']}/{r['photos']} ({100 * r['share']:.1f}%) "
            f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] | {100 * FLOORS[r['side']]:.0f}% | "
            f"{r['false_faces']} | " + " | ".join(cost) + " |"
        )
    return "\n".join(lines)


def section(report: dict) -> str:
    env = report["environment"]
    return (
        f"{BEGIN}\n## Small faces in large photos\n\n"
        f"`benchmarks/bench_small_faces.py`: each of {report['photos']} real faces of `faces140k/test` warped "
        f"(rotation within +-{report['max_angle']:g} deg) to an FFHQ square of the given side and feathered into "
        "a faceless 2,000 x 1,500 px scikit-image background; found = a quad with IoU >= 0.5 against the true "
        "one. The second look (tiles, only when the whole photo shows no face) is costed in detector calls and "
        f"input pixels, not time. Machine: {env['cpu']}; commit {report['commit']}; {report['date']}.\n\n"
        + table(report["rows"])
        + f"\n{END}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces140k"))
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N faces (a check: stdout only)"
    )
    parser.add_argument("--framings", default="ffhq,dlib")
    parser.add_argument("--max-angle", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = sorted((args.data / "test" / "real").glob("*.jpg"))[: args.limit]
    if not files:
        raise SystemExit(f"no faces under {args.data}/test/real")
    faces = [maker.load_face(path) for path in files]
    rows = []
    for framing in args.framings.split(","):
        for side in SIDES:
            rows.append(measure(framing, side, faces, args))
            print(rows[-1], flush=True)
    report = {
        "photos": len(faces),
        "max_angle": args.max_angle,
        "environment": environment_info(1),
        "commit": code_version(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    print(section(report))
    if args.limit is None:
        replace_block(section(report), BEGIN, END, args.results)


if __name__ == "__main__":
    main()
