import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from ml.modeling import metrics as m
from ml.modeling import specs

PROPERTY = settings(max_examples=40, deadline=None)
SCORE_GRID = [i / 8 for i in range(9)]  # few distinct values, so ties are common


@st.composite
def binary_cases(draw, min_size=2, max_size=40):
    """0/1 labels with both classes and scores on a coarse grid (many ties, 0 and 1 included)."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if y.min() == y.max():
        y[draw(st.integers(0, n - 1))] = 1 - y[0]
    p = np.array(draw(st.lists(st.sampled_from(SCORE_GRID), min_size=n, max_size=n)))
    return y, p


@st.composite
def regression_cases(draw, min_size=2, max_size=40):
    """Revenue-like y (many zeros, some ties) and predictions with ties."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.5, 7.0, 20.0]),
                               min_size=n, max_size=n)))
    y[0] = 3.0  # varies and has a positive total
    yhat = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=float)
    return y, yhat


def random_binary(n=3000, seed=0, signal=1.0, decimals=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(1 / (1 + np.exp(-(signal * (y - 0.5) + rng.normal(size=n)))), decimals)
    return y, p


def kaggle_gini(actual, pred):
    """The Kaggle reference implementation (ties broken by row order)."""
    rows = np.c_[actual, pred, np.arange(len(actual))]
    rows = rows[np.lexsort((rows[:, 2], -rows[:, 1]))]
    gini = rows[:, 0].cumsum().sum() / rows[:, 0].sum() - (len(actual) + 1) / 2
    return gini / len(actual)


# ---------------------------------------------------------------- agreement with scikit-learn


def assert_binary_metrics_match_sklearn(y, p):
    assert m.roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert m.pr_auc(y, p) == pytest.approx(sk.average_precision_score(y, p), abs=1e-12)
    assert m.brier(y, p) == pytest.approx(sk.brier_score_loss(y, p), abs=1e-12)
    assert m.log_loss(y, p, eps=np.finfo(float).eps) == pytest.approx(sk.log_loss(y, p),
                                                                       rel=1e-12)


@PROPERTY
@given(binary_cases())
def test_binary_metrics_match_sklearn(case):
    assert_binary_metrics_match_sklearn(*case)


@pytest.mark.parametrize("decimals", [1, 2, 6])
def test_binary_metrics_match_sklearn_on_larger_data(decimals):
    y, p = random_binary(decimals=decimals)
    assert_binary_metrics_match_sklearn(y, np.clip(p, 0.01, 0.99))


def test_log_loss_clips_at_eps():
    y, p = np.array([0, 1]), np.array([1.0, 1.0])
    assert m.log_loss(y, p) == pytest.approx(-math.log(1 - (1 - 1e-15)) / 2)
    assert m.log_loss(y, p, eps=np.finfo(float).eps) == pytest.approx(sk.log_loss(y, p))


def test_auc_metrics_ignore_row_order_of_ties():
    y, p = np.array([0, 1, 0, 1, 1, 0]), np.array([0.5, 0.5, 0.2, 0.9, 0.5, 0.5])
    flipped = slice(None, None, -1)
    assert m.roc_auc(y, p) == m.roc_auc(y[flipped], p[flipped])
    assert m.pr_auc(y, p) == m.pr_auc(y[flipped], p[flipped])


@PROPERTY
@given(regression_cases())
def test_rmse_and_mae_match_sklearn(case):
    y, yhat = case
    assert m.rmse(y, yhat) == pytest.approx(sk.root_mean_squared_error(y, yhat), abs=1e-12)
    assert m.mae(y, yhat) == pytest.approx(sk.mean_absolute_error(y, yhat), abs=1e-12)


# ---------------------------------------------------------------- calibration


def test_ece_hand_computed():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    # quantile, 2 bins: {.1,.2,.3} mean p .2 vs 1/3; {.4,.8,.9} mean p .7 vs 2/3
    assert m.expected_calibration_error(y, p, n_bins=2) == pytest.approx(
        0.5 * (1 / 3 - 0.2) + 0.5 * (0.7 - 2 / 3))
    # uniform, 2 bins: p < .5 (4 rows, mean p .25 vs .25); p >= .5 (2 rows, .85 vs 1)
    assert m.expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(
        2 / 6 * 0.15)


def test_ece_quantile_bins_keep_ties_together():
    # The three tied 0.2 scores share bin 0 (3 rows: mean p .2 vs 1/3), 0.6 is alone in bin 1.
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.2, 0.2, 0.6])
    assert m.expected_calibration_error(y, p, n_bins=2) == pytest.approx(
        3 / 4 * (1 / 3 - 0.2) + 1 / 4 * 0.4)


