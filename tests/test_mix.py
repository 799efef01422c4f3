"""Training on a data mix: config and CLI, the balanced epoch order, fingerprints, and leakage between sources.

Every image is a real file made here: smooth random pictures (distinct ones differ in about half of their
perceptual-hash bits), saved as JPEG.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect.cli import app as cli_app
from deepfake_detect.core.config import ConfigError, TrainConfig, config_from_dict, load_config
from deepfake_detect.core.exceptions import DataError
from deepfake_detect.core.sources import Source, parse_source, source_from_record, source_record
from deepfake_detect.data import check_dataset, check_mix, fingerprint_dataset
from deepfake_detect.data.dataset import EpochShuffle, FaceDataset, make_loader
from deepfake_detect.data.fingerprint import combine_fingerprints, fingerprint_sources
from deepfake_detect.data.mix import (
    balanced_epoch_order,
    is_plain,
    list_mix_split,
    parse_sources,
    sample_weights,
)
from deepfake_detect.data.near_duplicates import NEAR_DISTANCE, difference_hash, hash_image_bytes, near_pairs
from deepfake_detect.data.transforms import Preprocess
from deepfake_detect.evaluation.evaluate import evaluate
from killing import train_until

SPLITS = ("train", "valid", "test")


def photo(seed: int, size: int = 64) -> Image.Image:
    """A smooth random picture: a 6x6 grid of random colours, upsampled, with a little noise."""
    rng = np.random.default_rng(seed)
    grid = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    smooth = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=int)
    return Image.fromarray(np.clip(smooth + rng.integers(-6, 7, (size, size, 3)), 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_source(root: Path, counts: dict[str, tuple[int, ...]], seed: int) -> Path:
    """``counts``: class -> images in train, valid, test; a class left out has no folder (a one-class source)."""
    for name, per_split in counts.items():
        for split, n in zip(SPLITS, per_split, strict=True):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                seed += 1
                (folder / f"{name}{i:03d}.jpg").write_bytes(jpeg(photo(seed)))
    return root


@pytest.fixture
def mix(tmp_path: Path) -> dict[str, Path]:
    """Three sources: one with both classes, one fake-only generator, one real-only camera."""
    return {
        "faces": make_source(tmp_path / "faces", {"real": (6, 3, 3), "fake": (6, 3, 3)}, seed=0),
        "gen": make_source(tmp_path / "gen", {"fake": (4, 2, 2)}, seed=1000),
        "cam": make_source(tmp_path / "cam", {"real": (4, 2, 2)}, seed=2000),
    }


# --------------------------------------------------------------------------- config and command line


def test_config_takes_one_folder_or_a_list_of_specs(tmp_path):
    assert TrainConfig(data="faces").data == "faces"  # one folder: the string it always was
    assert TrainConfig(data=["faces"]).data == "faces"  # a list of one means the same
    cfg = TrainConfig(data=["faces", "gen:2"])
    assert cfg.data == ("faces", "gen:2")
    assert [(s.root, s.weight, s.name) for s in cfg.data_sources()] == [
        ("faces", 1.0, "faces"),
        ("gen", 2.0, "gen"),
    ]
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig(data="faces").data_folder() == "faces"
    with pytest.raises(ConfigError, match="a mix of 2 sources"):
        cfg.data_folder()
    with pytest.raises(ConfigError, match="weight must be a positive number"):
        TrainConfig(data=["faces", "gen:0"])
    with pytest.raises(ConfigError, match="gen is named twice"):
        TrainConfig(data=["a/gen", "a/gen:2"])
    assert [s.name for s in TrainConfig(data=["a/gen", "b/gen"]).data_sources()] == ["a/gen", "b/gen"]


def test_config_files_and_set_pairs_take_a_mix(tmp_path):
    toml = tmp_path / "mix.toml"
    toml.write_text('data = ["faces", "gen:3"]\nepochs = 2\n')
    assert load_config(toml).data == ("faces", "gen:3")
    as_json = tmp_path / "mix.json"
    as_json.write_text(json.dumps({"data": ["faces", "cam"]}))
    assert load_config(as_json).data == ("faces", "cam")
    assert load_config(sets=["data=faces,gen:2"]).data == ("faces", "gen:2")
    assert load_config(sets=["data=faces"]).data == "faces"
    assert load_config(env={"DEEPFAKE_DATA": "/data/faces"}).data == "/data/faces"


def test_a_folder_whose_name_ends_in_a_number_keeps_its_colon(tmp_path):
    folder = tmp_path / "faces:2"
    folder.mkdir()
    assert parse_source(str(folder)).root == str(folder) and parse_source(str(folder)).weight == 1.0
    assert parse_source(str(tmp_path / "other:2")).weight == 2.0


def test_train_command_repeats_data(monkeypatch, tmp_path):
    seen = []

    class Result:
        rank = 1  # a rank other than 0 reports nothing

    def fake_train(cfg, **_):
        seen.append(cfg)
        return Result()

    monkeypatch.setattr("deepfake_detect.training.train.train", fake_train)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["train", "--data", "faces", "--data", "gen:2"]).exit_code == 0
    assert runner.invoke(cli_app, ["train", "--data", "faces"]).exit_code == 0
    assert seen[0].data == ("faces", "gen:2") and seen[1].data == "faces"


# --------------------------------------------------------------------------- the epoch order


def test_a_mix_epoch_is_half_each_class_when_classes_are_1_to_5():
    labels = torch.tensor([0] * 500 + [1] * 100)
    order = balanced_epoch_order(labels, torch.ones(600), seed=3, epoch=0)
    assert len(order) == 600
    assert Counter(int(labels[i]) for i in order) == {0: 300, 1: 300}


def test_weights_apply_within_a_class():
    # Fakes: 100 of a weight-1 source and 100 of a weight-3 source; reals: 200 of one source.
    labels = torch.tensor([1] * 200 + [0] * 200)
    weights = torch.tensor([1.0] * 100 + [3.0] * 100 + [1.0] * 200)
    draws = Counter(i for epoch in range(20) for i in balanced_epoch_order(labels, weights, 0, epoch))
    light = sum(draws[i] for i in range(100))
    heavy = sum(draws[i] for i in range(100, 200))
    reals = sum(draws[i] for i in range(200, 400))
    assert light + heavy == reals == 20 * 200  # the classes stay half and half
    assert 2.7 < heavy / light < 3.3  # each heavy image drawn about 3 times as often


def test_mix_order_is_deterministic_and_a_resume_skips_exactly():
    labels = torch.tensor([0] * 30 + [1] * 7)
    weights = torch.tensor([1.0] * 20 + [2.0] * 10 + [1.0] * 7)

    def sampler(**kwargs):
        return EpochShuffle(37, 5, labels=labels, weights=weights, **kwargs)

    first, again = sampler(), sampler()
    first.set_epoch(4)
    again.set_epoch(4)
    assert list(first) == list(again)
    resumed = sampler()
    resumed.set_epoch(4, skip=11)
    assert list(resumed) == list(first)[11:] and len(resumed) == 26
    other = sampler()
    other.set_epoch(5)
    assert list(other) != list(first)
    # Dealt to 3 ranks as a permutation is: padded to 39 by the first indices, every third one.
    shards = []
    for rank in range(3):
        s = sampler(rank=rank, world_size=3)
        s.set_epoch(4)
        shards.append(list(s))
    order = first.order()
    padded = order + order[:2]
    assert shards == [padded[r::3] for r in range(3)] and {len(s) for s in shards} == {13}


def test_one_source_of_weight_1_keeps_the_one_folder_order(mix):
    """The shipped default's training command must reproduce: its epochs are the plain permutation."""
    from deepfake_detect.training.loop import _loaders

    sources = parse_sources(str(mix["faces"]))
    assert is_plain(sources) and not is_plain(parse_sources(f"{mix['faces']}:2"))
    samples = list_mix_split(sources, "train")
    preprocess = Preprocess(size=32, resize_mode="resize")
    dataset = FaceDataset(samples, preprocess, train=True)
    cfg = TrainConfig(data=str(mix["faces"]), seed=7, batch_size=4)

    class OneProcess:
        rank, world_size = 0, 1

    _, sampler, _ = _loaders(cfg, sources, dataset, dataset, 4, OneProcess())
    assert sampler.weights is None
    sampler.set_epoch(2)
    generator = torch.Generator().manual_seed(7 * 100_003 + 2)  # the formula every earlier run used
    assert list(sampler) == torch.randperm(12, generator=generator).tolist()
    plain, _ = make_loader(dataset, batch_size=4, shuffle=True, seed=7)
    reference = EpochShuffle(12, 7)
    reference.set_epoch(2)
    assert list(sampler) == list(reference)
    assert plain.sampler.weights is None


