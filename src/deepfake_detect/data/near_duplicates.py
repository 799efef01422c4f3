"""Perceptual near-duplicates: a 256-bit difference hash of each image, and the pairs within a small distance.

An exact copy is found by its content hash (:mod:`~deepfake_detect.data.fingerprint`); a copy that was
re-encoded, resized or lightly edited has other bytes. Its difference hash ("dHash": one bit for each pair of
horizontally adjacent pixels of a 17x16 grey thumbnail, set where the right one is brighter) moves only a few
bits, so two images whose hashes differ in at most :data:`NEAR_DISTANCE` of 256 bits are reported as
near-duplicates.

How :data:`NEAR_DISTANCE` was chosen, on the 16,844 images of the shared data (faces140k, the four sources and
the StyleGAN3 probe):

- 1,000 images laundered as ``evaluate --launder`` does (long side 128-1024, then JPEG quality 30-95) moved by
  a median of 12 bits from their originals; 95% moved at most 22, 97% at most 24 and 99% at most 28.
- Among the 142 million pairs of different files, the pairs at 31 or closer, inspected by eye, were the same
  photo re-cropped or re-encoded, or a StyleGAN "twin" (the same face rendered twice), but for pairs of
  different faces from 30 on.
- 64-bit hashes do not separate aligned faces: different people sit at distance 0-3 (FFHQ against
  gan-boredhumans, for one), so 256 bits it is.

24 catches about 97% of laundered copies with no false alarm found, and leaves a margin below 30. At 24 the
shared data holds 57 near-duplicate pairs, none across sources: 5 across faces140k's splits and 48 within them
(StyleGAN twins), 1 across web-portraits' splits, and 3 within web-portraits' and UTKFace's splits.

The search is multi-index hashing: the 256 bits are split into ``n > d / 2`` disjoint chunks, so two hashes
within distance ``d`` differ in at most one bit of some chunk (pigeonhole). Each chunk's value is looked up in
a table as it is and with each of its bits flipped, and only the pairs found are compared: 140,000 hashes take
about 3 s on one core instead of 10^10 comparisons.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "HASH_BITS",
    "NEAR_DISTANCE",
    "DRAFT_SIZE",
    "difference_hash",
    "hash_image_bytes",
    "hamming",
    "near_pairs",
]

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
#: The largest Hamming distance (of 256 bits) at which two images are near-duplicates; see the module notes.
NEAR_DISTANCE = 24
#: Decode JPEGs at the smallest scale at least this big: the same thumbnail whatever the file's size.
DRAFT_SIZE = (64, 64)
_THUMB = (17, 16)  # 17 columns give 16 differences a row
_FLAT = 8  # a thumbnail spanning fewer grey levels has no structure to compare (blank, one colour)
_MIN_CHUNKS = 12  # chunks of at most 22 bits: a table over every chunk value stays small (4M entries)


def difference_hash(image: Image.Image) -> bytes | None:
    """The 256-bit difference hash of a decoded image, or None for a featureless one.

    Examples
    --------
    >>> gradient = Image.linear_gradient("L").rotate(90)  # brighter to the right
    >>> difference_hash(gradient).hex()[:16], difference_hash(Image.new("RGB", (64, 64), "gray"))
    ('ffffffffffffffff', None)
    """
    thumb = np.asarray(image.convert("L").resize(_THUMB, Image.Resampling.BOX), dtype=np.int16)
    if int(thumb.max()) - int(thumb.min()) < _FLAT:
        return None
    return np.packbits(thumb[:, 1:] > thumb[:, :-1]).tobytes()


def hash_image_bytes(data: bytes) -> bytes | None:
    """:func:`difference_hash` of an encoded image (JPEGs decoded at a reduced scale, see :data:`DRAFT_SIZE`).

    Raises
    ------
    PIL.UnidentifiedImageError, OSError
        When the bytes are not an image that decodes.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", DRAFT_SIZE)
        return difference_hash(image)


def hamming(a: bytes, b: bytes) -> int:
    """The number of bits in which two hashes differ.

    Examples
    --------
    >>> hamming(b"\\x0f\\x00", b"\\x01\\x00")
    3
    """
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def near_pairs(
    hashes: Sequence[bytes | None], max_distance: int = NEAR_DISTANCE
) -> list[tuple[int, int, int]]:
    """Every pair of hashes within ``max_distance`` bits of each other (None entries are skipped).

    Parameters
    ----------
    hashes : sequence of bytes or None
        :func:`difference_hash` values.
    max_distance : int
        In [0, 255].

    Returns
    -------
    list of (int, int, int)
        ``(i, j, distance)`` with ``i < j`` indices into ``hashes``, sorted.

    Examples
    --------
    >>> a = bytes(32)
    >>> near_pairs([a, None, bytes([1]) + a[1:], bytes([255] * 32)], max_distance=2)
    [(0, 2, 1)]
    """
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS}), got {max_distance}")
    kept = np.array([i for i, h in enumerate(hashes) if h is not None], dtype=np.int64)
    if len(kept) < 2:
        return []
    packed = np.frombuffer(b"".join(hashes[i] for i in kept), np.uint8).reshape(len(kept), HASH_BYTES)
    words, bits = packed.view(np.uint64), np.unpackbits(packed, axis=1)
    # Pigeonhole: split the bits into n chunks with n > max_distance / 2; two hashes within max_distance then
    # differ in at most one bit of some chunk. So each chunk's key is looked up as it is and with each of its
    # bits flipped. Strided chunks: neighbouring pixels' bits are correlated, interleaving evens the buckets.
    n_chunks = max(max_distance // 2 + 1, _MIN_CHUNKS)
    flips = max_distance // n_chunks > 0
    close = []
    for chunk in range(n_chunks):
        pairs = _chunk_candidates(bits[:, chunk::n_chunks], flips)
        distance = np.bitwise_count(words[pairs[:, 0]] ^ words[pairs[:, 1]]).sum(axis=1, dtype=np.int64)
        near = distance <= max_distance
        close.append(np.stack([pairs[near, 0], pairs[near, 1], distance[near]], axis=1))
    found = np.unique(np.concatenate(close), axis=0)  # a pair may share several chunks
    return [(int(kept[i]), int(kept[j]), int(d)) for i, j, d in found]


def _chunk_candidates(chunk_bits: np.ndarray, flips: bool) -> np.ndarray:
    """``(i, j)`` rows, ``i < j``, of the hashes whose chunk keys are equal or (with ``flips``) one bit apart."""
    n_bits = chunk_bits.shape[1]
    keys = np.packbits(chunk_bits, axis=1, bitorder="little")
    keys = np.pad(keys, ((0, 0), (0, 4 - keys.shape[1]))).view("<u4").ravel().astype(np.int64)
    # A table over every key value (at most 2**22): where each key's rows start in key order, and how many.
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=1 << n_bits)
    first = np.cumsum(count) - count
    found = []
    for probe in [0, *(1 << b for b in range(n_bits))] if flips else [0]:
        wanted = keys ^ probe
        counts = count[wanted]
        rows = np.repeat(np.arange(len(keys)), counts)
        # The k-th match of a row sits at first[wanted] + k: a running count restarted at each row's first one.
        within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        matches = order[np.repeat(first[wanted], counts) + within]
        keep = rows < matches  # each pair once; a hash never pairs with itself
        found.append(np.stack([rows[keep], matches[keep]], axis=1))
    return np.concatenate(found)
