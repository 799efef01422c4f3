"""Training: ``train(cfg)`` reads top to bottom, from data to a calibrated checkpoint in a run folder.

Model selection, the decision threshold and the temperature are all fixed on the validation split; the test
split is never opened here.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import calibrate, metrics
from .checkpoint import load_checkpoint, resolve_weights, save_checkpoint
from .config import ConfigError, TrainConfig
from .data import fingerprint_dataset as _fingerprint
from .data import list_split, resolve_data_root
from .dataset import DecodedCache, FaceDataset, make_loader
from .models import create_model, get_model_cfg
from .runs import MODEL_FILE, append_index, code_version, environment_info, new_run_dir, write_json
from .runtime import make_deterministic, predict_logits, resolve_device
from .transforms import Degradations, Preprocess

__all__ = ["train", "TrainResult", "preprocess_for"]

log = logging.getLogger("deepfake_detect.train")

HISTORY_FIELDS = [
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
]


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder and its final validation metrics."""

    run_dir: Path
    metrics: dict[str, Any]
    interrupted: bool = False


def preprocess_for(cfg: TrainConfig) -> Preprocess:
    """The preprocessing a config implies: the model's defaults, overridden by the config's fields."""
    model_cfg = get_model_cfg(cfg.model)
    return Preprocess(
        size=cfg.image_size or model_cfg.input_size,
        resize_mode=cfg.resize_mode or model_cfg.resize_mode,
        base_size=cfg.base_size,
        mean=tuple(model_cfg.mean),
        std=tuple(model_cfg.std),
        draft=cfg.draft,
    )


def _datasets(cfg: TrainConfig, preprocess: Preprocess, root: Path, fingerprint: str, progress: bool):
    """Train (augmented) and validation datasets, decoded through the cache when asked."""
    names = tuple(cfg.class_names)
    splits = {
        "train": list_split(root, "train", class_names=names, limit_per_class=cfg.train_limit),
        "valid": list_split(root, "valid", class_names=names, limit_per_class=cfg.val_limit),
    }
    caches = {}
    for split, samples in splits.items():
        if cfg.cache:
            caches[split] = DecodedCache(samples, preprocess, cfg.cache_dir, key=f"{fingerprint}/{split}")
            caches[split].build(progress=progress)
    common = dict(seed=cfg.seed, hflip=cfg.hflip, strict=cfg.strict)
    degrade = Degradations(
        jpeg_p=cfg.aug_jpeg_p, blur_p=cfg.aug_blur_p, rescale_p=cfg.aug_rescale_p, color_p=cfg.aug_color_p
    )
    train_ds = FaceDataset(
        splits["train"], preprocess, train=True, cache=caches.get("train"), degrade=degrade, **common
    )
    val_ds = FaceDataset(splits["valid"], preprocess, train=False, cache=caches.get("valid"), **common)
    return train_ds, val_ds


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _step_schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step schedule for ``cosine``/``onecycle``; None for ``plateau`` (stepped once an epoch)."""
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


class WeightAverage:
    """Exponential moving average of a model's weights (buffers are copied), updated after each step."""

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
    """Track the best epoch of a validation metric and say when patience runs out."""

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


def train_one_epoch(
    model, loader, optimizer, schedule, device, *, channels_last=True, progress=True, ema=None
):
    """One pass over the training loader; returns loss, accuracy, AUC, img/s and bad-image count."""
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    losses, logits_all, labels_all, n_bad, seen = [], [], [], 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc="train", unit="batch", leave=False, disable=not progress)
    for x, y, idx, bad in bar:
        n_bad += bad
        if len(idx) == 0:
            continue
        logits = model(x.to(device, memory_format=fmt))  # (B,)
        loss = F.binary_cross_entropy_with_logits(logits, y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if ema is not None:
            ema.update(model)
        seen += len(idx)
        losses.append(loss.item() * len(idx))
        logits_all.append(logits.detach().float().cpu())
        labels_all.append(y)
        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / (time.perf_counter() - start):.1f}")
    seconds = time.perf_counter() - start
    logits_np, labels_np = torch.cat(logits_all).numpy(), torch.cat(labels_all).numpy()
    stats = metrics.binary_metrics(labels_np, logits_np, 0.0)
    return {
        "train_loss": sum(losses) / max(seen, 1),
        "train_accuracy": stats["accuracy"],
        "train_roc_auc": stats["roc_auc"],
        "train_img_per_s": seen / seconds,
        "bad_images": n_bad,
    }


