"""Training augmentations as config fields: old configs keep their pixels, new steps are seeded and honoured."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from deepfake_detect.core.augmentation import CONFIG_PREFIX, Augmentation
from deepfake_detect.core.config import ConfigError, TrainConfig, config_from_dict, load_config
from deepfake_detect.data.dataset import FaceDataset
from deepfake_detect.data.samples import Sample
from deepfake_detect.data.transforms import Degradations, Preprocess

REPO = Path(__file__).resolve().parents[1]
PROBABILITIES = ("aug_jpeg_p", "aug_blur_p", "aug_rescale_p", "aug_color_p")
NEW_STEPS = {
    "rotate": dict(rotate_p=1.0),
    "mask": dict(mask_p=1.0, mask_ratio=(0.2, 0.5)),
    "zoom": dict(zoom_p=1.0),
    "wide colour": dict(color_p=1.0, brightness=0.5, contrast=0.5, saturation=0.5),
    "double jpeg": dict(djpeg_p=1.0, djpeg_quality=(50, 70)),
    "resample": dict(resample_p=1.0, resample_scale=(0.5, 0.7)),
}


def face_like(seed: int, size=(256, 256)) -> np.ndarray:
    """A smooth gradient with a disc and sensor-like noise: blur, JPEG and scaling all change it."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
    cy, cx, radius = height / 2 + rng.normal(0, 10), width / 2 + rng.normal(0, 10), min(width, height) / 3
    base[((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2] = rng.integers(60, 200, 3)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("augment")
    paths = []
    for i, size in enumerate([(256, 256)] * 5 + [(300, 240)]):
        path = folder / f"img{i}.png"
        Image.fromarray(face_like(i, size)).save(path)
        paths.append(path)
    return paths


def dataset_digest(paths, preprocess: Preprocess, degrade: Degradations) -> str:
    """SHA-256 prefix of every training tensor of three epochs, through the dataset's (seed, epoch, index) rng."""
    samples = [Sample(p, i % 2) for i, p in enumerate(paths)]
    dataset = FaceDataset(samples, preprocess, train=True, seed=7, degrade=degrade)
    digest = hashlib.sha256()
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            digest.update(dataset[index][0].numpy().tobytes())
    return digest.hexdigest()[:16]


# Computed with the code before the range fields existed (its Degradations had fixed ranges).
PINNED = {
    ("crop", 224, 0.0): "fb52c120fd20f0b9",
    ("crop", 224, 0.5): "339132b39350a190",
    ("crop", 224, 1.0): "c97a096cd56c04b4",
    ("resize", 128, 0.0): "53cf2b788e1fdfce",
    ("resize", 128, 0.5): "b423f6a84568e0b4",
    ("resize", 128, 1.0): "6a56deb4326401a8",
}


@pytest.mark.parametrize("mode, size, p", list(PINNED))
def test_old_configs_give_the_pixels_they_gave_before_the_range_fields(image_files, mode, size, p):
    cfg = TrainConfig(**dict.fromkeys(PROBABILITIES, p))
    degrade = Degradations.from_config(cfg)
    assert (
        dataset_digest(image_files, Preprocess(size=size, resize_mode=mode), degrade) == PINNED[mode, size, p]
    )


def test_a_config_written_before_the_range_fields_keeps_the_old_ranges():
    stored = TrainConfig().to_dict()
    for field in ("aug_blur_sigma", "aug_jpeg_quality", "aug_rescale"):  # what configs before them lacked
        del stored[field]
    stored = {**stored, "aug_jpeg_p": 0.3, "aug_blur_p": 0.3}
    degrade = Degradations.from_config(config_from_dict(stored))
    assert degrade == Degradations(jpeg_p=0.3, blur_p=0.3)
    assert (degrade.jpeg_quality, degrade.blur_sigma, degrade.rescale) == ((30, 95), (0.2, 1.5), (0.5, 0.9))


def test_every_augmentation_field_maps_to_a_config_field():
    cfg = TrainConfig(
        aug_rotate_p=0.25, aug_mask_patch=0.5, aug_zoom_scale=(0.3, 0.6), aug_jpeg_quality=(40, 41)
    )
    degrade = Degradations.from_config(cfg)
    assert (degrade.rotate_p, degrade.mask_patch, degrade.zoom_scale, degrade.jpeg_quality) == (
        0.25,
        0.5,
        (0.3, 0.6),
        (40, 41),
    )


def test_the_config_has_exactly_the_augmentation_fields_with_their_defaults():
    # One owner: the config's aug_ fields are Augmentation's, defaults included, and the pixels' class is it.
    config = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name.startswith(CONFIG_PREFIX)}
    owner = {CONFIG_PREFIX + f.name: f.default for f in dataclasses.fields(Augmentation)}
    assert config == owner and len(owner) == 21
    assert Degradations.from_config(TrainConfig()) == Degradations() and issubclass(
        Degradations, Augmentation
    )


class DrawLog:
    """A seeded generator that records the name of every draw made from it."""

    def __init__(self, seed):
        self.rng, self.draws = np.random.default_rng(seed), []

    def __getattr__(self, name):
        self.draws.append(name)
        return getattr(self.rng, name)


@pytest.mark.parametrize("step", list(NEW_STEPS))
def test_each_new_step_changes_the_image_only_when_on(step):
    pre = Preprocess(size=224, resize_mode="crop")
    stored = face_like(3)
    # JPEG stays on so the other steps' code runs: an off step must be skipped there, not merely never reached.
    base = dict(jpeg_p=1.0, jpeg_quality=(90, 90))
    plain = pre.augment(stored, np.random.default_rng((1, 0, 5)), degrade=Degradations(**base))
    off = {k: (0.0 if k.endswith("_p") else v) for k, v in NEW_STEPS[step].items()}
    log = DrawLog((1, 0, 5))
    assert np.array_equal(pre.augment(stored, log, degrade=Degradations(**base, **off)), plain)
    # crop top and left, flip, JPEG coin and quality: a step that is off draws nothing
    assert log.draws == ["integers", "integers", "random", "random", "integers"]
    on = pre.augment(
        stored, np.random.default_rng((1, 0, 5)), degrade=Degradations(**base, **NEW_STEPS[step])
    )
    assert on.shape == plain.shape and not np.array_equal(on, plain)


def test_same_seed_epoch_and_index_give_the_same_pixels(image_files):
    everything = Degradations(
        jpeg_p=0.5, blur_p=0.5, rescale_p=0.5, color_p=0.5, rotate_p=0.5, mask_p=0.5, zoom_p=0.5
    )
    pre = Preprocess(size=224, resize_mode="crop")
    first, again = (dataset_digest(image_files, pre, everything) for _ in range(2))
    assert first == again
    assert first != dataset_digest(image_files, pre, Degradations(rotate_p=0.5))


def test_zoom_happens_before_the_models_crop_on_both_classes(image_files):
    pre = Preprocess(size=96, resize_mode="crop")
    samples = [Sample(image_files[0], 0), Sample(image_files[0], 1)]
    zoomed = FaceDataset(samples, pre, train=True, degrade=Degradations(zoom_p=1.0, zoom_scale=(0.25, 0.25)))
    plain = FaceDataset(samples, pre, train=True)
    for index in (0, 1):
        x, plain_x = zoomed[index][0], plain[index][0]
        assert x.shape == plain_x.shape == (3, 96, 96) and not np.array_equal(x.numpy(), plain_x.numpy())


def rng():
    return np.random.default_rng(11)


def test_a_single_jpeg_quality_gives_that_quality():
    image = face_like(0, (64, 64))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=30)
    expected = np.asarray(Image.open(buffer).convert("RGB"))
    out = Degradations(jpeg_p=1.0, jpeg_quality=(30, 30)).apply(image, rng())
    assert np.array_equal(out, expected)
    assert not np.array_equal(Degradations(jpeg_p=1.0, jpeg_quality=(100, 100)).apply(image, rng()), expected)


