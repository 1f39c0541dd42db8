"""Readout statistics on campaigns with a known effect: interval coverage, CUPED's
variance reduction, the sample-ratio check and what blocks a readout from the plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.experiments.readout import cuped, difference, read_out, sample_ratio_check


def _campaign(rng, n=2_000, control_share=0.5, effect=0.05, name="spring", planned=None):
    """Outcomes of a campaign whose contact adds ``effect`` to every customer's retention
    probability; the pre-period says who was active, which predicts the outcome."""
    active_before = rng.random(n) < 0.6
    base = np.where(active_before, 0.6, 0.15)
    treated = rng.random(n) >= control_share
    retained = rng.random(n) < base + effect * treated
    revenue = retained * rng.gamma(2.0, 30.0, n)
    return pd.DataFrame({
        "campaign": name, "customer_id": [f"c{i}" for i in range(n)],
        "assigned_at": pd.Timestamp("2025-01-01"), "channel": np.where(rng.random(n) < 0.5,
                                                                       "crm_email", "sem"),
        "treated": treated, "score_decile": rng.integers(1, 11, n), "horizon_days": 90,
        "planned_control_share": control_share if planned is None else planned,
        "pre_period_revenue": active_before * rng.gamma(2.0, 30.0, n),
        "pre_period_orders": active_before.astype(int), "is_matured": True,
        "retained": retained.astype(int), "horizon_revenue": revenue,
    })


def test_the_95_percent_interval_covers_the_true_effect_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered, covered_cuped, widths, widths_cuped = [], [], [], []
    for _ in range(600):
        active_before = rng.random(1_000) < 0.6
        arm = rng.random(1_000) >= 0.5
        y = (rng.random(1_000) < np.where(active_before, 0.6, 0.15) + 0.04 * arm).astype(float)
        plain = difference(y, arm)
        adjusted, _ = cuped(y, active_before.astype(float), arm)
        covered.append(plain.ci[0] <= 0.04 <= plain.ci[1])
        covered_cuped.append(adjusted.ci[0] <= 0.04 <= adjusted.ci[1])
        widths.append(plain.ci[1] - plain.ci[0])
        widths_cuped.append(adjusted.ci[1] - adjusted.ci[0])
    assert 0.925 <= np.mean(covered) <= 0.975
    assert 0.925 <= np.mean(covered_cuped) <= 0.975
    assert np.mean(widths_cuped) < 0.9 * np.mean(widths)  # the covariate explains a lot here


def test_cuped_with_an_unrelated_covariate_changes_little():
    rng = np.random.default_rng(2)
    frame = _campaign(rng, n=5_000)
    noise = rng.normal(size=len(frame))
    plain = difference(frame["retained"], frame["treated"])
    adjusted, reduction = cuped(frame["retained"], noise, frame["treated"])
    assert abs(reduction) < 0.01 and adjusted.effect == pytest.approx(plain.effect, abs=0.005)


def test_sample_ratio_check():
    assert sample_ratio_check(500, 500, 0.5)[1] == "pass"
    p_value, status, reason = sample_ratio_check(300, 700, 0.1)
    assert status == "fail" and p_value < 1e-10
    assert "300 of 1,000" in reason and "30.0%" in reason and "10.0%" in reason
    assert sample_ratio_check(470, 530, 0.5)[1] == "pass"
    assert sample_ratio_check(455, 545, 0.5)[1] == "warn"  # p ~ 0.004
    assert sample_ratio_check(10, 10, None)[1] == "unchecked"


def test_read_out_segments_and_the_save_rate():
    rows = read_out(_campaign(np.random.default_rng(3), n=4_000, effect=0.06))
    assert set(rows["segment_type"]) == {"all", "channel", "score_decile"}
    assert sorted(rows.loc[rows["segment_type"] == "score_decile", "segment"].unique(),
                  key=int) == [str(d) for d in range(1, 11)]
    assert rows["feeds_plan"].all() and rows["srm_status"].eq("pass").all()
    overall = rows[(rows["segment_type"] == "all") & (rows["metric"] == "retention")].iloc[0]
    assert overall["ci_low_cuped"] <= 0.06 <= overall["ci_high_cuped"]
    assert overall["variance_reduction"] > 0.1
    churn = 1 - overall["mean_control"]
    assert overall["save_rate"] == pytest.approx(overall["effect_cuped"] / churn)
    assert rows.loc[rows["metric"] == "revenue", "save_rate"].isna().all()


def test_a_broken_assignment_is_flagged_and_blocked():
    """Planned 10% control, but 50% of the customers ended up in control."""
    rows = read_out(_campaign(np.random.default_rng(4), control_share=0.5, planned=0.1))
    assert (rows["srm_status"] == "fail").all() and not rows["feeds_plan"].any()
    assert "does not feed the next plan" in rows["blocked_reason"].iloc[0]
    unknown = read_out(_campaign(np.random.default_rng(4)).assign(planned_control_share=np.nan))
    assert not unknown["feeds_plan"].any() and (unknown["srm_status"] == "unchecked").all()


def test_cuped_with_several_covariates_removes_what_each_explains():
    """Two independent pre-period covariates, each explaining part of the outcome: the
    multivariate adjustment removes more variance than either alone, stays unbiased, and
    a constant covariate is ignored rather than breaking the fit."""
    rng = np.random.default_rng(4)
    n = 20_000
    ordered, spend = rng.random(n) < 0.5, rng.gamma(2.0, 1.0, n)
    arm = rng.random(n) >= 0.5
    y = 0.3 * ordered + 0.1 * spend + 0.05 * arm + rng.normal(0, 0.3, n)
    _, first = cuped(y, ordered.astype(float), arm)
    _, second = cuped(y, spend, arm)
    both, reduction = cuped(y, np.column_stack([ordered, spend, np.ones(n)]), arm)
    assert reduction > max(first, second) + 0.05
    assert both.ci[0] <= 0.05 <= both.ci[1]
