"""Check a data mix before training on it: every source as :func:`~deepfake_detect.data.check_dataset` checks
one folder, then leakage between the sources, by content hash and by perceptual hash.

An image of one source's test split that is also (or nearly) in another source's train split inflates that
test score as surely as leakage inside one folder does. Paths in a :class:`MixReport` are ``source/relative``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepfake_detect.core.sources import Source, parse_sources
from deepfake_detect.data.check import DataReport, check_dataset, near_lines
from deepfake_detect.data.fingerprint import combine_fingerprints
from deepfake_detect.data.near_duplicates import NEAR_DISTANCE, near_pairs
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, SPLITS

__all__ = ["MixReport", "check_mix"]

Pair = tuple[str, str, int]


@dataclass
class MixReport:
    """What :func:`check_mix` found in a data mix.

    Attributes
    ----------
    sources : list of Source
    reports : list of DataReport
        One a source, in the mix's order (one-class sources allowed).
    leakage : list of list of str
        Groups of identical files in two or more sources and two or more splits.
    cross_source : list of list of str
        Groups of identical files in two or more sources, all in one split (not leakage, but the image is
        drawn more often than its weight says).
    near_leakage, near_cross_source : list of (str, str, int)
        The same for near-duplicate images of different sources: ``(path, path, distance)``.
    near_distance : int or None
    class_names : tuple of str
    """

    sources: list[Source]
    reports: list[DataReport]
    leakage: list[list[str]]
    cross_source: list[list[str]]
    near_leakage: list[Pair] = field(default_factory=list)
    near_cross_source: list[Pair] = field(default_factory=list)
    near_distance: int | None = NEAR_DISTANCE
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES

    @property
    def fingerprints(self) -> dict[str, str | None]:
        """Each source's fingerprint (None where some file could not be read), by source name."""
        return {s.name: r.fingerprint for s, r in zip(self.sources, self.reports, strict=True)}

    @property
    def fingerprint(self) -> str | None:
        """The mix's fingerprint, as training records it; None when a source's is unavailable."""
        prints = self.fingerprints
        return None if None in prints.values() else combine_fingerprints(self.sources, prints)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """``split -> class -> images`` over the whole mix."""
        return {
            split: {
                name: sum(r.counts.get(split, {}).get(name, 0) for r in self.reports)
                for name in self.class_names
            }
            for split in SPLITS
        }

    @property
    def has_leakage(self) -> bool:
        """True when identical files are in two splits, inside a source or between two."""
        return bool(self.leakage) or any(r.has_leakage for r in self.reports)

    @property
    def has_near_leakage(self) -> bool:
        """True when near-duplicate images are in two splits, inside a source or between two."""
        return bool(self.near_leakage) or any(r.has_near_leakage for r in self.reports)

    @property
    def is_usable(self) -> bool:
        """True when every source is usable (one class will do) and the mix has both classes in every split."""
        return all(r.is_usable for r in self.reports) and all(
            all(n > 0 for n in per_class.values()) for per_class in self.counts.values()
        )

    def to_dict(self) -> dict:
        """The report as plain JSON-serialisable types."""
        return {
            "sources": [
                {
                    "name": s.name,
                    "root": s.root,
                    "weight": s.weight,
                    "kind": s.kind,
                    "only": s.only,
                    "report": r.to_dict(),
                }
                for s, r in zip(self.sources, self.reports, strict=True)
            ],
            "counts": self.counts,
            "leakage": [list(g) for g in self.leakage],
            "cross_source_duplicates": [list(g) for g in self.cross_source],
            "near_distance": self.near_distance,
            "near_leakage": [{"a": a, "b": b, "distance": d} for a, b, d in self.near_leakage],
            "near_cross_source": [{"a": a, "b": b, "distance": d} for a, b, d in self.near_cross_source],
            "fingerprint": self.fingerprint,
            "fingerprints": self.fingerprints,
            "has_leakage": self.has_leakage,
            "has_near_leakage": self.has_near_leakage,
            "is_usable": self.is_usable,
        }

    def format_text(self) -> str:
        """Each source's report, then the mix's counts and what lies between the sources (no trailing newline)."""
        lines: list[str] = []
        for source, report in zip(self.sources, self.reports, strict=True):
            lines += [f"== source {source.name} (weight {source.weight:g})", report.format_text(), ""]
        lines += [f"== the mix: {len(self.sources)} sources", *self._count_lines(), ""]
        if self.leakage:
            lines.append(
                f"LEAKAGE BETWEEN SOURCES: {len(self.leakage)} group(s) of identical files in two splits"
            )
            lines += [f"  {', '.join(g)}" for g in self.leakage]
        else:
            lines.append("Leakage between sources: none (no identical files across sources and splits)")
        if self.cross_source:
            lines.append(f"Identical files in two sources, one split ({len(self.cross_source)} group(s)):")
            lines += [f"  {', '.join(g)}" for g in self.cross_source]
        lines += near_lines(self.near_distance, self.near_leakage, self.near_cross_source, "sources' splits")
        lines.append(
            f"Fingerprint of the mix: {self.fingerprint or 'unavailable (some files could not be read)'}"
        )
        lines.append(f"Usable for training: {'yes' if self.is_usable else 'no'}")
        return "\n".join(lines)

    def _count_lines(self) -> list[str]:
        names = self.class_names
        lines = [f"{'split':<8}" + "".join(f"{n:>10}" for n in names)]
        for split, per_class in self.counts.items():
            lines.append(f"{split:<8}" + "".join(f"{per_class[n]:>10}" for n in names))
        return lines