@PROPERTY
@given(binary_cases(min_size=5))
def test_ece_uniform_matches_sklearn_calibration_curve(case):
    y, p = case
    prob_true, prob_pred = calibration_curve(y, p, n_bins=5, strategy="uniform")
    counts, _ = np.histogram(p, bins=np.linspace(0, 1, 6))
    expected = np.sum(counts[counts > 0] * np.abs(prob_true - prob_pred)) / len(y)
    assert m.expected_calibration_error(y, p, n_bins=5, strategy="uniform") == pytest.approx(
        expected, abs=1e-12)


def test_ece_is_zero_for_calibrated_bins_and_one_bin_is_the_mean_gap():
    y, p = np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])
    assert m.expected_calibration_error(y, p) == 0
    y, p = random_binary()
    assert m.expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(y.mean() - p.mean()))


def test_decile_calibration_table_and_error():
    y = np.array([0.0, 2.0, 1.0, 3.0, 10.0, 6.0])
    yhat = np.array([1.0, 1.0, 2.0, 2.0, 5.0, 5.0])
    table = m.decile_calibration(y, yhat, n_bins=3)
    assert table["bin"].tolist() == [0, 1, 2]
    assert table["count"].tolist() == [2, 2, 2]
    assert table["mean_pred"].tolist() == [1.0, 2.0, 5.0]
    assert table["mean_actual"].tolist() == [1.0, 2.0, 8.0]
    # ten distinct predictions, one per decile: mean |y - yhat| over mean(y)
    y = np.array([0.0, 2.0, 1.0, 3.0, 10.0, 6.0, 0.0, 0.0, 4.0, 4.0])
    yhat = np.array([1.0, 1.5, 2.0, 2.5, 5.0, 5.5, 0.0, 0.5, 3.0, 3.5])
    assert m.decile_calibration_error(y, yhat) == pytest.approx(
        np.abs(y - yhat).mean() / y.mean())


@PROPERTY
@given(regression_cases(min_size=3))
def test_decile_calibration_error_summarises_the_table(case):
    y, yhat = case
    table = m.decile_calibration(y, yhat)
    assert table["count"].sum() == len(y)
    weighted_gap = np.sum(table["count"] * (table["mean_actual"] - table["mean_pred"]).abs())
    assert m.decile_calibration_error(y, yhat) == pytest.approx(
        weighted_gap / len(y) / y.mean(), abs=1e-12)


# ---------------------------------------------------------------- lift and capture


def test_lift_and_capture_hand_computed():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(0.9, 0.0, 10)
    # top 20% = first two rows: 1 positive of 2 (rate .5) vs 3 of 10 overall
    assert m.top_decile_lift(y, p, share=0.2) == pytest.approx(0.5 / 0.3)
    assert m.top_decile_capture(y, p, share=0.2) == pytest.approx(1 / 3)
    # top 10% = first row, a positive
    assert m.top_decile_lift(y, p) == pytest.approx(1 / 0.3)
    assert m.top_decile_capture(y, p) == pytest.approx(1 / 3)


def test_lift_share_of_max_is_comparable_across_base_rates():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(0.9, 0.0, 10)
    # top 20%: lift 0.5/0.3; the best possible puts 2 positives there: lift 1/0.3
    assert m.lift_share_of_max(y, p, share=0.2) == pytest.approx((0.5 / 0.3 - 1) / (1 / 0.3 - 1))
    assert m.lift_share_of_max(y, p) == pytest.approx(1.0)  # the top row is a positive
    # a high base rate (8 of 10 positive): a perfect ranking has lift 1.25 and scores 1,
    # the reversed ranking puts negatives on top and scores below 0
    high = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    assert m.top_decile_lift(high, p, share=0.2) == pytest.approx(1.25)
    assert m.lift_share_of_max(high, p, share=0.2) == pytest.approx(1.0)
    assert m.lift_share_of_max(high, -p, share=0.2) == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="needs both classes"):
        m.lift_share_of_max(np.ones(10), p)