def test_a_single_rescale_factor_and_blur_sigma_are_used():
    image = face_like(1, (64, 64))
    bilinear = Image.Resampling.BILINEAR
    half = np.asarray(Image.fromarray(image).resize((32, 32), bilinear).resize((64, 64), bilinear))
    assert np.array_equal(Degradations(rescale_p=1.0, rescale=(0.5, 0.5)).apply(image, rng()), half)
    double = np.asarray(Image.fromarray(image).resize((128, 128), bilinear).resize((64, 64), bilinear))
    assert np.array_equal(Degradations(rescale_p=1.0, rescale=(2.0, 2.0)).apply(image, rng()), double)
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=3.0)))
    assert np.array_equal(Degradations(blur_p=1.0, blur_sigma=(3.0, 3.0)).apply(image, rng()), blurred)
    assert np.array_equal(Degradations(blur_p=1.0, blur_sigma=(0.0, 0.0)).apply(image, rng()), image)


def test_a_quarter_turn_rotates_exactly_and_zero_jitter_changes_nothing():
    image = face_like(2, (64, 64))
    turned = Degradations(rotate_p=1.0, rotate_degrees=(90.0, 90.0)).apply(image, rng())
    assert np.array_equal(turned, np.rot90(image))  # counter-clockwise, no resampling
    still = Degradations(color_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0).apply(image, rng())
    assert np.array_equal(still, image)


