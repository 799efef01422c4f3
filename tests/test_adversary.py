"""The source adversary (issue 21): gradient reversal, the within-class loss, and real trainings with the head.

The trainings run on a mix of image files made here: ``faces`` holds both classes, ``gen`` fakes only and
``cam`` reals only, so each class has two sources to tell apart.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from deepfake_detect.core.checkpoint import read_metadata
from deepfake_detect.core.config import ConfigError, TrainConfig, load_config
from deepfake_detect.models import create_model, get_model_cfg, list_models
from deepfake_detect.training.adversary import (
    SourceAdversary,
    class_sources,
    dann_ramp,
    final_linear,
    reverse_gradient,
    source_loss,
)
from deepfake_detect.training.parts import SOURCE_FIELDS
from deepfake_detect.training.state import Checkpointer, read_state
from deepfake_detect.training.train import train
from killing import train_until

TINY = dict(model="notebook-cnn", batch_size=8, image_size=32, base_size=40, threads=1, patience=10)
# Largest |w_ddp - w_single| allowed, as in test_distributed.py: the runs differ only in float rounding.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mix(tmp_path_factory, make_face_dataset) -> list[str]:
    """Two sources a class: faces (real and fake), gen (fake only), cam (real only); 32 training images."""
    root = tmp_path_factory.mktemp("adversary")
    per_class = (8, 3, 1)
    faces = make_face_dataset(root / "faces", per_class=per_class, seed=0)
    gen = make_face_dataset(root / "gen", per_class=per_class, seed=1)
    cam = make_face_dataset(root / "cam", per_class=per_class, seed=2)
    for source, absent in ((gen, "real"), (cam, "fake")):
        for split in ("train", "valid", "test"):
            shutil.rmtree(source / split / absent)
    return [str(faces), str(gen), str(cam)]


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- the parts


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0, 2.5])
def test_the_reversal_is_the_identity_forward_and_minus_weight_times_its_gradient_back(weight):
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    x = torch.randn(4, 5, requires_grad=True)
    plain = layer(x).square().sum()
    (grad_plain,) = torch.autograd.grad(plain, x)
    reversed_ = layer(reverse_gradient(x, weight)).square().sum()
    (grad_reversed,) = torch.autograd.grad(reversed_, x)
    assert torch.equal(reversed_, plain)
    assert torch.allclose(grad_reversed, -weight * grad_plain)
    assert not torch.equal(grad_plain, torch.zeros_like(grad_plain))


def test_the_ramp_rises_from_0_to_almost_1():
    values = [dann_ramp(p / 10) for p in range(11)]
    assert values[0] == 0.0 and values[-1] > 0.9999
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_a_sample_is_told_apart_from_its_own_class_sources_only():
    # Reals come from sources 0 and 2, fakes from 0 and 1.
    allowed = class_sources(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 0, 1]), 3)
    logits = torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.0, 1.0], [0.3, 2.0, 0.0]], requires_grad=True)
    labels, sources = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0, 2, 1])
    batch = source_loss(logits, labels, sources, allowed)
    batch.loss.backward()
    own = [[1.0, 0.5], [0.2, 1.0], [0.3, 2.0]]  # each row's logits of its own class's sources
    expected = torch.nn.functional.cross_entropy(torch.tensor(own), torch.tensor([0, 1, 1]), reduction="sum")
    assert batch.loss.item() == pytest.approx(expected.item())
    assert (batch.hits, batch.counted, batch.counts.tolist()) == (3, 3, [[1, 0, 1], [0, 1, 0]])
    # The other class's source gets no gradient: the head is never asked to tell a real from a generator.
    assert logits.grad[0, 1] == 0 and logits.grad[1, 1] == 0 and logits.grad[2, 2] == 0
    assert logits.grad[0, 0] != 0 and logits.grad[2, 0] != 0


def test_a_class_with_one_source_gives_no_loss_and_no_gradient():
    allowed = class_sources(torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1]), 3)  # fakes: source 1 only
    logits = torch.tensor([[4.0, -3.0, 1.0], [0.0, 9.0, 0.0]], requires_grad=True)
    batch = source_loss(logits, torch.tensor([1.0, 1.0]), torch.tensor([1, 1]), allowed)
    batch.loss.backward()
    assert batch.loss.item() == 0.0 and (batch.hits, batch.counted, int(batch.counts.sum())) == (0, 0, 0)
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def _adversary(model, labels, sources, names, **kw) -> SourceAdversary:
    options = dict(weight=0.3, ramp=True, total_steps=10, steps_per_epoch=5, seed=0) | kw
    return SourceAdversary(model, torch.tensor(labels), torch.tensor(sources), names, **options)


def test_a_mix_without_two_sources_in_a_class_is_refused():
    model = create_model("notebook-cnn")
    with pytest.raises(ConfigError, match="two sources or more within a class"):
        _adversary(model, [0, 1, 1], [0, 0, 0], ["faces"])
    with pytest.raises(ConfigError, match="two sources or more within a class"):
        _adversary(model, [0, 1, 1], [0, 1, 1], ["cam", "gen"])  # one source a class


def test_making_the_head_draws_nothing_from_the_global_generator():
    model = create_model("notebook-cnn")
    before = torch.get_rng_state()
    first = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["faces", "cam", "gen"])
    assert torch.equal(torch.get_rng_state(), before)
    again = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["faces", "cam", "gen"])
    assert torch.equal(first.head.weight, again.head.weight)  # seeded: the same head every time
    assert first.groups() == {"real": ["faces", "cam"], "fake": ["faces", "gen"]}


def test_the_weight_follows_the_ramp_over_the_runs_steps():
    model = create_model("notebook-cnn")
    adversary = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["a", "b", "c"], total_steps=10)
    adversary.set_epoch(1)  # 5 steps an epoch: batch 0 of epoch 1 is step 5 of 10
    assert adversary.weight_at(0) == pytest.approx(0.3 * dann_ramp(0.5))
    flat = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["a", "b", "c"], ramp=False)
    assert flat.weight_at(0) == 0.3


@pytest.mark.parametrize("name", list_models())
def test_the_head_reads_the_input_of_every_models_last_layer(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    size = min(get_model_cfg(name).input_size, 64)
    x = torch.rand(2, 3, size, size)
    adversary = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["a", "b", "c"])
    with torch.no_grad():
        plain = model(x)
        with adversary.features_of(model) as seen:
            hooked = model(x)
        after = model(x)
    assert torch.equal(plain, hooked) and torch.equal(plain, after)
    assert len(seen) == 1 and seen[0].shape == (2, final_linear(model).in_features)
    assert torch.allclose(
        final_linear(model)(seen[0]).reshape(plain.shape), plain
    )  # the layer gives the logit
    assert not final_linear(model)._forward_pre_hooks  # the hook is gone once the block ends


def test_one_step_hands_the_backbone_minus_weight_times_the_heads_gradient():
    """The training step itself, not the reversal alone: every backbone gradient is d(BCE) - w * d(CE / B), and
    the head's is +d(CE / B). A hook that captured a detached tensor, or a step that lost the reversal, fails."""
    from deepfake_detect.training.loop import _adversarial_step
    from deepfake_detect.training.state import EpochProgress

    torch.manual_seed(0)
    model = create_model("notebook-cnn").eval()  # no dropout draws: the step and the check see one network
    x, y, idx = torch.rand(4, 3, 64, 64), torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0, 1, 2, 3])
    adversary = _adversary(model, [0, 0, 1, 1], [0, 1, 0, 2], ["a", "b", "c"], ramp=False, weight=0.7)
    params = list(model.parameters()) + list(adversary.head.parameters())
    optimizer = torch.optim.SGD(params, lr=0.0)  # a step that moves nothing, so the gradients can be read
    _adversarial_step(model, x, y, idx, optimizer, adversary, EpochProgress(lr=0.0, batches=1))
    stepped = [p.grad.clone() for p in params]

    def gradients(loss):
        return [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(
                params, torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True), strict=True
            )
        ]

    with adversary.features_of(model) as seen:
        logits = model(x)
    detection = F.binary_cross_entropy_with_logits(logits, y)
    head = source_loss(adversary.head(seen[0]), y, adversary.sources[idx], adversary.allowed).loss / len(idx)
    d_detection, d_head = gradients(detection), gradients(head)
    n_model = len(list(model.parameters()))
    for i, (got, a, b) in enumerate(zip(stepped, d_detection, d_head, strict=True)):
        want = a - 0.7 * b if i < n_model else b  # the backbone is reversed, the head learns as it is
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert any(b.abs().sum() > 0 for b in d_head[: n_model - 2])  # the head's loss does reach the backbone


