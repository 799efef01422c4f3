"""The source adversary (issue 21): unlearn what tells the sources of a class apart, keep what all share.

A small linear head reads the features the model's last layer reads (its pooled features) and is trained to say
which source of the data mix a sample came from, but only among the sources of the sample's own class: real
sources against real sources, fake sources against fake sources (the other class's sources are masked out;
a class with a single source says nothing). Between the features and the head sits a gradient reversal
(DANN: Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016): the identity going forward, the gradient times
``-weight`` going back. The head minimises its cross-entropy; the backbone receives ``-weight`` times that
gradient, so it is pushed to make the sources of a class indistinguishable, while the detection loss keeps
real apart from fake. What is left is what the generators (and the cameras) have in common.

The head lives beside the model, never in it: the loop captures the last layer's input with a forward pre-hook
that exists only during a training step, the head's weights and optimiser moments are part of the resumable
training state (:mod:`deepfake_detect.training.state`), and the saved model is the detector alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_detect.core.config import ConfigError

__all__ = [
    "reverse_gradient",
    "dann_ramp",
    "final_linear",
    "class_sources",
    "source_loss",
    "SourceBatch",
    "majority_accuracy",
    "SourceAdversary",
]


class _GradientReversal(torch.autograd.Function):
    """The identity forward; the incoming gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * -ctx.weight, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``x`` unchanged going forward; its gradient multiplied by ``-weight`` going back (DANN's reversal layer).

    Parameters
    ----------
    x : Tensor
        Features of any shape.
    weight : float
        How strongly what follows is fought: 0 stops the gradient, 1 reverses it as is.

    Returns
    -------
    Tensor
        A view of ``x`` with the same values.

    Examples
    --------
    >>> x = torch.ones(3, requires_grad=True)
    >>> (reverse_gradient(x, 0.25) * torch.tensor([1.0, 2.0, 4.0])).sum().backward()
    >>> x.grad
    tensor([-0.2500, -0.5000, -1.0000])
    """
    return _GradientReversal.apply(x, weight)


def dann_ramp(progress: float) -> float:
    """DANN's ramp of the reversal weight, ``2 / (1 + exp(-10 p)) - 1``, from 0 at the start of training to
    almost 1 at its end, so that the head learns what tells the sources apart before the backbone is pushed
    away from it.

    Parameters
    ----------
    progress : float
        Share of the training steps done, in [0, 1].

    Examples
    --------
    >>> dann_ramp(0.0), round(dann_ramp(0.1), 3), round(dann_ramp(0.5), 3), round(dann_ramp(1.0), 4)
    (0.0, 0.462, 0.987, 0.9999)
    """
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def final_linear(model: nn.Module) -> nn.Linear:
    """The model's last linear layer (the one giving the logit): its input is the features the head reads.

    Every registered model ends in one ``nn.Linear`` to one logit, registered last (``classifier``, or
    ``fc2`` for notebook-cnn).

    Raises
    ------
    ConfigError
        When the model has no linear layer giving one logit last.

    Examples
    --------
    >>> final_linear(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1)))
    Linear(in_features=4, out_features=1, bias=True)
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers or layers[-1].out_features != 1:
        raise ConfigError(
            f"source_adversary needs a model whose last linear layer gives one logit; "
            f"{type(model).__name__} has none. Train it with source_adversary=0"
        )
    return layers[-1]


def class_sources(labels: torch.Tensor, sources: torch.Tensor, n_sources: int) -> torch.Tensor:
    """Which sources hold each class: ``allowed[c, k]`` is True when source ``k`` has images of class ``c``.

    Parameters
    ----------
    labels : Tensor of shape (n,)
        0 = real, 1 = fake, of every training sample.
    sources : Tensor of shape (n,)
        Each sample's source index.
    n_sources : int

    Returns
    -------
    Tensor of shape (2, n_sources), bool

    Examples
    --------
    >>> class_sources(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 1, 2]), 3)
    tensor([[ True, False,  True],
            [ True,  True, False]])
    """
    allowed = torch.zeros(2, n_sources, dtype=torch.bool)
    allowed[labels.long(), sources.long()] = True
    return allowed