def validate(model, loader, device, *, channels_last=True, tta_flip=False):
    """Validation metrics at logit 0 plus the raw logits and labels."""
    logits, labels, _, _ = predict_logits(
        model, loader, device, channels_last=channels_last, tta_flip=tta_flip
    )
    stats = metrics.binary_metrics(labels, logits, 0.0)
    stats["loss"] = metrics.log_loss_from_logits(labels, logits)
    return stats, logits, labels


def calibrate_on_validation(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Temperature, F1-optimal threshold and the validation metrics at that threshold."""
    temperature = calibrate.fit_temperature(labels, logits)
    threshold = metrics.f1_optimal_threshold(labels, logits)
    p_raw = metrics.sigmoid(logits)
    p_cal = calibrate.calibrated_p_fake(logits, temperature)
    return {
        "temperature": float(temperature),
        "threshold_logit": float(threshold),
        "threshold_p_fake": float(calibrate.calibrated_p_fake(np.array([threshold]), temperature)[0]),
        # Clipped so a one-class validation set cannot store an infinite prior log-odds.
        "base_rate": float(np.clip(labels.mean(), 1e-3, 1 - 1e-3)),
        "val": metrics.binary_metrics(labels, logits, threshold),
        "val_calibration": {
            "ece_before": metrics.expected_calibration_error(labels, p_raw),
            "ece_after": metrics.expected_calibration_error(labels, p_cal),
            "brier_before": float(metrics.brier_score_loss(labels, p_raw)),
            "brier_after": float(metrics.brier_score_loss(labels, p_cal)),
        },
    }


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _initial_model(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    has_weights = get_model_cfg(cfg.model).pretrained_source is not None
    model = create_model(cfg.model, pretrained=cfg.pretrained and has_weights and cfg.init is None)
    if cfg.init is not None:
        state, meta = load_checkpoint(resolve_weights(cfg.init, cfg.runs_dir))
        if meta["model"] != cfg.model:
            raise ConfigError(f"--init weights are a {meta['model']!r} model but --model is {cfg.model!r}")
        model.load_state_dict(state)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format)


def _finish_run(cfg, run_dir, model, preprocess, fingerprint, summary, *, interrupted) -> dict[str, Any]:
    """Write the checkpoint, metrics.json and the index line."""
    meta = {
        "model": cfg.model,
        "model_kwargs": {},
        "input_size": preprocess.size,
        "preprocess": preprocess.to_dict(),
        "class_names": list(cfg.class_names),
        "threshold_logit": summary["threshold_logit"],
        "threshold_rule": "f1",
        "tta_flip": cfg.tta_flip,
        "temperature": summary["temperature"],
        "base_rate": summary["base_rate"],
        "config": cfg.to_dict(),
        "data_fingerprint": fingerprint,
        "code_version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_id": run_dir.name,
        "val_metrics": summary["val"],
    }
    summary["tensor_sha256"] = save_checkpoint(run_dir / MODEL_FILE, model, meta)
    summary["interrupted"] = interrupted
    write_json(run_dir / "metrics.json", summary)
    entry = {
        "id": run_dir.name,
        "time": meta["created"],
        "model": cfg.model,
        "data_fingerprint": fingerprint,
        "epochs": summary["epochs_run"],
        "val_roc_auc": summary["val"]["roc_auc"],
        "val_accuracy": summary["val"]["accuracy"],
        "val_f1": summary["val"]["f1"],
        "tensor_sha256": summary["tensor_sha256"],
        "interrupted": interrupted,
    }
    append_index(run_dir.parent, entry)
    return summary


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` and write a complete run folder.

    Parameters
    ----------
    cfg : TrainConfig
        Everything that decides the run; saved as ``config.json``.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    TrainResult
        ``run_dir`` holds config.json, environment.json, history.csv, metrics.json and model.safetensors.

    Examples
    --------
    >>> from deepfake_detect import TrainConfig, train                      # doctest: +SKIP
    >>> result = train(TrainConfig(data="faces140k", epochs=3))              # doctest: +SKIP
    >>> result.metrics["val"]["roc_auc"]                                     # doctest: +SKIP
    """
    preprocess = preprocess_for(cfg)  # first, so an unknown model name fails before any work
    threads = make_deterministic(cfg.seed, cfg.threads)
    device = resolve_device(cfg.device)
    root = resolve_data_root(cfg.data)
    fingerprint = _fingerprint(root, class_names=tuple(cfg.class_names), progress=progress)
    train_ds, val_ds = _datasets(cfg, preprocess, root, fingerprint, progress)
    train_loader, sampler = make_loader(
        train_ds, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers
    )
    val_loader, _ = make_loader(
        val_ds, batch_size=max(cfg.batch_size, 64), shuffle=False, seed=cfg.seed, num_workers=cfg.num_workers
    )

    model = _initial_model(cfg, device)
    optimizer = _optimizer(cfg, model)
    schedule = _step_schedule(cfg, optimizer, len(train_loader))
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if cfg.monitor == "loss" else "max",
            factor=cfg.lr_factor,
            patience=cfg.lr_patience,
        )
        if schedule is None
        else None
    )
    stopper = EarlyStopping(cfg.monitor, cfg.patience)
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    judged = ema.module if ema is not None else model  # the weights that are validated and saved
    views = dict(channels_last=cfg.channels_last, tta_flip=cfg.tta_flip)

    run_dir = new_run_dir(cfg.runs_dir, cfg.model, cfg.seed, cfg.run_name)
    write_json(
        run_dir / "config.json", {**cfg.to_dict(), "data_root": str(root), "preprocess": preprocess.to_dict()}
    )
    write_json(run_dir / "environment.json", environment_info(threads))
    log.info("run %s: %d train / %d valid images, %s", run_dir.name, len(train_ds), len(val_ds), preprocess)

    history: list[dict[str, Any]] = []
    best_state, interrupted, start = None, False, time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            epoch_start = time.perf_counter()
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            row = train_one_epoch(
                model,
                train_loader,
                optimizer,
                schedule,
                device,
                channels_last=cfg.channels_last,
                progress=progress,
                ema=ema,
            )
            val_stats, _, _ = validate(judged, val_loader, device, **views)
            row.update({"epoch": epoch + 1, "lr": lr, "epoch_seconds": time.perf_counter() - epoch_start})
            row.update({f"val_{k}": v for k, v in val_stats.items() if k != "confusion_matrix"})
            history.append(row)
            _write_history(run_dir / "history.csv", history)
            log.info(_epoch_line(row, cfg.epochs))
            if stopper.update(val_stats[cfg.monitor], epoch + 1):
                best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
            if plateau is not None:
                plateau.step(val_stats[cfg.monitor])
            if stopper.should_stop:
                log.info("early stop: no %s gain for %d epochs", cfg.monitor, cfg.patience)
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: saving the best weights so far and exiting")

    if best_state is not None:
        judged.load_state_dict(best_state)
    _, val_logits, val_labels = validate(judged, val_loader, device, **views)
    summary = calibrate_on_validation(val_logits, val_labels)
    summary.update(
        {
            "best_epoch": stopper.best_epoch,
            "epochs_run": len(history),
            "monitor": cfg.monitor,
            "stopped_early": stopper.should_stop,
            "train_seconds": time.perf_counter() - start,
            "bad_images": sum(r["bad_images"] for r in history),
            "threads": threads,
        }
    )
    summary = _finish_run(cfg, run_dir, judged, preprocess, fingerprint, summary, interrupted=interrupted)
    return TrainResult(run_dir=run_dir, metrics=summary, interrupted=interrupted)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
        f"val_acc {row['val_accuracy']:.4f}  val_prec {row['val_precision']:.4f}  "
        f"val_rec {row['val_recall']:.4f}  "
        f"val_f1 {row['val_f1']:.4f}  val_auc {row['val_roc_auc']:.4f}  lr {row['lr']:.2e}  "
        f"{row['train_img_per_s']:.1f} img/s  {row['epoch_seconds']:.0f}s"
        + (f"  skipped {row['bad_images']} unreadable" if row["bad_images"] else "")
    )