def test_a_mix_loader_draws_half_of_each_class(mix):
    sources = parse_sources([str(mix["faces"]), str(mix["gen"]), str(mix["cam"]) + ":2"])
    samples = list_mix_split(sources, "train")
    assert Counter(s.source for s in samples) == {"faces": 12, "gen": 4, "cam": 4}
    weights = sample_weights(sources, samples)
    assert weights.tolist() == [1.0] * 16 + [2.0] * 4
    dataset = FaceDataset(samples, Preprocess(size=32, resize_mode="resize"), train=True)
    _, sampler = make_loader(dataset, batch_size=4, shuffle=True, seed=0, weights=weights)
    sampler.set_epoch(0)
    items = list(sampler)
    assert Counter(samples[i % len(samples)].label for i in items) == {0: 10, 1: 10}
    # An image drawn twice comes back as index + n: the same picture, another augmentation.
    again = next(i for i in items if i >= len(samples))
    first, second = dataset[again % len(samples)], dataset[again]
    assert first[1:] == second[1:] and not torch.equal(first[0], second[0])


# --------------------------------------------------------------------------- one-class sources


def test_one_class_sources_list_and_a_mix_needs_both_classes(mix):
    samples = list_mix_split(parse_sources([str(mix["gen"]), str(mix["cam"])]), "valid")
    assert [(s.source, s.label) for s in samples] == [("gen", 1)] * 2 + [("cam", 0)] * 2
    with pytest.raises(DataError, match="no real images in its valid split"):
        list_mix_split(parse_sources(str(mix["gen"])), "valid")
    report = check_mix([str(mix["gen"]), str(mix["cam"])], progress=False, workers=2)
    assert report.is_usable and not report.has_leakage and not report.has_near_leakage
    assert report.counts["train"] == {"real": 4, "fake": 4}
    assert not check_mix([str(mix["gen"])], progress=False, workers=2).is_usable  # no reals anywhere
    assert not check_dataset(mix["gen"], progress=False).is_usable  # a lone folder needs both classes