def test_top_share_cuts_ties_in_row_order():
    p = np.array([0.9, 0.5, 0.5, 0.5])
    assert m.top_decile_capture(np.array([0, 0, 1, 1]), p, share=0.5) == 0
    assert m.top_decile_capture(np.array([0, 1, 0, 1]), p, share=0.5) == 0.5


def test_top_share_rounds_half_up_and_takes_at_least_one_row():
    y = np.zeros(25)
    y[2] = 1
    assert m.top_decile_capture(y, -np.arange(25.0)) == 1  # 2.5 rows -> top 3
    assert m.top_decile_capture(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.0])) == 1


# ---------------------------------------------------------------- normalized Gini


def test_normalized_gini_perfect_reversed_and_hand_computed():
    y = np.array([1.0, 2.0, 3.0, 10.0])
    assert m.normalized_gini(y, y) == pytest.approx(1)
    assert m.normalized_gini(y, 2 * y + 5) == pytest.approx(1)
    assert m.normalized_gini(y, -y) == pytest.approx(-1)
    # ranked by yhat: y = [2, 3, 1]; Gini 13/18 - 2/3 = 1/18, perfect Gini 14/18 - 2/3 = 2/18
    assert m.normalized_gini([1.0, 2.0, 3.0], [0.0, 2.0, 1.0]) == pytest.approx(0.5)


@PROPERTY
@given(st.integers(2, 50), st.integers(0, 2**16))
def test_normalized_gini_equals_kaggle_without_ties(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.gamma(1.0, size=n) * (rng.random(n) < 0.6)
    y[0] = 1.0 + y.max()
    yhat = y + rng.normal(size=n)
    expected = kaggle_gini(y, yhat) / kaggle_gini(y, y)
    assert m.normalized_gini(y, yhat) == pytest.approx(expected, abs=1e-12)


def test_normalized_gini_shares_outcome_within_ties():
    y = np.array([5.0, 0.0, 1.0, 0.0, 4.0, 2.0])
    yhat = np.array([3.0, 3.0, 2.0, 2.0, 2.0, 1.0])
    # Tied predictions get the average outcome of their tie, whatever the row order.
    averaged = np.array([2.5, 2.5, 5 / 3, 5 / 3, 5 / 3, 2.0])
    expected = kaggle_gini(averaged, yhat) / kaggle_gini(y, y)
    assert m.normalized_gini(y, yhat) == pytest.approx(expected)
    assert m.normalized_gini(y[::-1], yhat[::-1]) == pytest.approx(expected)


def test_normalized_gini_near_zero_for_random_order():
    rng = np.random.default_rng(3)
    y = rng.gamma(0.5, size=20_000)
    assert abs(m.normalized_gini(y, rng.random(y.size))) < 0.03


# ---------------------------------------------------------------- the weighted kernels


@PROPERTY
@given(binary_cases(), regression_cases(), st.integers(0, 2**16))
def test_weighted_metric_equals_metric_on_resampled_rows(binary, regression, seed):
    """The bootstrap's premise: weighting rows by draw counts gives the metric of the
    resampled rows (ties, duplicates and zero counts included)."""
    counts = np.random.default_rng(seed).integers(0, 4, 40).astype(np.int32)
    for name, prepare in m._PREPARE.items():
        y, score = regression if name in m.REGRESSION_METRICS else binary
        c = counts[:len(y)]
        rows = np.repeat(np.arange(len(y)), c)
        metric = (m.BINARY_METRICS | m.REGRESSION_METRICS)[name]
        try:
            expected = metric(y[rows], score[rows])
        except ValueError:  # the resample lost a class or all its outcome
            continue
        got = prepare(y, score).evaluate(c[None, :])[0]
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-12), name


def test_resampled_counts_keep_strata_sizes():
    groups = np.repeat([3, 1, 2], [5, 7, 11])
    strata = m._strata(groups, groups.size)
    counts = m._resample_counts(np.random.default_rng(0), strata, groups.size, 50)
    for g in (1, 2, 3):
        assert (counts[:, groups == g].sum(axis=1) == (groups == g).sum()).all()


# ---------------------------------------------------------------- bootstrap


@pytest.fixture(scope="module")
def two_models():
    rng = np.random.default_rng(11)
    n = 4000
    signal = rng.normal(size=n)
    y = (signal + rng.normal(size=n) > 0).astype(int)
    strong, twin, weak = (1 / (1 + np.exp(-2 * (signal + noise * rng.normal(size=n))))
                          for noise in (0.3, 0.3, 1.5))
    folds = rng.integers(0, 4, n)
    return y, strong, weak, twin, folds


