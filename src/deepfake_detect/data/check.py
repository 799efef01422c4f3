"""Check a data set before training on it: counts, balance, sizes, bad files, duplicates and split leakage.

:func:`check_dataset` reads every image under ``split/class/`` once, hashes and decodes it in parallel, and
returns a :class:`DataReport` (``deepfake-detect data check`` prints it). Leakage is found by content hash
(identical files) and by a perceptual hash (near-duplicates: re-encoded, resized or re-cropped copies, see
:mod:`~deepfake_detect.data.near_duplicates`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageFile

from deepfake_detect.core.exceptions import describe_error
from deepfake_detect.data.fingerprint import fingerprint_pairs, map_batched, resolve_workers
from deepfake_detect.data.layout import resolve_data_root, walk_files
from deepfake_detect.data.near_duplicates import DRAFT_SIZE, NEAR_DISTANCE, difference_hash, near_pairs
from deepfake_detect.data.samples import (
    DEFAULT_CLASS_NAMES,
    SPLITS,
    check_class_names,
    is_hidden,
    is_image_name,
)

__all__ = ["DataReport", "check_dataset"]

_SHOWN = 20  # how many entries of a long list format_text prints


@dataclass
class DataReport:
    """What :func:`check_dataset` found under a data root.

    Attributes
    ----------
    root : Path
        The data root that was checked.
    counts : dict
        ``split -> class -> number of image files`` (decodable or not) for the split and class
        folders present; these are the files :func:`~deepfake_detect.data.list_split` returns.
    balance : dict
        ``split -> share of fakes`` (class 1) among its images, for splits with images.
    sizes : Counter
        ``"WxH"`` of the images that decode.
    modes : Counter
        PIL modes (``"RGB"``, ``"L"``, ...) of the images that decode.
    bad_files : list of (str, str)
        ``(relative path, reason)`` of image files that do not decode.
    unexpected_files : list of str
        Relative paths of files outside ``split/class/`` folders, with other extensions, or
        hidden; they are ignored by training.
    duplicates_within : dict
        ``split -> groups`` of relative paths with identical bytes inside that split.
    leakage : list of list of str
        Groups of relative paths with identical bytes found in two or more splits.
    fingerprint : str or None
        :func:`~deepfake_detect.data.data_fingerprint` of the images (None if some could not be read at all).
    missing : list of str
        Expected ``split`` or ``split/class`` folders that are absent.
    class_names : tuple of str
        The class folder names checked (label order).
    near_distance : int or None
        The largest Hamming distance (of 256 bits) of the near-duplicate search; None when it was off.
    near_leakage : list of (str, str, int)
        ``(path, path, distance)`` of near-duplicate images (not identical files) in two different splits.
    near_within : list of (str, str, int)
        The same, inside one split.
    classes_present : str
        ``both`` requires every class in every split; ``any`` accepts one class (a source of a data mix).
    content_hashes, perceptual_hashes : dict
        ``relative path -> SHA-256`` and ``-> difference hash`` of the images that decode (for
        :func:`~deepfake_detect.data.mix_check.check_mix`; not in :meth:`to_dict`).
    """

    root: Path
    counts: dict[str, dict[str, int]]
    balance: dict[str, float]
    sizes: Counter[str]
    modes: Counter[str]
    bad_files: list[tuple[str, str]]
    unexpected_files: list[str]
    duplicates_within: dict[str, list[list[str]]]
    leakage: list[list[str]]
    fingerprint: str | None
    missing: list[str]
    class_names: tuple[str, ...] = field(default=DEFAULT_CLASS_NAMES)
    near_distance: int | None = None
    near_leakage: list[tuple[str, str, int]] = field(default_factory=list)
    near_within: list[tuple[str, str, int]] = field(default_factory=list)
    classes_present: str = "both"
    content_hashes: dict[str, str] = field(default_factory=dict, repr=False)
    perceptual_hashes: dict[str, bytes] = field(default_factory=dict, repr=False)
    photos: dict | None = None  # a photo source: its framing, and a split its photos with and without a face

    @property
    def has_leakage(self) -> bool:
        """True when identical files appear in more than one split."""
        return bool(self.leakage)

    @property
    def has_near_leakage(self) -> bool:
        """True when near-duplicate images (not identical files) appear in more than one split."""
        return bool(self.near_leakage)

    @property
    def is_usable(self) -> bool:
        """True when every split has every class folder with at least one image (one class: ``any``)."""
        if self.missing:
            return False
        found = [
            [self.counts.get(split, {}).get(name, 0) > 0 for name in self.class_names] for split in SPLITS
        ]
        return all(all(row) if self.classes_present == "both" else any(row) for row in found)

    def to_dict(self) -> dict:
        """Return the report as plain JSON-serialisable types (counters ordered by frequency)."""
        return {
            "root": str(self.root),
            "class_names": list(self.class_names),
            "counts": {split: dict(per_class) for split, per_class in self.counts.items()},
            "balance": dict(self.balance),
            "sizes": dict(self.sizes.most_common()),
            "modes": dict(self.modes.most_common()),
            "bad_files": [{"path": path, "reason": reason} for path, reason in self.bad_files],
            "unexpected_files": list(self.unexpected_files),
            "duplicates_within": {
                s: [list(g) for g in groups] for s, groups in self.duplicates_within.items()
            },
            "leakage": [list(group) for group in self.leakage],
            "near_distance": self.near_distance,
            "near_leakage": _pair_dicts(self.near_leakage),
            "near_within": _pair_dicts(self.near_within),
            "fingerprint": self.fingerprint,
            "missing": list(self.missing),
            "has_leakage": self.has_leakage,
            "has_near_leakage": self.has_near_leakage,
            "is_usable": self.is_usable,
            "photos": self.photos,
        }

    def format_text(self) -> str:
        """Return a readable multi-line report (no trailing newline)."""
        lines = [f"Data set: {self.root}", *self._count_lines(), "", *self._photo_lines()]
        lines += _counter_lines("Image sizes", self.sizes) + _counter_lines("Colour modes", self.modes)
        lines += _list_lines("Missing folders", [f"{m}/" for m in self.missing])
        lines += _list_lines("Bad files (do not decode)", [f"{p}: {r}" for p, r in self.bad_files])
        lines += _list_lines("Unexpected files (ignored)", self.unexpected_files)
        for split, groups in self.duplicates_within.items():
            lines += _list_lines(f"Duplicate groups within {split}", [", ".join(g) for g in groups])
        if self.leakage:
            n_files = sum(len(g) for g in self.leakage)
            lines.append(
                f"LEAKAGE: {len(self.leakage)} group(s) of identical files ({n_files} files) "
                "appear in more than one split"
            )
            lines += _list_lines("Leaked groups", [", ".join(g) for g in self.leakage])
        else:
            lines.append("Leakage: none (no identical files across splits)")
        lines += near_lines(self.near_distance, self.near_leakage, self.near_within, "splits")
        lines.append(f"Fingerprint: {self.fingerprint or 'unavailable (some files could not be read)'}")
        lines.append(f"Usable for training: {'yes' if self.is_usable else 'no'}")
        return "\n".join(lines)

    def _photo_lines(self) -> list[str]:
        """A photo source: faces found a split and the photos without one (left out of training)."""
        if self.photos is None:
            return []
        lines = [
            f"Whole photos (photos: source); faces framed as scan frames them ({self.photos['framing']}):"
        ]
        for split, row in self.photos["splits"].items():
            lines.append(f"  {split:<8}{row['photos']:>6} photos, a face found in {row['faces']}")
        no_face = [path for row in self.photos["splits"].values() for path in row["no_face"]]
        lines += _list_lines("No face found (left out of training and evaluation)", no_face)
        return [*lines, ""]

    def _count_lines(self) -> list[str]:
        names = self.class_names
        width = max(8, *(len(n) + 2 for n in names))
        header = f"{'split':<8}" + "".join(f"{n:>{width}}" for n in names) + f"{'total':>9}{'fake share':>12}"
        lines = [header]
        for split in SPLITS:
            if split not in self.counts:
                lines.append(f"{split:<8}  (missing)")
                continue
            per_class = self.counts[split]
            cells = "".join(f"{per_class.get(n, 0):>{width}}" for n in names)
            share = self.balance.get(split)
            share_text = "-" if share is None else f"{share:.1%}"
            lines.append(f"{split:<8}{cells}{sum(per_class.values()):>9}{share_text:>12}")
        return lines


def near_lines(
    distance: int | None, across: list[tuple[str, str, int]], within: list[tuple[str, str, int]], what: str
) -> list[str]:
    """Report lines for near-duplicate pairs found ``across`` splits or sources, and ``within`` them."""
    if distance is None:
        return ["Near-duplicates: not searched"]
    shown = [f"{a}, {b} (distance {d})" for a, b, d in across]
    if not across:
        lines = [f"Near-duplicate leakage: none (no near-duplicates across {what}, distance <= {distance})"]
    else:
        lines = [
            f"NEAR-DUPLICATE LEAKAGE: {len(across)} pair(s) across {what} (distance <= {distance} of 256 bits)"
        ]
        lines += _list_lines("Near-duplicate pairs", shown)
    if within:
        lines += _list_lines(
            f"Near-duplicates within one of the {what}", [f"{a}, {b} (distance {d})" for a, b, d in within]
        )
    return lines


def _pair_dicts(pairs: list[tuple[str, str, int]]) -> list[dict]:
    return [{"a": a, "b": b, "distance": d} for a, b, d in pairs]


def _counter_lines(title: str, counter: Counter[str], top: int = 5) -> list[str]:
    if not counter:
        return [f"{title}: none"]
    entries = ", ".join(f"{key} ({n})" for key, n in counter.most_common(top))
    more = f", and {len(counter) - top} more" if len(counter) > top else ""
    return [f"{title}: {entries}{more}"]


def _list_lines(title: str, items: Sequence[str]) -> list[str]:
    if not items:
        return [f"{title}: none"]
    lines = [f"{title} ({len(items)}):"]
    lines += [f"  {item}" for item in items[:_SHOWN]]
    if len(items) > _SHOWN:
        lines.append(f"  ... and {len(items) - _SHOWN} more (all of them: data check --json)")
    return lines


# (sha256 or None if unreadable, "WxH" or None, mode or None, reason it is bad or None, perceptual hash or None)
_Inspected = tuple[str | None, str | None, str | None, str | None, bytes | None]


def _inspect_file(path: str) -> _Inspected:
    """Hash a file, check that it decodes and take its perceptual hash, reading its bytes only once."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, None, None, f"cannot read: {exc.strerror or exc}", None
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, None, None, "empty file (0 bytes)", None
    try:
        with Image.open(io.BytesIO(data)) as img:
            (width, height), mode = img.size, img.mode
            if img.format == "JPEG":
                # Decoding at a reduced scale (the perceptual hash's input size) skips most of the IDCT
                # work but still reads every entropy-coded byte, so a truncated file still fails.
                img.draft("RGB", DRAFT_SIZE)
            img.load()
            perceptual = difference_hash(img)
    except Exception as exc:  # any decoder failure, whatever its type, means a bad file
        return digest, None, None, describe_error(exc), None
    return digest, f"{width}x{height}", mode, None, perceptual