def test_one_class_of_a_folder_is_a_source_of_its_own(mix):
    """real:PATH and fake:PATH split one folder into two sources, so one of its families can be held out."""
    real, fake = f"real:{mix['faces']}", f"fake:{mix['faces']}"
    samples = list_mix_split(parse_sources([real, str(mix["gen"])]), "valid")
    assert [(s.source, s.label) for s in samples] == [("faces-real", 0)] * 3 + [("gen", 1)] * 2
    both = list_mix_split(parse_sources([real, fake]), "train")
    whole = list_mix_split(parse_sources(str(mix["faces"])), "train")
    assert sorted((s.path, s.label) for s in both) == sorted((s.path, s.label) for s in whole)
    assert Counter(s.source for s in both) == {"faces-real": 6, "faces-fake": 6}
    with pytest.raises(DataError, match="has no real images in its valid split"):
        list_mix_split(parse_sources([f"real:{mix['gen']}", str(mix["cam"])]), "valid")
    with pytest.raises(ConfigError, match="holds real photos only"):
        parse_source(f"fake:photos:{mix['cam']}")
    assert parse_source(f"{real}:2").weight == 2.0


def test_class_prefixes_parse_strictly_and_a_folder_comes_once_or_as_its_two_classes(mix):
    assert parse_source("real:2") == parse_source("real:2.0") and parse_source("real:2").only is None
    for spec in ("real:fake:d", "photos:real:d", "real:photos:d"):
        with pytest.raises(ConfigError):
            parse_source(spec)
    with pytest.raises(ConfigError, match="not 'both'"):
        Source("d", only="both")
    with pytest.raises(ConfigError, match="share images of one folder"):
        parse_sources([str(mix["faces"]), f"real:{mix['faces']}"])
    with pytest.raises(ConfigError, match="share images of one folder"):
        parse_sources([f"fake:{mix['faces']}", f"fake:{mix['gen']}/../faces"])
    record = source_record(parse_source(f"fake:{mix['faces']}:2"))
    assert source_from_record(json.loads(json.dumps(record))) == parse_source(f"fake:{mix['faces']}:2")