def test_bootstrap_ci_brackets_gain_and_excludes_zero_for_better_model(two_models):
    y, strong, weak, _, _ = two_models
    ci = m.bootstrap_gain_ci(y, strong, weak, "roc_auc", n_boot=200)
    assert ci["gain"] == pytest.approx(m.roc_auc(y, strong) - m.roc_auc(y, weak))
    assert 0 < ci["low"] <= ci["gain"] <= ci["high"]
    assert ci["n_boot"] == 200


def test_bootstrap_ci_straddles_zero_for_equivalent_models(two_models):
    y, strong, _, twin, _ = two_models
    ci = m.bootstrap_gain_ci(y, strong, twin, "roc_auc", n_boot=200)
    assert ci["low"] < 0 < ci["high"]
    same = m.bootstrap_gain_ci(y, strong, strong, "pr_auc", n_boot=50)
    assert same == {"gain": 0.0, "low": 0.0, "high": 0.0, "n_boot": 50}


def test_bootstrap_is_reproducible_by_seed(two_models):
    y, strong, weak, _, folds = two_models
    run = lambda seed: m.bootstrap_gain_ci(y, strong, weak, "roc_auc", n_boot=100,  # noqa: E731
                                           seed=seed, groups=folds)
    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("metric", ["log_loss", "brier", "ece"])
def test_bootstrap_gain_is_positive_when_a_lower_is_better_metric_falls(two_models, metric):
    y, strong, weak, _, _ = two_models
    fn = m.BINARY_METRICS[metric]
    assert fn(y, strong) < fn(y, weak)
    ci = m.bootstrap_gain_ci(y, strong, weak, metric, n_boot=100)
    assert ci["gain"] == pytest.approx(fn(y, weak) - fn(y, strong))
    assert 0 < ci["low"] <= ci["gain"] <= ci["high"]
    flipped = m.bootstrap_gain_ci(y, weak, strong, metric, n_boot=100)
    assert flipped["high"] < 0


def test_bootstrap_within_groups_and_every_metric(two_models):
    y, strong, weak, _, folds = two_models
    for metric in m.BINARY_METRICS:
        ci = m.bootstrap_gain_ci(y, strong, weak, metric, n_boot=60, groups=folds)
        assert ci["low"] <= ci["gain"] <= ci["high"], metric
        assert ci["low"] > 0, metric


def test_bootstrap_regression_metrics():
    rng = np.random.default_rng(5)
    y = rng.gamma(0.5, size=3000) * (rng.random(3000) < 0.4)
    good, poor = y + rng.normal(size=y.size), y + 3 * rng.normal(size=y.size)
    for metric in m.REGRESSION_METRICS:
        ci = m.bootstrap_gain_ci(y, good, poor, metric, n_boot=100)
        assert 0 < ci["low"] <= ci["gain"] <= ci["high"], metric


def test_bootstrap_drops_samples_where_the_metric_is_undefined():
    y, model, baseline = [0, 1, 0, 1, 1], [0.1, 0.9, 0.3, 0.6, 0.2], [0.2, 0.3, 0.1, 0.9, 0.5]
    ci = m.bootstrap_gain_ci(y, model, baseline, "roc_auc", n_boot=300)
    assert 0 < ci["n_boot"] < 300  # a 5-row resample misses a class now and then
    assert np.isfinite([ci["low"], ci["high"]]).all()


# ---------------------------------------------------------------- drift


def test_psi_zero_for_identical_and_hand_computed_two_bins():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    assert m.population_stability_index(scores, scores) == 0
    assert m.population_stability_index(scores, rng.permutation(scores)) == 0
    # expected halves [0, 0 | 1, 1] vs actual [0 | 1, 1, 1]: (.25-.5)ln(.5) + (.75-.5)ln(1.5)
    psi = m.population_stability_index([0, 0, 1, 1], [0, 1, 1, 1], n_bins=2)
    assert psi == pytest.approx(0.25 * math.log(3))


def test_psi_grows_with_shift_and_counts_scores_outside_the_expected_range():
    rng = np.random.default_rng(1)
    expected = rng.normal(size=5000)
    psis = [m.population_stability_index(expected, rng.normal(size=5000) + shift)
            for shift in (0.0, 0.25, 0.5, 1.0)]
    assert psis[0] < 0.02
    assert psis == sorted(psis)
    assert psis[-1] > 0.2
    far = m.population_stability_index(expected, expected + 100)
    assert np.isfinite(far) and far > psis[-1]


