"""Images in: decoding, preprocessing and seeded augmentation, shared by training, evaluation and scanning.

One code path turns a file into a network input, so a face scores the same whether it is seen by ``train``,
``evaluate`` or ``scan``. The steps are:

1. :func:`load_image` decodes with Pillow (JPEG draft mode when the target is smaller), applies the EXIF
   orientation and converts to RGB.
2. :meth:`Preprocess.prepare` brings the image to its *stored* size as a ``(S, S, 3)`` uint8 array. This is
   what the decoded cache holds.
3. :meth:`Preprocess.augment` (training only) or :meth:`Preprocess.finish` (evaluation) crops to the input
   size,
   and :func:`normalize` gives the float ``(3, H, W)`` tensor.

Augmentation draws from ``np.random.default_rng((seed, epoch, index))``, so it depends on nothing but the
sample, the epoch and the seed: not on worker processes, batch order or what ran before.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

__all__ = [
    "Preprocess",
    "Degradations",
    "load_image",
    "open_image",
    "normalize",
    "MAX_IMAGE_PIXELS",
    "pillow_pixel_limit",
]

# Decompression bombs: refuse images above 90 megapixels (a 12,000 x 7,500 photo still passes) unless told
# otherwise (scan and serve: --max-pixels). Checked here rather than by changing Pillow's global, so importing
# this package leaves Pillow as it was.
MAX_IMAGE_PIXELS = 90_000_000


@dataclass(frozen=True)
class Preprocess:
    """How a face image becomes a network input; stored in every checkpoint.

    Parameters
    ----------
    size : int
        Network input size (square), in pixels.
    resize_mode : {"resize", "crop"}
        ``resize`` resamples the whole face to ``size``. ``crop`` first brings the face to ``base_size``
        (a no-op for 256 px data) and then takes a ``size`` crop at native resolution: centre crop for
        evaluation, random crop for training. Resampling blurs generator traces; cropping keeps them.
    base_size : int
        Face framing for ``crop`` mode, in pixels.
    mean, std : tuple of float
        Per-channel normalisation of pixels scaled to [0, 1].
    draft : bool
        Decode JPEGs at 1/2, 1/4 or 1/8 scale when that still covers the stored size (much faster).
    """

    size: int = 220
    resize_mode: str = "resize"
    base_size: int = 256
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    draft: bool = True

    def __post_init__(self) -> None:
        if self.resize_mode not in ("resize", "crop"):
            raise ValueError(f"resize_mode must be 'resize' or 'crop', got {self.resize_mode!r}")
        if self.resize_mode == "crop" and self.size > self.base_size:
            raise ValueError(f"crop size {self.size} is larger than the face framing {self.base_size}")

    @property
    def stored_size(self) -> int:
        """Side of the uint8 image kept between decoding and cropping (the cache resolution)."""
        return self.size if self.resize_mode == "resize" else self.base_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, as written into checkpoint metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Bring a decoded RGB image to the stored size, as a ``(S, S, 3)`` uint8 array."""
        side = self.stored_size
        if image.size != (side, side):
            # Centre-square first so non-square photos keep their aspect ratio.
            image = ImageOps.fit(image, (side, side), method=Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def finish(self, stored: np.ndarray) -> np.ndarray:
        """Evaluation view of a stored image: centre crop (``crop`` mode) or as is."""
        return _crop(stored, self.size, *_centre(stored.shape[0], self.size))

    def augment(
        self,
        stored: np.ndarray,
        rng: np.random.Generator,
        *,
        hflip: bool = True,
        degrade: Degradations | None = None,
    ) -> np.ndarray:
        """Training view of a stored image: the optional random zoom of ``degrade``, a random crop (``crop``
        mode), an optional random flip, then the other optional seeded ``degrade`` steps (each draws from
        ``rng`` only when enabled)."""
        if degrade is not None:
            stored = degrade.reframe(stored, rng)
        limit = stored.shape[0] - self.size
        top, left = (int(rng.integers(0, limit + 1)), int(rng.integers(0, limit + 1))) if limit else (0, 0)
        out = _crop(stored, self.size, top, left)
        if hflip and rng.random() < 0.5:
            out = out[:, ::-1]
        return degrade.apply(out, rng) if degrade is not None and degrade.enabled else out

    def load(self, source: str | Path | bytes | Image.Image, max_pixels: int | None = None) -> np.ndarray:
        """Decode a file (or take an image) and return its stored uint8 array (``max_pixels``: see
        :func:`load_image`)."""
        if isinstance(source, Image.Image):
            image = source
        else:
            image = load_image(source, self.stored_size, self.draft, max_pixels=max_pixels)
        return self.prepare(_to_rgb(ImageOps.exif_transpose(image)))


@dataclass(frozen=True)
class Degradations:
    """Seeded training augmentations: what photos go through online, and SAFE's cheap augmentations.

    Each step happens with its probability; a probability of 0 draws nothing from the random generator, so
    turning a step on never changes the draws of a config that leaves it off. The defaults of the range
    fields are the ranges used before they could be set, so old configs keep their exact pixels. The
    training config names each field with an ``aug_`` prefix (:meth:`from_config`), and validates it.

    Parameters
    ----------
    jpeg_p : float
        Probability of re-compressing as JPEG at an integer quality drawn from ``jpeg_quality`` (inclusive).
    blur_p : float
        Probability of a Gaussian blur with sigma drawn from ``blur_sigma`` (pixels).
    rescale_p : float
        Probability of scaling by a factor drawn from ``rescale`` and back to the original size (bilinear
        both ways; a factor above 1 upscales first).
    color_p : float
        Probability of brightness, contrast and saturation jitter: each is multiplied by 1 plus a value drawn
        from ``[-brightness, brightness]``, ``[-contrast, contrast]`` and ``[-saturation, saturation]``
        (torchvision's ``ColorJitter`` convention).
    rotate_p : float
        Probability of a rotation by an angle drawn from ``rotate_degrees`` (counter-clockwise), with
        nearest-neighbour sampling (no resampling blur, as SAFE) and black corners.
    mask_p : float
        Probability of masking random squares black (SAFE's ``RandomMask``): the view is cut into a grid of
        squares of side ``mask_patch`` times its side, and a share of its area drawn from ``mask_ratio`` is
        blacked out, square by square.
    zoom_p : float
        Probability of a random resized crop of the stored image before the model's crop: a square covering
        a share of its area drawn from ``zoom_scale``, at a random place, resized back (bilinear). It breaks
        framing shortcuts (face size and position).

    Examples
    --------
    >>> aug = Degradations(jpeg_p=1.0, jpeg_quality=(30, 100), rotate_p=0.5)
    >>> aug.apply(np.zeros((32, 32, 3), np.uint8), np.random.default_rng(0)).shape
    (32, 32, 3)
    >>> Degradations().enabled
    False
    """

    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.2, 1.5)
    rescale_p: float = 0.0
    rescale: tuple[float, float] = (0.5, 0.9)
    color_p: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    rotate_p: float = 0.0
    rotate_degrees: tuple[float, float] = (-15.0, 15.0)
    mask_p: float = 0.0
    mask_ratio: tuple[float, float] = (0.0, 0.75)
    mask_patch: float = 0.07
    zoom_p: float = 0.0
    zoom_scale: tuple[float, float] = (0.5, 1.0)

    @classmethod
    def from_config(cls, cfg: Any) -> Degradations:
        """The steps a training config asks for: field ``x`` is read from the config's ``aug_x``.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(**{f"aug_{f.name}": f.default for f in fields(Degradations)})
        >>> Degradations.from_config(cfg) == Degradations()
        True
        """
        return cls(**{f.name: getattr(cfg, f"aug_{f.name}") for f in fields(cls)})

    @property
    def enabled(self) -> bool:
        """Whether any step can happen."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_p"))

    def reframe(self, stored: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The zoom step, applied to the stored image before the model's crop (a no-op when off)."""
        if not (self.zoom_p and rng.random() < self.zoom_p):
            return stored
        side = math.sqrt(rng.uniform(*self.zoom_scale))
        height, width = stored.shape[:2]
        crop_h, crop_w = max(1, round(height * side)), max(1, round(width * side))
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        patch = Image.fromarray(np.ascontiguousarray(stored[top : top + crop_h, left : left + crop_w]))
        return np.asarray(patch.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply the enabled steps after the model's crop to a uint8 ``(H, W, 3)`` array."""
        pil = Image.fromarray(np.ascontiguousarray(image))
        if self.rotate_p and rng.random() < self.rotate_p:
            angle = float(rng.uniform(*self.rotate_degrees))
            pil = pil.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
        if self.rescale_p and rng.random() < self.rescale_p:
            factor = rng.uniform(*self.rescale)
            small = (max(8, round(pil.width * factor)), max(8, round(pil.height * factor)))
            bilinear = Image.Resampling.BILINEAR
            pil = pil.resize(small, bilinear).resize(image.shape[1::-1], bilinear)
        if self.blur_p and rng.random() < self.blur_p:
            pil = pil.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*self.blur_sigma))))
        if self.color_p and rng.random() < self.color_p:
            jitter = (
                (ImageEnhance.Brightness, self.brightness),
                (ImageEnhance.Contrast, self.contrast),
                (ImageEnhance.Color, self.saturation),
            )
            for enhancer, strength in jitter:
                pil = enhancer(pil).enhance(1.0 + rng.uniform(-strength, strength))
        if self.jpeg_p and rng.random() < self.jpeg_p:
            buffer = io.BytesIO()
            low, high = self.jpeg_quality
            pil.save(buffer, "JPEG", quality=int(rng.integers(low, high + 1)))
            pil = Image.open(buffer)
            pil.load()
        out = np.asarray(pil, dtype=np.uint8)
        if self.mask_p and rng.random() < self.mask_p:
            out = _mask_patches(out, rng, self.mask_ratio, self.mask_patch)
        return out