@dataclass
class SourceBatch:
    """The source head's figures on one batch.

    Attributes
    ----------
    loss : Tensor
        Summed cross-entropy of the counted samples (a scalar in the graph; 0 when none is counted).
    hits : int
        Counted samples whose source the head named.
    counted : int
        Samples of a class with two sources or more (the others say nothing).
    counts : Tensor of shape (2, K)
        Counted samples by class and source: always naming each class's most frequent source is the accuracy
        the head must beat to know anything (:func:`majority_accuracy`).
    """

    loss: torch.Tensor
    hits: int
    counted: int
    counts: torch.Tensor


def source_loss(
    logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, allowed: torch.Tensor
) -> SourceBatch:
    """The source head's cross-entropy within each sample's class.

    The logits of the sources that do not hold a sample's class are set to -inf before the softmax, so the
    head chooses among its class's sources only; a sample of a class with one source is left out.

    Parameters
    ----------
    logits : Tensor of shape (B, K)
        The head's logits over the mix's ``K`` sources.
    labels : Tensor of shape (B,)
        0 = real, 1 = fake (floats, as the detection loss takes them, or ints).
    sources : Tensor of shape (B,)
        Each sample's source index.
    allowed : Tensor of shape (2, K), bool
        :func:`class_sources` of the training data.

    Returns
    -------
    SourceBatch

    Examples
    --------
    Reals come from sources 0 and 2, fakes from source 1 only: the fake says nothing.

    >>> allowed = torch.tensor([[True, False, True], [False, True, False]])
    >>> logits = torch.tensor([[2.0, 9.0, 0.0], [0.0, 5.0, 0.0]])
    >>> batch = source_loss(logits, torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), allowed)
    >>> round(batch.loss.item(), 4), batch.hits, batch.counted, batch.counts.tolist()
    (0.1269, 1, 1, [[1, 0, 0], [0, 0, 0]])
    """
    within = allowed.to(logits.device)[labels.long()]  # (B, K): the sources of each sample's class
    counted = within.sum(dim=1) >= 2  # (B,)
    masked = logits.masked_fill(~within, float("-inf"))[counted]  # (n, K)
    targets = sources.to(logits.device)[counted]
    loss = F.cross_entropy(masked.float(), targets, reduction="sum")
    hits = int((masked.argmax(dim=1) == targets).sum()) if len(targets) else 0
    counts = torch.zeros(allowed.shape, dtype=torch.long)
    counts.index_put_(
        (labels[counted].long().cpu(), targets.cpu()),
        torch.ones(len(targets), dtype=torch.long),
        accumulate=True,
    )
    return SourceBatch(loss, hits, len(targets), counts)


def majority_accuracy(counts: torch.Tensor) -> float:
    """The accuracy of always naming each class's most frequent source: what the head must beat.

    Parameters
    ----------
    counts : Tensor of shape (2, K)
        Samples by class and source (:attr:`SourceBatch.counts`, summed over batches).

    Examples
    --------
    Reals 6 from source 0 and 2 from source 2; fakes 3 and 5 from sources 0 and 1:

    >>> majority_accuracy(torch.tensor([[6, 0, 2], [3, 5, 0]]))
    0.6875
    """
    total = int(counts.sum())
    return float(counts.max(dim=1).values.sum()) / total if total else float("nan")