def _inspect_batch(paths: Sequence[str]) -> list[_Inspected]:
    return [_inspect_file(p) for p in paths]


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    # With this flag on (some user code sets it), Pillow pads truncated images silently.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _classify(root: Path, names: tuple[str, ...]) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Split all files under `root` into images per (split, class) and unexpected files."""
    images: dict[tuple[str, str], list[str]] = defaultdict(list)
    unexpected: list[str] = []
    for rel in sorted(walk_files(root, skip_hidden=False)):
        parts = rel.split("/")
        in_place = len(parts) >= 3 and parts[0] in SPLITS and parts[1] in names
        if in_place and not any(is_hidden(p) for p in parts) and is_image_name(parts[-1]):
            images[(parts[0], parts[1])].append(rel)
        else:
            unexpected.append(rel)
    return images, unexpected


def _missing_folders(root: Path, names: tuple[str, ...], classes_present: str) -> list[str]:
    missing: list[str] = []
    for split in SPLITS:
        if not (root / split).is_dir():
            missing.append(split)
            continue
        absent = [f"{split}/{name}" for name in names if not (root / split / name).is_dir()]
        if classes_present == "both" or len(absent) == len(names):  # "any": one class folder will do
            missing += absent
    return missing


def _duplicate_groups(hashes: dict[str, str]) -> tuple[dict[str, list[list[str]]], list[list[str]]]:
    """Group relative paths by content: duplicates inside each split, and cross-split leaks."""
    by_hash: dict[str, list[str]] = defaultdict(list)
    for rel, digest in hashes.items():
        by_hash[digest].append(rel)
    within: dict[str, list[list[str]]] = {}
    leakage: list[list[str]] = []
    for group in by_hash.values():
        if len(group) < 2:
            continue
        group.sort()
        per_split: dict[str, list[str]] = defaultdict(list)
        for rel in group:
            per_split[rel.split("/", 1)[0]].append(rel)
        if len(per_split) > 1:
            leakage.append(group)
        for split, rels in per_split.items():
            if len(rels) > 1:
                within.setdefault(split, []).append(rels)
    return {s: sorted(g) for s, g in within.items()}, sorted(leakage)


