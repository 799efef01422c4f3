"""Faces in photos: does scan find each face, frame it like FFHQ, and score it as well as the true frame does?

Builds (or reads) the photos of ``make_faces_in_photos.py`` -- every faces140k test face warped into a photo
at +-20 degrees and, as a separate row, +-30 -- scans them with the model for ``--framing ffhq`` (BlazeFace
and the face mesh), ``--framing dlib`` (dlib's 68 landmarks, the previous default) and ``--framing box`` and
reports, per framing and set:

* faces found: a photo's face counts as found when one of its detections has quad IoU >= 0.5 with the true
  quad (box framing: the Haar box's square training frame, :func:`deepfake_detect.faces.haar.face_frame`);
  the IoU is exact (both are convex quadrilaterals: Sutherland-Hodgman clipping, then the shoelace area);
* the median quad IoU of the found faces;
* ROC AUC with detection and alignment (the found detection's logit) against ROC AUC with the TRUE quad
  (``crop_quad(photo, true_quad)`` scored with ``detect=False``) on the same photos -- those where the face was
  found -- with a 95% paired, class-stratified bootstrap interval of the loss (true minus detected);
* whole-scan images a second for every framing in the same run: JPEG decode, face finding, framing, network
  and result dicts, ``Detector.scan`` with its default decode workers, torch threads ``--threads``.

Full runs rewrite the section between the markers in benchmarks/RESULTS.md and write every figure to
``benchmarks/faces_in_photos.json``; with ``--limit`` the figures go to stdout (and to ``--json`` if given).

    python benchmarks/bench_faces_in_photos.py --data ../shared/data/faces140k --limit 40   # a quick check
    python benchmarks/bench_faces_in_photos.py --data ../shared/data/faces140k              # the full run

``--speed-only`` times the framings alone, in one run, on the +-20 degree set (optionally each photo resized to
``--megapixels``): whole-scan images a second and each framing's speed against the first one's. For quiet cores:

    python benchmarks/bench_faces_in_photos.py --speed-only --megapixels 0.5 --framings dlib,ffhq --limit 200
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

import deepfake_detect as dd
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.faces.haar import face_frame
from deepfake_detect.metrics import bootstrap_cis
from deepfake_detect.scan.pipeline import default_workers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_faces_in_photos as maker  # noqa: E402 - the sibling script, importable once its folder is on the path
from results_md import RESULTS, replace_block  # noqa: E402

JSON_OUT = HERE / "faces_in_photos.json"
BEGIN, END = "<!-- faces-in-photos:begin -->", "<!-- faces-in-photos:end -->"
FOUND_IOU = 0.5
FRAMINGS = ("ffhq", "dlib", "box")


# ------------------------------------------------------------------------------------------------ geometry
def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (shoelace), whatever its orientation.

    >>> polygon_area(np.array([[0, 0], [0, 2], [2, 2], [2, 0]]))
    4.0
    """
    x, y = np.asarray(poly, float).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _ccw(poly: np.ndarray) -> np.ndarray:
    poly = np.asarray(poly, float)
    x, y = poly.T
    return poly if np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0 else poly[::-1]


def convex_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The intersection of two convex polygons (Sutherland-Hodgman: clip ``a`` by each edge of ``b``)."""
    out = _ccw(a)
    clip = _ccw(b)
    for p, q in zip(clip, np.roll(clip, -1, axis=0), strict=True):
        if len(out) == 0:
            break
        edge = q - p
        side = edge[0] * (out[:, 1] - p[1]) - edge[1] * (out[:, 0] - p[0])  # >= 0: inside (left of p->q)
        kept = []
        for i in range(len(out)):
            j = (i + 1) % len(out)
            if side[i] >= 0:
                kept.append(out[i])
            if (side[i] >= 0) != (side[j] >= 0):
                t = side[i] / (side[i] - side[j])
                kept.append(out[i] + t * (out[j] - out[i]))
        out = np.array(kept).reshape(-1, 2)
    return out


def quad_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex quadrilaterals.

    >>> quad_iou(np.array([[0, 0], [0, 2], [2, 2], [2, 0]]), np.array([[1, 0], [1, 2], [3, 2], [3, 0]]))
    0.3333333333333333
    """
    inter = convex_intersection(a, b)
    overlap = polygon_area(inter) if len(inter) >= 3 else 0.0
    union = polygon_area(a) + polygon_area(b) - overlap
    return overlap / union if union > 0 else 0.0


