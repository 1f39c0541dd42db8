"""The retention budget optimiser: whom to contact, through which channel, and who is held out.

Customer ``i`` has a churn probability ``p_i`` and a value ``v_i`` (trailing 12-month
margin); channel ``c`` has a contact cost ``k_c``, an assumed save rate ``s_c`` (the
probability that contacting a would-be churner keeps them) and optionally a capacity (the
most contacts it can take). Contacting ``i`` through ``c`` is worth, in expectation,

    e_ic = p_i * s_c * v_i - k_c      (expected retained value minus the contact cost)

The plan gives each customer at most one channel, only where ``e_ic > 0``, to maximise the
sum of ``e`` subject to the budget (sum of contact costs) and the capacities: a
multiple-choice knapsack problem (MCKP) with side constraints.

Two solvers, both of which never exceed the budget or a capacity:

- ``milp`` (up to ``exact_max_customers`` candidates, i.e. customers with at least one
  option worth contacting): exact, ``scipy.optimize.milp`` (HiGHS) on binary ``x_ic``.
- ``greedy`` (larger problems): Sinha & Zoltners (1979). Per customer keep only the
  LP-undominated options (the upper convex hull of (cost, value) starting at "no contact"),
  then buy the hull's incremental steps in order of value per unit of cost while budget and
  capacity last. Capacities enter through their LP shadow prices: the greedy ranks options by
  ``e_ic - mu_c``, so a channel that is full in the LP optimum is used only by the customers
  for whom it beats the next-best channel by more than its scarcity; the capacities are then
  enforced strictly while buying.

Both report the LP relaxation bound (budget *and* capacities, solved exactly) and the
relative gap ``(lp_bound - objective) / lp_bound``, an upper bound on how far the plan is
from the true optimum. The bound uses the model's rank-one structure: every customer ranks
the channels the same way (``e_ic`` depends on the customer only through ``a_i = p_i v_i``),
so for given channel counts the best fractional assignment gives the customers with the
largest ``a`` to the channels with the largest save rate. The LP therefore collapses to a
concave programme in the per-channel counts, solved with ``linprog`` (HiGHS) by cutting
planes on the concave top-``t`` sum of ``a``: a handful of variables, whatever ``n``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

log = logging.getLogger(__name__)

# HiGHS stops once the incumbent is provably within this relative distance of the optimum.
MIP_REL_GAP = 1e-6
# Cutting planes on the LP bound stop when the model over-estimates the top-t sums by less
# than this (relative to the sum of all a), or after LP_MAX_ROUNDS rounds (still a bound).
LP_TOLERANCE = 1e-10
LP_MAX_ROUNDS = 200


@dataclass(frozen=True)
class Channel:
    name: str
    cost: float
    save_rate: float
    capacity: int | None = None


@dataclass
class Allocation:
    """One plan. ``channel_index[i]`` is the index into ``channels`` or -1 (not contacted)."""

    channel_index: np.ndarray
    objective: float  # expected incremental value: sum of e_ic over the contacted
    spend: float  # sum of contact costs
    method: Literal["milp", "greedy"]
    lp_bound: float  # LP relaxation optimum (budget and capacities), >= any plan's objective
    gap: float  # (lp_bound - objective) / lp_bound, 0 when the bound is 0
    per_channel: dict[str, int]  # contacts per channel name

    @property
    def contacted(self) -> np.ndarray:
        return self.channel_index >= 0

    @property
    def expected_return(self) -> float:
        """Expected retained value of the contacted: sum of p_i * s_c * v_i."""
        return self.objective + self.spend


def validate_channels(channels: list[Channel]) -> None:
    """Raise ValueError naming the channel and the field at fault."""
    if not channels:
        raise ValueError("channels must not be empty")
    seen: set[str] = set()
    for channel in channels:
        name = channel.name
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"channel name must be a non-empty string, got {name!r}")
        if name in seen:
            raise ValueError(f"channel {name!r}: duplicate name")
        seen.add(name)
        if not _is_number(channel.cost) or not math.isfinite(channel.cost) or channel.cost < 0:
            raise ValueError(f"channel {name!r}: cost must be a finite number >= 0, "
                             f"got {channel.cost!r}")
        if not _is_number(channel.save_rate) or not 0 <= channel.save_rate <= 1:
            raise ValueError(f"channel {name!r}: save_rate must be in [0, 1], "
                             f"got {channel.save_rate!r}")
        capacity = channel.capacity
        if capacity is not None and (isinstance(capacity, bool)
                                     or not isinstance(capacity, int | np.integer)
                                     or capacity < 0):
            raise ValueError(f"channel {name!r}: capacity must be None or an integer >= 0, "
                             f"got {capacity!r}")


def expected_values(p, v, channels: list[Channel]) -> np.ndarray:
    """The (n, C) matrix of e_ic = p_i * s_c * v_i - k_c."""
    validate_channels(channels)
    p, v = _customer_arrays(p, v)
    costs, save_rates, _ = _channel_arrays(channels)
    return np.outer(p * v, save_rates) - costs


def allocate(p, v, channels: list[Channel], budget: float,
             exact_max_customers: int = 20_000, time_limit_s: float = 30) -> Allocation:
    """The best plan for ``budget``: exact MILP for up to ``exact_max_customers`` candidates
    (customers with an option worth contacting), the Sinha-Zoltners greedy above that.

    If HiGHS hits ``time_limit_s`` before proving optimality, the better of its incumbent
    and the greedy plan is returned (``method`` says which)."""
    budget = _positive_budget(budget)
    values = expected_values(p, v, channels)
    p, v = _customer_arrays(p, v)
    costs, save_rates, capacities = _channel_arrays(channels)
    candidates = np.flatnonzero((values > 0).any(axis=1))
    candidate_values = values[candidates]
    relaxation = _lp_relaxation(p[candidates] * v[candidates], costs, save_rates, capacities,
                                budget)

    def greedy() -> np.ndarray:
        return _greedy(candidate_values, costs, capacities, budget, relaxation.capacity_prices)

    if candidates.size <= exact_max_customers:
        method = "milp"
        choice, proven_optimal = _milp(candidate_values, costs, capacities, budget,
                                       time_limit_s)
        if not proven_optimal:
            fallback = greedy()
            if _value(fallback, candidate_values) > _value(choice, candidate_values):
                log.warning("MILP stopped at its %.0f s limit; the greedy plan is better",
                            time_limit_s)
                method, choice = "greedy", fallback
    else:
        method, choice = "greedy", greedy()
    choice = _within_budget(choice, candidate_values, costs, budget)

    channel_index = np.full(values.shape[0], -1, dtype=np.int64)
    channel_index[candidates] = choice
    counts = np.bincount(choice[choice >= 0], minlength=len(channels))
    objective = _value(choice, candidate_values)
    lp_bound = max(relaxation.bound, objective)  # equal up to solver tolerance when tight
    return Allocation(
        channel_index=channel_index,
        objective=objective,
        spend=_spend(counts, costs),
        method=method,
        lp_bound=lp_bound,
        gap=(lp_bound - objective) / lp_bound if lp_bound > 0 else 0.0,
        per_channel={c.name: int(n) for c, n in zip(channels, counts, strict=True)},
    )


def frontier(p, v, channels: list[Channel], budgets: Sequence[float]) -> pd.DataFrame:
    """The greedy plan at each budget, one row per budget:

    - ``spend``: contact costs actually committed (<= budget);
    - ``expected_return``: expected retained value, sum of p_i * s_c * v_i over the contacted;
    - ``net_value``: expected_return - spend (the optimiser's objective);
    - ``roi``: net_value / spend (NaN when nothing is spent);
    - ``n_contacted`` and ``gap`` (to the LP bound) for context."""
    rows = []
    for budget in budgets:
        plan = allocate(p, v, channels, budget, exact_max_customers=0)
        rows.append({"budget": float(budget), "spend": plan.spend,
                     "expected_return": plan.expected_return, "net_value": plan.objective,
                     "roi": _ratio(plan.objective, plan.spend),
                     "n_contacted": int(plan.contacted.sum()), "gap": plan.gap})
    return pd.DataFrame(rows, columns=["budget", "spend", "expected_return", "net_value", "roi",
                                       "n_contacted", "gap"])


def assign_control_group(score_deciles, share: float, seed: int) -> np.ndarray:
    """A stratified random holdout: within each decile ``d`` of ``n_d`` customers exactly
    ``round(share * n_d)`` (Python's round, half to even) are marked True. The same
    deciles, share and seed give the same group."""
    if not _is_number(share) or not 0 <= share <= 0.5:
        raise ValueError(f"share must be in [0, 0.5], got {share!r}")
    deciles = np.asarray(score_deciles)
    if deciles.ndim != 1:
        raise ValueError(f"score_deciles must be one-dimensional, got shape {deciles.shape}")
    if deciles.dtype.kind == "f" and np.isnan(deciles).any():
        raise ValueError("score_deciles has missing values")
    strata, stratum = np.unique(deciles, return_inverse=True)
    sizes = np.bincount(stratum, minlength=strata.size)
    held_out = np.array([round(share * size) for size in sizes], dtype=np.int64)
    # Each customer's rank within its decile under a seeded random order.
    order = np.lexsort((np.random.default_rng(seed).random(deciles.size), stratum))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(deciles.size, dtype=np.int64)
    rank[order] = np.arange(deciles.size) - starts[stratum[order]]
    return rank < held_out[stratum]


def plan_campaign(p, v, deciles, channels: list[Channel], budget: float, control_share: float,
                  seed: int, exact_max_customers: int = 20_000,
                  ) -> tuple[Allocation, np.ndarray, dict]:
    """Optimise, then hold out a control group from the customers the optimiser chose.

    The control group is drawn only from the selected pool, stratified by churn-score
    decile, so treatment and control are the same kind of customer and the difference in
    their outcomes estimates the campaign's uplift (a holdout drawn from all customers would
    compare the targeted against people the campaign would never contact). Control customers
    are not contacted and their contact budget is not re-spent on others: re-spending it
    would add marginal customers to the treated group with no counterparts in control.

    Returns the optimiser's plan unchanged (control customers keep the channel they would
    have had, for per-channel read-outs), ``is_control`` (True only for selected customers),
    and a summary of the treated only: the contact list is
    ``allocation.channel_index >= 0 & ~is_control``."""
    allocation = allocate(p, v, channels, budget, exact_max_customers=exact_max_customers)
    deciles = np.asarray(deciles)
    if deciles.shape != allocation.channel_index.shape:
        raise ValueError(f"deciles has shape {deciles.shape}, expected "
                         f"{allocation.channel_index.shape} (one per customer)")
    selected = np.flatnonzero(allocation.contacted)
    is_control = np.zeros(allocation.channel_index.size, dtype=bool)
    is_control[selected] = assign_control_group(deciles[selected], control_share, seed)

    treated = allocation.contacted & ~is_control
    channel = allocation.channel_index[treated]
    costs, _, _ = _channel_arrays(channels)
    incremental = float(expected_values(p, v, channels)[treated, channel].sum())
    spend = _spend(np.bincount(channel, minlength=len(channels)), costs)
    summary = {
        "spend": spend,
        "expected_incremental_value": incremental,
        "expected_return": incremental + spend,
        "roi": _ratio(incremental, spend),
        "n_treated": int(treated.sum()),
        "n_control": int(is_control.sum()),
        "method": allocation.method,
        "gap": allocation.gap,
    }
    return allocation, is_control, summary


# --- the LP bound --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Relaxation:
    bound: float
    capacity_prices: np.ndarray  # (C,) shadow price of one more contact; 0 where uncapped


def _lp_relaxation(a, costs, save_rates, capacities, budget) -> _Relaxation:
    """The LP relaxation of the plan, exactly, through its rank-one structure.

    With channels ordered by save rate (s_1 >= s_2 >= ...), counts n_j and cumulative counts
    N_j = n_1 + ... + n_j, the best fractional plan is worth
        sum_j (s_j - s_{j+1}) * A(N_j) - sum_j k_j n_j,   s_{C+1} = 0,
    where A(t) is the sum of the t largest a (linear between integers, so concave). Maximise
    over n subject to the budget, the capacities and N_C <= m, with A represented by its
    tangents (cutting planes added where the model over-estimates)."""
    n_channels = costs.size
    m = a.size
    if m == 0:
        return _Relaxation(0.0, np.zeros(n_channels))
    top = np.sort(a)[::-1]
    prefix = np.concatenate([[0.0], np.cumsum(top)])

    order = np.argsort(-save_rates, kind="stable")
    rates = save_rates[order]
    weights = rates - np.append(rates[1:], 0.0)
    curved = np.flatnonzero(weights > 0)  # channels j whose A(N_j) enters the objective
    cumulative = np.tril(np.ones((n_channels, n_channels)))

    def top_sum(t: float) -> float:
        segment = min(int(t), m - 1)
        return prefix[segment] + (t - segment) * top[segment]

    objective = np.concatenate([costs[order], -weights[curved]])  # minimised
    fixed_rows = [np.concatenate([costs[order], np.zeros(curved.size)]),
                  np.concatenate([np.ones(n_channels), np.zeros(curved.size)])]
    fixed_rhs = [budget, m]
    capped = capacities[order] < m
    bounds = [(0, capacities[j] if capped[k] else None) for k, j in enumerate(order)]
    bounds += [(None, None)] * curved.size

    grid = np.concatenate([np.geomspace(1, m, 48), np.linspace(1, m, 16)])
    segments = [set(np.unique(grid.astype(np.int64) - 1).tolist()) for _ in curved]
    tolerance = LP_TOLERANCE * (prefix[-1] + 1)
    for _ in range(LP_MAX_ROUNDS):
        cut_rows, cut_rhs = [], []
        for h, j in enumerate(curved):
            for r in sorted(segments[h]):
                # h_j <= A(r) + top[r] * (N_j - r), the tangent on segment [r, r + 1]
                row = np.zeros(n_channels + curved.size)
                row[:n_channels] = -top[r] * cumulative[j]
                row[n_channels + h] = 1.0
                cut_rows.append(row)
                cut_rhs.append(prefix[r] - top[r] * r)
        result = linprog(objective, A_ub=np.array(fixed_rows + cut_rows),
                         b_ub=np.array(fixed_rhs + cut_rhs), bounds=bounds, method="highs")
        if result.status != 0:
            raise RuntimeError(f"LP bound failed: {result.message}")
        counts = result.x[:n_channels]
        added = False
        for h, j in enumerate(curved):
            reach = float(cumulative[j] @ counts)
            if result.x[n_channels + h] - top_sum(reach) > tolerance:
                for r in {min(int(reach), m - 1), max(min(math.ceil(reach) - 1, m - 1), 0)}:
                    added |= r not in segments[h]
                    segments[h].add(r)
        if not added:
            break
    prices = np.zeros(n_channels)
    prices[order] = -result.upper.marginals[:n_channels]
    return _Relaxation(float(-result.fun), np.maximum(prices, 0.0))


# --- the solvers ---------------------------------------------------------------------------

def _milp(values, costs, capacities, budget, time_limit_s) -> tuple[np.ndarray, bool]:
    """Exact plan on the candidates: (channel per candidate or -1, proven optimal)."""
    n, n_channels = values.shape
    choice = np.full(n, -1, dtype=np.int64)
    customer, channel = np.nonzero(values > 0)
    if customer.size == 0:
        return choice, True
    options = np.arange(customer.size)
    capped = np.flatnonzero(np.isfinite(capacities))
    rows = [
        sparse.csr_array((np.ones(customer.size), (customer, options)), shape=(n, options.size)),
        sparse.csr_array(costs[channel][None, :]),
    ]
    upper = [np.ones(n), [budget]]
    if capped.size:
        slot = np.searchsorted(capped, channel)
        uses = np.isin(channel, capped)
        rows.append(sparse.csr_array((np.ones(uses.sum()), (slot[uses], options[uses])),
                                     shape=(capped.size, options.size)))
        upper.append(capacities[capped])
    result = milp(-values[customer, channel], integrality=np.ones(options.size),
                  bounds=Bounds(0, 1),
                  constraints=LinearConstraint(sparse.vstack(rows), -np.inf,
                                               np.concatenate(upper)),
                  options={"time_limit": time_limit_s, "mip_rel_gap": MIP_REL_GAP})
    if result.x is None:
        return choice, False
    picked = result.x > 0.5
    choice[customer[picked]] = channel[picked]
    return choice, result.status == 0


def _greedy(values, costs, capacities, budget, prices) -> np.ndarray:
    """Sinha-Zoltners greedy on values priced by the capacities' shadow prices; capacities
    and budget enforced exactly. Returns the channel per candidate or -1."""
    n, n_channels = values.shape
    priced = np.where(values > 0, values - prices, -np.inf)
    customers = np.arange(n)

    # Upper convex hull of {(0, 0)} + {(k_c, priced_ic)} per customer, all customers at once:
    # channels in cost order (the same for everyone), a stack of channel indices per customer
    # (-1 = no contact), popping points that fall on or below the chord to the new point.
    hull = np.full((n, n_channels + 1), -1, dtype=np.int64)
    depth = np.ones(n, dtype=np.int64)

    def point(rows, index):
        channel = hull[rows, index]
        contacted = channel >= 0
        return (np.where(contacted, costs[channel], 0.0),
                np.where(contacted, priced[rows, channel], 0.0))

    for c in np.argsort(costs, kind="stable"):
        _, top_value = point(customers, depth - 1)
        joins = priced[:, c] > top_value  # else dominated: costs no less, worth no more
        while True:
            rows = customers[joins & (depth >= 2)]
            top_x, top_y = point(rows, depth[rows] - 1)
            below_x, below_y = point(rows, depth[rows] - 2)
            not_above = ((top_x - below_x) * (priced[rows, c] - below_y)
                         - (top_y - below_y) * (costs[c] - below_x)) >= 0
            if not not_above.any():
                break
            depth[rows[not_above]] -= 1
        rows = customers[joins]
        hull[rows, depth[rows]] = c
        depth[rows] += 1

    # Incremental steps along each hull, step 1 of every customer first, then step 2, ...
    # so a stable sort by efficiency keeps each customer's steps in order.
    steps = [np.flatnonzero(depth > s) for s in range(1, n_channels + 1)]
    customer = np.concatenate(steps)
    step = np.repeat(np.arange(1, n_channels + 1), [rows.size for rows in steps])
    source, target = hull[customer, step - 1], hull[customer, step]
    source_x, source_y = point(customer, step - 1)
    target_x, target_y = point(customer, step)
    cost_step, value_step = target_x - source_x, target_y - source_y
    efficiency = np.divide(value_step, cost_step, out=np.full(customer.size, np.inf),
                           where=cost_step > 0)
    order = np.argsort(-efficiency, kind="stable")
    customer, source, target, cost_step = (customer[order], source[order], target[order],
                                           cost_step[order])

    # Everything before the first step that breaks the budget or a capacity is bought at once.
    spent = np.cumsum(cost_step)
    accepted = int(np.searchsorted(spent, budget, side="right"))
    for c in np.flatnonzero(np.isfinite(capacities)):
        load = np.cumsum((target == c).astype(np.int64) - (source == c))
        over = np.flatnonzero(load > capacities[c])
        if over.size:
            accepted = min(accepted, int(over[0]))
    climbed = np.bincount(customer[:accepted], minlength=n)  # steps taken per customer
    choice = hull[customers, climbed]
    remaining = budget - (spent[accepted - 1] if accepted else 0.0)
    load = np.bincount(choice[choice >= 0], minlength=n_channels).tolist()
    limit = capacities.tolist()

    # The rest one by one: a step is bought if its customer took all earlier steps and it
    # fits; a skipped step ends that customer's climb. Steps dearer than the remaining
    # budget can never fit (the budget only shrinks), so they are dropped up front.
    tail = np.arange(accepted, customer.size)
    tail = tail[cost_step[tail] <= remaining]
    cheapest_after = np.minimum.accumulate(cost_step[tail][::-1])[::-1].tolist()
    current = choice.tolist()
    for position, (i, frm, to, cost) in enumerate(zip(
            customer[tail].tolist(), source[tail].tolist(), target[tail].tolist(),
            cost_step[tail].tolist(), strict=True)):
        if remaining < cheapest_after[position]:
            break
        if current[i] != frm or cost > remaining or load[to] >= limit[to]:
            continue
        current[i] = to
        remaining -= cost
        load[to] += 1
        if frm >= 0:
            load[frm] -= 1
    return np.array(current, dtype=np.int64)


def _within_budget(choice, values, costs, budget) -> np.ndarray:
    """Guard against solver tolerance and rounding: drop the least efficient contacts until
    the spend, computed exactly as the report computes it, fits the budget."""
    choice = choice.copy()
    while _spend(np.bincount(choice[choice >= 0], minlength=costs.size), costs) > budget:
        paid = np.flatnonzero((choice >= 0) & (costs[np.maximum(choice, 0)] > 0))
        efficiency = values[paid, choice[paid]] / costs[choice[paid]]
        choice[paid[np.argmin(efficiency)]] = -1
    return choice


# --- helpers -------------------------------------------------------------------------------

def _spend(counts, costs) -> float:
    return math.fsum(int(n) * float(k) for n, k in zip(counts, costs, strict=True))


def _value(choice, values) -> float:
    contacted = np.flatnonzero(choice >= 0)
    return float(values[contacted, choice[contacted]].sum())


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value,
                                                                                       bool)


def _positive_budget(budget) -> float:
    if not _is_number(budget) or not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    return float(budget)


def _customer_arrays(p, v) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if p.ndim != 1 or p.shape != v.shape:
        raise ValueError(f"p and v must be one-dimensional and of equal length, got shapes "
                         f"{p.shape} and {v.shape}")
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise ValueError("p (churn probability) must be finite and in [0, 1]")
    if not np.isfinite(v).all():
        raise ValueError("v (customer value) must be finite")
    return p, v


def _channel_arrays(channels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Costs, save rates and capacities (inf where uncapped) as float arrays."""
    return (np.array([c.cost for c in channels], dtype=np.float64),
            np.array([c.save_rate for c in channels], dtype=np.float64),
            np.array([np.inf if c.capacity is None else c.capacity for c in channels],
                     dtype=np.float64))
