"""The retention budget optimiser and the control group: exactness against brute force,
feasibility on every path, the LP bound, the greedy's quality, and input validation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from ml.decisions.allocation import (
    Allocation,
    Channel,
    allocate,
    assign_control_group,
    expected_values,
    frontier,
    plan_campaign,
    validate_channels,
)

CHANNELS = [
    Channel("CRM email", cost=0.10, save_rate=0.03),
    Channel("SEM", cost=1.00, save_rate=0.08),
    Channel("Display", cost=0.40, save_rate=0.05, capacity=3_000),
    Channel("direct mail", cost=2.50, save_rate=0.15, capacity=2_000),
]


def customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.beta(2, 8, n), rng.lognormal(4, 1, n)


def random_instance(rng: np.random.Generator, n: int, n_channels: int):
    """Instances where contacting is sometimes worth it and sometimes not, with free
    channels, tied costs and save rates, negative customer values and tight capacities."""
    p = rng.uniform(0, 1, n)
    v = rng.uniform(-10, 100, n)
    channels = [Channel(f"c{j}", cost=float(rng.choice([0.0, 0.5, 2.5, rng.uniform(0.5, 15)],
                                                       p=[0.1, 0.2, 0.2, 0.5])),
                        save_rate=float(rng.choice([0.2, rng.uniform(0.05, 0.6)])),
                        capacity=None if rng.random() < 0.5 else int(rng.integers(0, n + 1)))
                for j in range(n_channels)]
    return p, v, channels


def random_budget(rng: np.random.Generator, high: float) -> float:
    """Round budgets (exact fits with the round costs) or arbitrary ones."""
    return float(rng.choice([1.0, 2.5, 5.0, rng.uniform(0.5, high)]))


def brute_force(p, v, channels, budget) -> float:
    """The best objective over every assignment of at most one channel per customer."""
    values = expected_values(p, v, channels)
    costs = np.array([c.cost for c in channels])
    plans = np.array(list(itertools.product(range(-1, len(channels)), repeat=len(p))))
    contacted = plans >= 0
    picked = np.maximum(plans, 0)
    totals = np.where(contacted, values[np.arange(len(p)), picked], 0.0).sum(axis=1)
    feasible = np.where(contacted, costs[picked], 0.0).sum(axis=1) <= budget
    for j, channel in enumerate(channels):
        if channel.capacity is not None:
            feasible &= (plans == j).sum(axis=1) <= channel.capacity
    return float(totals[feasible].max())


def textbook_problem(p, v, channels, budget):
    """Objective and constraints (A x <= b) of the textbook formulation on every (customer,
    channel) pair: at most one channel per customer, the budget, each channel's capacity."""
    values = expected_values(p, v, channels)
    n, n_channels = values.shape
    rows = [np.kron(np.eye(n), np.ones(n_channels)),
            np.tile([c.cost for c in channels], n)[None, :]]
    rhs = [np.ones(n), [budget]]
    for j, channel in enumerate(channels):
        if channel.capacity is not None:
            rows.append(np.tile(np.eye(n_channels)[j], n)[None, :])
            rhs.append([channel.capacity])
    return -values.ravel(), np.vstack(rows), np.concatenate(rhs)


def full_lp_bound(p, v, channels, budget) -> float:
    """The LP relaxation of the textbook formulation, straight from linprog."""
    objective, A, b = textbook_problem(p, v, channels, budget)
    return -linprog(objective, A_ub=A, b_ub=b, bounds=(0, 1), method="highs").fun


def binary_milp_optimum(p, v, channels, budget) -> float:
    """The optimum of the textbook MILP: binary x_ic, at most one channel per customer."""
    objective, A, b = textbook_problem(p, v, channels, budget)
    result = milp(objective, integrality=np.ones(objective.size), bounds=Bounds(0, 1),
                  constraints=LinearConstraint(A, -np.inf, b), options={"mip_rel_gap": 1e-9})
    assert result.status == 0
    return -result.fun


def assert_feasible(plan: Allocation, p, v, channels, budget) -> None:
    index = plan.channel_index
    assert index.shape == (len(p),)
    assert ((index >= -1) & (index < len(channels))).all()
    costs = np.array([c.cost for c in channels])
    assert math.fsum(costs[index[index >= 0]]) <= budget * (1 + 1e-12)
    assert plan.spend <= budget
    for j, channel in enumerate(channels):
        assert plan.per_channel[channel.name] == (index == j).sum()
        if channel.capacity is not None:
            assert (index == j).sum() <= channel.capacity
    values = expected_values(p, v, channels)
    chosen = values[np.flatnonzero(index >= 0), index[index >= 0]]
    assert (chosen > 0).all(), "contacted a customer whose contact is not worth its cost"
    assert plan.objective == pytest.approx(chosen.sum(), rel=1e-9, abs=1e-9)
    assert plan.gap >= 0
    assert plan.objective <= plan.lp_bound


