"""Tests for deepfake_detect.metrics.

Like scikit-learn's test_common: the registries METRICS and THRESHOLDS drive shared
property checks (hypothesis), followed by checks specific to each function.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from deepfake_detect.metrics import (
    binary_metrics,
    bootstrap_ci,
    brier_score_loss,
    classification_report_dict,
    expected_calibration_error,
    expected_cost,
    f1_optimal_threshold,
    log_loss_from_logits,
    min_cost_threshold,
    recall_at_fpr_score,
    sigmoid,
    threshold_at_fpr,
    threshold_at_source_fpr,
)

# Few examples per property: the suite shares 2 cores with other work and must stay fast;
# database=None keeps hypothesis from writing a .hypothesis/ folder into the repo.
FAST = settings(max_examples=30, deadline=None, database=None)


@st.composite
def labelled_scores(draw, min_size=2, max_size=30, both_classes=True):
    """Labels plus logits on a grid of odd eighths: never 0, never a midpoint, exact under TRANSFORMS.

    hypothesis picks the size, how many distinct score levels (1 = all tied) and a seed; the
    arrays come from the seed, which is ~4x cheaper than drawing every element.
    """
    n = draw(st.integers(min_size, max_size))
    levels = draw(st.sampled_from([1, 2, 3, 41]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, 2, n)
    if both_classes:
        y[0], y[-1] = 0, 1
    k = rng.integers(0, levels, n) - levels // 2
    return y, (k + 0.5) / 4.0


@st.composite
def separable(draw):
    """Perfectly separated data with a wide margin (|logit| >= 20)."""
    y, s = draw(labelled_scores())
    return y, np.where(y == 1, 20.0 + np.abs(s), -20.0 - np.abs(s))


# Strictly increasing maps that keep the grid above strictly ordered in float64.
TRANSFORMS = {
    "affine": lambda x: 3.0 * x - 2.0,
    "cubic": lambda x: x**3 + x,
    "exp": np.exp,
    "arctan": np.arctan,
}

# name -> (metric(y, logits), best value, bounded in [0, 1], rank-based, symmetric under swap+negate)
METRICS = {
    "accuracy": (lambda y, s: binary_metrics(y, s, 0.0)["accuracy"], 1.0, True, False, True),
    "balanced_accuracy": (
        lambda y, s: binary_metrics(y, s, 0.0)["balanced_accuracy"],
        1.0,
        True,
        False,
        True,
    ),
    "precision": (lambda y, s: binary_metrics(y, s, 0.0)["precision"], 1.0, True, False, False),
    "recall": (lambda y, s: binary_metrics(y, s, 0.0)["recall"], 1.0, True, False, False),
    "f1": (lambda y, s: binary_metrics(y, s, 0.0)["f1"], 1.0, True, False, False),
    "roc_auc": (lambda y, s: binary_metrics(y, s, 0.0)["roc_auc"], 1.0, True, True, True),
    "recall_at_fpr_score": (lambda y, s: recall_at_fpr_score(y, s, 0.1), 1.0, True, True, False),
    "expected_calibration_error": (
        lambda y, s: expected_calibration_error(y, sigmoid(s)),
        0.0,
        True,
        False,
        False,
    ),
    "brier_score_loss": (lambda y, s: brier_score_loss(y, sigmoid(s)), 0.0, True, False, True),
    "log_loss_from_logits": (log_loss_from_logits, 0.0, False, False, True),
    "expected_cost": (lambda y, s: expected_cost(y, s, 0.0), 0.0, True, False, True),
}

# name -> (threshold(y, logits), gives a perfect split on separable data)
THRESHOLDS = {
    "f1_optimal_threshold": (f1_optimal_threshold, True),
    "min_cost_threshold": (min_cost_threshold, True),
    "min_cost_threshold[fn=5,prior=0.1]": (
        lambda y, s: min_cost_threshold(y, s, cost_fp=1.0, cost_fn=5.0, prior=0.1),
        True,
    ),
    "threshold_at_fpr[0]": (lambda y, s: threshold_at_fpr(y, s, 0.0), True),
    "threshold_at_fpr[0.2]": (lambda y, s: threshold_at_fpr(y, s, 0.2), False),
}


# ------------------------------------------------------------- common metric checks


@pytest.mark.parametrize("name", METRICS)
@FAST
@given(data=labelled_scores())
def test_metric_range(name, data):
    fn, _, bounded, _, _ = METRICS[name]
    value = fn(*data)
    assert isinstance(value, float)
    assert value >= 0.0
    if bounded:
        assert value <= 1.0


@pytest.mark.parametrize("name", METRICS)
@FAST
@given(data=separable())
def test_metric_perfect_and_inverted(name, data):
    fn, best, _, _, _ = METRICS[name]
    y, s = data
    assert fn(y, s) == pytest.approx(best, abs=1e-6)
    # Perfectly wrong logits must score clearly worse than perfect ones.
    assert abs(fn(y, -s) - best) > 0.1


@pytest.mark.parametrize("name", [n for n, spec in METRICS.items() if spec[3]])
@FAST
@given(data=labelled_scores(), transform=st.sampled_from(sorted(TRANSFORMS)))
def test_rank_metric_invariant_to_increasing_transform(name, data, transform):
    fn = METRICS[name][0]
    y, s = data
    assert fn(y, TRANSFORMS[transform](s)) == pytest.approx(fn(y, s), abs=1e-12)


@pytest.mark.parametrize("name", [n for n, spec in METRICS.items() if spec[4]])
@FAST
@given(data=labelled_scores())
def test_metric_symmetric_under_label_swap_and_negation(name, data):
    fn = METRICS[name][0]
    y, s = data
    assert fn(1 - y, -s) == pytest.approx(fn(y, s), abs=1e-12)


@pytest.mark.parametrize("name", METRICS)
def test_metric_rejects_empty_and_bad_input(name):
    fn = METRICS[name][0]
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="only 0"):
        fn([0, 2], [0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        fn([0, 1], [0.5])


# ---------------------------------------------------------- common threshold checks


def _verdicts(s, t):
    return s >= t


@pytest.mark.parametrize("name", THRESHOLDS)
@FAST
@given(data=labelled_scores())
def test_threshold_is_float_off_the_samples(name, data):
    fn = THRESHOLDS[name][0]
    y, s = data
    t = fn(y, s)
    assert isinstance(t, float) and math.isfinite(t)
    # Placed between sample scores, so a tiny perturbation cannot flip a verdict.
    gap = np.min(np.abs(s - t))
    assert gap > 0
    eps = gap / 2
    np.testing.assert_array_equal(_verdicts(s, t - eps), _verdicts(s, t + eps))


@pytest.mark.parametrize("name", THRESHOLDS)
@FAST
@given(data=labelled_scores(), transform=st.sampled_from(sorted(TRANSFORMS)))
def test_threshold_verdicts_invariant_to_increasing_transform(name, data, transform):
    fn = THRESHOLDS[name][0]
    y, s = data
    g = TRANSFORMS[transform](s)
    np.testing.assert_array_equal(_verdicts(s, fn(y, s)), _verdicts(g, fn(y, g)))


@pytest.mark.parametrize("name", THRESHOLDS)
@FAST
@given(data=labelled_scores(), seed=st.integers(0, 2**32 - 1))
def test_threshold_invariant_to_sample_order(name, data, seed):
    fn = THRESHOLDS[name][0]
    y, s = data
    perm = np.random.default_rng(seed).permutation(y.size)
    assert fn(y[perm], s[perm]) == fn(y, s)


@pytest.mark.parametrize("name", [n for n, spec in THRESHOLDS.items() if spec[1]])
@FAST
@given(data=separable())
def test_threshold_splits_separable_data_perfectly(name, data):
    fn = THRESHOLDS[name][0]
    y, s = data
    np.testing.assert_array_equal(_verdicts(s, fn(y, s)), y == 1)


@pytest.mark.parametrize("name", THRESHOLDS)
def test_threshold_rejects_empty(name):
    with pytest.raises(ValueError, match="empty"):
        THRESHOLDS[name][0]([], [])


# ------------------------------------------------------------------ binary_metrics


def test_confusion_matrix_layout_and_inclusive_threshold():
    y = [0, 0, 1, 1, 1]
    z = [-1.0, 2.0, 3.0, -2.0, 0.0]  # the 0.0 sits exactly on the threshold: fake
    m = binary_metrics(y, z, 0.0)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]  # [[tn, fp], [fn, tp]]
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)


def test_binary_metrics_single_class_is_explicit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warnings leak out
        m = binary_metrics([0, 0, 0], [-1.0, 0.5, -2.0], 0.0)
    assert m["confusion_matrix"] == [[2, 1], [0, 0]]
    assert math.isnan(m["roc_auc"])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)


@FAST
@given(data=labelled_scores(), t=st.sampled_from([-1.0, 0.0, 1.0]))
def test_binary_metrics_agree_with_sklearn(data, t):
    y, s = data
    pred = (s >= t).astype(int)
    m = binary_metrics(y, s, t)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))


def test_classification_report_dict_always_has_both_classes():
    r = classification_report_dict([0, 0], [1.0, -1.0], 0.0, class_names=("real", "fake"))
    assert r["fake"]["support"] == 0
    assert r["real"]["recall"] == 0.5
    assert r["accuracy"] == 0.5
    with pytest.raises(ValueError, match="class_names"):
        classification_report_dict([0, 1], [0.0, 1.0], 0.0, class_names=("a",))


# ---------------------------------------------------------------------- thresholds


def test_f1_threshold_hand_example():
    # F1 by cut: >=6: .5, >=5: .8, >=4: .667, >=3: .857 (best), >=2: .75, >=1: .667
    assert f1_optimal_threshold([0, 0, 1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == 2.5


def test_f1_threshold_ties_prefer_higher_threshold():
    # Cuts >=4 and >=1 both give F1 = 2/3; the higher one (fewer images flagged) wins.
    assert f1_optimal_threshold([1, 0, 0, 1], [1.0, 2.0, 3.0, 4.0]) == 3.5


def test_f1_threshold_without_fakes_flags_nothing():
    s = np.array([-1.0, 0.5, 2.0])
    assert not np.any(s >= f1_optimal_threshold([0, 0, 0], s))


@FAST
@given(data=labelled_scores())
def test_f1_threshold_matches_brute_force(data):
    y, s = data

    def f1_at(t):
        return binary_metrics(y, s, t)["f1"]  # cross-checked against sklearn above

    best = max(f1_at(c) for c in np.r_[s, np.inf])
    assert f1_at(f1_optimal_threshold(y, s)) == pytest.approx(best)


def test_min_cost_threshold_moves_down_when_misses_cost_more():
    y, s = [0, 0, 1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert min_cost_threshold(y, s) == 4.5
    assert min_cost_threshold(y, s, cost_fn=10.0) == 2.5
    assert min_cost_threshold(y, s, cost_fp=10.0) == 4.5


@FAST
@given(
    data=labelled_scores(),
    cost_fp=st.sampled_from([0.5, 1.0, 3.0]),
    cost_fn=st.sampled_from([0.5, 1.0, 7.0]),
    prior=st.sampled_from([None, 0.01, 0.3, 0.9]),
)
def test_min_cost_threshold_beats_every_cut(data, cost_fp, cost_fn, prior):
    y, s = data
    kw = {"cost_fp": cost_fp, "cost_fn": cost_fn, "prior": prior}
    chosen = expected_cost(y, s, min_cost_threshold(y, s, **kw), **kw)
    for c in np.r_[s, np.inf]:
        assert chosen <= expected_cost(y, s, c, **kw) + 1e-12


@FAST
@given(data=labelled_scores())
def test_min_cost_prior_none_equals_sample_share(data):
    y, s = data
    assert min_cost_threshold(y, s, cost_fn=2.0) == min_cost_threshold(y, s, cost_fn=2.0, prior=y.mean())


def test_min_cost_rejects_bad_arguments():
    with pytest.raises(ValueError, match="both real"):
        min_cost_threshold([1, 1], [0.0, 1.0], prior=0.5)
    with pytest.raises(ValueError, match="prior"):
        min_cost_threshold([0, 1], [0.0, 1.0], prior=1.5)
    with pytest.raises(ValueError, match="cost_fp"):
        min_cost_threshold([0, 1], [0.0, 1.0], cost_fp=-1.0)


def test_expected_cost_hand_example():
    y, z = [0, 0, 1, 1], [1.0, -1.0, -1.0, 2.0]  # one FP, one FN
    assert expected_cost(y, z, 0.0, cost_fp=1.0, cost_fn=3.0) == 1.0
    assert expected_cost(y, z, 0.0, cost_fp=1.0, cost_fn=3.0, prior=0.1) == pytest.approx(
        0.9 * 0.5 + 0.3 * 0.5
    )


@FAST
@given(data=labelled_scores(), target=st.sampled_from([0.0, 0.05, 0.1, 0.29, 0.5, 1.0]))
def test_threshold_at_fpr_meets_target_and_is_lowest(data, target):
    y, s = data
    t = threshold_at_fpr(y, s, target)
    reals = s[y == 0]
    assert np.mean(reals >= t) <= target
    lower = s[s < t]
    if lower.size:  # moving down to the next sample score would break the target
        assert np.mean(reals >= lower.max()) > target


def test_threshold_at_fpr_hand_example_and_errors():
    y, z = [0, 0, 0, 0, 1, 1], [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]
    assert threshold_at_fpr(y, z, 0.0) == 5.5
    assert threshold_at_fpr(y, z, 0.25) == 3.5
    assert recall_at_fpr_score(y, z, 0.0) == 0.5
    assert recall_at_fpr_score(y, z, 0.25) == 1.0
    with pytest.raises(ValueError, match="at least one real"):
        threshold_at_fpr([1, 1], [0.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="target_fpr"):
        threshold_at_fpr(y, z, 1.5)
    assert math.isnan(recall_at_fpr_score([0, 0], [0.0, 1.0], 0.1))


@FAST
@given(
    data=labelled_scores(),
    seed=st.integers(0, 1000),
    target=st.sampled_from([0.0, 0.05, 0.1, 0.29, 0.5, 1.0]),
)
def test_threshold_at_source_fpr_meets_the_target_on_every_source_and_is_lowest(data, seed, target):
    y, s = data
    sources = np.random.default_rng(seed).choice(["ffhq", "web", "utk"], size=y.size)
    t = threshold_at_source_fpr(y, s, sources, target)
    rates = {n: np.mean(s[(y == 0) & (sources == n)] >= t) for n in set(sources[y == 0])}
    assert max(rates.values()) <= target
    lower = s[s < t]
    if lower.size:  # the next sample score down breaks the target for some source
        assert any(np.mean(s[(y == 0) & (sources == n)] >= lower.max()) > target for n in rates)


def test_threshold_at_source_fpr_protects_a_small_source_that_a_pooled_fpr_outvotes():
    # 100 sharp reals far below the fakes, and 10 soft reals of which 3 score among the fakes.
    sharp, soft = np.linspace(-5, -1, 100), np.r_[np.linspace(-4, -2, 7), [1.5, 2.5, 3.5]]
    fakes = np.linspace(1.0, 6.0, 50)
    y = np.r_[np.zeros(110), np.ones(50)]
    s = np.r_[sharp, soft, fakes]
    sources = np.array(["ffhq"] * 100 + ["web"] * 10 + ["gen"] * 50)
    pooled, per_source = threshold_at_fpr(y, s, 0.05), threshold_at_source_fpr(y, s, sources, 0.05)
    assert np.mean(soft >= pooled) == pytest.approx(0.3)  # pooled 3/110 < 5%, yet 30% of the web reals
    assert np.mean(soft >= per_source) == 0.0 and per_source == pytest.approx((3.5 + s[s > 3.5].min()) / 2)
    with pytest.raises(ValueError, match="entries"):
        threshold_at_source_fpr(y, s, sources[:-1], 0.05)
    with pytest.raises(ValueError, match="at least one real"):
        threshold_at_source_fpr([1, 1], [0.0, 1.0], ["a", "a"], 0.05)


# ---------------------------------------------------- probabilities and calibration


def test_sigmoid_is_stable_and_symmetric():
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = sigmoid(x)
    np.testing.assert_allclose(p + sigmoid(-x), 1.0)
    assert p[0] == 0.0 and p[-1] == 1.0 and p[3] == 0.5


def test_log_loss_from_logits_matches_sklearn_and_is_stable():
    rng = np.random.default_rng(0)
    y, z = rng.integers(0, 2, 200), rng.normal(0, 3, 200)
    assert log_loss_from_logits(y, z) == pytest.approx(skm.log_loss(y, sigmoid(z)))
    # sklearn clips probabilities; from logits the loss of a confident miss is exact.
    assert log_loss_from_logits([1, 0], [-800.0, 800.0]) == pytest.approx(800.0)


def test_brier_matches_definition():
    y, p = np.array([0, 1, 1]), np.array([0.2, 0.6, 1.0])
    assert brier_score_loss(y, p) == pytest.approx(np.mean((p - y) ** 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score_loss([0, 1], [0.5, 1.5])


def test_ece_hand_example_and_bin_edges():
    assert expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], n_bins=10) == pytest.approx(0.25)
    # p = 1.0 falls in the last (closed) bin; p = 0.5 opens the upper bin of two.
    assert expected_calibration_error([1, 1], [1.0, 0.5], n_bins=2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)


def test_ece_small_for_calibrated_and_large_for_overconfident():
    rng = np.random.default_rng(1)
    p = rng.random(20_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02
    overconfident = sigmoid(5.0 * np.log(p / (1 - p)))
    assert expected_calibration_error(y, overconfident) > 0.1


# ------------------------------------------------------------------------ bootstrap


def _auc(y, s):
    return binary_metrics(y, s, 0.0)["roc_auc"]


def _bootstrap_data(n=120, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    return y, rng.normal(0, 1, n) + 1.2 * y


def test_bootstrap_ci_contains_estimate_and_is_reproducible():
    y, s = _bootstrap_data()
    low, high = bootstrap_ci(y, s, _auc, n_resamples=200, seed=7)
    assert 0.0 <= low < _auc(y, s) < high <= 1.0
    assert bootstrap_ci(y, s, _auc, n_resamples=200, seed=7) == (low, high)
    assert bootstrap_ci(y, s, _auc, n_resamples=200, seed=8) != (low, high)
    narrow = bootstrap_ci(y, s, _auc, n_resamples=200, seed=7, confidence=0.5)
    assert low < narrow[0] <= narrow[1] < high


def test_bootstrap_is_stratified_by_class():
    y, s = _bootstrap_data(n=40)
    seen = []

    def n_fakes(yy, ss):
        seen.append((yy.size, int(yy.sum())))
        return 0.0

    bootstrap_ci(y, s, n_fakes, n_resamples=50)
    assert set(seen) == {(y.size, int(y.sum()))}


def test_bootstrap_degenerate_and_bad_arguments():
    assert all(math.isnan(v) for v in bootstrap_ci([1, 1, 1], [0.1, 0.2, 0.3], _auc, n_resamples=5))
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([], [], _auc)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0, 1], [0.0, 1.0], _auc, confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([0, 1], [0.0, 1.0], _auc, n_resamples=0)
