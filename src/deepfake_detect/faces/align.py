"""Resampling a face square straight to the training frame: one affine warp, reflection past the borders.

FFHQ's own chain (``recreate_aligned_images``) shrinks the photo by an integer factor, crops, pads by
reflection with a blurred, faded border, resamples the quad bilinearly to 4096 px and reduces that to 1024 px
with an antialiasing filter: about a second a face. Here the quad goes to the 256 px training frame (the
stored size of the 140k crops) in one step:

* when the quad is larger than the frame, the region around it is first reduced with ``cv2.INTER_AREA`` (an
  area average: the antialiasing that FFHQ's shrink and 4096 -> 1024 reduction provide) to about the frame's
  scale;
* then ``cv2.warpAffine`` maps the output square onto the quad with ``INTER_LINEAR`` (bilinear, like FFHQ's
  own transform) and ``BORDER_REFLECT_101`` past the image's edges (FFHQ reflects too, then blurs the pad;
  the blur is left out).

The model's usual crop and preprocessing (``Preprocess.prepare`` / ``finish``) then run on the 256 px frame, as
for a stored 140k image. What this costs against the exact chain is measured in ``tests/test_align.py``'s
benchmark helper and reported in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FRAME_SIZE", "crop_quad", "quad_matrix"]

# The training frame: the 140k crops are FFHQ's 1024 px alignment reduced to 256 px.
FRAME_SIZE = 256
# Above this ratio of quad side to output side, the region is area-reduced before the warp.
SHRINK_ABOVE = 1.25


def quad_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine map from output pixel indices to source pixel indices for a quad (PIL ``QUAD`` order).

    Output corner (0, 0) is the quad's first corner, (0, size) its second, (size, size) its third; pixel
    centres sit at +0.5 in both images (PIL's ``quad + 0.5`` convention, as in FFHQ).

    Examples
    --------
    >>> quad_matrix(np.array([[0, 0], [0, 20], [20, 20], [20, 0]]), 10).tolist()
    [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]
    """
    quad = np.asarray(quad, dtype=np.float64)
    across = (quad[3] - quad[0]) / size  # one output column step, in source pixels
    down = (quad[1] - quad[0]) / size  # one output row step
    # Output pixel (u, v) has its centre at (u + 0.5, v + 0.5); the source's continuous corner is quad + 0.5,
    # so in source pixel indices: quad[0] + (u + 0.5) * across + (v + 0.5) * down.
    offset = quad[0] + 0.5 * (across + down)
    return np.array([[across[0], down[0], offset[0]], [across[1], down[1], offset[1]]])


def _region(rgb: np.ndarray, quad: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``rgb`` under the quad (plus ``margin``), clipped to the image, and its top-left corner."""
    height, width = rgb.shape[:2]
    low = np.floor(quad.min(axis=0)).astype(int) - margin
    high = np.ceil(quad.max(axis=0)).astype(int) + margin
    x0, y0 = min(max(low[0], 0), width - 1), min(max(low[1], 0), height - 1)
    x1, y1 = max(min(high[0], width), x0 + 1), max(min(high[1], height), y0 + 1)
    return rgb[y0:y1, x0:x1], np.array([x0, y0], np.float64)


def crop_quad(rgb: np.ndarray, quad: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Resample the face square ``quad`` of ``rgb`` to a ``size`` x ``size`` frame (see the module docstring).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    quad : array of shape (4, 2)
        Corners top-left, bottom-left, bottom-right, top-right of the upright face, in pixels of ``rgb``
        (:func:`deepfake_detect.faces.landmarks.ffhq_quad`); it may reach past the borders.
    size : int
        Output side.

    Returns
    -------
    ndarray of shape (size, size, 3), uint8

    Examples
    --------
    >>> image = np.zeros((40, 40, 3), np.uint8); image[:20] = 200
    >>> frame = crop_quad(image, np.array([[0, 0], [0, 40], [40, 40], [40, 0]]), size=20)
    >>> frame.shape, int(frame[5, 5, 0]), int(frame[15, 5, 0])
    ((20, 20, 3), 200, 0)
    """
    import cv2

    quad = np.asarray(quad, dtype=np.float64)
    rgb = np.asarray(rgb, dtype=np.uint8)
    side = float(np.mean(np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)))
    shrink = side / size
    # Only the region under the quad is reduced or read: a 24 MP photo is not resampled for one face.
    region, origin = _region(rgb, quad, margin=int(np.ceil(2 * max(shrink, 1.0))))
    local = quad - origin
    if shrink > SHRINK_ABOVE:
        h, w = region.shape[:2]
        reduced = (max(1, round(w / shrink)), max(1, round(h / shrink)))
        # Pixel-centre mapping of a resize: x_new + 0.5 = (x + 0.5) * new / old, per axis.
        fx, fy = reduced[0] / w, reduced[1] / h
        region = cv2.resize(region, reduced, interpolation=cv2.INTER_AREA)
        local = (local + 0.5) * [fx, fy] - 0.5
    matrix = quad_matrix(local, size)
    return cv2.warpAffine(
        np.ascontiguousarray(region),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
