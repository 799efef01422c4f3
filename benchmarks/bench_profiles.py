"""Turned heads: which face finder finds faces seen from the side (issue 22: "profiles too")?

The shared data has no profile set, so the faces-in-photos photos (``make_faces_in_photos.py --seed 0``, +-20
degrees of roll) are split by how far each face is turned. A face's turn (yaw proxy) is measured once on its
own aligned 256 px test crop, with the face mesh: the nose tip's offset from the eyes' mid-point along the eye
line, over the eye distance (0 frontal; about 0.5 and more is a half profile). Per bucket and framing: faces
found (quad IoU >= 0.5 with the true quad, as in ``bench_faces_in_photos.py``) with 95% Wilson intervals. Face
finding only (no classifier). Full runs rewrite the section between the markers in benchmarks/RESULTS.md.

    python benchmarks/bench_profiles.py --limit 40     # a quick check (stdout only)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.faces import blazeface
from deepfake_detect.faces.landmarks import find_faces as dlib_faces
from deepfake_detect.reporting.error_analysis import wilson_interval

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_faces_in_photos as maker  # noqa: E402 - the sibling script, importable once its folder is on the path
from bench_faces_in_photos import FOUND_IOU, quad_iou  # noqa: E402
from results_md import RESULTS, replace_block  # noqa: E402

BEGIN, END = "<!-- profiles:begin -->", "<!-- profiles:end -->"
BUCKETS = (
    (0.0, 0.15, "frontal (< 0.15)"),
    (0.15, 0.35, "turned (0.15-0.35)"),
    (0.35, 9.0, "half profile (>= 0.35)"),
)


def turn(crop_path: Path) -> float | None:
    """The yaw proxy of an aligned face crop (see the module docstring); None when the mesh finds no face."""
    face = maker.load_face(crop_path)
    canvas = np.full((512, 512, 3), 120, np.uint8)
    canvas[128:384, 128:384] = face  # room around it: the detector expects a face inside a photo
    faces = blazeface.find_faces(canvas)
    if not faces:
        return None
    left, right, nose = faces[0].landmarks5[:3]
    across = right - left
    return float(abs(np.dot(nose - (left + right) / 2, across)) / np.dot(across, across))


def found(framing: str, photo: np.ndarray, quad: np.ndarray) -> bool:
    faces = blazeface.find_faces(photo) if framing == "ffhq" else dlib_faces(photo)
    return max((quad_iou(f.quad, quad) for f in faces), default=0.0) >= FOUND_IOU


def table(rows: list[dict]) -> str:
    lines = ["| turn (yaw proxy) | faces | framing | found [95% CI] |", "|---|---|---|---|"]
    for r in rows:
        low, high = r["ci95"]
        lines.append(
            f"| {r['bucket']} | {r['n']} | {r['framing']} | {r['found']}/{r['n']} ({100 * r['share']:.1f}%) "
            f"[{100 * low:.1f}, {100 * high:.1f}] |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces140k"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--framings", default="ffhq,dlib")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    framings = args.framings.split(",")
    hits: dict[tuple[str, str], list[bool]] = {}
    unmeasured = 0
    with tempfile.TemporaryDirectory() as tmp:
        rows = maker.read_manifest(maker.build(args.data, Path(tmp) / "pm20", seed=0, limit=args.limit))
        for row in rows:
            yaw = turn(args.data / "test" / row["label"] / Path(row["source"]).name)
            if yaw is None:
                unmeasured += 1
                continue
            bucket = next(name for low, high, name in BUCKETS if low <= yaw < high)
            with Image.open(row["file"]) as image:
                photo = np.asarray(image.convert("RGB"))
            for framing in framings:
                hits.setdefault((bucket, framing), []).append(found(framing, photo, np.asarray(row["quad"])))
    table_rows = []
    for _, _, bucket in BUCKETS:
        for framing in framings:
            got = hits.get((bucket, framing), [])
            if got:
                k, n = int(np.sum(got)), len(got)
                share = k / n
                table_rows.append(
                    {"bucket": bucket, "framing": framing, "n": n, "found": k, "share": share, "ci95": list(wilson_interval(k, n))}
                )  # fmt: skip
    env = environment_info(1)
    block = (
        f"{BEGIN}\n## Turned heads: faces found by how far the head is turned\n\n"
        f"`benchmarks/bench_profiles.py`: the {len(rows)} photos of the faces-in-photos +-20 deg set, split by each "
        "face's yaw proxy (the nose tip's offset from the eyes' mid-point along the eye line, over the eye "
        f"distance, measured by the face mesh on the aligned test crop; {unmeasured} crops unmeasured). Face "
        f"finding only. Machine: {env['cpu']}; commit {code_version()}; {time.strftime('%Y-%m-%d')}.\n\n"
        + table(table_rows)
        + f"\n{END}"
    )
    print(block)
    if args.limit is None:
        replace_block(block, BEGIN, END, args.results)


if __name__ == "__main__":
    main()
