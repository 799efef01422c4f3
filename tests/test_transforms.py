"""Decoding and preprocessing: one path for training, evaluation and scanning."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_detect.data.transforms import MAX_IMAGE_PIXELS, Degradations, Preprocess, load_image, normalize


def jpeg_bytes(size=(256, 256), seed=0, quality=90) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_resize_mode_uses_draft_decoding_and_gives_the_input_size():
    pre = Preprocess(size=128, resize_mode="resize")
    assert load_image(jpeg_bytes(), min_side=128).size == (128, 128)  # 1/2-scale DCT decode
    stored = pre.load(jpeg_bytes())
    assert stored.shape == (128, 128, 3) and stored.dtype == np.uint8
    assert pre.finish(stored).shape == (128, 128, 3)


def test_crop_mode_keeps_native_resolution():
    pre = Preprocess(size=96, resize_mode="crop", base_size=256)
    data = jpeg_bytes()
    stored = pre.load(data)
    native = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(stored, native)  # no resampling at the 140k framing
    assert np.array_equal(pre.finish(stored), native[80:176, 80:176])


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif)
    stored = Preprocess(size=40, resize_mode="resize").load(buffer.getvalue())
    assert stored.shape == (40, 40, 3)
    assert stored[:10].mean() > 200 and stored[-10:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new("RGB", (32, 32), (200, 100, 50)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
    assert Preprocess(size=32).load(buffer.getvalue()).shape == (32, 32, 3)


def test_decompression_bomb_is_refused():
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")
    with pytest.raises(Image.DecompressionBombError):
        load_image(buffer.getvalue())


def test_augmentation_depends_only_on_seed_epoch_and_index():
    pre = Preprocess(size=96, resize_mode="crop")
    stored = pre.load(jpeg_bytes())
    views = [pre.augment(stored, np.random.default_rng((42, 0, 7))) for _ in range(2)]
    assert np.array_equal(views[0], views[1])
    others = [pre.augment(stored, np.random.default_rng((42, e, 7))) for e in range(1, 6)]
    assert any(not np.array_equal(views[0], o) for o in others)


def test_degradations_off_draw_nothing_and_on_are_seeded():
    pre = Preprocess(size=96, resize_mode="crop")
    stored = pre.load(jpeg_bytes())
    plain = pre.augment(stored, np.random.default_rng(1))
    off = pre.augment(stored, np.random.default_rng(1), degrade=Degradations())
    assert np.array_equal(plain, off)
    strong = Degradations(jpeg_p=1.0, blur_p=1.0, rescale_p=1.0, color_p=1.0)
    a = pre.augment(stored, np.random.default_rng(1), degrade=strong)
    b = pre.augment(stored, np.random.default_rng(1), degrade=strong)
    assert np.array_equal(a, b) and not np.array_equal(a, plain) and a.shape == plain.shape


def test_normalize_layout_and_values():
    batch = np.zeros((2, 4, 5, 3), np.uint8)
    batch[..., 0] = 255
    x = normalize(batch, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32
    assert np.allclose(x[:, 0], 1.0) and np.allclose(x[:, 1:], -1.0)