# --- exactness ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(50))
def test_milp_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    p, v, channels = random_instance(rng, n=int(rng.integers(1, 8)),
                                     n_channels=int(rng.integers(2, 5)))
    budget = random_budget(rng, 40)
    plan = allocate(p, v, channels, budget)
    assert plan.method == "milp"
    assert_feasible(plan, p, v, channels, budget)
    best = brute_force(p, v, channels, budget)
    assert plan.objective == pytest.approx(best, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_lp_bound_equals_the_full_lp_relaxation(seed):
    rng = np.random.default_rng(100 + seed)
    p, v, channels = random_instance(rng, n=int(rng.integers(1, 40)),
                                     n_channels=int(rng.integers(1, 6)))
    budget = random_budget(rng, 200)
    plan = allocate(p, v, channels, budget)
    assert plan.lp_bound == pytest.approx(full_lp_bound(p, v, channels, budget),
                                          rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("seed", range(8))
def test_milp_equals_the_per_customer_binary_milp(seed):
    """The exact solver works on channel counts (customers ranked by p * v fill the channels
    in save-rate order); the textbook formulation, binary x_ic per customer and channel,
    must agree."""
    rng = np.random.default_rng(200 + seed)
    p, v, channels = random_instance(rng, n=int(rng.integers(20, 120)),
                                     n_channels=int(rng.integers(2, 5)))
    budget = random_budget(rng, 300)
    plan = allocate(p, v, channels, budget)
    assert plan.method == "milp"
    assert_feasible(plan, p, v, channels, budget)
    assert plan.objective == pytest.approx(binary_milp_optimum(p, v, channels, budget),
                                           rel=1e-6, abs=1e-9)


# --- feasibility on every path --------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), n_channels=st.integers(1, 5),
       budget=st.floats(1e-3, 2_000), exact_max_customers=st.sampled_from([0, 20_000]))
def test_never_exceeds_budget_or_capacities(seed, n, n_channels, budget, exact_max_customers):
    p, v, channels = random_instance(np.random.default_rng(seed), n, n_channels)
    plan = allocate(p, v, channels, budget, exact_max_customers=exact_max_customers)
    candidates = (expected_values(p, v, channels) > 0).any(axis=1).sum()
    assert plan.method == ("milp" if candidates <= exact_max_customers else "greedy")
    assert_feasible(plan, p, v, channels, budget)


def test_budget_that_fits_exactly_is_spent_exactly():
    channels = [Channel("a", 0.1, 0.5), Channel("b", 0.3, 0.9)]
    p, v = np.full(1_000, 0.5), np.full(1_000, 10.0)
    for exact_max_customers in (0, 20_000):
        plan = allocate(p, v, channels, 30.0, exact_max_customers=exact_max_customers)
        assert_feasible(plan, p, v, channels, 30.0)
        assert plan.spend == pytest.approx(30.0)


def test_binding_capacities_on_large_greedy():
    p, v = customers(200_000, seed=3)
    channels = [Channel("CRM email", 0.10, 0.03, capacity=20_000),
                Channel("SEM", 1.00, 0.08, capacity=5_000),
                Channel("direct mail", 2.50, 0.15, capacity=1_000)]
    plan = allocate(p, v, channels, 1e9)
    assert plan.method == "greedy"
    assert plan.per_channel == {"CRM email": 20_000, "SEM": 5_000, "direct mail": 1_000}
    assert_feasible(plan, p, v, channels, 1e9)
    assert plan.gap < 1e-3


def test_milp_out_of_time_falls_back_to_the_greedy(caplog):
    p, v = customers(5_000, seed=4)
    plan = allocate(p, v, CHANNELS, 2_000, time_limit_s=0)
    assert plan.method == "greedy"
    assert "MILP stopped at its 0 s limit" in caplog.text
    assert_feasible(plan, p, v, CHANNELS, 2_000)
    assert plan.gap < 0.01


def test_zero_cost_channel_and_nobody_worth_contacting():
    channels = [Channel("free", 0.0, 0.01, capacity=2), Channel("paid", 5.0, 0.5)]
    p, v = np.array([0.9, 0.5, 0.2, 0.1]), np.array([100.0, 100.0, 100.0, 1.0])
    for exact_max_customers in (0, 20_000):
        plan = allocate(p, v, channels, 6.0, exact_max_customers=exact_max_customers)
        assert_feasible(plan, p, v, channels, 6.0)
        assert plan.objective == pytest.approx(brute_force(p, v, channels, 6.0))
    nobody = allocate(p, np.zeros(4), channels, 10.0)
    assert (nobody.channel_index == -1).all()
    assert (nobody.objective, nobody.spend, nobody.lp_bound, nobody.gap) == (0, 0, 0, 0)


def test_milp_is_exact_at_scale():
    p, v = customers(100_000, seed=11)
    exact = allocate(p, v, CHANNELS, 5_000, exact_max_customers=10**6)
    greedy = allocate(p, v, CHANNELS, 5_000, exact_max_customers=0)
    assert (exact.method, greedy.method) == ("milp", "greedy")
    assert_feasible(exact, p, v, CHANNELS, 5_000)
    assert greedy.objective <= exact.objective * (1 + 1e-9) <= exact.lp_bound * (1 + 1e-9)


# --- the greedy's quality -------------------------------------------------------------------

@pytest.mark.parametrize("budget", [2_000, 20_000, 200_000])
def test_greedy_gap_is_small_on_large_instances(budget):
    p, v = customers(50_000, seed=5)
    plan = allocate(p, v, CHANNELS, budget)
    assert plan.method == "greedy"
    assert_feasible(plan, p, v, CHANNELS, budget)
    assert 0 <= plan.gap < 0.01
    assert plan.gap == pytest.approx((plan.lp_bound - plan.objective) / plan.lp_bound)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_near_the_milp_optimum(seed):
    rng = np.random.default_rng(seed)
    p, v = customers(2_000, seed=10 + seed)
    channels = [Channel(c.name, c.cost, c.save_rate,
                        None if c.capacity is None else int(rng.integers(20, 400)))
                for c in CHANNELS]
    budget = float(rng.uniform(50, 1_500))
    exact = allocate(p, v, channels, budget)
    greedy = allocate(p, v, channels, budget, exact_max_customers=0)
    assert (exact.method, greedy.method) == ("milp", "greedy")
    assert greedy.lp_bound == pytest.approx(exact.lp_bound)
    assert greedy.objective <= greedy.lp_bound
    assert exact.objective <= exact.lp_bound
    assert greedy.objective <= exact.objective * (1 + 1e-6)
    assert greedy.objective >= 0.95 * exact.objective


def test_beats_random_targeting_with_the_same_budget():
    p, v = customers(20_000, seed=6)
    budget = 3_000.0
    plan = allocate(p, v, CHANNELS, budget, exact_max_customers=0)
    values = expected_values(p, v, CHANNELS)
    costs = np.array([c.cost for c in CHANNELS])
    rng = np.random.default_rng(0)
    for _ in range(5):  # random customers, random channel, until the budget runs out
        channel = rng.integers(0, len(CHANNELS), len(p))
        order = rng.permutation(len(p))
        affordable = order[np.cumsum(costs[channel[order]]) <= budget]
        assert plan.objective > 3 * values[affordable, channel[affordable]].sum()


# --- the frontier ---------------------------------------------------------------------------

def test_frontier():
    p, v = customers(30_000, seed=7)
    budgets = [500.0, 2_000.0, 8_000.0, 1e7]
    curve = frontier(p, v, CHANNELS, budgets)
    assert list(curve.columns) == ["budget", "spend", "expected_return", "net_value", "roi",
                                   "n_contacted", "gap"]
    assert curve["budget"].tolist() == budgets
    assert (curve["spend"] <= curve["budget"]).all()
    assert np.allclose(curve["net_value"], curve["expected_return"] - curve["spend"])
    assert np.allclose(curve["roi"], curve["net_value"] / curve["spend"])
    assert curve["net_value"].is_monotonic_increasing
    assert curve["roi"].is_monotonic_decreasing  # diminishing returns
    assert curve["spend"].iloc[-1] < 1e7  # saturates: nobody left worth a contact
    single = allocate(p, v, CHANNELS, 2_000.0, exact_max_customers=0)
    assert curve["net_value"].iloc[1] == pytest.approx(single.objective)


# --- the control group ----------------------------------------------------------------------

def test_control_group_exact_per_decile_counts():
    rng = np.random.default_rng(8)
    deciles = rng.integers(1, 11, 10_007)
    control = assign_control_group(deciles, 0.13, seed=1)
    assert control.dtype == bool and control.shape == deciles.shape
    for decile in range(1, 11):
        in_decile = deciles == decile
        assert control[in_decile].sum() == round(0.13 * in_decile.sum())


def test_control_group_is_reproducible_and_seeded():
    deciles = np.repeat(np.arange(10), 500)
    first = assign_control_group(deciles, 0.2, seed=42)
    assert np.array_equal(first, assign_control_group(deciles, 0.2, seed=42))
    assert not np.array_equal(first, assign_control_group(deciles, 0.2, seed=43))
    assert assign_control_group(deciles, 0.0, seed=1).sum() == 0
    assert assign_control_group(deciles, 0.5, seed=1).sum() == 2_500
    assert assign_control_group(np.array([], dtype=int), 0.1, seed=1).size == 0


def test_control_group_needs_one_decile_per_customer():
    with pytest.raises(ValueError, match="missing values"):
        assign_control_group(np.array([1.0, np.nan]), 0.1, seed=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        assign_control_group(np.ones((2, 2)), 0.1, seed=0)
    with pytest.raises(ValueError, match="one per customer"):
        plan_campaign([0.5, 0.5], [10.0, 10.0], [1], CHANNELS, 10.0, 0.1, seed=0)


@pytest.mark.parametrize("share", [-0.01, 0.51, 1.0, float("nan")])
def test_control_share_is_validated(share):
    with pytest.raises(ValueError, match="share must be in"):
        assign_control_group(np.arange(10), share, seed=0)


def test_plan_campaign_holds_out_control_from_the_selected():
    p, v = customers(40_000, seed=9)
    deciles = np.ceil(np.argsort(np.argsort(p)) / len(p) * 10).clip(1, 10).astype(int)
    plan, is_control, summary = plan_campaign(p, v, deciles, CHANNELS, 5_000.0, 0.1, seed=3)
    selected = plan.channel_index >= 0
    assert not (is_control & ~selected).any()
    for decile in np.unique(deciles[selected]):
        pool = selected & (deciles == decile)
        assert is_control[pool].sum() == round(0.1 * pool.sum())
    treated = selected & ~is_control
    costs = np.array([c.cost for c in CHANNELS])
    values = expected_values(p, v, CHANNELS)
    assert summary["n_treated"] == treated.sum()
    assert summary["n_control"] == is_control.sum() > 0
    assert summary["spend"] == pytest.approx(costs[plan.channel_index[treated]].sum())
    assert summary["spend"] < plan.spend <= 5_000.0
    assert summary["expected_incremental_value"] == pytest.approx(
        values[treated, plan.channel_index[treated]].sum())
    assert summary["expected_return"] == pytest.approx(
        summary["expected_incremental_value"] + summary["spend"])
    assert summary["roi"] == pytest.approx(summary["expected_incremental_value"]
                                           / summary["spend"])
    assert (summary["method"], summary["gap"]) == (plan.method, plan.gap)
    again = plan_campaign(p, v, deciles, CHANNELS, 5_000.0, 0.1, seed=3)[1]
    assert np.array_equal(is_control, again)


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [0, -5.0, float("nan"), float("inf"), "100", None])
def test_budget_must_be_positive(budget):
    with pytest.raises(ValueError, match="budget must be a positive number, got"):
        allocate([0.5], [10.0], CHANNELS, budget)


@pytest.mark.parametrize(("channels", "message"), [
    ([], "channels must not be empty"),
    ([Channel("SEM", -1.0, 0.1)], "channel 'SEM': cost"),
    ([Channel("SEM", float("nan"), 0.1)], "channel 'SEM': cost"),
    ([Channel("SEM", 1.0, 1.2)], "channel 'SEM': save_rate"),
    ([Channel("SEM", 1.0, -0.1)], "channel 'SEM': save_rate"),
    ([Channel("SEM", 1.0, float("nan"))], "channel 'SEM': save_rate"),
    ([Channel("SEM", 1.0, 0.1, capacity=-1)], "channel 'SEM': capacity"),
    ([Channel("SEM", 1.0, 0.1), Channel("SEM", 2.0, 0.2)], "channel 'SEM': duplicate name"),
    ([Channel("", 1.0, 0.1)], "channel name"),
])
def test_bad_channels_are_named(channels, message):
    with pytest.raises(ValueError, match=message):
        validate_channels(channels)
    with pytest.raises(ValueError, match=message):
        allocate([0.5], [10.0], channels, 100.0)


@pytest.mark.parametrize(("p", "v", "message"), [
    ([0.5, float("nan")], [1.0, 2.0], "p \\(churn probability\\)"),
    ([0.5, 1.5], [1.0, 2.0], "p \\(churn probability\\)"),
    ([0.5, 0.5], [1.0, float("inf")], "v \\(customer value\\)"),
    ([0.5], [1.0, 2.0], "equal length"),
])
def test_bad_customers_are_named(p, v, message):
    with pytest.raises(ValueError, match=message):
        allocate(p, v, CHANNELS, 100.0)
