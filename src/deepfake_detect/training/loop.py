"""Training: ``train_process(cfg)`` reads top to bottom, from data to a calibrated checkpoint in a run folder.

Model selection, the decision threshold, the temperature and the "uncertain" band are all fixed on the
validation split; the test split is never opened here. The run's checkpoints let ``train(cfg, resume=run)``
continue a killed run bit-identically (see :mod:`deepfake_detect.training.state`), and the same function runs
each rank of a data-parallel run (see :mod:`deepfake_detect.training.distributed`). The parts it is built from
(optimiser, schedules, EMA, early stopping) are in :mod:`deepfake_detect.training.parts`; the band in
:mod:`deepfake_detect.training.band`.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from deepfake_detect import metrics
from deepfake_detect.core.checkpoint import load_checkpoint, resolve_weights, save_checkpoint
from deepfake_detect.core.config import ConfigError, TrainConfig
from deepfake_detect.core.exceptions import BadImageError
from deepfake_detect.core.runs import RunDir, append_index, code_version, environment_info, write_json
from deepfake_detect.core.runtime import deterministic, predict_logits
from deepfake_detect.core.sources import Source, source_record
from deepfake_detect.data import resolve_data_root
from deepfake_detect.data.dataset import DecodedCache, EpochShuffle, FaceDataset, make_loader
from deepfake_detect.data.fingerprint import combine_fingerprints, fingerprint_sources
from deepfake_detect.data.mix import is_plain, list_mix_split, sample_weights, source_indices
from deepfake_detect.data.transforms import Degradations, Preprocess
from deepfake_detect.metrics.calibration import calibrate_on_validation
from deepfake_detect.models import create_model, get_model_cfg
from deepfake_detect.training.adversary import SourceAdversary, SourceBatch, majority_accuracy
from deepfake_detect.training.band import band_on_validation
from deepfake_detect.training.distributed import DistContext, session
from deepfake_detect.training.parts import (
    EarlyStopping,
    WeightAverage,
    build_optimizer,
    epoch_line,
    index_entry,
    plateau_schedule,
    step_schedule,
    write_history,
)
from deepfake_detect.training.state import Checkpointer, EpochProgress, TrainState
from deepfake_detect.training.tracking import Tracker, open_tracker

__all__ = ["train_process", "TrainResult", "preprocess_for", "train_one_epoch"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder and its final validation metrics.

    On the ranks of a distributed run other than 0, ``metrics`` is empty (rank 0 holds them).
    """

    run_dir: Path
    metrics: dict[str, Any]
    interrupted: bool = False
    rank: int = 0


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