def test_data_check_of_a_folders_two_classes_counts_each_once(mix):
    report = check_mix([f"real:{mix['faces']}", f"fake:{mix['faces']}"], progress=False, workers=2)
    assert not report.has_leakage and report.cross_source == []  # the two classes share no file
    assert report.counts["train"] == {"real": 6, "fake": 6}
    assert report.fingerprint == combine_fingerprints(
        parse_sources([f"real:{mix['faces']}", f"fake:{mix['faces']}"]),
        fingerprint_sources(parse_sources([f"real:{mix['faces']}", f"fake:{mix['faces']}"]), progress=False),
    )
    assert not check_mix([f"real:{mix['faces']}", str(mix["cam"])], progress=False, workers=2).is_usable


def test_a_one_class_source_fingerprints_its_class_only(mix):
    prints = fingerprint_sources(
        parse_sources([f"real:{mix['faces']}", f"fake:{mix['faces']}"]), progress=False
    )
    whole = fingerprint_dataset(mix["faces"], progress=False)
    assert len({prints["faces-real"], prints["faces-fake"], whole}) == 3
    (mix["faces"] / "train" / "fake" / "fake000.jpg").write_bytes(jpeg(photo(77_777)))
    after = fingerprint_sources(
        parse_sources([f"real:{mix['faces']}", f"fake:{mix['faces']}"]), progress=False
    )
    assert after["faces-real"] == prints["faces-real"] and after["faces-fake"] != prints["faces-fake"]


# --------------------------------------------------------------------------- fingerprints


def test_one_source_keeps_its_fingerprint_and_a_mix_has_one_a_source(mix):
    one = parse_sources(str(mix["faces"]))
    prints = fingerprint_sources(one, progress=False)
    assert prints == {"faces": fingerprint_dataset(mix["faces"], progress=False)}
    assert combine_fingerprints(one, prints) == prints["faces"]  # what every earlier run recorded

    sources = parse_sources([str(mix["faces"]), str(mix["gen"]), str(mix["cam"])])
    before = fingerprint_sources(sources, progress=False)
    assert list(before) == ["faces", "gen", "cam"]
    combined = combine_fingerprints(sources, before)
    assert combined not in before.values()
    assert (
        check_mix([str(mix["faces"]), str(mix["gen"]), str(mix["cam"])], progress=False).fingerprint
        == combined
    )

    reweighted = parse_sources([str(mix["faces"]), f"{mix['gen']}:2", str(mix["cam"])])
    assert combine_fingerprints(reweighted, before) != combined

    edited = mix["gen"] / "train" / "fake" / "fake000.jpg"
    edited.write_bytes(jpeg(photo(99_999)))
    after = fingerprint_sources(sources, progress=False)
    assert (
        after["gen"] != before["gen"] and after["faces"] == before["faces"] and after["cam"] == before["cam"]
    )
    assert combine_fingerprints(sources, after) != combined