def test_brightness_jitter_stays_within_its_strength():
    image = np.full((32, 32, 3), 100, np.uint8)
    means = [
        Degradations(color_p=1.0, brightness=0.5, contrast=0.0, saturation=0.0)
        .apply(image, np.random.default_rng(i))
        .mean()
        for i in range(40)
    ]
    assert 50 <= min(means) < 80 and 120 < max(means) <= 150  # factors spread over [0.5, 1.5]


def test_masking_blacks_out_the_drawn_share_in_grid_squares():
    image = np.full((64, 64, 3), 200, np.uint8)
    out = Degradations(mask_p=1.0, mask_ratio=(0.5, 0.5), mask_patch=0.25).apply(image, rng())
    black = (out == 0).all(axis=2)
    assert black.sum() == 64 * 64 // 2  # 8 of the 16 squares of 16 x 16 px
    squares = black.reshape(4, 16, 4, 16).transpose(0, 2, 1, 3).reshape(16, -1)
    assert set(squares.mean(axis=1)) == {0.0, 1.0}  # whole squares on the grid, nothing in between


def test_zoom_crops_the_drawn_share_and_resizes_it_back():
    stored = face_like(4, (64, 64))
    out = Degradations(zoom_p=1.0, zoom_scale=(0.25, 0.25)).reframe(stored, rng())
    bilinear = Image.Resampling.BILINEAR
    windows = (
        np.asarray(
            Image.fromarray(np.ascontiguousarray(stored[t : t + 32, s : s + 32])).resize((64, 64), bilinear)
        )
        for t in range(33)
        for s in range(33)
    )
    assert any(np.array_equal(out, w) for w in windows)  # some 32 x 32 window (a quarter of the area)
    whole = Degradations(zoom_p=1.0, zoom_scale=(1.0, 1.0)).reframe(stored, rng())
    assert np.array_equal(whole, stored)