def check_mix(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | Source],
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    workers: int | None = None,
    progress: bool = True,
    near_distance: int | None = NEAR_DISTANCE,
) -> MixReport:
    """Check every source of a data mix, and the leakage between them.

    Parameters
    ----------
    specs : path, ``PATH[:WEIGHT]`` string, Source, or a sequence of them
        The mix, as ``train --data`` takes it (the weights only enter the mix's fingerprint).
    class_names : sequence of str
    workers : int, optional
        Parallel readers; defaults to the usable cores plus two.
    progress : bool
        Show progress bars on stderr.
    near_distance : int or None
        Near-duplicate threshold (of 256 bits, see :mod:`~deepfake_detect.data.near_duplicates`); None: off.

    Returns
    -------
    MixReport

    Raises
    ------
    DataError
        When a source is not a folder or has no split folder at all.

    Examples
    --------
    >>> check_mix(["/no/such/folder"])
    Traceback (most recent call last):
    ...
    deepfake_detect.core.exceptions.DataError: no such folder: /no/such/folder
    """
    sources = parse_sources(specs)
    reports = [
        check_dataset(
            s.root,
            class_names=class_names,
            workers=workers,
            progress=progress,
            near_distance=near_distance,
            classes_present="any",
            only=None if s.only_label is None else class_names[s.only_label],
        )
        for s in sources
    ]
    for source, report in zip(sources, reports, strict=True):
        if source.kind == "photos":
            from deepfake_detect.data.photos import check_photos  # imports the face finders

            check_photos(source, report, class_names=class_names)
    leakage, cross_source = _identical_across_sources(sources, reports)
    report = MixReport(sources, reports, leakage, cross_source, near_distance=near_distance)
    report.class_names = tuple(class_names)
    if near_distance is not None:
        report.near_leakage, report.near_cross_source = _near_across_sources(sources, reports, near_distance)
    return report


def _identical_across_sources(
    sources: Sequence[Source], reports: Sequence[DataReport]
) -> tuple[list[list[str]], list[list[str]]]:
    """Groups of identical files in two or more sources: those spanning two splits, and those in one."""
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, report in zip(sources, reports, strict=True):
        for rel, digest in report.content_hashes.items():
            by_hash[digest].append((source.name, rel))
    leakage, same_split = [], []
    for members in by_hash.values():
        if len({name for name, _ in members}) < 2:
            continue  # inside one source: its own report has it
        group = sorted(f"{name}/{rel}" for name, rel in members)
        (leakage if len({rel.split("/", 1)[0] for _, rel in members}) > 1 else same_split).append(group)
    return sorted(leakage), sorted(same_split)


def _near_across_sources(
    sources: Sequence[Source], reports: Sequence[DataReport], distance: int
) -> tuple[list[Pair], list[Pair]]:
    """Near-duplicate pairs of different sources (identical files left out): across splits, and in one."""
    entries = [
        (source.name, rel, report.content_hashes[rel], perceptual)
        for source, report in zip(sources, reports, strict=True)
        for rel, perceptual in report.perceptual_hashes.items()
    ]
    across, same_split = [], []
    for i, j, d in near_pairs([e[3] for e in entries], distance):
        (name_a, rel_a, hash_a, _), (name_b, rel_b, hash_b, _) = entries[i], entries[j]
        if name_a == name_b or hash_a == hash_b:
            continue  # inside one source (its report has it), or identical (reported above)
        pair = (f"{name_a}/{rel_a}", f"{name_b}/{rel_b}", d)
        (across if rel_a.split("/", 1)[0] != rel_b.split("/", 1)[0] else same_split).append(pair)
    return across, same_split