# --------------------------------------------------------------------------- leakage between sources


def test_an_identical_file_across_sources_and_splits_is_leakage(mix):
    shutil.copy(mix["faces"] / "test" / "real" / "real000.jpg", mix["cam"] / "train" / "real" / "leak.jpg")
    report = check_mix([str(mix["faces"]), str(mix["cam"])], progress=False, workers=2)
    assert report.leakage == [["cam/train/real/leak.jpg", "faces/test/real/real000.jpg"]]
    assert report.has_leakage and report.near_leakage == []  # an identical file is not also a near-duplicate
    assert "LEAKAGE BETWEEN SOURCES" in report.format_text()
    assert report.to_dict()["has_leakage"] is True


def test_an_identical_file_in_one_split_of_two_sources_is_reported_not_leakage(mix):
    shutil.copy(mix["faces"] / "train" / "fake" / "fake000.jpg", mix["gen"] / "train" / "fake" / "dup.jpg")
    report = check_mix([str(mix["faces"]), str(mix["gen"])], progress=False, workers=2)
    assert report.cross_source == [["faces/train/fake/fake000.jpg", "gen/train/fake/dup.jpg"]]
    assert not report.has_leakage


def test_a_reencoded_copy_in_another_source_is_near_leakage(mix):
    original = mix["faces"] / "valid" / "fake" / "fake001.jpg"
    with Image.open(original) as image:
        copy = image.convert("RGB").resize((90, 90), Image.Resampling.LANCZOS)
    (mix["gen"] / "train" / "fake" / "copy.jpg").write_bytes(jpeg(copy, quality=50))
    report = check_mix([str(mix["faces"]), str(mix["gen"]), str(mix["cam"])], progress=False, workers=2)
    assert report.leakage == []  # other bytes: the content hash cannot see it
    [(a, b, distance)] = report.near_leakage
    assert (a, b) == ("faces/valid/fake/fake001.jpg", "gen/train/fake/copy.jpg") and distance <= NEAR_DISTANCE
    assert report.has_near_leakage and report.near_cross_source == []
    assert "NEAR-DUPLICATE LEAKAGE: 1 pair" in report.format_text()
    assert report.to_dict()["near_leakage"] == [{"a": a, "b": b, "distance": distance}]


def test_a_reencoded_copy_across_the_splits_of_one_folder_is_near_leakage(mix):
    with Image.open(mix["faces"] / "test" / "real" / "real002.jpg") as image:
        (mix["faces"] / "train" / "real" / "copy.jpg").write_bytes(jpeg(image.convert("RGB"), quality=40))
    report = check_dataset(mix["faces"], progress=False)
    assert report.near_leakage[0][:2] == ("test/real/real002.jpg", "train/real/copy.jpg")
    assert not report.has_leakage and report.is_usable
    assert check_dataset(mix["faces"], progress=False, near_distance=None).near_leakage == []


def test_distinct_pictures_are_far_apart_and_flat_ones_are_not_compared():
    hashes = [hash_image_bytes(jpeg(photo(seed))) for seed in range(300)]
    assert near_pairs(hashes) == []
    assert difference_hash(Image.new("RGB", (64, 64), (10, 200, 30))) is None


@pytest.mark.parametrize("distance", [0, 3, 11, 12, 24, 40])
def test_near_pairs_finds_what_comparing_every_pair_finds(distance):
    rng = np.random.default_rng(distance)
    bases = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    rows = []
    for i in range(200):  # five relatives of each base, each a few bits away from it
        bits = np.unpackbits(bases[i % 40])
        bits[rng.choice(256, rng.integers(0, 2 * distance + 3), replace=False)] ^= 1
        rows.append(np.packbits(bits))
    words = np.stack(rows).view(np.uint64)
    expected = [
        (i, j, d)
        for i in range(200)
        for j in range(i + 1, 200)
        if (d := int(np.bitwise_count(words[i] ^ words[j]).sum())) <= distance
    ]
    assert expected  # the data has pairs to find
    assert near_pairs([r.tobytes() for r in rows], distance) == expected