# --------------------------------------------------------------------------- config


def test_the_config_refuses_the_adversary_on_one_folder_before_any_data_is_read():
    with pytest.raises(ConfigError, match="two --data sources or more"):
        TrainConfig(data="no/such/folder", source_adversary=0.3)
    assert TrainConfig(data=["a/faces140k", "a/sd21-sdfd"], source_adversary=0.3).source_adversary == 0.3


def test_the_config_refuses_a_negative_or_undefined_weight():
    assert TrainConfig().source_adversary == 0.0 and TrainConfig().source_adversary_ramp is True
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(
            ConfigError, match="source_adversary is the weight of the reversed source gradient"
        ):
            TrainConfig(source_adversary=bad)
    with pytest.raises(ConfigError, match="source_adversary"):
        load_config(sets=["source_adversary=-1"])
    assert load_config(sets=["source_adversary=0.3", "source_adversary_ramp=false"]).source_adversary == 0.3


# --------------------------------------------------------------------------- real trainings


def test_a_run_without_the_adversary_makes_no_head(mix, tmp_path, monkeypatch):
    seen = []
    original = Checkpointer.save

    def save(self, state):
        seen.append((state.adversary, len(state.optimizer.param_groups)))
        original(self, state)

    monkeypatch.setattr(Checkpointer, "save", save)
    run = train(TrainConfig(data=mix, runs_dir=str(tmp_path), epochs=1, **TINY), progress=False).run_dir
    assert seen == [(None, 1)]
    assert not any(name.startswith("train_source") for name in _history(run)[0])


