"""What one warp (``faces.align.crop_quad``) costs against FFHQ's exact resampling chain.

FFHQ's ``recreate_aligned_images`` (NVlabs/ffhq-dataset) shrinks, crops, pads by reflection with a blurred and
faded border, resamples the quad bilinearly to 4096 px and reduces it to 1024 px (the 140k faces are those
reduced again to 256 px). That chain is reimplemented here, for measuring only (it is ~100x slower).

Sample: test faces of the 140k set placed in photos by a seeded similarity transform (rotation +-20 degrees,
frame side 160-512 px, some reaching past the photo's edge) on a reflected background, the quad found by
``find_faces``. Both chains resample the same quad to 256 px; reported: mean absolute pixel difference, and the
default model's logits on both frames (mean |difference|, AUC of each).

    python benchmarks/bench_align.py --faces 50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage
from PIL import Image
from sklearn.metrics import roc_auc_score

import deepfake_detect as dd
from deepfake_detect.data.transforms import normalize
from deepfake_detect.faces.align import crop_quad
from deepfake_detect.faces.landmarks import find_faces


def ffhq_chain(img: Image.Image, quad: np.ndarray, output_size=1024, transform_size=4096) -> Image.Image:
    """NVlabs' recreate_aligned_images from the quad on (``enable_padding=True``), then 1024 -> 256."""
    quad = quad.astype(np.float64).copy()
    qsize = np.hypot(*(quad[3] - quad[0]))
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, Image.LANCZOS)
        quad /= shrink
        qsize /= shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    crop = (
        max(crop[0] - border, 0),
        max(crop[1] - border, 0),
        min(crop[2] + border, img.size[0]),
        min(crop[3] + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]
    pad = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    pad = (
        max(-pad[0] + border, 0),
        max(-pad[1] + border, 0),
        max(pad[2] - img.size[0] + border, 0),
        max(pad[3] - img.size[1] + border, 0),
    )
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        y, x, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(
            1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
            1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]),
        )
        blur = qsize * 0.02
        arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(
            mask * 3.0 + 1.0, 0.0, 1.0
        )
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]
    img = img.transform((transform_size, transform_size), Image.QUAD, (quad + 0.5).flatten(), Image.BILINEAR)
    img = img.resize((output_size, output_size), Image.LANCZOS)
    return img.resize((256, 256), Image.LANCZOS)


def make_photo(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face warped by a seeded similarity into a reflected 640-1000 px photo, sometimes at its edge."""
    side = rng.uniform(160, 512)
    angle = rng.uniform(-20, 20)
    width, height = int(rng.uniform(640, 1000)), int(rng.uniform(480, 800))
    edge = rng.random() < 0.3  # a third of the faces reach past the photo's edge
    cx = (
        rng.uniform(0.1 * side, width - 0.1 * side)
        if edge
        else rng.uniform(side / 2, max(side / 2 + 1, width - side / 2))
    )
    cy = rng.uniform(side / 2, max(side / 2 + 1, height - side / 2))
    matrix = cv2.getRotationMatrix2D((128, 128), angle, side / 256)
    matrix[:, 2] += [cx - 128, cy - 128]
    return cv2.warpAffine(
        face, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/faces140k/test")
    parser.add_argument("--faces", type=int, default=50, help="faces a class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    det = dd.load_detector("default")
    pre = det.preprocess
    ours, exact, labels, t_ours, t_exact = [], [], [], 0.0, 0.0
    for label, cls in enumerate(("real", "fake")):
        for path in sorted((Path(args.data) / cls).glob("*.jpg"))[: args.faces]:
            photo = make_photo(np.asarray(Image.open(path).convert("RGB")), rng)
            found = find_faces(photo)
            if not found:
                continue
            t0 = time.perf_counter()
            ours.append(crop_quad(photo, found[0].quad))
            t1 = time.perf_counter()
            exact.append(np.asarray(ffhq_chain(Image.fromarray(photo), found[0].quad)))
            t_ours, t_exact = t_ours + t1 - t0, t_exact + time.perf_counter() - t1
            labels.append(label)

    def logits(frames):
        views = np.stack([pre.finish(pre.prepare(Image.fromarray(f))) for f in frames])
        return det.logits(normalize(views, pre.mean, pre.std))

    a, b, y = logits(ours), logits(exact), np.array(labels)
    mad = np.mean(
        [np.abs(o.astype(float) - e.astype(float)).mean() for o, e in zip(ours, exact, strict=True)]
    )
    print(f"faces: {len(y)} ({y.sum()} fake); model {det.name} ({det.backend})")
    print(f"mean |pixel difference| (0-255): {mad:.2f}")
    print(f"mean |logit difference|: {np.abs(a - b).mean():.3f} (max {np.abs(a - b).max():.3f}); "
          f"logit std across faces {b.std():.2f}")  # fmt: skip
    print(f"AUC one warp {roc_auc_score(y, a):.4f}, exact chain {roc_auc_score(y, b):.4f}")
    print(
        f"time a face: one warp {1000 * t_ours / len(y):.2f} ms, exact chain {1000 * t_exact / len(y):.0f} ms"
    )


if __name__ == "__main__":
    main()