def box_frame_quad(box) -> np.ndarray:
    """The square training frame of a Haar box as a quad (FFHQ order, pixel-centre coordinates)."""
    left, top, side = face_frame(tuple(box))
    return maker.frame_corners(side) + [left, top]


# -------------------------------------------------------------------------------------------------- scoring
def crop_true_quad(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The package's ``crop_quad`` when it is in; until then the same similarity warp with reflection padding."""
    try:
        from deepfake_detect.faces.align import crop_quad
    except ImportError:
        import cv2

        corners = maker.frame_corners(maker.FRAME)[[0, 1, 3]].astype(np.float32)
        matrix = cv2.getAffineTransform(np.asarray(quad, np.float32)[[0, 1, 3]], corners)
        size = (maker.FRAME, maker.FRAME)
        return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return crop_quad(rgb, quad, maker.FRAME)


def true_quad_logits(det, rows: list[dict], batch_size: int) -> np.ndarray:
    """The logit of each photo's face cut along its true quad."""
    logits = []
    for start in range(0, len(rows), batch_size):
        crops = []
        for row in rows[start : start + batch_size]:
            with Image.open(row["file"]) as photo:
                crops.append(crop_true_quad(np.asarray(photo.convert("RGB")), row["quad"]))
        results = det.scan(crops, detect=False, workers=0, batch_size=batch_size)
        logits += [r["faces"][0]["logit"] for r in results]
    return np.array(logits, float)


def supports_framing(det) -> bool:
    return "framing" in inspect.signature(det.scan).parameters


def scan_photos(det, rows: list[dict], framing: str, batch_size: int) -> tuple[list[dict], float]:
    """Whole-scan results of the photos with one framing, and the seconds it took (after a warm-up)."""
    kwargs = {"framing": framing} if supports_framing(det) else {}
    files = [row["file"] for row in rows]
    det.scan(files[:2], workers=0, **kwargs)  # exports the graph and loads the face model
    start = time.perf_counter()
    results = det.scan(files, batch_size=batch_size, **kwargs)
    return results, time.perf_counter() - start


def face_quad(face: dict, framing: str) -> np.ndarray | None:
    if framing == "box":
        return box_frame_quad(face["box"])
    return np.asarray(face["quad"], float) if face.get("quad") is not None else None


def match_faces(results: list[dict], rows: list[dict], framing: str) -> tuple[np.ndarray, np.ndarray]:
    """Per photo: the best quad IoU of its detections with the true quad (0 without one) and that face's logit."""
    ious, logits = np.zeros(len(rows)), np.full(len(rows), np.nan)
    for k, (result, row) in enumerate(zip(results, rows, strict=True)):
        for face in result.get("faces", []):
            quad = face_quad(face, framing)
            iou = quad_iou(quad, row["quad"]) if quad is not None else 0.0
            if iou > ious[k]:
                ious[k], logits[k] = iou, face["logit"]
    return ious, logits


def paired_auc_loss(y: np.ndarray, true: np.ndarray, found: np.ndarray, seed: int = 0) -> dict:
    """AUC with the true quad, with detection, and the loss (true - detected) with a paired 95% interval.

    Both scores are resampled together: the bootstrap resamples photo indices, stratified by class.
    """
    auc_true, auc_found = roc_auc_score(y, true), roc_auc_score(y, found)

    def loss(labels: np.ndarray, idx: np.ndarray) -> float:
        i = idx.astype(int)
        return roc_auc_score(labels, true[i]) - roc_auc_score(labels, found[i])

    low, high = bootstrap_cis(y, np.arange(len(y), dtype=float), {"loss": loss}, seed=seed)["loss"]
    return {
        "auc_true": auc_true,
        "auc_detected": auc_found,
        "loss": auc_true - auc_found,
        "loss_ci95": [low, high],
    }


def evaluate(det, rows: list[dict], framing: str, true_logits: np.ndarray, batch_size: int) -> dict:
    """All figures of one framing on one set of photos."""
    results, seconds = scan_photos(det, rows, framing, batch_size)
    ious, logits = match_faces(results, rows, framing)
    found = ious >= FOUND_IOU
    y = np.array([row["label"] == "fake" for row in rows], int)
    out = {
        "framing": framing,
        "photos": len(rows),
        "found": int(found.sum()),
        "found_share": float(found.mean()),
        "median_iou": float(np.median(ious[found])) if found.any() else None,
        "faces_detected": sum(len(r.get("faces", [])) for r in results),
        "img_per_s": len(rows) / seconds,
        "seconds": seconds,
    }
    if found.any() and len(set(y[found])) == 2:
        out |= paired_auc_loss(y[found], true_logits[found], logits[found])
    return out


# ------------------------------------------------------------------------------------------------ reporting
def _fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| set | framing | faces found | median quad IoU | AUC detected | AUC true quad | loss [95% paired CI] "
        "| whole-scan img/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r.get("loss_ci95")
        loss = f"{_fmt(r.get('loss'))} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-"
        lines.append(
            f"| +-{r['max_angle']:g} deg | {r['framing']} | {r['found']}/{r['photos']} ({100 * r['found_share']:.1f}%) "
            f"| {_fmt(r['median_iou'], 3)} | {_fmt(r.get('auc_detected'))} | {_fmt(r.get('auc_true'))} | {loss} "
            f"| {r['img_per_s']:.1f} |"
        )
    return "\n".join(lines)


def section(report: dict) -> str:
    env, speed = (
        report["environment"],
        {r["framing"]: r["img_per_s"] for r in report["rows"] if r["max_angle"] == 20},
    )
    ratio = ", ".join(
        f"ffhq / {other} {speed['ffhq'] / speed[other]:.2f}x"
        for other in ("dlib", "box")
        if {"ffhq", other} <= speed.keys()
    )
    return (
        f"{BEGIN}\n## Faces in photos: finding, FFHQ framing and scoring faces inside photos\n\n"
        f"`benchmarks/bench_faces_in_photos.py` ({report['model']}), {report['photos']} photos a set made by "
        f"`make_faces_in_photos.py --seed {report['seed']}` from `faces140k/test` (each face warped by a "
        "similarity transform, frame side 160-512 px, onto a faceless scikit-image background of 640-1,600 px, "
        f"JPEG q90). Machine: {env['cpu']}, {report['threads']} threads, {report['workers']} decode workers; "
        f"commit {report['commit']}; {report['date']}. A face is found when a detection's quad (box: the Haar "
        "box's square frame) has IoU >= 0.5 with the true quad; AUCs are over the photos whose face was found; "
        "the loss is AUC(true quad) - AUC(detected), with a 95% paired stratified bootstrap interval. img/s is "
        f"the whole scan (decode, face finding, framing, network); speed ratios: {ratio or 'n/a'}.\n\n"
        + table(report["rows"])
        + f"\n{END}"
    )


def write_results(report: dict, results_md: Path) -> None:
    replace_block(section(report), BEGIN, END, results_md)


# ------------------------------------------------------------------------------------------------ speed only
def resized(rows: list[dict], megapixels: float, out: Path) -> list[dict]:
    """The photos scaled (area-averaged) to about ``megapixels`` each, saved as JPEG q90 under ``out``."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    scaled = []
    for row in rows:
        with Image.open(row["file"]) as photo:
            rgb = np.asarray(photo.convert("RGB"))
        scale = float(np.sqrt(megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1])))
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        path = out / Path(row["file"]).name
        Image.fromarray(cv2.resize(rgb, size, interpolation=interpolation)).save(
            path, quality=maker.JPEG_QUALITY
        )
        scaled.append(row | {"file": path, "quad": (np.asarray(row["quad"]) + 0.5) * scale - 0.5})
    return scaled


def speed_only(det, rows: list[dict], framings: tuple[str, ...], batch_size: int) -> None:
    """Whole-scan images a second of each framing on the same photos, in one run, and the ratios."""
    speeds = {}
    for framing in framings:
        results, seconds = scan_photos(det, rows, framing, batch_size)
        ious, _ = match_faces(results, rows, framing)
        speeds[framing] = len(rows) / seconds
        print(
            f"{framing}: {speeds[framing]:.1f} img/s ({len(rows)} photos, {seconds:.1f} s), "
            f"found {int((ious >= FOUND_IOU).sum())}/{len(rows)}"
        )
    first = framings[0]
    for framing in framings[1:]:
        print(f"{framing} / {first}: {speeds[framing] / speeds[first]:.2f}x")


# ----------------------------------------------------------------------------------------------------- main
def photo_sets(args, tmp: Path) -> dict[float, list[dict]]:
    sets = {}
    for angle, given in ((20.0, args.photos), (30.0, args.photos_30)):
        manifest = given / "manifest.jsonl" if given else None
        if manifest is None:
            manifest = maker.build(
                args.data, tmp / f"pm{angle:g}", seed=args.seed, max_angle=angle, limit=args.limit
            )
        sets[angle] = maker.read_manifest(manifest)[: args.limit]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/faces140k"))
    parser.add_argument("--photos", type=Path, default=None, help="a +-20 deg set made already (its folder)")
    parser.add_argument("--photos-30", type=Path, default=None, help="a +-30 deg set made already")
    parser.add_argument("--model", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos of each set")
    parser.add_argument(
        "--framings", default=",".join(FRAMINGS), help="comma-separated, of " + ", ".join(FRAMINGS)
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=None, help=f"default {JSON_OUT.name} beside this script (full runs)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--speed-only", action="store_true", help="time the framings only (see above)")
    parser.add_argument("--megapixels", type=float, default=None, help="with --speed-only: resize each photo")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    det = dd.load_detector(args.model)
    framings = tuple(args.framings.split(",")) if supports_framing(det) else ("box",)
    if len(framings) == 1:
        print("Detector.scan has no `framing` yet: only today's Haar path (box framing) is measured.")
    if args.speed_only:
        with tempfile.TemporaryDirectory() as tmp:
            if args.photos is None:
                manifest = maker.build(args.data, Path(tmp) / "pm20", seed=args.seed, limit=args.limit)
            photos = maker.read_manifest(manifest if args.photos is None else args.photos / "manifest.jsonl")
            photos = photos[: args.limit]
            if args.megapixels:
                photos = resized(photos, args.megapixels, Path(tmp) / "resized")
            speed_only(det, photos, framings, args.batch_size)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for angle, photos in photo_sets(args, Path(tmp)).items():
            true_logits = true_quad_logits(det, photos, args.batch_size)
            auc_all = roc_auc_score([p["label"] == "fake" for p in photos], true_logits)
            for framing in framings:
                row = {"max_angle": angle, "auc_true_all_photos": auc_all}
                rows.append(row | evaluate(det, photos, framing, true_logits, args.batch_size))
                print(json.dumps(rows[-1]))
    report = {
        "model": f"{det.name} ({args.model})",
        "photos": len(photos),
        "seed": args.seed,
        "threads": args.threads,
        "workers": default_workers(detect=True),
        "environment": environment_info(args.threads),
        "commit": code_version(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    print(section(report))
    # A subset's figures are a check of the script, not results: they go to RESULTS.md only from full runs.
    json_out = args.json or (JSON_OUT if args.limit is None else None)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.limit is None:
        write_results(report, args.results)


if __name__ == "__main__":
    main()