# ---------------------------------------------------------------- contracts and bad input


def test_metric_registries():
    assert list(m.BINARY_METRICS) == ["roc_auc", "pr_auc", "log_loss", "brier", "ece",
                                      "lift_top_decile", "capture_top_decile",
                                      "lift_share_of_max"]
    assert list(m.REGRESSION_METRICS) == ["rmse", "mae", "normalized_gini", "calibration_error"]
    assert set(m.GREATER_IS_BETTER) == (set(m.BINARY_METRICS) | set(m.REGRESSION_METRICS)
                                        | set(specs.RANKING_METRICS) | set(specs.UPLIFT_METRICS))
    assert set(specs.BINARY_METRICS) == set(m.BINARY_METRICS)
    assert set(specs.REGRESSION_METRICS) == set(m.REGRESSION_METRICS)
    y, p = random_binary(500)
    assert m.binary_metrics(y, p) == {name: fn(y, p) for name, fn in m.BINARY_METRICS.items()}
    revenue = p * 10
    assert set(m.regression_metrics(revenue, revenue + 1)) == set(m.REGRESSION_METRICS)


@pytest.mark.parametrize("call, message", [
    (lambda: m.roc_auc([], []), "roc_auc: y is empty"),
    (lambda: m.roc_auc(np.zeros(1234), np.linspace(0, 1, 1234)),
     "roc_auc needs both classes; got only 0 in 1234 rows"),
    (lambda: m.pr_auc([1, 1], [0.2, 0.3]), "pr_auc needs both classes; got only 1 in 2 rows"),
    (lambda: m.brier([0, 1, 1], [0.1, 0.2]),
     "brier: length mismatch: y has 3 rows, p has 2 rows"),
    (lambda: m.log_loss([0, 1, 1], [0.1, np.nan, np.nan]),
     "log_loss: p has 2 NaN values in 3 rows"),
    (lambda: m.roc_auc([0, 1, 2], [0.1, 0.2, 0.3]), "roc_auc: y must hold 0/1 labels"),
    (lambda: m.log_loss([0, 1], [-0.1, 0.5]), "log_loss: p must be probabilities in [0, 1]"),
    (lambda: m.roc_auc([[0, 1]], [[0.1, 0.2]]), "roc_auc: y must be one-dimensional"),
    (lambda: m.top_decile_lift([0, 0], [0.1, 0.2]),
     "top_decile_lift needs at least one positive; got only 0 in 2 rows"),
    (lambda: m.top_decile_capture([0, 1], [0.1, 0.2], share=0), "share must be in (0, 1]"),
    (lambda: m.expected_calibration_error([0, 1], [0.1, 0.2], strategy="width"),
     "strategy must be 'quantile' or 'uniform'"),
    (lambda: m.expected_calibration_error([0, 1], [0.1, 0.2], n_bins=0),
     "n_bins must be a positive integer"),
    (lambda: m.rmse([1.0, np.inf], [1.0, 2.0]), "rmse: y has 1 infinite values in 2 rows"),
    (lambda: m.normalized_gini([2.0, 2.0], [1.0, 3.0]), "normalized_gini needs y that varies"),
    (lambda: m.normalized_gini([0.0, 0.0], [1.0, 3.0]),
     "normalized_gini needs a positive total of y"),
    (lambda: m.decile_calibration_error([0.0, 0.0], [1.0, 3.0]), "needs a positive mean of y"),
    (lambda: m.population_stability_index([0.1, 0.2], []),
     "population_stability_index: actual_scores is empty"),
    (lambda: m.bootstrap_gain_ci([0, 1], [0.1, 0.2], [0.3, 0.4], "auc"), "unknown metric 'auc'"),
    (lambda: m.bootstrap_gain_ci([0, 1], [0.1, 0.2], [0.3], "roc_auc"),
     "bootstrap_gain_ci, p_baseline: roc_auc: length mismatch"),
    (lambda: m.bootstrap_gain_ci([0, 1], [0.1, 0.2], [0.3, 0.4], "roc_auc", groups=[1]),
     "groups must be one-dimensional with one entry per row"),
    (lambda: m.bootstrap_gain_ci([0, 1], [0.1, 0.2], [0.3, 0.4], "roc_auc", n_boot=0),
     "n_boot must be a positive integer"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