def test_ranges_parse_from_set_pairs_and_toml(tmp_path):
    cfg = load_config(sets=["aug_blur_sigma=0,3", "aug_jpeg_quality=30,100", "aug_rescale=0.25,2"])
    assert (cfg.aug_blur_sigma, cfg.aug_jpeg_quality, cfg.aug_rescale) == ((0.0, 3.0), (30, 100), (0.25, 2.0))
    path = tmp_path / "recipe.toml"
    path.write_text("aug_rotate_p = 0.5\naug_rotate_degrees = [-30, 30]\naug_zoom_scale = [0.4, 1.0]\n")
    cfg = load_config(path)
    assert cfg.aug_rotate_degrees == (-30.0, 30.0) and cfg.aug_zoom_scale == (0.4, 1.0)


def test_the_readme_recipe_loads():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"### Recipes.*?```toml\n(.*?)```", readme, re.S)
    assert block is not None, "README's Training section lost its Recipes TOML example"
    cfg = TrainConfig().replace(**tomllib.loads(block.group(1)))
    assert (cfg.aug_blur_sigma, cfg.aug_jpeg_quality, cfg.aug_rescale) == ((0.0, 3.0), (30, 100), (0.25, 2.0))
    assert min(cfg.aug_blur_p, cfg.aug_jpeg_p, cfg.aug_rescale_p) > 0


@pytest.mark.parametrize(
    "sets, message",
    [
        (["aug_blur_sigma=3,0"], "aug_blur_sigma must be ordered low <= high"),
        (["aug_blur_sigma=-1,2"], "aug_blur_sigma must be at least 0"),
        (["aug_blur_sigma=1"], "aug_blur_sigma expects 2 values"),
        (["aug_blur_sigma=1,2,3"], "aug_blur_sigma expects 2 values"),
        (["aug_jpeg_quality=0,90"], r"aug_jpeg_quality must be at least 1 and at most 100"),
        (["aug_jpeg_quality=30,101"], r"aug_jpeg_quality must be at least 1 and at most 100"),
        (["aug_jpeg_quality=30.5,90"], "aug_jpeg_quality expects int"),
        (["aug_rescale=0,2"], "aug_rescale must be above 0"),
        (["aug_zoom_scale=0.5,1.5"], "aug_zoom_scale must be above 0 and at most 1"),
        (["aug_zoom_scale=0,1"], "aug_zoom_scale must be above 0"),
        (["aug_rotate_degrees=-200,0"], "aug_rotate_degrees must be at least -180 and at most 180"),
        (["aug_mask_ratio=0.5,1.2"], "aug_mask_ratio must be at least 0 and at most 1"),
        (["aug_mask_patch=0"], r"aug_mask_patch is a share of the image side in \(0, 1\]"),
        (["aug_brightness=1.5"], r"aug_brightness is a jitter strength in \[0, 1\]"),
        (["aug_rotate_p=2"], r"aug_rotate_p is a probability in \[0, 1\]"),
        (["aug_jpeg_p=-0.1"], r"aug_jpeg_p is a probability in \[0, 1\]"),
    ],
)
def test_bad_augmentation_settings_are_refused_with_a_clear_message(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=sets)


def block_edges(image: np.ndarray) -> np.ndarray:
    """Mean jump between neighbouring columns, by column index mod 8 (where a JPEG grid's block edges sit)."""
    grey = image.astype(float).mean(axis=2)
    jumps = np.abs(np.diff(grey, axis=1)).mean(axis=0)  # jumps[c] lies between columns c and c + 1
    return np.array([jumps[c::8].mean() for c in range(8)])


@pytest.mark.parametrize("dx", [0, 3, 5])
def test_the_first_pass_of_a_double_jpeg_sits_on_the_shifted_grid(dx):
    from deepfake_detect.data.transforms import _jpeg_on_shifted_grid

    smooth = Image.fromarray(face_like(4)).filter(ImageFilter.GaussianBlur(3))
    out = np.asarray(_jpeg_on_shifted_grid(smooth, 10, (0, dx)))
    # A grid starting dx px left of the image puts block edges between columns 8k - dx - 1 and 8k - dx.
    assert int(np.argmax(block_edges(out))) == (7 - dx) % 8
