"""Calibration, one owner: what turns a network's logits into an honest ``p_fake`` and verdict.

* :mod:`~deepfake_detect.metrics.calibration.temperature`: temperature scaling, the base-rate (prior)
  adjustment, and the ECE and Brier score before and after;
* :mod:`~deepfake_detect.metrics.calibration.fit`: the temperature, threshold and base rate a model stores,
  fitted on its validation scores (:func:`calibrate_on_validation`);
* :mod:`~deepfake_detect.metrics.calibration.band`: the "uncertain" band around the threshold, its verdicts and
  the checkpoint keys that store it.

Everything here is a pure function of scores and labels. Scoring the faces is left to the callers: training
(:mod:`deepfake_detect.training.loop`, :mod:`deepfake_detect.training.band`) and ``evaluation``
(``calibrate-abstention``, the int8 refit); :class:`~deepfake_detect.inference.network.Network` applies what
they stored.
"""

from deepfake_detect.metrics.calibration.band import (
    LAUNDER_SEED,
    abstention_band,
    band_metadata,
    band_verdicts,
    coverage_and_precision,
    two_way_verdicts,
)
from deepfake_detect.metrics.calibration.fit import calibrate_on_validation
from deepfake_detect.metrics.calibration.temperature import (
    calibrated_p_fake,
    calibration_effect,
    fit_temperature,
    logit_for_probability,
    reliability_curve,
)

__all__ = [
    "LAUNDER_SEED",
    "abstention_band",
    "band_metadata",
    "band_verdicts",
    "calibrate_on_validation",
    "calibrated_p_fake",
    "calibration_effect",
    "coverage_and_precision",
    "fit_temperature",
    "logit_for_probability",
    "reliability_curve",
    "two_way_verdicts",
]