def _mask_patches(
    image: np.ndarray, rng: np.random.Generator, ratio: tuple[float, float], patch: float
) -> np.ndarray:
    """Black out distinct grid squares covering a share of the area drawn from ``ratio``."""
    height, width = image.shape[:2]
    side = max(1, round(patch * min(height, width)))
    rows, cols = height // side, width // side
    count = min(rows * cols, int(height * width * rng.uniform(*ratio) / side**2))
    out = image.copy()
    for cell in rng.choice(rows * cols, size=count, replace=False):
        top, left = (int(cell) // cols) * side, (int(cell) % cols) * side
        out[top : top + side, left : left + side] = 0
    return out


def _centre(side: int, size: int) -> tuple[int, int]:
    offset = (side - size) // 2
    return offset, offset


def _crop(image: np.ndarray, size: int, top: int, left: int) -> np.ndarray:
    return image[top : top + size, left : left + size]


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent pixels become white rather than black garbage."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 257.0 if array.max() > 255 else 1.0
        return Image.fromarray(np.clip(array / scale, 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def pillow_pixel_limit() -> int | None:
    """The most pixels Pillow opens at all (twice its ``MAX_IMAGE_PIXELS``; None when that check is off):
    a ``max_pixels`` above it could never be reached.

    Examples
    --------
    >>> pillow_pixel_limit() == 2 * Image.MAX_IMAGE_PIXELS
    True
    """
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS


def _over_limit(size: str, limit: int) -> Image.DecompressionBombError:
    return Image.DecompressionBombError(f"image is {size} pixels, over the limit of {limit:,} (--max-pixels)")


def open_image(handle: Any, max_pixels: int | None = None) -> Image.Image:
    """Open an image's header (no pixels decoded yet), refusing more than ``max_pixels`` pixels.

    Parameters
    ----------
    handle : file object
        Open for reading, at the image's first byte.
    max_pixels : int, optional
        Default :data:`MAX_IMAGE_PIXELS`, read at call time.

    Raises
    ------
    PIL.Image.DecompressionBombError
        Over ``max_pixels``, with a message that quotes it and ``--max-pixels`` (Pillow's own refusal of
        still larger images is reworded likewise).

    Examples
    --------
    >>> buf = io.BytesIO(); Image.new("1", (300, 200)).save(buf, "PNG")
    >>> open_image(buf, 50_000)
    Traceback (most recent call last):
    ...
    PIL.Image.DecompressionBombError: image is 300x200 = 60,000 pixels, over the limit of 50,000 (--max-pixels)
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        image = Image.open(handle)
    except Image.DecompressionBombError as err:  # over Pillow's own limit: only its message holds the size
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise _over_limit(f"{int(found[1]):,}" if found else "more", limit) from None
    width, height = image.size
    if width * height > limit:
        image.close()
        raise _over_limit(f"{width}x{height} = {width * height:,}", limit)
    return image


def load_image(
    source: str | Path | bytes,
    min_side: int | None = None,
    draft: bool = True,
    *,
    max_pixels: int | None = None,
) -> Image.Image:
    """Decode an image file into a fully loaded Pillow image (first frame of animations).

    Parameters
    ----------
    source : path or bytes
        The file to read.
    min_side : int, optional
        With ``draft``, JPEGs are decoded at the smallest 1/2, 1/4 or 1/8 scale whose sides stay at least
        this large.
    draft : bool
        Allow reduced-scale JPEG decoding.
    max_pixels : int, optional
        Refuse larger images (see :func:`open_image`); default :data:`MAX_IMAGE_PIXELS`.

    Returns
    -------
    PIL.Image.Image
        The decoded image, EXIF orientation not yet applied.

    Raises
    ------
    OSError, ValueError, Image.DecompressionBombError
        When the file is not a readable image.

    Examples
    --------
    >>> import io
    >>> buf = io.BytesIO(); Image.new("RGB", (64, 48)).save(buf, "JPEG")
    >>> load_image(buf.getvalue(), min_side=16).size
    (32, 24)
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    with handle:
        image = open_image(handle, max_pixels)
        if draft and min_side and image.format == "JPEG":
            w, h = image.size
            scale = max(1, min(w, h) // min_side)
            image.draft("RGB", (max(1, w // scale), max(1, h // scale)))
        image.load()
    return image


def normalize(batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Turn uint8 ``(N, H, W, 3)`` (or one ``(H, W, 3)``) images into float32 ``(N, 3, H, W)``.

    Examples
    --------
    >>> normalize(np.full((1, 2, 2, 3), 255, np.uint8), (0.5,) * 3, (0.5,) * 3)[0, :, 0, 0]
    array([1., 1., 1.], dtype=float32)
    """
    batch = batch[None] if batch.ndim == 3 else batch
    # Transpose the bytes first and work in place: a third of the memory traffic of transposing floats.
    # The per-pixel arithmetic (x * 1/255 - mean) / std is unchanged, so the values are bit-identical.
    x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    x -= np.asarray(mean, np.float32)[:, None, None]
    x /= np.asarray(std, np.float32)[:, None, None]
    return x
