"""The training entry point: one process, or ``nproc`` local processes of a data-parallel run.

>>> from deepfake_detect import TrainConfig, train                      # doctest: +SKIP
>>> result = train(TrainConfig(data="faces140k", epochs=3), nproc=2)     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from deepfake_detect.core.config import TrainConfig
from deepfake_detect.training.launch import launch
from deepfake_detect.training.loop import TrainResult, train_process
from deepfake_detect.training.tracking import check_tracking

__all__ = ["train", "TrainResult"]


def train(
    cfg: TrainConfig, *, nproc: int = 1, progress: bool = True, resume: str | Path | None = None
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` and write a complete run folder; the API of ``deepfake-detect train``.

    Parameters
    ----------
    cfg : TrainConfig
        Everything that decides the run; saved as the run's config.
    nproc : int
        Local processes of a data-parallel run (``--nproc``); ``cfg.batch_size`` is the global batch and must
        divide by it. 1 trains in this process (also as one rank under torchrun).
    progress : bool
        Show progress bars on stderr.
    resume : path or run id, optional
        Continue this run folder from its newest good checkpoint (see
        :func:`deepfake_detect.training.state.resume_config`); the result is bit-identical to a run that was
        never interrupted.

    Returns
    -------
    TrainResult
        ``run_dir`` is a complete run folder (see :class:`~deepfake_detect.core.runs.RunDir`).

    Raises
    ------
    MissingExtraError
        When ``cfg.tracking`` is ``mlflow`` and MLflow is not installed (before any work is done).
    """
    check_tracking(cfg)
    if nproc != 1:  # launch refuses nproc < 1 with a clear message
        return launch(cfg, nproc, progress=progress, resume=resume)
    return train_process(cfg, progress=progress, resume=resume)