class SourceAdversary:
    """The source head of one training run, with the reversal weight's schedule and the data's sources.

    Parameters
    ----------
    model : nn.Module
        The detector (unwrapped); the input of its :func:`final_linear` layer is what the head reads.
    labels, sources : Tensor of shape (n,)
        Class and source index of every training sample (dataset order).
    names : sequence of str
        The mix's source names, in source-index order.
    weight : float
        The reversal weight (``TrainConfig.source_adversary``), the most it reaches with ``ramp``.
    ramp : bool
        Raise the weight from 0 with :func:`dann_ramp` over the training steps.
    total_steps, steps_per_epoch : int
        Training steps of the whole run and of one epoch (for the ramp).
    seed : int
        Seeds the head's initial weights from a generator of its own, so that the run's other random
        draws are those of a run without the head.

    Raises
    ------
    ConfigError
        When no class has two sources: there would be nothing to tell apart.

    Examples
    --------
    Reals from ``faces`` and ``cam``, fakes from ``faces`` and ``gen``; ten steps, five an epoch:

    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> adversary = SourceAdversary(
    ...     net, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 2]), ["faces", "cam", "gen"],
    ...     weight=0.3, ramp=True, total_steps=10, steps_per_epoch=5, seed=0,
    ... )
    >>> adversary.groups()
    {'real': ['faces', 'cam'], 'fake': ['faces', 'gen']}
    >>> adversary.set_epoch(1)
    >>> round(adversary.weight_at(0), 3)  # step 5 of 10: DANN's ramp is at 0.987 of the weight
    0.296
    >>> with adversary.features_of(net) as seen:
    ...     logits = net(torch.rand(2, 3, 2, 2))
    >>> batch = adversary.batch(seen[0], torch.tensor([0.0, 1.0]), torch.tensor([1, 3]), 0.296)
    >>> batch.counted, batch.counts.tolist()
    (2, [[0, 1, 0], [0, 0, 1]])
    """

    def __init__(
        self,
        model: nn.Module,
        labels: torch.Tensor,
        sources: torch.Tensor,
        names: Sequence[str],
        *,
        weight: float,
        ramp: bool,
        total_steps: int,
        steps_per_epoch: int,
        seed: int,
    ):
        self.names = list(names)
        self.allowed = class_sources(labels, sources, len(self.names))
        if not bool((self.allowed.sum(dim=1) >= 2).any()):
            raise ConfigError(
                f"source_adversary needs two sources or more within a class to tell apart; this mix has "
                f"{', '.join(self.names)}. Add a source (--data PATH) or train with source_adversary=0"
            )
        self.sources = sources.long()
        self.layer = final_linear(model)
        with torch.random.fork_rng(devices=[]):  # the global generator goes on as if the head did not exist
            torch.manual_seed(seed)
            self.head = nn.Linear(self.layer.in_features, len(self.names))
        self.head.to(self.layer.weight.device)
        self.net: nn.Module = self.head  # the loop wraps it in DistributedDataParallel when distributed
        self.weight, self.ramp = weight, ramp
        self.total_steps, self.steps_per_epoch = max(total_steps, 1), steps_per_epoch
        self.epoch = 0

    def groups(self, class_names: Sequence[str] = ("real", "fake")) -> dict[str, list[str]]:
        """The sources told apart within each class, by class name; a class with one source is left out."""
        return {
            class_names[c]: [n for n, held in zip(self.names, row.tolist(), strict=True) if held]
            for c, row in enumerate(self.allowed)
            if int(row.sum()) >= 2
        }

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose steps follow (the ramp counts steps from the start of training)."""
        self.epoch = epoch

    def weight_at(self, batch: int) -> float:
        """The reversal weight at batch ``batch`` (0-based) of the current epoch."""
        if not self.ramp:
            return self.weight
        step = self.epoch * self.steps_per_epoch + batch
        return self.weight * dann_ramp(min(step / self.total_steps, 1.0))

    @contextlib.contextmanager
    def features_of(self, model: nn.Module) -> Iterator[list[torch.Tensor]]:
        """Within the block, each forward pass of ``model`` appends its last layer's input ``(B, C)`` to the
        list yielded; the hook is removed on leaving, so validation, EMA copies and exports never see it."""
        captured: list[torch.Tensor] = []
        handle = self.layer.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
        try:
            yield captured
        finally:
            handle.remove()

    def batch(
        self, features: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, weight: float
    ) -> SourceBatch:
        """The head's figures on one batch, its features behind a reversal of ``weight``.

        ``indices`` are the samples' dataset indices (the loader yields them), so each sample's source is
        looked up without the data pipeline drawing or carrying anything more.
        """
        logits = self.net(reverse_gradient(features, weight))  # (B, K)
        return source_loss(logits, labels, self.sources[indices], self.allowed)
