"""Decoding: one input (a photo, or an in-memory image) into faces framed like the training data.

A decoder never raises for a bad file: the reason becomes the input's ``error`` and the scan goes on.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from deepfake_detect.core.exceptions import FaceModelError, describe_error
from deepfake_detect.data.photos import photo_pixels
from deepfake_detect.data.transforms import Preprocess, _to_rgb
from deepfake_detect.faces.framing import FRAMINGS, frame_faces, smallest_face
from deepfake_detect.faces.haar import Box
from deepfake_detect.provenance import Provenance, read_provenance
from deepfake_detect.scan.inputs import input_label

__all__ = [
    "FRAMINGS",
    "DecodeOptions",
    "Face",
    "Decoded",
    "decode_image",
    "image_size",
    "network_view",
    "faces_in",
]

# Below this side (pixels) an image is mostly interpolation once brought to the model's input size.
MIN_RELIABLE_SIDE = 64
# "No face found" in a photo longer than this (pixels) names the smallest face size searched for: in a large
# photo a face can be too small for the finder while plainly visible to a person.
LARGE_PHOTO_SIDE = 1000


@dataclass(frozen=True)
class DecodeOptions:
    """What a worker needs to turn one input into framed faces."""

    preprocess: Preprocess
    detect: bool = True
    fallback_whole_image: bool = False
    fps: float = 1.0
    framing: str = "ffhq"
    provenance: bool = True  # read a file's metadata too (provenance/), from the bytes its pixels come from


@dataclass
class Face:
    """One face ready for the network: its box, the network's uint8 view and, in videos, its frame.

    ``view`` is the evaluation view (:meth:`Preprocess.finish` of the stored image, made contiguous) rather
    than the stored image: in crop mode it is a quarter of the pixels to send back from a decoding process.
    ``landmarks`` (5 x 2: eye centres, nose tip, mouth corners) and ``quad`` (4 x 2: FFHQ's square) are in
    pixels of the EXIF-corrected image, None in box framing and without detection.
    """

    box: Box
    view: np.ndarray
    frame: int | None = None
    t: float | None = None
    landmarks: np.ndarray | None = None
    quad: np.ndarray | None = None


@dataclass
class Decoded:
    """One input after decoding: its faces, or the reason it has none."""

    index: int
    path: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    video: dict[str, Any] | None = None  # fps, duration and the sampled (frame, t) list of a video
    provenance: Provenance | None = None  # what the file's metadata says; None when not read


def _open_rgb(item: Any, preprocess: Preprocess, detect: bool) -> tuple[np.ndarray | None, tuple[int, int]]:
    """Full-size RGB pixels (detection only) and the EXIF-corrected size of an input."""
    if isinstance(item, np.ndarray):
        rgb = np.asarray(_to_rgb(Image.fromarray(item)) if item.ndim == 2 or item.shape[-1] != 3 else item)
        return rgb.astype(np.uint8, copy=False), (rgb.shape[1], rgb.shape[0])
    if isinstance(item, Image.Image):
        image = _to_rgb(ImageOps.exif_transpose(item))
        return (np.asarray(image) if detect else None), image.size
    if detect:  # the decode a photo source's crops were framed from (one function)
        rgb = photo_pixels(item)
        return rgb, (rgb.shape[1], rgb.shape[0])
    # Header only: the pixels are decoded once, by Preprocess.load, exactly as evaluate decodes them.
    return None, image_size(item)


def image_size(source: str | Path | bytes) -> tuple[int, int]:
    """Width and height of an image file once its EXIF orientation is applied, read from the header only."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as header:
        width, height = header.size
        if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # a quarter turn swaps the sides
            width, height = height, width
    return width, height


def network_view(stored: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """The evaluation view of a stored image, as its own contiguous array (cheap to pickle)."""
    return np.ascontiguousarray(preprocess.finish(stored))


def _whole(item: Any, rgb: np.ndarray | None, size: tuple[int, int], preprocess: Preprocess) -> Face:
    # Without pixels yet, Preprocess.load is the evaluate code path: same decode, draft mode and resize.
    stored = preprocess.prepare(Image.fromarray(rgb)) if rgb is not None else preprocess.load(item)
    return Face((0, 0, size[0], size[1]), network_view(stored, preprocess))


def faces_in(rgb: np.ndarray, preprocess: Preprocess, framing: str = "ffhq") -> list[Face]:
    """The faces of a full-resolution RGB image, framed the ``framing`` way and ready for the network.

    The framing is :func:`deepfake_detect.faces.frame_faces`, the one the data layer's photo sources store.

    Examples
    --------
    >>> from deepfake_detect.data.transforms import Preprocess
    >>> faces_in(np.zeros((64, 64, 3), np.uint8), Preprocess(size=32), "box")
    []
    """
    return [
        Face(
            framed.box,
            network_view(preprocess.prepare(Image.fromarray(framed.crop)), preprocess),
            landmarks=framed.landmarks,
            quad=framed.quad,
        )
        for framed in frame_faces(rgb, framing)
    ]


def decode_image(index: int, item: Any, options: DecodeOptions) -> Decoded:
    """Decode one image input into framed faces; never raises for a bad file."""
    result = Decoded(index, input_label(item, index))
    try:
        if options.provenance and isinstance(item, str | os.PathLike | bytes):
            # The file is read once: its metadata and its pixels come from the same bytes.
            item = item if isinstance(item, bytes) else Path(item).read_bytes()
            result.provenance = read_provenance(item)
        rgb, size = _open_rgb(item, options.preprocess, options.detect)
        if options.detect:
            result.faces = faces_in(rgb, options.preprocess, options.framing)
        if not options.detect or (not result.faces and options.fallback_whole_image):
            result.faces = [_whole(item, rgb, size, options.preprocess)]
            if options.detect:
                result.note = "no face found; the whole image was scored (--fallback-whole-image)"
        elif not result.faces:
            result.note = "no face found"
            if max(size) > LARGE_PHOTO_SIDE:
                result.note += f" (looked for faces of {smallest_face(rgb.shape, options.framing)} px and up)"
        if result.faces and min(size) < min(MIN_RELIABLE_SIDE, options.preprocess.size):
            result.note = (
                f"image is only {size[0]}x{size[1]} pixels, blown up to the model's "
                f"{options.preprocess.size}x{options.preprocess.size}: the score is unreliable"
            )
    except FaceModelError:
        raise  # not this file's fault: the whole scan cannot find faces
    except Exception as err:  # noqa: BLE001 - any failure is this file's error row, the scan goes on
        result.faces, result.note, result.error = [], None, describe_error(err)
    return result
