"""Tests for deepfake_detect.metrics.calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfake_detect.metrics.calibration import (
    calibrated_p_fake,
    fit_temperature,
    logit_for_probability,
    reliability_curve,
)
from deepfake_detect.metrics.classification import expected_calibration_error, log_loss_from_logits, sigmoid

FAST = settings(max_examples=30, deadline=None, database=None)

rates = st.floats(0.001, 0.999)
temperatures = st.floats(0.05, 20.0)
logits = st.floats(-30.0, 30.0)


def _synthetic(scale: float, n: int = 3000, seed: int = 0):
    """Labels drawn from sigmoid(true logit); the model reports ``scale * true logit``."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < sigmoid(true_logit)).astype(int)
    return y, scale * true_logit


# ------------------------------------------------------------------ fit_temperature


def test_temperature_fixes_overconfident_logits():
    y, z = _synthetic(scale=5.0)
    t = fit_temperature(y, z)
    assert 4.0 < t < 6.0
    assert log_loss_from_logits(y, z / t) < log_loss_from_logits(y, z) - 0.1


def test_temperature_below_one_for_underconfident_logits():
    y, z = _synthetic(scale=0.3)
    assert 0.2 < fit_temperature(y, z) < 0.4


@FAST
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10.0), n=st.integers(2, 60))
def test_temperature_is_optimal_on_a_grid(seed, scale, n):
    y, z = _synthetic(scale, n=n, seed=seed)
    y[0], y[-1] = 0, 1  # one class is the documented degenerate case (T = 1), tested below
    t = fit_temperature(y, z)
    assert 0.05 <= t <= 20.0
    fitted = log_loss_from_logits(y, z / t)
    for other in np.geomspace(0.05, 20.0, 25):
        assert fitted <= log_loss_from_logits(y, z / other) + 1e-6


def test_temperature_degenerate_input_returns_one():
    assert fit_temperature([1, 1, 1], [0.5, 2.0, 3.0]) == 1.0
    assert fit_temperature([0, 1, 0, 1], [2.0, 2.0, 2.0, 2.0]) == 1.0
    assert fit_temperature([0], [0.0]) == 1.0
    with pytest.raises(ValueError, match="empty"):
        fit_temperature([], [])


def test_temperature_is_deterministic():
    y, z = _synthetic(scale=3.0, n=500, seed=4)
    assert fit_temperature(y, z) == fit_temperature(y.copy(), z.copy())


# ------------------------------------------------------- prior / base-rate adjustment


def test_prior_equal_to_base_rate_is_plain_temperature_scaling():
    z = np.array([-3.0, 0.0, 1.5])
    np.testing.assert_allclose(calibrated_p_fake(z, 2.0), sigmoid(z / 2.0))
    np.testing.assert_allclose(calibrated_p_fake(z, 2.0, prior=0.3, base_rate=0.3), sigmoid(z / 2.0))


def test_prior_worked_example_from_docstring():
    # p = 0.9 at a 50% base rate, 1% fakes expected: odds 9 * 1/99 -> p = 1/12.
    assert calibrated_p_fake([math.log(9.0)], 1.0, prior=0.01)[0] == pytest.approx(1 / 12)


@FAST
@given(z=logits, t=temperatures, p1=rates, p2=rates, base_rate=rates)
def test_p_fake_monotone_in_prior(z, t, p1, p2, base_rate):
    lo, hi = sorted((p1, p2))
    a = calibrated_p_fake([z], t, prior=lo, base_rate=base_rate)[0]
    b = calibrated_p_fake([z], t, prior=hi, base_rate=base_rate)[0]
    assert a <= b
    if hi - lo > 0.01 and a > 1e-6 and b < 1 - 1e-6:  # strict away from saturation
        assert a < b


@FAST
@given(z1=logits, z2=logits, t=temperatures, prior=rates)
def test_p_fake_monotone_in_logit(z1, z2, t, prior):
    lo, hi = sorted((z1, z2))
    p = calibrated_p_fake([lo, hi], t, prior=prior)
    assert 0.0 <= p[0] <= p[1] <= 1.0


@FAST
@given(z=st.floats(-10.0, 10.0), t=temperatures, prior=rates, base_rate=rates)
def test_logit_for_probability_inverts_p_fake(z, t, prior, base_rate):
    p = float(calibrated_p_fake([z], t, prior=prior, base_rate=base_rate)[0])
    if 1e-9 < p < 1 - 1e-9:  # saturated probabilities carry no logit information
        back = logit_for_probability(p, t, prior=prior, base_rate=base_rate)
        assert back == pytest.approx(z, abs=1e-6 * t)


@FAST
@given(p=st.floats(0.01, 0.99), t=temperatures, prior=rates)
def test_p_fake_inverts_logit_for_probability(p, t, prior):
    z = logit_for_probability(p, t, prior=prior)
    assert isinstance(z, float)
    assert calibrated_p_fake([z], t, prior=prior)[0] == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), None])
def test_rates_are_validated(bad):
    with pytest.raises(ValueError, match="prior"):
        calibrated_p_fake([0.0], 1.0, prior=bad)
    with pytest.raises(ValueError, match="base_rate"):
        calibrated_p_fake([0.0], 1.0, base_rate=bad)
    with pytest.raises(ValueError, match="p must"):
        logit_for_probability(bad, 1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_temperature_is_validated(bad):
    with pytest.raises(ValueError, match="temperature"):
        calibrated_p_fake([0.0], bad)
    with pytest.raises(ValueError, match="temperature"):
        logit_for_probability(0.5, bad)


# ---------------------------------------------------------------- reliability curve


def test_reliability_curve_hand_example():
    c = reliability_curve([0, 0, 1, 0, 1], [0.1, 0.1, 0.9, 0.9, 1.0], n_bins=4)
    np.testing.assert_allclose(c["bin_edges"], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(c["bin_centers"], [0.125, 0.375, 0.625, 0.875])
    assert c["counts"].tolist() == [2, 0, 0, 3]
    np.testing.assert_allclose(c["mean_predicted"][[0, 3]], [0.1, 2.8 / 3])
    np.testing.assert_allclose(c["fraction_fake"][[0, 3]], [0.0, 2 / 3])
    assert np.isnan(c["mean_predicted"][1]) and np.isnan(c["fraction_fake"][2])


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), n_bins=st.integers(1, 20))
def test_reliability_curve_consistent_with_ece(seed, n, n_bins):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, n), rng.random(n)
    c = reliability_curve(y, p, n_bins=n_bins)
    assert c["counts"].sum() == n
    full = c["counts"] > 0
    gaps = np.abs(c["mean_predicted"][full] - c["fraction_fake"][full])
    ece = float(np.sum(c["counts"][full] / n * gaps))
    assert ece == pytest.approx(expected_calibration_error(y, p, n_bins=n_bins), abs=1e-12)
    edges = c["bin_edges"]
    mp = c["mean_predicted"][full]
    assert np.all((edges[:-1][full] <= mp) & (mp <= edges[1:][full]))
