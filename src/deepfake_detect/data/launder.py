"""Laundering: what photos go through on the way to a user, applied on purpose to score a detector "in the wild".

The protocol follows the StyleGAN3 detection challenge's laundered images (random resize, then JPEG): each image
is resized so that its long side is an integer drawn uniformly from [128, 1024] (Lanczos, the resampling of
photo sites), then re-encoded as JPEG at a quality drawn uniformly from [30, 95] (4:2:0 chroma, Pillow's
libjpeg tables). The range reaches below the 256 px training frame on purpose: users' photos are often smaller.

Each image has its own generator, seeded by ``(seed, its index in sorted order)``: one image's draw never depends
on which other images are scored, and the same ``seed`` launders a split identically on every machine.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

__all__ = ["LaunderSpec", "launder_bytes", "launder_rng"]


@dataclass(frozen=True)
class LaunderSpec:
    """The laundering ranges (both ends included)."""

    long_side: tuple[int, int] = (128, 1024)
    jpeg_quality: tuple[int, int] = (30, 95)


def launder_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of the image at ``index`` (in sorted order) for laundering ``seed``.

    Examples
    --------
    >>> int(launder_rng(0, 3).integers(100)) == int(launder_rng(0, 3).integers(100))
    True
    """
    return np.random.default_rng([seed, index])


def launder_bytes(
    source: bytes | Image.Image, rng: np.random.Generator, spec: LaunderSpec = LaunderSpec()
) -> tuple[bytes, dict[str, int]]:
    """Resize an image to a random long side, then re-encode it as JPEG at a random quality.

    Parameters
    ----------
    source : bytes or PIL.Image.Image
        An encoded image file, or a decoded image.
    rng : numpy.random.Generator
        This image's own generator (see :func:`launder_rng`).
    spec : LaunderSpec
        The ranges to draw from.

    Returns
    -------
    data : bytes
        The laundered JPEG file.
    drawn : dict
        ``long_side`` and ``quality`` as drawn (for records; tests check the file itself).

    Examples
    --------
    >>> data, drawn = launder_bytes(Image.new("RGB", (256, 256), "gray"), launder_rng(0, 0))
    >>> Image.open(io.BytesIO(data)).format, max(Image.open(io.BytesIO(data)).size) == drawn["long_side"]
    ('JPEG', True)
    """
    if isinstance(source, bytes):
        with Image.open(io.BytesIO(source)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    else:
        image = source.convert("RGB")
    long_side = int(rng.integers(spec.long_side[0], spec.long_side[1] + 1))
    quality = int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    width, height = image.size
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if max(size) != long_side:  # rounding can miss by one on the long side; the long side is the drawn one
        size = (long_side, size[1]) if width >= height else (size[0], long_side)
    resized = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    return buffer.getvalue(), {"long_side": long_side, "quality": quality}