def check_dataset(
    root: str | os.PathLike[str],
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    workers: int | None = None,
    progress: bool = True,
    near_distance: int | None = NEAR_DISTANCE,
    classes_present: str = "both",
    only: str | None = None,
) -> DataReport:
    """Walk a data set and report counts, balance, bad files, duplicates and leakage.

    Every image under ``split/class/`` is read once, hashed (SHA-256 and a perceptual hash) and
    decoded (JPEGs at a reduced scale, which still reads all their data) in parallel, so a
    truncated, empty or non-image file is reported instead of crashing a training run hours later.

    Parameters
    ----------
    root : str or os.PathLike
        The data root (or a Kaggle parent folder, see :func:`~deepfake_detect.data.resolve_data_root`).
    class_names : sequence of str, default ("real", "fake")
        Class folder names; the second is the one whose share is reported as balance.
    workers : int, optional
        Parallel workers; defaults to the usable cores plus two.
    progress : bool, default True
        Show a tqdm progress bar on stderr.
    near_distance : int or None, default NEAR_DISTANCE (24)
        Report images whose perceptual hashes differ in at most this many of 256 bits as
        near-duplicates; None skips the search.
    classes_present : {"both", "any"}
        ``any`` checks a source of a data mix that holds one class only.
    only : str, optional
        Check this class folder only (a ``real:PATH`` or ``fake:PATH`` source takes one class of its folder);
        the other class's files are neither read nor counted.

    Returns
    -------
    DataReport
        Use ``report.is_usable``, ``report.has_leakage``, ``report.format_text()`` or
        ``report.to_dict()``.

    Raises
    ------
    DataError
        If `root` is not a folder or has no split folder at all.

    Examples
    --------
    >>> check_dataset("/no/such/folder")
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no such folder: /no/such/folder
    """
    names = check_class_names(class_names)
    base = resolve_data_root(root)
    images, unexpected = _classify(base, names)
    if only is not None:
        images = {key: files for key, files in images.items() if key[1] == only}
    missing = _missing_folders(base, names if only is None else (only,), classes_present)
    rels = [rel for key in sorted(images) for rel in images[key]]
    # Threads, not processes: Pillow and hashlib release the GIL in their C code, and on the
    # 11.7k-file sample on 2 cores threads used less CPU than a process pool, without its
    # fork/spawn pitfalls (torch already loaded, notebooks, scripts lacking a main guard).
    with _strict_decoding():
        results = map_batched(
            _inspect_batch,
            [os.path.join(base, rel) for rel in rels],
            workers=resolve_workers(workers),
            progress=progress,
            desc="checking",
        )
    report = _build_report(base, names, rels, results, unexpected, missing)
    report.classes_present = classes_present
    if near_distance is not None:
        report.near_distance = near_distance
        report.near_leakage, report.near_within = _near_duplicates(report, near_distance)
    return report