def test_a_run_with_the_adversary_trains_the_head_and_saves_the_detector_alone(mix, tmp_path):
    import deepfake_detect as dd

    cfg = TrainConfig(data=mix, runs_dir=str(tmp_path), epochs=2, source_adversary=0.5, **TINY)
    result = train(cfg, progress=False)
    rows = _history(result.run_dir)
    assert len(rows) == 2 and all(name in rows[0] for name in SOURCE_FIELDS)
    for row in rows:
        assert 0.0 <= float(row["train_source_accuracy"]) <= 1.0
        assert 0.5 <= float(row["train_source_majority"]) <= 1.0  # two sources in each class
        assert float(row["train_source_loss"]) > 0.0
    # The ramp: the weight of the last step grows toward the ceiling, never past it.
    weights = [float(row["train_source_weight"]) for row in rows]
    assert 0.0 < weights[0] < weights[1] <= 0.5
    # The saved model is the detector: its tensors are exactly a notebook-cnn's, and it loads and scores.
    saved = load_file(result.run_dir / "model.safetensors")
    assert set(saved) == set(create_model("notebook-cnn").state_dict())
    assert read_metadata(result.run_dir / "model.safetensors")["config"]["source_adversary"] == 0.5
    face = next((Path(mix[0]) / "test" / "fake").iterdir())
    (row,) = dd.load_detector(result.run_dir, backend="torch").scan([face], detect=False)
    assert 0.0 <= row["p_fake"] <= 1.0
    assert json.loads((result.run_dir / "config.json").read_text())["source_adversary"] == 0.5


@pytest.mark.slow
def test_a_run_with_the_adversary_killed_mid_epoch_resumes_bit_identically(mix, tmp_path):
    cfg = TrainConfig(data=mix, epochs=2, source_adversary=0.3, checkpoint_every_steps=2, **TINY)
    reference = train(cfg.replace(runs_dir=str(tmp_path / "reference")), progress=False).run_dir
    killed = cfg.replace(runs_dir=str(tmp_path / "runs"), run_name="killed")
    run = train_until(
        killed, 3
    )  # after batch 2 of epoch 2 (4 batches an epoch: saves at batch 2 and the end)
    tensors, doc = read_state(run / "checkpoints" / "last.safetensors")
    assert {"adversary/weight", "adversary/bias"} <= set(tensors)
    assert len(doc["optimizer"]["param_groups"]) == 2 and doc["position"] == {"epoch": 1, "batch": 2}
    resumed = train(killed, progress=False, resume=run).run_dir
    hashes = [read_metadata(r / "model.safetensors")["tensor_sha256"] for r in (reference, resumed)]
    assert hashes[0] == hashes[1]
    timing = {"train_img_per_s", "epoch_seconds"}
    assert [{k: v for k, v in row.items() if k not in timing} for row in _history(resumed)] == [
        {k: v for k, v in row.items() if k not in timing} for row in _history(reference)
    ]


@pytest.mark.slow
def test_two_processes_train_the_head_as_one_does(mix, tmp_path):
    # The head is averaged over the ranks as the model is, and its loss is divided by the batch size: two
    # processes end where one does, up to float rounding.
    common = dict(TINY, epochs=2, source_adversary=0.5)
    single = train(TrainConfig(data=mix, runs_dir=str(tmp_path / "one"), **common), progress=False).run_dir
    sets = [f"--set={k}={v}" for k, v in common.items()]
    cmd = [sys.executable, "-m", "deepfake_detect", "train", *(f"--data={d}" for d in mix)]
    cmd += [f"--runs-dir={tmp_path / 'two'}", "--nproc=2", *sets, "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = Path(done.stdout.strip().splitlines()[-1])
    ours, theirs = load_file(run / "model.safetensors"), load_file(single / "model.safetensors")
    worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
    print(f"max |w_ddp - w_single| = {worst:.3g}")
    assert worst <= TOLERANCE
