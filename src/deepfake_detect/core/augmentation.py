"""The training augmentations' settings and their defaults, written once for the config and the pixels.

:class:`~deepfake_detect.core.config.TrainConfig` has each field of :class:`Augmentation` with an ``aug_``
prefix (and checks its range), and :class:`~deepfake_detect.data.transforms.Degradations` applies them to
images; both take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Augmentation", "CONFIG_PREFIX"]

#: What the training config puts before each field's name: ``jpeg_p`` is ``TrainConfig.aug_jpeg_p``.
CONFIG_PREFIX = "aug_"


@dataclass(frozen=True)
class Augmentation:
    """Seeded training augmentations: what photos go through online, and SAFE's cheap augmentations.

    Each step happens with its probability (the ``_p`` fields), on both classes; a probability of 0 turns a
    step off and then draws nothing from the random generator, so turning a step on never changes the draws
    of a config that leaves it off. The defaults of the range fields are the ranges used before they could be
    set, so old configs keep their exact pixels.

    Parameters
    ----------
    jpeg_p : float
        Probability of re-compressing as JPEG at an integer quality drawn from ``jpeg_quality``.
    jpeg_quality : tuple of int
        JPEG quality range, both ends included, in [1, 100]; default (30, 95). CNNDetection-style: 30,100.
    blur_p : float
        Probability of a Gaussian blur with sigma drawn from ``blur_sigma``.
    blur_sigma : tuple of float
        Gaussian blur sigma range in pixels, at least 0; default (0.2, 1.5). CNNDetection-style: 0,3.
    rescale_p : float
        Probability of scaling by a factor drawn from ``rescale`` and back to the original size (bilinear both
        ways).
    rescale : tuple of float
        Scaling factor range, above 0 (below 1 loses detail, above 1 upscales first and adds resampling
        traces); default (0.5, 0.9). Wider: 0.25,2.
    color_p : float
        Probability of brightness, contrast and saturation jitter.
    brightness, contrast, saturation : float
        Colour jitter strengths in [0, 1]: each factor is 1 plus a value drawn from [-strength, strength]
        (torchvision's ``ColorJitter`` convention); default 0.2 each. SAFE uses 0.5.
    rotate_p : float
        Probability of a rotation by an angle drawn from ``rotate_degrees`` (counter-clockwise), with
        nearest-neighbour sampling (no resampling blur, as SAFE) and black corners.
    rotate_degrees : tuple of float
        Rotation angle range in degrees, within [-180, 180]; default (-15, 15).
    mask_p : float
        Probability of masking random squares black (SAFE's ``RandomMask``): the view is cut into a grid of
        squares of side ``mask_patch`` times its side, and a share of its area drawn from ``mask_ratio`` is
        blacked out, square by square.
    mask_ratio : tuple of float
        Share of the image area masked, a range within [0, 1]; default (0, 0.75) as SAFE.
    mask_patch : float
        Side of one masked square as a share of the image side, in (0, 1]; default 0.07 (16 px at 224).
    zoom_p : float
        Probability of a random resized crop of the stored image before the model's crop: a square covering a
        share of its area drawn from ``zoom_scale``, at a random place, resized back (bilinear). It breaks
        framing shortcuts (face size and position).
    zoom_scale : tuple of float
        Share of the stored image's area that crop covers, a range within (0, 1]; default (0.5, 1).
    djpeg_p : float
        Probability of a double JPEG compression, the last step: a first pass at a quality drawn from
        ``djpeg_quality`` on an 8x8 grid that is aligned with the second's half the time and shifted by 0-7 px
        each way otherwise, then an aligned second pass at another quality drawn from the range. Every
        source's own compression history (one pass, two, aligned or not) is then one more draw among many,
        so no source can be told by its grid.
    djpeg_quality : tuple of int
        Quality range of both passes, both ends included, in [1, 100]; default (60, 95).
    resample_p : float
        Probability of scaling by a factor drawn from ``resample_scale`` and back, down and up with kernels
        drawn from nearest, bilinear, bicubic and Lanczos: no source can be told by its resizing kernel.
    resample_scale : tuple of float
        Scaling factor range, above 0; default (0.5, 1.5).

    Examples
    --------
    >>> Augmentation().enabled, Augmentation(rotate_p=0.5).enabled
    (False, True)
    >>> Augmentation.jpeg_quality  # a field's default, as the training config takes it
    (30, 95)
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
    djpeg_p: float = 0.0
    djpeg_quality: tuple[int, int] = (60, 95)
    resample_p: float = 0.0
    resample_scale: tuple[float, float] = (0.5, 1.5)

    @classmethod
    def from_config(cls, cfg: Any) -> Augmentation:
        """The settings a training config asks for: field ``x`` is read from the config's ``aug_x``.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(**{CONFIG_PREFIX + f.name: f.default for f in fields(Augmentation)})
        >>> Augmentation.from_config(cfg) == Augmentation()
        True
        """
        return cls(**{f.name: getattr(cfg, CONFIG_PREFIX + f.name) for f in fields(cls)})

    @property
    def enabled(self) -> bool:
        """Whether any step can happen."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_p"))