def train_process(
    cfg: TrainConfig, *, progress: bool = True, resume: str | Path | None = None
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` in this process and write a complete run folder.

    This is one rank's work; :func:`deepfake_detect.training.train.train` is the entry point that also starts
    several processes.

    Parameters
    ----------
    cfg : TrainConfig
        Everything that decides the run; saved as the run's config.
    progress : bool
        Show progress bars on stderr.
    resume : path or run id, optional
        Continue this run folder from its newest good checkpoint instead of starting a new run. ``cfg`` must
        be the run's config (see :func:`deepfake_detect.training.state.resume_config`); the result is
        bit-identical to a run that was never interrupted.

    Returns
    -------
    TrainResult
        ``run_dir`` is a complete run folder (see :class:`~deepfake_detect.core.runs.RunDir`): config,
        environment, history, metrics and weights (and checkpoints while the run is unfinished or was
        interrupted).

    Notes
    -----
    Inside a torchrun-style environment (``WORLD_SIZE`` set, see :mod:`deepfake_detect.training.distributed`) this
    process joins the process group as one rank of a data-parallel run, and leaves it on return.

    Examples
    --------
    >>> from deepfake_detect import TrainConfig                             # doctest: +SKIP
    >>> result = train_process(TrainConfig(data="faces140k", epochs=3))              # doctest: +SKIP
    >>> result.metrics["val"]["roc_auc"]                                     # doctest: +SKIP
    """
    preprocess = preprocess_for(cfg)  # first, so an unknown model name fails before any work
    with session(cfg.device) as ctx, deterministic(cfg.seed, ctx.threads(cfg.threads), ctx.device) as threads:
        return _train(cfg, preprocess, ctx, threads, progress=progress and ctx.is_main, resume=resume)


def _train(
    cfg: TrainConfig, preprocess: Preprocess, ctx: DistContext, threads: int, *, progress: bool, resume
) -> TrainResult:
    """The body of :func:`train_process`, for one process (the only one, or one rank).

    Runs inside :func:`~deepfake_detect.core.runtime.deterministic`: seeded, with ``threads`` torch threads.
    """
    sources = [replace(s, root=str(resolve_data_root(s.root))) for s in cfg.data_sources()]
    data_ids = _data_ids(cfg, sources, ctx, progress)
    feed = _feed(cfg, preprocess, sources, data_ids["data_fingerprint"], ctx, progress)
    generators = {"train": feed.train_loader.generator, "valid": feed.val_loader.generator}
    state = _initial_state(cfg, ctx.device, feed, sources, generators, load_weights=resume is None)
    run = _open_run(cfg, sources, preprocess, threads, ctx, resume)
    meta = {"config": cfg.to_dict(), **data_ids, "world_size": ctx.world_size}
    checkpoints = Checkpointer(run.checkpoints, meta, enabled=ctx.is_main)
    if resume is not None:
        checkpoints.restore(state)  # weights, optimiser, schedules, history, position, then every RNG
    if ctx.is_main:
        _log_start(run, feed, preprocess, sources, state.adversary, cfg.class_names)

    start = time.perf_counter() - state.elapsed
    with open_tracker(cfg, run, data_ids, enabled=ctx.is_main) as tracker:  # MLflow mirrors rank 0's run
        interrupted = _train_epochs(
            cfg, ctx, state, feed, run, checkpoints, tracker, start=start, progress=progress
        )
        if not ctx.is_main:
            return TrainResult(run_dir=run.path, metrics={}, interrupted=interrupted, rank=ctx.rank)
        summary = _calibrate_kept_weights(cfg, ctx, state, feed, start, threads)
        summary = _finish_run(
            cfg, run, _judged(state), preprocess, data_ids, summary, interrupted=interrupted
        )
        tracker.log_finished_run(run, summary)
    if not interrupted:
        checkpoints.discard()  # the finished run is in its weights file; an interrupted one may resume
    return TrainResult(run_dir=run.path, metrics=summary, interrupted=interrupted)


def _data_ids(cfg: TrainConfig, sources: list[Source], ctx: DistContext, progress: bool) -> dict[str, Any]:
    """The fingerprint of the mix and one a source, hashed by rank 0 and sent to the other ranks.

    A one-folder run's mix fingerprint is that folder's, as it was before data mixes.
    """
    hashed = ""
    if ctx.is_main:
        names, manifest = tuple(cfg.class_names), cfg.manifest or None
        found = fingerprint_sources(sources, class_names=names, progress=progress, manifest=manifest)
        hashed = json.dumps(found)
    fingerprints = json.loads(ctx.broadcast_str(hashed))
    mix = combine_fingerprints(sources, fingerprints)
    return {"data_fingerprint": mix, "data_fingerprints": fingerprints}


@dataclass
class _Feed:
    """This process's data: both datasets, their loaders, the sampler of the training order, the batch sizes."""

    train_ds: FaceDataset
    val_ds: FaceDataset
    train_loader: DataLoader
    sampler: EpochShuffle
    val_loader: DataLoader
    local_batch: int  # this rank's share of the global batch
    steps_per_epoch: int


def _feed(
    cfg: TrainConfig, preprocess: Preprocess, sources, fingerprint: str, ctx: DistContext, progress
) -> _Feed:
    """This process's datasets and loaders; the global batch is shared out between the ranks."""
    train_ds, val_ds = _datasets(cfg, preprocess, sources, fingerprint, progress, ctx)
    local_batch = ctx.local_batch(cfg.batch_size)
    train_loader, sampler, val_loader = _loaders(cfg, sources, train_ds, val_ds, local_batch, ctx)
    steps_per_epoch = min(len(train_loader), cfg.max_steps_per_epoch or len(train_loader))
    return _Feed(train_ds, val_ds, train_loader, sampler, val_loader, local_batch, steps_per_epoch)


def _datasets(
    cfg: TrainConfig, preprocess: Preprocess, sources, fingerprint: str, progress: bool, ctx: DistContext
):
    """Train (augmented) and pooled validation datasets of the mix, decoded through the cache when asked."""
    names, manifest = tuple(cfg.class_names), cfg.manifest or None
    limits = {"train": cfg.train_limit, "valid": cfg.val_limit}
    splits = {
        split: list_mix_split(
            sources,
            split,
            class_names=names,
            limit_per_class=limit,
            manifest=manifest,
            cache_dir=cfg.cache_dir,
        )
        for split, limit in limits.items()
    }
    caches = {}
    with ctx.rank0_first():  # one process decodes into the shared cache file; the others then reuse it
        for split, samples in splits.items():
            if cfg.cache:
                caches[split] = DecodedCache(samples, preprocess, cfg.cache_dir, key=f"{fingerprint}/{split}")
                caches[split].build(progress=progress)
    common = dict(seed=cfg.seed, hflip=cfg.hflip, strict=cfg.strict)
    degrade = Degradations.from_config(cfg)
    train_ds = FaceDataset(
        splits["train"], preprocess, train=True, cache=caches.get("train"), degrade=degrade, **common
    )
    val_ds = FaceDataset(splits["valid"], preprocess, train=False, cache=caches.get("valid"), **common)
    return train_ds, val_ds


def _loaders(cfg: TrainConfig, sources, train_ds, val_ds, local_batch: int, ctx: DistContext):
    """The training loader (this rank's shard of each epoch's order), its sampler, and the validation loader.

    One source of weight 1 keeps the plain permutation of a one-folder run; a mix draws each epoch half from
    each class, by source weight within a class.
    """
    train_loader, sampler = make_loader(
        train_ds,
        batch_size=local_batch,
        shuffle=True,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        rank=ctx.rank,
        world_size=ctx.world_size,
        weights=None if is_plain(sources) else sample_weights(sources, train_ds.samples),
    )
    val_loader, _ = make_loader(
        val_ds, batch_size=max(cfg.batch_size, 64), shuffle=False, seed=cfg.seed, num_workers=cfg.num_workers
    )
    return train_loader, sampler, val_loader


def _initial_state(cfg, device, feed: _Feed, sources, generators, *, load_weights: bool) -> TrainState:
    """Fresh model, optimiser, schedules, early stopping, EMA and source adversary (a resumed run overwrites
    them all)."""
    model = _initial_model(cfg, device, load_weights=load_weights)
    adversary = _source_adversary(cfg, model, sources, feed) if cfg.source_adversary > 0 else None
    optimizer = build_optimizer(cfg, model)
    if adversary is not None:  # the head trains with the model's settings and schedule: add it before those
        optimizer.add_param_group({"params": list(adversary.head.parameters())})
    schedule = step_schedule(cfg, optimizer, feed.steps_per_epoch)
    plateau = plateau_schedule(cfg, optimizer) if schedule is None else None
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    stopper = EarlyStopping(cfg.monitor, cfg.patience)
    return TrainState(model, optimizer, schedule, plateau, stopper, ema, generators, adversary=adversary)


def _source_adversary(cfg: TrainConfig, model, sources: list[Source], feed: _Feed) -> SourceAdversary:
    """The source head over the training split's sources (see :mod:`deepfake_detect.training.adversary`)."""
    samples = feed.train_ds.samples
    labels = torch.tensor([s.label for s in samples])
    return SourceAdversary(
        model, labels, source_indices(sources, samples), [s.name for s in sources],
        weight=cfg.source_adversary, ramp=cfg.source_adversary_ramp, seed=cfg.seed,
        total_steps=cfg.epochs * feed.steps_per_epoch, steps_per_epoch=feed.steps_per_epoch,
    )  # fmt: skip


def _initial_model(cfg: TrainConfig, device: torch.device, *, load_weights: bool = True) -> torch.nn.Module:
    has_weights = get_model_cfg(cfg.model).pretrained_source is not None
    pretrained = cfg.pretrained and has_weights and cfg.init is None and load_weights
    model = create_model(cfg.model, pretrained=pretrained)
    if cfg.init is not None and load_weights:
        state, meta = load_checkpoint(resolve_weights(cfg.init, cfg.runs_dir))
        if meta["model"] != cfg.model:
            raise ConfigError(f"--init weights are a {meta['model']!r} model but --model is {cfg.model!r}")
        model.load_state_dict(state)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format)


def _open_run(cfg, sources, preprocess: Preprocess, threads: int, ctx: DistContext, resume) -> RunDir:
    """The run folder: the one being resumed, or a new one (made by rank 0) with its config and environment.

    The config records the resolved sources of the data mix, and ``data_root`` (the first source's) for
    readers that know one data folder only.
    """
    if resume is not None:
        return RunDir.find_resumable(resume, cfg.runs_dir)
    if not ctx.is_main:
        return RunDir(Path(ctx.broadcast_str("")))
    run = RunDir.create(cfg.runs_dir, cfg.model, cfg.seed, cfg.run_name)
    recorded = [source_record(s) for s in sources]
    data = {"data_root": sources[0].root, "data_sources": recorded}
    write_json(run.config, {**cfg.to_dict(), **data, "preprocess": preprocess.to_dict()})
    environment = {**environment_info(threads), "world_size": ctx.world_size, "backend": ctx.backend}
    write_json(run.environment, environment)
    return RunDir(Path(ctx.broadcast_str(str(run.path))))


def _log_start(
    run: RunDir, feed: _Feed, preprocess: Preprocess, sources: list[Source], adversary, names
) -> None:
    log.info(
        "run %s: %d train / %d valid images, %s", run.name, len(feed.train_ds), len(feed.val_ds), preprocess
    )
    if not is_plain(sources):
        log.info("data mix: %s", ", ".join(f"{s.name} (weight {s.weight:g})" for s in sources))
    if adversary is not None:
        told = "; ".join(f"{c} {', '.join(g)}" for c, g in adversary.groups(names).items())
        log.info("source adversary, weight %g: tells apart %s", adversary.weight, told)


def _train_epochs(
    cfg, ctx: DistContext, state: TrainState, feed: _Feed, run: RunDir, checkpoints, tracker: Tracker, *,
    start, progress
) -> bool:  # fmt: skip
    """Train from ``state.epoch`` to the last epoch or an early stop, validating and checkpointing each one.

    Returns True when interrupted (Ctrl-C, or another rank stopped): the best weights so far are then kept.
    """
    net, judged = ctx.wrap(state.model), _judged(state)
    if state.adversary is not None:  # the head's gradients are averaged over the ranks as the model's are
        state.adversary.net = ctx.wrap(state.adversary.head)
    save_mid_epoch = _mid_epoch_saver(cfg, checkpoints, state, feed.steps_per_epoch, start)
    try:
        for epoch in range(state.epoch, cfg.epochs):
            if state.stopper.should_stop:
                break
            # Resuming mid-epoch skips the batches already trained; the order itself draws nothing.
            feed.sampler.set_epoch(epoch, skip=state.position[1] * feed.local_batch)
            feed.train_ds.set_epoch(epoch)
            _begin_epoch(state, epoch, feed.train_loader.generator)
            row = train_one_epoch(
                net, feed.train_loader, state.optimizer, state.schedule, ctx.device,
                channels_last=cfg.channels_last, progress=progress, ema=state.ema, state=state.progress,
                max_batches=feed.steps_per_epoch, after_batch=save_mid_epoch, adversary=state.adversary,
            )  # fmt: skip
            _end_epoch(cfg, ctx, state, row, judged, feed.val_loader, run, tracker, _views(cfg))
            state.elapsed = time.perf_counter() - start
            checkpoints.save(state)
            if state.stopper.should_stop:
                log.info("early stop: no %s gain for %d epochs", cfg.monitor, cfg.patience)
                break
    except KeyboardInterrupt:
        return _on_interrupt(ctx, "interrupted")
    except RuntimeError as err:
        if not _peer_lost(ctx, err):
            raise
        return _on_interrupt(ctx, f"another process stopped ({err})")
    return False


def _judged(state: TrainState) -> torch.nn.Module:
    """The weights validated and saved: the moving average when there is one, else the trained model."""
    return state.ema.module if state.ema is not None else state.model


def _views(cfg: TrainConfig) -> dict[str, bool]:
    """How validation shows the images to the model (memory layout, mirror averaging)."""
    return dict(channels_last=cfg.channels_last, tta_flip=cfg.tta_flip)


def _mid_epoch_saver(
    cfg: TrainConfig, checkpoints: Checkpointer, state: TrainState, steps: int, start: float
):
    """A callback saving a checkpoint every ``checkpoint_every_steps`` batches (None when that is off)."""
    every = cfg.checkpoint_every_steps
    if not every or not checkpoints.enabled:
        return None

    def save(progress: EpochProgress) -> None:
        if progress.batches % every == 0 and progress.batches < steps:  # the epoch-end save covers the last
            state.elapsed = time.perf_counter() - start
            checkpoints.save(state)

    return save


def _begin_epoch(state: TrainState, epoch: int, generator: torch.Generator) -> None:
    """Start (or, after a mid-epoch resume, continue) an epoch's running totals."""
    state.epoch = epoch
    state.epoch_rng = generator.get_state()  # the loader draws its worker seed from it when iteration starts
    if state.progress is None:
        state.progress = EpochProgress(lr=state.optimizer.param_groups[0]["lr"])
    if state.adversary is not None:
        state.adversary.set_epoch(epoch)


def train_one_epoch(
    model,
    loader,
    optimizer,
    schedule,
    device,
    *,
    channels_last=True,
    progress=True,
    ema=None,
    state: EpochProgress | None = None,
    max_batches: int | None = None,
    after_batch=None,
    adversary: SourceAdversary | None = None,
):
    """One pass over the training loader; returns loss, accuracy, AUC, img/s and bad-image count.

    Parameters
    ----------
    model : nn.Module
        The network, or its DistributedDataParallel wrapper.
    loader : DataLoader
        Yields ``(x, y, indices, n_bad)`` batches.
    optimizer, schedule
        The optimiser and a per-step schedule (or None).
    device : torch.device
    channels_last, progress : bool
    ema : WeightAverage, optional
        Updated after every step.
    state : EpochProgress, optional
        Totals of the batches already trained this epoch (when resuming mid-epoch); updated in place.
    max_batches : int, optional
        Stop once the epoch has consumed this many batches in all.
    after_batch : callable, optional
        Called with ``state`` after each batch (to save checkpoints).
    adversary : SourceAdversary, optional
        Train its source head beside the model, behind a gradient reversal; its figures go into the row.
    """
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    acc = state if state is not None else EpochProgress(lr=optimizer.param_groups[0]["lr"])
    start = time.perf_counter() - acc.seconds
    total = len(loader) if max_batches is None else min(len(loader), max_batches - acc.batches)
    batches = itertools.islice(loader, max(total, 0))
    bar = tqdm(batches, total=total, desc="train", unit="batch", leave=False, disable=not progress)
    for x, y, idx, bad in bar:
        acc.batches += 1
        acc.n_bad += bad
        if len(idx) > 0:
            inputs, targets = x.to(device, memory_format=fmt), y.to(device)
            if adversary is None:
                loss, logits = _train_step(model, inputs, targets, optimizer)
            else:
                loss, logits = _adversarial_step(model, inputs, targets, idx, optimizer, adversary, acc)
            if schedule is not None:
                schedule.step()
            if ema is not None:
                ema.update(model.module if isinstance(model, DistributedDataParallel) else model)
            acc.seen += len(idx)
            acc.losses.append(loss.item() * len(idx))
            acc.logits.append(logits.detach().float().cpu())
            acc.labels.append(y)
            bar.set_postfix(
                loss=f"{loss.item():.3f}", img_s=f"{acc.seen / (time.perf_counter() - start):.1f}"
            )
        elif isinstance(model, DistributedDataParallel):
            # Skipping the step here would leave the other ranks waiting for this one's gradients.
            raise BadImageError("every image of a batch was unreadable; distributed training cannot skip it")
        acc.seconds = time.perf_counter() - start
        if after_batch is not None:
            after_batch(acc)
    return _epoch_summary(acc)


def _train_step(model, x, y, optimizer):
    """Forward, loss, backward and optimiser step on one batch; returns the loss and the logits."""
    logits = model(x)  # (B,)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def _adversarial_step(model, x, y, idx, optimizer, adversary: SourceAdversary, acc: EpochProgress):
    """:func:`_train_step` with the source head: the head minimises its cross-entropy within each sample's
    class, and the reversal hands the backbone that gradient times ``-weight``. Returns the detection loss
    (what ``train_loss`` reports) and the logits; the head's figures go into ``acc``."""
    weight = adversary.weight_at(acc.batches - 1)  # this batch's place in training, counted from 0
    with adversary.features_of(model.module if isinstance(model, DistributedDataParallel) else model) as seen:
        logits = model(x)  # (B,)
    detection = F.binary_cross_entropy_with_logits(logits, y)
    sources = adversary.batch(seen[0], y, idx, weight)
    # Summed over the batch's counted samples and divided by the batch size: averaged over ranks as the
    # detection loss is, it is the single-process loss whatever each rank's share of counted samples.
    loss = detection + sources.loss / len(idx)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    _add_source_figures(acc, sources, weight)
    return detection, logits


def _add_source_figures(acc: EpochProgress, batch: SourceBatch, weight: float) -> None:
    """Add a batch's source-head figures to the epoch's running totals."""
    acc.source_loss += batch.loss.item()
    acc.source_hits += batch.hits
    acc.source_counted += batch.counted
    counts = batch.counts + torch.tensor(acc.source_counts) if acc.source_counts else batch.counts
    acc.source_counts = counts.tolist()  # (2, K) as lists: the checkpoint stores it as JSON
    acc.source_weight = weight


def _epoch_summary(acc: EpochProgress) -> dict[str, Any]:
    logits_np, labels_np = torch.cat(acc.logits).numpy(), torch.cat(acc.labels).numpy()
    stats = metrics.binary_metrics(labels_np, logits_np, 0.0)
    row = {
        "train_loss": sum(acc.losses) / max(acc.seen, 1),
        "train_accuracy": stats["accuracy"],
        "train_roc_auc": stats["roc_auc"],
        "train_img_per_s": acc.seen / acc.seconds,
        "bad_images": acc.n_bad,
    }
    # The source adversary's columns: its accuracy falling to the majority's is the adversary working.
    if acc.source_counted:
        row["train_source_loss"] = acc.source_loss / acc.source_counted
        row["train_source_accuracy"] = acc.source_hits / acc.source_counted
        row["train_source_majority"] = majority_accuracy(torch.tensor(acc.source_counts))
        row["train_source_weight"] = acc.source_weight
    return row


def _end_epoch(
    cfg, ctx: DistContext, state: TrainState, row, judged, val_loader, run: RunDir, tracker: Tracker, views
) -> None:
    """Validate (rank 0), record the row (run folder, then tracker), and step early stopping and the plateau
    schedule on every rank."""
    value = math.nan
    if ctx.is_main:
        val_start = time.perf_counter()
        val_stats, _, _ = validate(judged, val_loader, ctx.device, **views)
        epoch_seconds = state.progress.seconds + time.perf_counter() - val_start
        row.update({"epoch": state.epoch + 1, "lr": state.progress.lr, "epoch_seconds": epoch_seconds})
        row.update({f"val_{k}": v for k, v in val_stats.items() if k != "confusion_matrix"})
        state.history.append(row)
        write_history(run.history, state.history)
        tracker.log_epochs(state.history)  # all rows: a resumed run's tracker skips those already logged
        log.info(epoch_line(row, cfg.epochs))
        value = val_stats[cfg.monitor]
    value = ctx.broadcast_float(value)  # every rank takes the same schedule and stopping decisions
    if state.stopper.update(value, state.epoch + 1) and ctx.is_main:
        state.best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
    if state.plateau is not None:
        state.plateau.step(value)
    state.epoch, state.progress = state.epoch + 1, None


def validate(model, loader, device, *, channels_last=True, tta_flip=False):
    """Validation metrics at logit 0 plus the raw logits and labels."""
    logits, labels, _, _ = predict_logits(
        model, loader, device, channels_last=channels_last, tta_flip=tta_flip
    )
    stats = metrics.binary_metrics(labels, logits, 0.0)
    stats["loss"] = metrics.log_loss_from_logits(labels, logits)
    return stats, logits, labels


def _peer_lost(ctx: DistContext, err: RuntimeError) -> bool:
    """True when a collective failed because another rank stopped (gloo raises a plain RuntimeError)."""
    if not ctx.enabled:
        return False
    text = str(err).lower()
    return isinstance(err, dist.DistError) or any(w in text for w in ("gloo", "nccl", "connection"))


def _on_interrupt(ctx: DistContext, reason: str) -> bool:
    if ctx.enabled:
        # Ranks may get Ctrl-C twice (from the terminal and from the launcher); the second must not cut
        # short rank 0's save.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ctx.is_main:
        log.warning("%s: saving the best weights so far and exiting", reason)
    return True


def _calibrate_kept_weights(
    cfg: TrainConfig, ctx: DistContext, state: TrainState, feed: _Feed, start: float, threads: int
) -> dict[str, Any]:
    """Put back the best epoch's weights and fix their threshold, temperature and "uncertain" band on
    validation; with the run's totals, the start of its metrics."""
    judged = _judged(state)
    if state.best_state is not None:
        judged.load_state_dict(state.best_state)
    views = _views(cfg)
    _, val_logits, val_labels = validate(judged, feed.val_loader, ctx.device, **views)
    sources = [sample.source for sample in feed.val_ds.samples]
    calibration = calibrate_on_validation(val_logits, val_labels, sources, cfg.threshold_max_fpr)
    summary = {**calibration, **_run_totals(cfg, state, start, threads)}
    summary["abstain"] = _fit_band(
        cfg, judged, feed.val_ds, val_logits, val_labels, summary["threshold_logit"], views
    )
    return summary


def _fit_band(cfg: TrainConfig, model, val_ds, logits, labels, threshold: float, views) -> dict[str, Any]:
    """The "uncertain" band, chosen on the validation faces pooled with the same faces laundered once (see
    :mod:`deepfake_detect.training.band`); the checkpoint metadata that stores it."""
    device = next(model.parameters()).device
    return band_on_validation(
        model, val_ds.samples, val_ds.preprocess, logits, labels, threshold,
        target_precision=cfg.abstain_precision, device=device, batch_size=max(cfg.batch_size, 64),
        num_workers=cfg.num_workers, **views,
    )  # fmt: skip


def _run_totals(cfg: TrainConfig, state: TrainState, start: float, threads: int) -> dict[str, Any]:
    return {
        "best_epoch": state.stopper.best_epoch,
        "epochs_run": len(state.history),
        "monitor": cfg.monitor,
        "stopped_early": state.stopper.should_stop,
        "train_seconds": time.perf_counter() - start,
        "bad_images": sum(r["bad_images"] for r in state.history),
        "threads": threads,
    }


def _finish_run(cfg, run: RunDir, model, preprocess, data_ids, summary, *, interrupted) -> dict[str, Any]:
    """Write the weights with their metadata, the run's metrics and its line in the runs index."""
    meta = {
        "model": cfg.model,
        "model_kwargs": {},
        "input_size": preprocess.size,
        "preprocess": preprocess.to_dict(),
        "class_names": list(cfg.class_names),
        "threshold_logit": summary["threshold_logit"],
        "threshold_rule": summary["threshold_rule"],
        "tta_flip": cfg.tta_flip,
        "temperature": summary["temperature"],
        "base_rate": summary["base_rate"],
        "config": cfg.to_dict(),
        **data_ids,  # data_fingerprint (the mix's) and data_fingerprints (one a source)
        "code_version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_id": run.name,
        "val_metrics": summary["val"],
        **summary["abstain"],  # the "uncertain" band: abstain_lower_logit, abstain_upper_logit, ...
    }
    summary["tensor_sha256"] = save_checkpoint(run.model, model, meta)
    summary["interrupted"] = interrupted
    write_json(run.metrics, summary)
    entry = index_entry(cfg, run.name, meta["created"], data_ids["data_fingerprint"], summary)
    append_index(run.path.parent, {**entry, "data_fingerprints": data_ids["data_fingerprints"]})
    return summary