def _near_duplicates(report: DataReport, distance: int) -> tuple[list, list]:
    """Near-duplicate pairs (identical files left out: they are duplicates or leakage already) across
    splits and within one."""
    rels = list(report.perceptual_hashes)
    hashes = report.content_hashes
    across, within = [], []
    for i, j, d in near_pairs([report.perceptual_hashes[r] for r in rels], distance):
        a, b = rels[i], rels[j]
        if hashes[a] != hashes[b]:
            (within if a.split("/", 1)[0] == b.split("/", 1)[0] else across).append((a, b, d))
    return across, within


def _empty_counts(base: Path, names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {s: {n: 0 for n in names if (base / s / n).is_dir()} for s in SPLITS if (base / s).is_dir()}


@dataclass
class _Tally:
    counts: dict[str, dict[str, int]]
    sizes: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    bad: list[tuple[str, str]] = field(default_factory=list)
    good_hashes: dict[str, str] = field(default_factory=dict)  # decodable files only
    all_hashes: dict[str, str] = field(default_factory=dict)  # every readable image
    perceptual: dict[str, bytes] = field(default_factory=dict)  # decodable files with some structure

    def add(self, rel: str, result: _Inspected) -> None:
        digest, size, mode, reason, perceptual = result
        split, name = rel.split("/", 2)[:2]
        self.counts[split][name] += 1
        if digest is not None:
            self.all_hashes[rel] = digest
        if reason is not None:
            self.bad.append((rel, reason))
            return
        self.sizes[size] += 1
        self.modes[mode] += 1
        self.good_hashes[rel] = digest
        if perceptual is not None:
            self.perceptual[rel] = perceptual


def _build_report(
    base: Path,
    names: tuple[str, ...],
    rels: list[str],
    results: list[_Inspected],
    unexpected: list[str],
    missing: list[str],
) -> DataReport:
    tally = _Tally(_empty_counts(base, names))
    for rel, result in zip(rels, results, strict=True):
        tally.add(rel, result)
    # Bad files are left out of duplicate groups: two empty files are not a real duplicate.
    within, leakage = _duplicate_groups(tally.good_hashes)
    counts = tally.counts
    balance = {s: c.get(names[1], 0) / sum(c.values()) for s, c in counts.items() if sum(c.values())}
    readable = len(tally.all_hashes) == len(rels)
    return DataReport(
        root=base,
        counts=counts,
        balance=balance,
        sizes=tally.sizes,
        modes=tally.modes,
        bad_files=tally.bad,
        unexpected_files=unexpected,
        duplicates_within={s: within.get(s, []) for s in counts},
        leakage=leakage,
        fingerprint=fingerprint_pairs(tally.all_hashes.items()) if readable else None,
        missing=missing,
        class_names=names,
        content_hashes=tally.good_hashes,
        perceptual_hashes=tally.perceptual,
    )
