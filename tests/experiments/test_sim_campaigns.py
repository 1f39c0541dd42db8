"""The synthetic world's retention campaigns: the true potential outcomes agree with what
the simulated customers do, and the effect is heterogeneous in the documented ways."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ml.sim import campaigns
from ml.sim.history import generate_tables


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    tables = generate_tables(customers=3000, seed=11, start=date(2023, 1, 1),
                             end=date(2025, 12, 31))
    assignments = tables["raw.campaign_assignments"].to_pandas()
    effects = tables["eval.campaign_effects"].to_pandas()
    orders = tables["raw.orders"].to_pandas()
    completed = orders[orders["status"] == "completed"]
    joined = assignments.merge(completed, on="customer_id", how="left")
    end = joined["assigned_at"] + pd.to_timedelta(joined["horizon_days"], unit="D")
    joined["in_horizon"] = (joined["ordered_at"] >= joined["assigned_at"]) & (
        joined["ordered_at"] < end)
    retained = joined.groupby(["campaign", "customer_id"])["in_horizon"].any().rename("retained")
    frame = assignments.merge(retained.reset_index()).merge(
        effects.drop(columns=["channel", "treated"]), on=["campaign", "customer_id"])
    assert len(frame) == len(assignments) == len(effects)
    return frame


def test_past_campaigns_are_randomised_tests_on_month_starts(history):
    by_campaign = history.groupby("campaign")
    assert by_campaign.ngroups >= 8
    assert (history["assigned_at"].dt.day == 1).all()
    assert set(history["channel"]) == set(campaigns.RETENTION_CHANNELS)
    assert not history["customer_id"].duplicated().any()  # one test per customer
    share = by_campaign["treated"].mean()
    assert share.between(0.35, 0.65).all(), share
    assert history["score_decile"].isna().all()
    assert (history["planned_control_share"] == campaigns.PAST_CONTROL_SHARE).all()


def test_realised_retention_agrees_with_the_true_probabilities(history):
    """Per arm, the realised retention rate is within 4 standard errors of the mean true
    probability, and so is the realised difference of the arms of the true average effect."""
    means, variances = {}, {}
    for arm, rows in history.groupby("treated"):
        p = rows["p_retained_treated"] if arm else rows["p_retained_control"]
        se = np.sqrt((p * (1 - p)).sum()) / len(rows)
        assert abs(rows["retained"].mean() - p.mean()) < 4 * se, (arm, rows["retained"].mean(),
                                                                  p.mean(), se)
        means[arm], variances[arm] = rows["retained"].mean(), se**2
    realised = means[True] - means[False]
    assert abs(realised - history["effect"].mean()) < 4 * np.sqrt(sum(variances.values()))


def test_the_effect_is_heterogeneous_not_a_function_of_churn_risk(history):
    effect, control = history["effect"], history["p_retained_control"]
    gone = (control == 0) & (history["p_retained_treated"] == 0)
    assert 0.1 < gone.mean() < 0.7  # lost causes: already left, contact changes nothing
    assert (effect[gone] == 0).all()
    assert 0.005 < (effect < -0.01).mean() < 0.1  # a few sleeping dogs
    assert (effect > 0.05).mean() > 0.05  # persuadables
    sure = control > 0.95  # sure things: little room to gain
    assert sure.any() and effect[sure].max() < 0.05
    active = ~gone
    rho = spearmanr(effect[active], 1 - control[active]).statistic
    assert abs(rho) < 0.8, rho
    by_channel = history[active].groupby("channel")["effect"].mean()
    assert by_channel.idxmax() == "direct_mail"  # the strongest (and dearest) channel


def test_potential_outcomes_match_a_monte_carlo_of_the_same_process():
    """Constant daily rates: simulate orders, dropout, rescue, backfire and the save order
    directly and compare with the closed form."""
    rng = np.random.default_rng(0)
    days, n = 90, 200_000
    lam, mu, a, r, b, completed = 0.01, 0.01, 0.3, 0.4, 0.1, 0.9
    dropout = rng.exponential(1 / mu, n)
    first_order = rng.exponential(1 / lam, n)
    ordered_control = first_order < np.minimum(dropout, days)
    backfired = rng.random(n) < b
    rescued = ~backfired & (rng.random(n) < r)
    dropout_t = np.where(backfired, 0.0, np.where(rescued & (dropout < days), dropout + days,
                                                   dropout))
    save = ~backfired & (rng.random(n) < a * completed)
    save_at = rng.random(n) * campaigns.SAVE_ORDER_DAYS
    ordered_treated = (first_order < np.minimum(dropout_t, days)) | (save & (save_at < dropout_t))
    ones = np.ones(1)
    truth = campaigns.potential_outcomes(
        np.full((1, days), lam), np.full((1, days), mu), np.array([days]), a * ones, r * ones,
        b * ones, completed * ones, np.array([True]))
    assert truth["p_retained_control"][0] == pytest.approx(ordered_control.mean(), abs=0.01)
    assert truth["p_retained_treated"][0] == pytest.approx(ordered_treated.mean(), abs=0.01)
