"""The optimiser on expected incremental value (uplift x value x channel effect - cost):
exact against brute force, feasible on both solvers, never contacting customers contact
hurts, and better than churn targeting where churn risk and uplift disagree."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ml.decisions.allocation import (
    Channel,
    allocate,
    allocate_uplift,
    allocate_values,
    plan_campaign,
    uplift_values,
)

CHANNELS = [Channel("crm_email", cost=0.05, save_rate=0.03),
            Channel("sem", cost=1.20, save_rate=0.05),
            Channel("display", cost=0.40, save_rate=0.02),
            Channel("direct_mail", cost=1.50, save_rate=0.08, capacity=2000)]


def brute_force(values: np.ndarray, channels: list[Channel], budget: float) -> float:
    n = values.shape[0]
    costs = np.array([c.cost for c in channels])
    plans = np.array(list(itertools.product(range(-1, len(channels)), repeat=n)))
    contacted, picked = plans >= 0, np.maximum(plans, 0)
    totals = np.where(contacted, values[np.arange(n), picked], 0.0).sum(axis=1)
    feasible = np.where(contacted, costs[picked], 0.0).sum(axis=1) <= budget + 1e-12
    for j, channel in enumerate(channels):
        if channel.capacity is not None:
            feasible &= (plans == j).sum(axis=1) <= channel.capacity
    return float(totals[feasible].max())


def small_instance(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 7))
    uplift = rng.uniform(-0.2, 0.4, n)
    value = rng.uniform(0, 60, n)
    channels = [Channel(f"c{j}", cost=float(rng.choice([0.0, 1.0, rng.uniform(0.5, 8)])),
                        save_rate=0.0,  # unused by the uplift objective
                        capacity=None if rng.random() < 0.5 else int(rng.integers(0, n)))
                for j in range(3)]
    effect = {c.name: float(rng.uniform(0.2, 1.5)) for c in channels}
    return uplift, value, channels, effect, float(rng.uniform(0.5, 12))


@pytest.mark.parametrize("seed", range(25))
def test_exact_and_greedy_against_brute_force(seed):
    uplift, value, channels, effect, budget = small_instance(seed)
    values = uplift_values(uplift, value, channels, effect)
    best = brute_force(values, channels, budget)
    exact = allocate_uplift(uplift, value, channels, budget, effect)
    greedy = allocate_uplift(uplift, value, channels, budget, effect, exact_max_customers=0)
    assert exact.method == "milp"
    assert greedy.method == ("greedy" if (values > 0).any() else "milp")  # nobody to solve
    assert exact.objective == pytest.approx(best, abs=1e-9)
    for plan in (exact, greedy):
        assert plan.spend <= budget + 1e-12
        assert plan.objective <= plan.lp_bound + 1e-9
        for j, channel in enumerate(channels):
            if channel.capacity is not None:
                assert (plan.channel_index == j).sum() <= channel.capacity
        chosen = np.flatnonzero(plan.contacted)
        assert plan.objective == pytest.approx(
            values[chosen, plan.channel_index[chosen]].sum())


@pytest.mark.parametrize("seed", range(25))
def test_a_matrix_of_effects_per_customer_and_channel_against_brute_force(seed):
    """Customers rank channels differently (e-mail works only for the opted in): the
    per-pair MILP is exact, the greedy feasible and within its reported LP bound."""
    uplift, value, channels, _, budget = small_instance(seed)
    rng = np.random.default_rng(100 + seed)
    per_channel = np.clip(uplift[:, None] * rng.uniform(0, 2, (uplift.size, len(channels))),
                          -1, 1)
    values = uplift_values(per_channel, value, channels)
    best = brute_force(values, channels, budget)
    exact = allocate_values(values, channels, budget)
    greedy = allocate_values(values, channels, budget, exact_max_customers=0)
    assert exact.method == "milp"
    assert exact.objective == pytest.approx(best, abs=1e-7)
    for plan in (exact, greedy):
        assert plan.spend <= budget + 1e-12
        assert plan.objective <= plan.lp_bound + 1e-7
        assert best <= plan.lp_bound + 1e-7
        for j, channel in enumerate(channels):
            if channel.capacity is not None:
                assert (plan.channel_index == j).sum() <= channel.capacity


def test_greedy_on_a_large_matrix_is_close_to_its_lp_bound():
    rng = np.random.default_rng(5)
    n = 5000
    per_channel = np.clip(rng.normal(0.05, 0.08, (n, len(CHANNELS))), -1, 1)
    per_channel[rng.random(n) < 0.6, 0] = 0.0  # not opted in to e-mail
    value = rng.lognormal(4, 1, n)
    plan = allocate_values(uplift_values(per_channel, value, CHANNELS), CHANNELS, 400.0,
                           exact_max_customers=0)
    assert plan.method == "greedy" and plan.spend <= 400.0
    assert plan.gap < 0.01
    assert plan.per_channel["direct_mail"] <= 2000


def test_customers_contact_hurts_are_never_contacted():
    rng = np.random.default_rng(0)
    uplift = rng.uniform(-0.3, 0.3, 5000)
    value = rng.lognormal(4, 1, 5000)
    plan = allocate_uplift(uplift, value, CHANNELS, budget=1e6)  # money is no constraint
    assert not plan.contacted[uplift <= 0].any()
    assert plan.contacted[uplift * value * 1.0 > 1.5].all()  # worth the dearest channel


def test_a_channel_with_no_effect_is_not_used_and_effects_are_validated():
    rng = np.random.default_rng(1)
    uplift, value = rng.uniform(0, 0.3, 800), rng.lognormal(4, 1, 800)
    plan = allocate_uplift(uplift, value, CHANNELS, 500.0, {"crm_email": 0.0})
    assert plan.per_channel["crm_email"] == 0 and plan.spend > 0
    with pytest.raises(ValueError, match="unknown channel"):
        allocate_uplift(uplift, value, CHANNELS, 500.0, {"sms": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        allocate_uplift(uplift, value, CHANNELS, 500.0, {"sem": -1.0})
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        allocate_uplift(uplift * 10, value, CHANNELS, 500.0)
    with pytest.raises(ValueError, match="equal length"):
        allocate_uplift(uplift[:10], value, CHANNELS, 500.0)
    with pytest.raises(ValueError, match="one column per channel"):
        uplift_values(np.zeros((800, 3)), value, CHANNELS)
    with pytest.raises(ValueError, match="one column per channel"):
        allocate_values(np.zeros((800, 3)), CHANNELS, 500.0)


def test_on_uplift_beats_churn_targeting_when_the_likeliest_to_leave_are_lost_causes():
    """A world where contact helps customers of middling risk and not the likeliest to
    leave: at the same budget, the plan on (true) uplift realises more incremental value
    than today's churn x save rate plan, judged by the true effects."""
    rng = np.random.default_rng(2)
    n = 20_000
    churn = rng.beta(2, 3, n)
    uplift = np.where(churn > 0.6, 0.0, churn * (1 - churn))  # lost causes above 0.6
    value = rng.lognormal(4, 0.5, n)
    budget = 100.0  # 2,000 emails for 20,000 customers

    def realised(plan) -> float:
        i = np.flatnonzero(plan.contacted)
        return float((uplift[i] * value[i] - np.array([c.cost for c in CHANNELS])[
            plan.channel_index[i]]).sum())

    on_uplift = realised(allocate_uplift(uplift, value, CHANNELS, budget))
    on_churn = realised(allocate(churn, value, CHANNELS, budget))
    assert on_uplift > 1.5 * on_churn > 0


