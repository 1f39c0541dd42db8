"""Meta-learners on a randomised campaign whose individual effects are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.uplift.learners import (
    CalibratedUplift,
    UpliftError,
    build_uplift_learner,
    calibration_slope,
)
from ml.uplift.metrics import qini_coefficient, uplift_at_capacity

NUMERIC = ["recency", "frequency", "noise"]
CATEGORICAL = ["region"]
SMALL = {"base": {"kind": "xgboost", "params": {"n_estimators": 80, "max_depth": 3,
                                                "learning_rate": 0.1}},
         "effect": {"kind": "xgboost", "params": {"objective": "reg:squarederror",
                                                  "n_estimators": 60, "max_depth": 2,
                                                  "learning_rate": 0.1}}}


def world(n: int, seed: int, treated_share: float = 0.5):
    """Churn risk rises with recency; contact helps only customers of middling recency in
    the north (persuadable), does nothing for the very recent (they stay anyway) nor the
    long gone (lost causes), and drives away frequent buyers in the south (sleeping dogs).
    So the customers most likely to churn are not those contact helps."""
    rng = np.random.default_rng(seed)
    recency = rng.uniform(0, 1, n)
    frequency = rng.uniform(0, 1, n)
    region = rng.choice(["north", "south"], n)
    retain = 0.9 - 0.7 * recency
    effect = np.where((recency > 0.3) & (recency < 0.7) & (region == "north"), 0.3, 0.0)
    effect = np.where((frequency > 0.7) & (region == "south"), -0.15, effect)
    treated = rng.random(n) < treated_share
    y = (rng.random(n) < np.clip(retain + treated * effect, 0, 1)).astype(float)
    X = pd.DataFrame({"recency": recency, "frequency": frequency, "noise": rng.normal(size=n),
                      "region": region})
    return X, treated, y, effect


def fitted(kind: str, X, treated, y, params=SMALL):
    params = {k: v for k, v in params.items() if kind == "x_learner" or k != "effect"}
    return build_uplift_learner(kind, params, NUMERIC, CATEGORICAL, 90).fit(X, treated, y)


@pytest.fixture(scope="module")
def campaigns():
    return world(6000, seed=1), world(4000, seed=2)


@pytest.mark.parametrize("kind", ["t_learner", "x_learner"])
def test_meta_learners_find_whom_contact_helps_and_churn_risk_does_not(campaigns, kind):
    (X, treated, y, _), (X_test, treated_test, y_test, effect) = campaigns
    tau = fitted(kind, X, treated, y).predict(X_test)
    churn = fitted("churn_rank", X, treated, y).predict(X_test)
    assert np.corrcoef(tau, effect)[0, 1] > 0.5
    assert np.corrcoef(churn, effect)[0, 1] < 0.3
    # out of sample, on observed outcomes only (as the back-test measures it)
    assert (qini_coefficient(y_test, treated_test, tau)
            > qini_coefficient(y_test, treated_test, churn) + 0.05)
    assert (uplift_at_capacity(y_test, treated_test, tau, 0.2)
            > uplift_at_capacity(y_test, treated_test, churn, 0.2) + 0.05)
    # the persuadable get the largest estimates, the sleeping dogs the smallest
    assert tau[effect > 0].mean() > tau[effect == 0].mean() > tau[effect < 0].mean()


def test_x_learner_with_a_small_control_group(campaigns):
    """A 10% control group (the campaign's usual holdout) still gives usable effects."""
    X, treated, y, _ = world(8000, seed=3, treated_share=0.9)
    X_test, _, _, effect = campaigns[1]
    model = fitted("x_learner", X, treated, y)
    assert model.propensity_ == pytest.approx(0.9, abs=0.02)
    assert np.corrcoef(model.predict(X_test), effect)[0, 1] > 0.4


def test_revenue_outcomes_use_the_regressor(campaigns):
    (X, treated, y, _), (X_test, _, _, effect) = campaigns
    revenue = y * 50.0
    tau = fitted("t_learner", X, treated, revenue).predict(X_test)
    assert np.corrcoef(tau, effect)[0, 1] > 0.4
    with pytest.raises(UpliftError, match="0/1 retention outcome"):
        fitted("churn_rank", X, treated, revenue)


def test_random_rank_is_seeded_and_ignores_the_data(campaigns):
    (X, treated, y, _), (X_test, *_) = campaigns
    a = build_uplift_learner("random_rank", {"seed": 5}, NUMERIC, CATEGORICAL, 90)
    b = build_uplift_learner("random_rank", {"seed": 5}, NUMERIC, CATEGORICAL, 90)
    np.testing.assert_array_equal(a.fit(X, treated, y).predict(X_test),
                                  b.fit(X[:100], treated[:100], y[:100]).predict(X_test))


def test_bad_training_rows_are_refused(campaigns):
    X, treated, y, _ = campaigns[0]
    with pytest.raises(UpliftError, match="at least 2 control rows, got 0"):
        fitted("t_learner", X, np.ones(len(X), dtype=bool), y)
    with pytest.raises(UpliftError, match="one value per row"):
        fitted("t_learner", X, treated[:10], y)
    with pytest.raises(UpliftError, match="unknown params"):
        build_uplift_learner("t_learner", {"depth": 3}, NUMERIC, CATEGORICAL, 90)
    with pytest.raises(UpliftError, match="unknown uplift learner kind"):
        build_uplift_learner("s_learner", {}, NUMERIC, CATEGORICAL, 90)


def test_an_arm_with_one_outcome_predicts_its_rate():
    X, treated, y, _ = world(500, seed=4)
    y = np.where(treated, 1.0, y)  # every treated customer retained
    model = fitted("t_learner", X, treated, y)
    mu_0, mu_1 = model.outcomes(X)
    assert np.all(mu_1 == 1.0) and 0 < mu_0.mean() < 1


def test_calibration_slope_is_near_one_for_true_effects_and_zero_for_noise():
    X, treated, y, effect = world(40_000, seed=6)
    groups = np.arange(len(X)) % 4
    assert calibration_slope(y, treated, effect, groups) == pytest.approx(1.0, abs=0.15)
    noise = np.random.default_rng(0).normal(size=len(X))
    assert calibration_slope(y, treated, noise, groups) < 0.05
    assert calibration_slope(y, treated, -effect, groups) == 0.0  # clipped: worse than none


def test_calibrated_effects_keep_each_channels_measured_level(campaigns):
    (X, treated, y, _), (X_test, *_) = campaigns
    X = X.assign(channel=np.where(np.arange(len(X)) % 2, "sem", "crm_email"))
    base = build_uplift_learner("t_learner", {"base": SMALL["base"]}, NUMERIC,
                                CATEGORICAL + ["channel"], 90)
    flat = CalibratedUplift(base, "channel", slope=0.0).fit(X, treated, y)
    for channel in ("sem", "crm_email"):
        here = (X["channel"] == channel).to_numpy()
        measured = y[here & treated].mean() - y[here & ~treated].mean()
        got = flat.predict(X_test.assign(channel=channel))
        assert np.ptp(got) == 0  # no skill: the channel's effect for everyone
        assert got[0] == pytest.approx(measured, abs=0.03)  # shrunk a little to the pooled
    full = CalibratedUplift(base, "channel", slope=1.0).fit(X, treated, y)
    raw = base.predict(X_test.assign(channel="sem"))
    shifted = full.predict(X_test.assign(channel="sem"))
    np.testing.assert_allclose(shifted - raw, (shifted - raw)[0])  # the model's own ranking
