"""Real photos through the scan path: how often does the model call a real photo fake, or uncertain?

Every set here holds whole REAL photos, scanned as a user scans them (``Detector.scan`` with face finding, the
model's stored threshold and "uncertain" band). Per set and framing:

* faces found: photos where at least one face was found;
* FPR at the threshold: photos whose verdict is "fake", over all photos of the set (a photo without a face
  has no verdict, so it is never a false alarm; the faces-found column says how many could be judged);
* uncertain: photos whose verdict is "uncertain", over all photos;
* both with 95% Wilson intervals.

Sets: ``photos/studio-london`` valid and test (``../shared/data/photos``, whole 1,024 px studio portraits), and
all its splits pooled when the model never trained on it (the leave-this-source-out FPR), and
the real photos of the faces-in-photos benchmark (``make_faces_in_photos.py --seed 0``: faces140k test reals
warped into faceless backgrounds, +-20 degrees). Full runs rewrite the section between the markers in
benchmarks/RESULTS.md; ``--limit`` only prints.

    python benchmarks/bench_real_photos.py --limit 10     # a quick check
    python benchmarks/bench_real_photos.py                # ffhq and dlib framings, every set
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import deepfake_detect as dd
from deepfake_detect.core.runs import code_version, environment_info
from deepfake_detect.data.layout import list_split
from deepfake_detect.reporting.error_analysis import wilson_interval
from results_md import RESULTS, replace_block

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_faces_in_photos as maker  # noqa: E402 - the sibling script, importable once its folder is on the path

BEGIN, END = "<!-- real-photos:begin -->", "<!-- real-photos:end -->"


def training_sources(det) -> set[str] | None:
    """The source names the model trained on, as training recorded them (``data_fingerprints``); None when
    the model carries no such record (then no set can be called left out)."""
    recorded = det.metadata.get("data_fingerprints")
    return set(recorded) if isinstance(recorded, dict) else None


def real_photos(folder: Path, splits: tuple[str, ...], limit: int | None) -> list[Path]:
    photos = []
    for split in splits:
        if (folder / split).is_dir():
            photos += [s.path for s in list_split(folder, split, classes_present="any") if s.label == 0]
    return photos[:limit]


def photo_sets(args, tmp: Path, det) -> dict[str, list[Path]]:
    """The real photos of each set, by set name.

    studio-london's valid and test always; when the model never trained on studio-london, also all three
    splits pooled (204 photos): the leave-this-source-out FPR, with a narrower interval than one split's.
    """
    sets = {}
    studio = args.photos / "studio-london"
    for split in ("valid", "test"):
        if (studio / split).is_dir():
            sets[f"studio-london {split}"] = real_photos(studio, (split,), args.limit)
    trained = training_sources(det)
    if studio.is_dir() and trained is not None and "studio-london" not in trained:
        sets["studio-london all splits (left out of training)"] = real_photos(
            studio, ("train", "valid", "test"), args.limit
        )
    if args.faces140k.is_dir():
        manifest = maker.build(
            args.faces140k, tmp / "fip20", seed=0, max_angle=20.0, limit=args.limit and 2 * args.limit
        )
        rows = maker.read_manifest(manifest)
        sets["faces-in-photos reals (+-20 deg)"] = [Path(r["file"]) for r in rows if r["label"] == "real"]
    return sets


def measure(det, files: list[Path], framing: str, batch_size: int) -> dict:
    results = det.scan([str(f) for f in files], framing=framing, batch_size=batch_size)
    n = len(results)
    found = sum(bool(r["faces"]) for r in results)
    fake = sum(r["verdict"] == "fake" for r in results)
    uncertain = sum(r["verdict"] == "uncertain" for r in results)
    return {
        "framing": framing,
        "photos": n,
        "faces_found": found,
        "fake": fake,
        "fpr": fake / n,
        "fpr_ci95": list(wilson_interval(fake, n)),
        "uncertain": uncertain,
        "uncertain_share": uncertain / n,
        "uncertain_ci95": list(wilson_interval(uncertain, n)),
        "errors": sum(r.get("error") is not None for r in results),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| set | framing | photos | faces found | called fake (FPR) [95% CI] | uncertain [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        fpr, unc = r["fpr_ci95"], r["uncertain_ci95"]
        lines.append(
            f"| {r['set']} | {r['framing']} | {r['photos']} | {r['faces_found']} | {r['fake']} "
            f"({100 * r['fpr']:.1f}%) [{100 * fpr[0]:.1f}, {100 * fpr[1]:.1f}] | {r['uncertain']} "
            f"({100 * r['uncertain_share']:.1f}%) [{100 * unc[0]:.1f}, {100 * unc[1]:.1f}] |"
        )
    return "\n".join(lines)


def section(report: dict) -> str:
    env = report["environment"]
    return (
        f"{BEGIN}\n## Real photos through the scan path (issue 22)\n\n"
        f"`benchmarks/bench_real_photos.py`, model {report['model']}, its stored threshold and uncertain band; "
        "every photo is real, scanned whole with face finding. FPR = photos called fake / all photos (a photo "
        "without a face has no verdict); uncertain likewise. No training: the model as shipped. A set marked "
        "'left out of training' is a source the model never saw (its training data as recorded in its metadata). "
        f"Machine: {env['cpu']}; commit {report['commit']}; {report['date']}.\n\n"
        + table(report["rows"])
        + f"\n{END}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--faces140k", type=Path, default=Path("../shared/data/faces140k"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--framings", default="ffhq,dlib")
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N photos of each set (stdout only)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    det = dd.load_detector(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, files in photo_sets(args, Path(tmp), det).items():
            for framing in args.framings.split(","):
                rows.append({"set": name} | measure(det, files, framing, args.batch_size))
                print(rows[-1], flush=True)
    report = {
        "model": f"{det.name} ({args.model})",
        "environment": environment_info(args.threads),
        "commit": code_version(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    print(section(report))
    if args.limit is None:
        replace_block(section(report), BEGIN, END, args.results)


if __name__ == "__main__":
    main()
