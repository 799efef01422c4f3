"""Training learns: the smallest model picks up a cue that tells the classes apart, whichever class carries it.

The fakes of ``make_face_dataset`` carry a periodic pixel trace. A network can separate the classes somewhat
before any training (the compact model's residual filter sees such traces by design), so the same training
also runs with the class folders swapped: only a network that follows the labels scores well both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from deepfake_detect import TrainConfig, load_detector, train
from deepfake_detect.data import list_split
from deepfake_detect.models import count_parameters, create_model, list_models

pytestmark = pytest.mark.slow


def smallest_model() -> str:
    return min(list_models(), key=lambda name: count_parameters(create_model(name)))


@pytest.fixture(scope="module")
def cue_dataset(tmp_path_factory, make_face_dataset) -> Path:
    return make_face_dataset(tmp_path_factory.mktemp("cue") / "faces", per_class=(48, 16, 16), seed=1)


def validation_auc(run_dir: Path, data: Path) -> float:
    """ROC AUC on the validation split, scored afresh from the saved weights (not training's own record)."""
    det = load_detector(run_dir / "model.safetensors", backend="torch")
    samples = list_split(data, "valid", class_names=tuple(det.metadata["class_names"]))
    preds = det.predict_samples(samples)
    assert preds.n_unreadable == 0 and len(preds.labels) == 32
    return float(roc_auc_score(preds.labels, preds.logits))


@pytest.mark.parametrize(
    "class_names", [("real", "fake"), ("fake", "real")], ids=["trace-on-fakes", "swapped"]
)
def test_the_smallest_model_learns_the_cue_the_labels_point_at(cue_dataset, tmp_path, class_names):
    cfg = TrainConfig(
        data=str(cue_dataset),
        runs_dir=str(tmp_path),
        model=smallest_model(),
        pretrained=False,
        class_names=class_names,
        image_size=32,
        base_size=40,
        epochs=8,
        batch_size=8,
        lr=0.01,
        schedule="cosine",
        patience=8,
        seed=0,
        threads=1,
    )
    result = train(cfg, progress=False)
    auc = validation_auc(result.run_dir, cue_dataset)
    assert auc > 0.9, f"{cfg.model} with class folders {class_names}: validation AUC {auc:.3f}"
    assert result.metrics["val"]["roc_auc"] == pytest.approx(auc, abs=1e-6)