def test_plan_campaign_on_uplift_holds_out_control_and_counts_the_treated_only():
    rng = np.random.default_rng(3)
    n = 3000
    churn, uplift = rng.uniform(0, 1, n), rng.uniform(-0.1, 0.3, n)
    value, deciles = rng.lognormal(4, 1, n), rng.integers(1, 11, n)
    allocation, is_control, summary = plan_campaign(
        churn, value, deciles, CHANNELS, 800.0, 0.2, seed=1, uplift=uplift)
    assert not (is_control & ~allocation.contacted).any()
    assert summary["n_control"] == pytest.approx(0.2 * allocation.contacted.sum(), abs=10)
    treated = np.flatnonzero(allocation.contacted & ~is_control)
    values = uplift_values(uplift, value, CHANNELS)
    assert summary["expected_incremental_value"] == pytest.approx(
        values[treated, allocation.channel_index[treated]].sum())
    assert not allocation.contacted[uplift <= 0].any()
    on_churn, _, _ = plan_campaign(churn, value, deciles, CHANNELS, 800.0, 0.2, seed=1)
    assert not np.array_equal(on_churn.channel_index, allocation.channel_index)
    per_channel = np.column_stack([uplift * (deciles % 2), uplift, uplift / 2, uplift * 1.5])
    allocation, is_control, summary = plan_campaign(
        churn, value, deciles, CHANNELS, 800.0, 0.2, seed=1, uplift=np.clip(per_channel, -1, 1))
    treated = np.flatnonzero(allocation.contacted & ~is_control)
    assert not (is_control & ~allocation.contacted).any()
    assert (allocation.channel_index[deciles % 2 == 0] != 0).all()  # e-mail does nothing there
    assert summary["expected_incremental_value"] == pytest.approx(
        uplift_values(np.clip(per_channel, -1, 1), value, CHANNELS)[
            treated, allocation.channel_index[treated]].sum())