def test_data_check_command_checks_a_mix(mix):
    runner = CliRunner()
    folders = [str(mix["faces"]), str(mix["gen"])]
    clean = runner.invoke(cli_app, ["data", "check", *folders, "--data", str(mix["cam"])])
    assert clean.exit_code == 0, clean.output
    assert "== the mix: 3 sources" in clean.output and "Usable for training: yes" in clean.output
    with Image.open(mix["faces"] / "test" / "fake" / "fake000.jpg") as image:
        (mix["gen"] / "train" / "fake" / "copy.jpg").write_bytes(jpeg(image.convert("RGB"), quality=45))
    near = runner.invoke(cli_app, ["data", "check", *folders, "--json"])
    assert near.exit_code == 0 and json.loads(near.stdout)["has_near_leakage"] is True
    assert runner.invoke(cli_app, ["data", "check", *folders, "--fail-on-near"]).exit_code == 1
    shutil.copy(mix["faces"] / "valid" / "real" / "real000.jpg", mix["cam"] / "train" / "real" / "leak.jpg")
    leaked = runner.invoke(cli_app, ["data", "check", str(mix["faces"]), str(mix["cam"])])
    assert leaked.exit_code == 1 and "LEAKAGE BETWEEN SOURCES" in leaked.output


# --------------------------------------------------------------------------- a real training on a mix


def tiny_mix_config(tmp_path: Path, data: list[str]) -> TrainConfig:
    """One epoch of the small notebook CNN on 32 px images, runs under ``tmp_path/runs``: a mix run in seconds."""
    return TrainConfig(
        data=data,
        runs_dir=str(tmp_path / "runs"),
        model="notebook-cnn",
        epochs=1,
        batch_size=8,
        image_size=32,
        base_size=40,
        threads=1,
    )


@pytest.mark.slow
def test_training_on_a_two_source_mix_records_each_source(tmp_path):
    from deepfake_detect.core.checkpoint import read_metadata
    from deepfake_detect.scan.detector import load_detector
    from deepfake_detect.serve.model_card import model_card
    from deepfake_detect.serve.schemas import ModelCard
    from deepfake_detect.training.train import train

    faces = make_source(tmp_path / "faces", {"real": (8, 4, 2), "fake": (8, 4, 2)}, seed=0)
    gen = make_source(tmp_path / "gen", {"fake": (6, 3, 2)}, seed=500)
    cfg = tiny_mix_config(tmp_path, [str(faces), f"{gen}:2"])
    run = train(cfg, progress=False).run_dir
    meta = read_metadata(run / "model.safetensors")
    prints = fingerprint_sources(cfg.data_sources(), progress=False)
    assert meta["data_fingerprints"] == prints and list(prints) == ["faces", "gen"]
    assert meta["data_fingerprint"] == combine_fingerprints(cfg.data_sources(), prints)
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == [str(faces), f"{gen}:2"] and config["data_root"] == str(faces)
    assert config["data_sources"] == [
        {"name": "faces", "root": str(faces), "weight": 1.0},
        {"name": "gen", "root": str(gen), "weight": 2.0},
    ]
    index = [json.loads(line) for line in (tmp_path / "runs" / "index.jsonl").read_text().splitlines()]
    assert index[-1]["data_fingerprints"] == prints
    listed = CliRunner().invoke(cli_app, ["runs", "list", "--runs-dir", str(tmp_path / "runs")])
    assert meta["data_fingerprint"][:12] + " (2 sources)" in listed.stdout
    card = model_card(load_detector(str(run), backend="torch"), runs_dir=tmp_path / "runs")
    assert card["training_data_fingerprints"] == prints
    assert ModelCard(**card).training_data_fingerprint == meta["data_fingerprint"]


