"""The parts a training run is built from, apart from the loop itself (:mod:`deepfake_detect.training.loop`).

The optimiser and learning-rate schedules a config asks for, the EMA of the weights, early stopping, the
history file's columns, the epoch's log line and the run's line in ``runs/index.jsonl``. The temperature and
threshold fitted on validation are :mod:`deepfake_detect.metrics.calibration`'s.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any

import torch

from deepfake_detect.core.config import TrainConfig

__all__ = [
    "HISTORY_FIELDS",
    "SOURCE_FIELDS",
    "WeightAverage",
    "EarlyStopping",
    "build_optimizer",
    "step_schedule",
    "plateau_schedule",
    "write_history",
    "epoch_line",
    "index_entry",
]

HISTORY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "train_roc_auc",
    "val_loss",
    "val_accuracy",
    "val_precision",
    "val_recall",
    "val_f1",
    "val_roc_auc",
    "train_img_per_s",
    "epoch_seconds",
    "bad_images",
)
# The source adversary's columns (training/adversary.py), written only by the runs that have one: the head's
# cross-entropy and accuracy within each sample's class, the accuracy of always naming the class's most drawn
# source (what the head must beat to know anything), the reversal weight of the epoch's last step.
SOURCE_FIELDS = ("train_source_loss", "train_source_accuracy", "train_source_majority", "train_source_weight")


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names, over the trainable parameters.

    Examples
    --------
    >>> opt = build_optimizer(TrainConfig(optimizer="sgd", lr=0.1), torch.nn.Linear(2, 1))
    >>> type(opt).__name__, opt.param_groups[0]["nesterov"]
    ('SGD', True)
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def step_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """A per-step schedule for ``cosine``/``onecycle``; None for ``plateau`` (stepped once an epoch).

    Examples
    --------
    >>> opt = build_optimizer(TrainConfig(), torch.nn.Linear(2, 1))
    >>> step_schedule(TrainConfig(schedule="plateau"), opt, 10) is None
    True
    """
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total, 1))
    if cfg.schedule == "cosine":
        warmup = int(cfg.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def plateau_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    """Multiply the learning rate by ``cfg.lr_factor`` after ``cfg.lr_patience`` epochs without gain.

    Examples
    --------
    >>> opt = build_optimizer(TrainConfig(), torch.nn.Linear(2, 1))
    >>> plateau_schedule(TrainConfig(monitor="loss"), opt).mode
    'min'
    """
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min" if cfg.monitor == "loss" else "max",
        factor=cfg.lr_factor,
        patience=cfg.lr_patience,
    )


class WeightAverage:
    """Exponential moving average of a model's weights (buffers are copied), updated after each step.

    Examples
    --------
    >>> net = torch.nn.Linear(1, 1, bias=False)
    >>> ema = WeightAverage(net, decay=0.5)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0)
    ...     _ = ema.module.weight.fill_(0.0)
    >>> ema.update(net)
    >>> ema.module.weight.item()
    0.5
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for averaged, current in zip(self.module.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current, 1.0 - self.decay)
        for averaged, current in zip(self.module.buffers(), model.buffers(), strict=True):
            averaged.copy_(current)


class EarlyStopping:
    """Track the best epoch of a validation metric and say when patience runs out.

    Examples
    --------
    >>> stop = EarlyStopping("loss", patience=1)
    >>> stop.update(0.5, epoch=1), stop.update(0.7, epoch=2), stop.should_stop, stop.best_epoch
    (True, False, True, 1)
    """

    def __init__(self, metric: str, patience: int):
        self.sign = -1.0 if metric == "loss" else 1.0
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; return True when it is the best so far."""
        score = self.sign * value if not math.isnan(value) else -math.inf
        if score > self.best:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the epochs' rows as CSV with the :data:`HISTORY_FIELDS` columns, then the :data:`SOURCE_FIELDS`
    when the rows have them (other keys are left out)."""
    extra = tuple(name for name in SOURCE_FIELDS if any(name in row for row in rows))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS + extra, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The log line of one epoch's history row."""
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
        f"val_acc {row['val_accuracy']:.4f}  val_prec {row['val_precision']:.4f}  "
        f"val_rec {row['val_recall']:.4f}  "
        f"val_f1 {row['val_f1']:.4f}  val_auc {row['val_roc_auc']:.4f}  lr {row['lr']:.2e}  "
        f"{row['train_img_per_s']:.1f} img/s  {row['epoch_seconds']:.0f}s"
        + (f"  skipped {row['bad_images']} unreadable" if row["bad_images"] else "")
        + (
            f"  source_acc {row['train_source_accuracy']:.3f} (majority {row['train_source_majority']:.3f})"
            if "train_source_accuracy" in row
            else ""
        )
    )


def index_entry(
    cfg: TrainConfig, run_id: str, created: str, fingerprint: str, summary: dict[str, Any]
) -> dict[str, Any]:
    """A finished (or interrupted) run's line in the runs index: what ``runs list`` shows.

    Parameters
    ----------
    cfg : TrainConfig
    run_id, created : str
        The run folder's name and the time its weights were written.
    fingerprint : str
        The data set's content fingerprint.
    summary : dict
        The run's metrics (with ``epochs_run``, ``val``, ``tensor_sha256`` and ``interrupted``).
    """
    return {
        "id": run_id,
        "time": created,
        "model": cfg.model,
        "data_fingerprint": fingerprint,
        "epochs": summary["epochs_run"],
        "val_roc_auc": summary["val"]["roc_auc"],
        "val_accuracy": summary["val"]["accuracy"],
        "val_f1": summary["val"]["f1"],
        "tensor_sha256": summary["tensor_sha256"],
        "interrupted": summary["interrupted"],
    }
