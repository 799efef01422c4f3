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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from deepfake_detect.core.augmentation import Augmentation

__all__ = ["Preprocess", "Degradations", "load_image", "normalize", "MAX_IMAGE_PIXELS"]

# Decompression bombs: refuse images above 90 megapixels (a 12,000 x 7,500 photo still passes). Checked here
# rather than by changing Pillow's global, so importing this package leaves Pillow as it was.
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

    def load(self, source: str | Path | bytes | Image.Image) -> np.ndarray:
        """Decode a file (or take an image) and return its stored uint8 array."""
        image = (
            source if isinstance(source, Image.Image) else load_image(source, self.stored_size, self.draft)
        )
        return self.prepare(_to_rgb(ImageOps.exif_transpose(image)))


@dataclass(frozen=True)
class Degradations(Augmentation):
    """Seeded training augmentations applied to images: the settings (and defaults) of
    :class:`~deepfake_detect.core.augmentation.Augmentation`, whose docstring says what each step does.

    Examples
    --------
    >>> aug = Degradations(jpeg_p=1.0, jpeg_quality=(30, 100), rotate_p=0.5)
    >>> aug.apply(np.zeros((32, 32, 3), np.uint8), np.random.default_rng(0)).shape
    (32, 32, 3)
    >>> Degradations().enabled
    False
    """

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
        if self.resample_p and rng.random() < self.resample_p:
            pil = _resample(pil, float(rng.uniform(*self.resample_scale)), rng)
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
            low, high = self.jpeg_quality
            pil = _jpeg(pil, int(rng.integers(low, high + 1)))
        if self.djpeg_p and rng.random() < self.djpeg_p:
            low, high = self.djpeg_quality
            first, second = (int(q) for q in rng.integers(low, high + 1, size=2))
            shift = (0, 0) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(0, 8, size=2))
            pil = _jpeg(_jpeg_on_shifted_grid(pil, first, shift), second)
        out = np.asarray(pil, dtype=np.uint8)
        if self.mask_p and rng.random() < self.mask_p:
            out = _mask_patches(out, rng, self.mask_ratio, self.mask_patch)
        return out


# Resizing kernels drawn by the resample step, each way independently.
_KERNELS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
)


def _resample(pil: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Scale by ``factor`` and back to the original size, each way with a kernel drawn from ``_KERNELS``."""
    down, up = (_KERNELS[int(i)] for i in rng.integers(0, len(_KERNELS), size=2))
    middle = (max(8, round(pil.width * factor)), max(8, round(pil.height * factor)))
    return pil.resize(middle, down).resize(pil.size, up)


def _jpeg(pil: Image.Image, quality: int) -> Image.Image:
    """One JPEG round trip at ``quality`` (Pillow's default 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=quality)
    out = Image.open(buffer)
    out.load()
    return out


def _jpeg_on_shifted_grid(pil: Image.Image, quality: int, shift: tuple[int, int]) -> Image.Image:
    """A JPEG round trip whose 8x8 grid starts ``shift`` = (dy, dx) pixels above and left of the image: the
    image is padded by reflection, compressed, and cut back to its own frame."""
    dy, dx = shift
    if not (dy or dx):
        return _jpeg(pil, quality)
    padded = np.pad(np.asarray(pil), ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
    out = np.asarray(_jpeg(Image.fromarray(padded), quality))
    return Image.fromarray(np.ascontiguousarray(out[dy:, dx:]))


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


def load_image(source: str | Path | bytes, min_side: int | None = None, draft: bool = True) -> Image.Image:
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
        image = Image.open(handle)
        if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:
            raise Image.DecompressionBombError(
                f"image is {image.size[0]}x{image.size[1]} pixels, over the {MAX_IMAGE_PIXELS:,} pixel limit"
            )
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