@pytest.mark.slow
def test_a_run_on_one_class_of_a_folder_trains_records_and_scores_that_class_only(tmp_path):
    from deepfake_detect.core.checkpoint import read_metadata
    from deepfake_detect.training.train import train

    faces = make_source(tmp_path / "faces", {"real": (8, 4, 2), "fake": (8, 4, 2)}, seed=0)
    gen = make_source(tmp_path / "gen", {"fake": (6, 3, 2)}, seed=500)
    cfg = tiny_mix_config(tmp_path, [f"real:{faces}", str(gen)])
    run = train(cfg, progress=False).run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["data_sources"][0] == {
        "name": "faces-real",
        "root": str(faces),
        "weight": 1.0,
        "only": "real",
    }
    assert list(read_metadata(run / "model.safetensors")["data_fingerprints"]) == ["faces-real", "gen"]
    scored = evaluate(run, split="valid", n_resamples=20, progress=False)  # the run's recorded sources
    assert [(r["source"], r["n"]) for r in scored["per_source"]] == [("faces-real", 4), ("gen", 3)]


def test_a_mix_run_can_store_the_threshold_that_keeps_each_real_source_under_an_fpr(tmp_path):
    from deepfake_detect.core.checkpoint import read_metadata
    from deepfake_detect.training.train import train

    faces = make_source(tmp_path / "faces", {"real": (8, 10, 2), "fake": (8, 10, 2)}, seed=0)
    web = make_source(tmp_path / "web", {"real": (6, 10, 2)}, seed=900)
    cfg = TrainConfig(
        data=[str(faces), str(web)], runs_dir=str(tmp_path / "runs"), model="notebook-cnn", epochs=1,
        batch_size=8, image_size=32, base_size=40, threads=1, threshold_max_fpr=0.1,
    )  # fmt: skip
    run = train(cfg, progress=False).run_dir
    meta = read_metadata(run / "model.safetensors")
    assert meta["threshold_rule"] == "source_fpr"
    scores = evaluate(run, split="valid", n_resamples=10, progress=False)
    # At most 1 of the 10 validation reals of each source is called fake at the stored threshold.
    fpr = {row["source"]: row["fpr"] for row in scores["per_source"]}
    assert fpr["faces"] <= 0.1 and fpr["web"] <= 0.1
    with pytest.raises(ConfigError, match="threshold_max_fpr"):
        TrainConfig(data=str(faces), threshold_max_fpr=1.0)


@pytest.mark.slow
def test_a_mix_run_killed_mid_epoch_resumes_bit_identically_and_checks_each_source(tmp_path):
    from deepfake_detect.core.checkpoint import read_metadata
    from deepfake_detect.training.train import train

    faces = make_source(tmp_path / "faces", {"real": (12, 3, 1), "fake": (12, 3, 1)}, seed=0)
    gen = make_source(tmp_path / "gen", {"fake": (8, 2, 1)}, seed=500)
    base = dict(model="notebook-cnn", epochs=2, batch_size=8, image_size=32, base_size=40, threads=1)
    cfg = TrainConfig(data=[str(faces), f"{gen}:3"], checkpoint_every_steps=2, **base)
    reference = train(cfg.replace(runs_dir=str(tmp_path / "reference")), progress=False).run_dir

    killed = cfg.replace(runs_dir=str(tmp_path / "runs"), run_name="killed")
    run = train_until(
        killed, 3
    )  # after batch 2 of epoch 2 (4 batches an epoch: saves at batch 2 and the end)
    (gen / "train" / "fake" / "fake000.jpg").write_bytes(jpeg(photo(77_777)))  # the data changed meanwhile
    with pytest.raises(ConfigError, match=r"changed sources: gen"):
        train(killed, progress=False, resume=run)
    (gen / "train" / "fake" / "fake000.jpg").write_bytes(jpeg(photo(501)))  # back as it was (seed 500 + 1)
    resumed = train(killed, progress=False, resume=run).run_dir
    hashes = [read_metadata(r / "model.safetensors")["tensor_sha256"] for r in (reference, resumed)]
    assert hashes[0] == hashes[1]
