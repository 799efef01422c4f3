"""Whole photos as a data source: each photo's face found and framed as ``scan`` frames it, and cached.

A source spec that starts with ``photos:`` (``--data photos:PATH[:WEIGHT]``, see
:mod:`deepfake_detect.core.sources`) names a folder of whole photos in the 140k layout,
``{train,valid,test}/{real,fake}/*``. Listing a split of it (:func:`list_photo_split`) opens each photo as
``scan`` does (:func:`photo_pixels`: EXIF orientation applied, full resolution), frames its faces with
:func:`deepfake_detect.faces.frame_faces` in scan's default framing (the one function ``scan`` calls) and keeps
the largest face: its 256 px training frame is stored as a PNG, so the pixels the model sees are exactly the
crop ``scan`` scores. The listing's samples are these crop files; everything after it (datasets, caches,
fingerprints, evaluation) reads them like any face crop.

Crops live under ``CACHE_DIR/photo-faces/<framing key>/`` (:func:`crops_dir`), named by the photo's SHA-256
and stem: the key of a crop is the photo's content and the framing (its models and version,
:func:`deepfake_detect.faces.framing.framing_key`), so an edited photo or a new face model frames again, and
the same photo always gives the same crop (training stays deterministic). A photo in which no face is found is
stored as such (a ``.none`` file beside where its crop would be), counted in :class:`PhotoListing` and logged;
``data check`` lists them. It is never a sample, and never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from deepfake_detect.core.config import DEFAULT_CACHE_DIR
from deepfake_detect.core.sources import Source
from deepfake_detect.data.fingerprint import photo_fingerprint
from deepfake_detect.data.layout import list_split
from deepfake_detect.data.samples import DEFAULT_CLASS_NAMES, SPLITS, Sample
from deepfake_detect.data.transforms import _to_rgb, load_image
from deepfake_detect.faces.framing import DEFAULT_FRAMING, frame_faces, framing_key

__all__ = [
    "PhotoListing",
    "photo_pixels",
    "crops_dir",
    "frame_photo",
    "list_photo_split",
    "check_photos",
    "samples_root",
]

log = logging.getLogger(__name__)


@dataclass
class PhotoListing:
    """One split of a photo source: the crops that stand for its photos, and the photos without a face."""

    samples: list[Sample] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)  # the photos' paths relative to the source root
    photos: int = 0


def photo_pixels(source: str | os.PathLike[str] | bytes, max_pixels: int | None = None) -> np.ndarray:
    """A photo as ``scan`` opens it for face finding: full resolution, EXIF orientation applied, RGB uint8;
    more than ``max_pixels`` pixels (default :data:`~deepfake_detect.data.transforms.MAX_IMAGE_PIXELS`) refused.

    Examples
    --------
    >>> import io
    >>> buf = io.BytesIO(); Image.new("L", (40, 30)).save(buf, "PNG")
    >>> photo_pixels(buf.getvalue()).shape
    (30, 40, 3)
    """
    source = source if isinstance(source, bytes) else Path(source)
    image = load_image(source, None, draft=False, max_pixels=max_pixels)
    return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))


def crops_dir(cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR, framing: str = DEFAULT_FRAMING) -> Path:
    """Where the crops of photo sources framed the ``framing`` way are kept.

    Examples
    --------
    >>> crops_dir("/tmp/c").parent
    PosixPath('/tmp/c/photo-faces')
    """
    return Path(cache_dir).expanduser() / "photo-faces" / framing_key(framing)


def samples_root(source: Source, cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> Path:
    """The folder a source's samples lie under: its own root, or for a photo source the folder of its crops.

    Examples
    --------
    >>> from deepfake_detect.core.sources import parse_source
    >>> samples_root(parse_source("d/faces")), samples_root(parse_source("photos:d/studio"), "/c").parent
    (PosixPath('d/faces'), PosixPath('/c/photo-faces'))
    """
    return crops_dir(cache_dir) if source.kind == "photos" else Path(source.root)


def _write_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same folder, so a killed run never leaves half a crop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def frame_photo(path: str | os.PathLike[str], out: Path, framing: str = DEFAULT_FRAMING) -> Path | None:
    """The stored crop of the largest face of a photo, framed (once) into ``out``; None when it has no face.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (64, 48), "grey").save(folder / "plain.jpg")
    >>> frame_photo(folder / "plain.jpg", folder / "crops") is None, len(list((folder / "crops").rglob("*.none")))
    (True, 1)
    """
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    crop = out / digest[:2] / f"{Path(path).stem}-{digest[:20]}.png"
    none = crop.with_suffix(".none")
    if crop.is_file():
        return crop
    if none.is_file():
        return None
    faces = frame_faces(photo_pixels(data), framing)  # largest first
    if not faces:
        _write_atomically(none, lambda tmp: Path(tmp).write_text("no face found\n"))
        return None
    _write_atomically(crop, lambda tmp: Image.fromarray(faces[0].crop).save(tmp, "PNG"))
    return crop


def list_photo_split(
    source: Source,
    split: str,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    limit_per_class: int | None = None,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
) -> PhotoListing:
    """The face crops of one split of a photo source, framing (and storing) the photos not framed yet.

    The photos are listed as :func:`~deepfake_detect.data.layout.list_split` lists any source (one class may be
    absent; ``limit_per_class`` picks the same photos); each sample is a crop, tagged with the source's name.
    Photos without a face are counted, logged and returned in ``no_face``.
    """
    photos = list_split(
        source.root, split, class_names=class_names, limit_per_class=limit_per_class, classes_present="any"
    )
    out, root = crops_dir(cache_dir), Path(source.root)
    listing = PhotoListing(photos=len(photos))
    for photo in photos:
        crop = frame_photo(photo.path, out)
        if crop is None:
            listing.no_face.append(Path(os.path.relpath(photo.path, root)).as_posix())
        else:
            listing.samples.append(Sample(crop, photo.label, source.name))
    if listing.no_face:
        log.warning(
            "%s/%s: no face found in %d of %d photos, left out: %s",
            source.name, split, len(listing.no_face), len(photos), ", ".join(listing.no_face[:5])
            + (", ..." if len(listing.no_face) > 5 else ""),
        )  # fmt: skip
    return listing


def check_photos(
    source: Source,
    report,
    *,
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
) -> None:
    """Add to ``report`` (the data check of a photo source's folder) what framing its photos gives.

    Sets ``report.photos``: the framing's key and, a split, the photos, those with a face and the paths of
    those without one; and ``report.fingerprint`` to the source's fingerprint as training records it.
    """
    splits = {}
    for split in SPLITS:
        if not any(report.counts.get(split, {}).values()):
            continue
        listing = list_photo_split(source, split, class_names=class_names, cache_dir=cache_dir)
        splits[split] = {"photos": listing.photos, "faces": len(listing.samples), "no_face": listing.no_face}
    report.photos = {
        "framing": framing_key(DEFAULT_FRAMING),
        "crops": str(crops_dir(cache_dir)),
        "splits": splits,
    }
    if report.fingerprint is not None:
        report.fingerprint = photo_fingerprint(report.fingerprint)
