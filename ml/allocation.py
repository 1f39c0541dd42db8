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

- ``greedy`` (always run; the answer above ``exact_max_customers`` candidates, i.e.
  customers with at least one option worth contacting): Sinha & Zoltners (1979). Per
  customer keep only the LP-undominated options (the upper convex hull of (cost, value)
  starting at "no contact"), then buy the hull's incremental steps in order of value per
  unit of cost while the budget lasts. Capacities enter through their LP shadow prices
  ``mu_c``: hulls are built on ``e_ic - mu_c``, so a channel that is full in the LP optimum
  attracts only the customers for whom it beats their next-best channel by more than its
  scarcity; capacities are then enforced exactly while buying, a customer refused by a full
  channel is re-routed to their best channel with room, and a final top-up uses whatever
  budget and capacity is left.
- ``milp`` (up to ``exact_max_customers`` candidates): exact. Reduced-cost fixing against
  the greedy plan and the LP prices fixes every customer whose alternatives provably cannot
  beat it; ``scipy.optimize.milp`` (HiGHS, binary ``x_ic``) solves the remaining core, which
  is small when the greedy is near the bound (20k candidates: well under a second).

Both report the LP relaxation bound (budget *and* capacities, exactly) and the relative gap
``(lp_bound - objective) / lp_bound``, an upper bound on how far the plan is from the true
optimum. The LP uses the model's rank-one structure: every customer ranks the channels the
same way (``e_ic`` depends on the customer only through ``a_i = p_i v_i``), so for given
channel counts the best fractional assignment gives the customers with the largest ``a`` to
the channels with the largest save rate. The LP collapses to a concave programme in the
per-channel counts, solved with ``linprog`` (HiGHS) by cutting planes on the concave
top-``t`` sum of ``a`` (a handful of variables, whatever ``n``); its shadow prices give the
bound as a Lagrangian dual value, which is an upper bound whatever the solver's accuracy.
"""

from __future__ import annotations

import heapq
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
# Reduced-cost fixing keeps options within this (relative to the bound) of the cut-off, so
# rounding cannot fix away an optimal option.
FIXING_TOLERANCE = 1e-9
# Relative slack on the greedy's running budget, so rounding in long sums of costs does not
# leave an exactly affordable contact out; the final spend is checked without slack.
BUDGET_SLACK = 1e-9
# Relative reduction of the capacities' shadow prices in the greedy (see _greedy).
PRICE_SHADING = 1e-6
# At most this many rounds of the greedy's top-up (each round moves at least one customer).
TOP_UP_ROUNDS = 20


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

    If HiGHS hits ``time_limit_s`` on the core before proving optimality, the better of its
    incumbent and the greedy plan is returned (``method`` says which)."""
    budget = _positive_budget(budget)
    values = expected_values(p, v, channels)
    p, v = _customer_arrays(p, v)
    costs, save_rates, capacities = _channel_arrays(channels)
    candidates = np.flatnonzero((values > 0).any(axis=1))
    candidate_values = values[candidates]
    prices = _lp_prices(p[candidates] * v[candidates], costs, save_rates, capacities, budget)
    lp_bound = prices.bound(candidate_values, costs, capacities, budget)
    method, choice = "greedy", _greedy(candidate_values, costs, capacities, budget,
                                       prices.capacity)
    if candidates.size <= exact_max_customers:
        exact, proven_optimal = _exact(candidate_values, costs, capacities, budget, prices,
                                       lp_bound, choice, time_limit_s)
        if proven_optimal or _value(exact, candidate_values) > _value(choice, candidate_values):
            method, choice = "milp", exact
        else:
            log.warning("MILP stopped at its %.0f s limit; the greedy plan is better",
                        time_limit_s)
    choice = _within_budget(choice, candidate_values, costs, budget)

    channel_index = np.full(values.shape[0], -1, dtype=np.int64)
    channel_index[candidates] = choice
    counts = np.bincount(choice[choice >= 0], minlength=len(channels))
    objective = _value(choice, candidate_values)
    lp_bound = max(lp_bound, objective)  # equal when the LP is integral, up to rounding
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
class _Prices:
    """Shadow prices of the LP relaxation: of one unit of budget, and of one more contact
    in each channel (0 where uncapped)."""

    budget: float
    capacity: np.ndarray

    def reduced_values(self, values, costs) -> np.ndarray:
        return values - self.budget * costs - self.capacity

    def bound(self, values, costs, capacities, budget) -> float:
        """The Lagrangian dual value: an upper bound on every plan's objective whatever the
        prices (weak duality), equal to the LP optimum at the LP's own prices."""
        capped = self.capacity > 0
        best = np.maximum(self.reduced_values(values, costs).max(axis=1, initial=0.0), 0.0)
        return (self.budget * budget + float(self.capacity[capped] @ capacities[capped])
                + float(best.sum()))


def _lp_prices(a, costs, save_rates, capacities, budget) -> _Prices:
    """The LP relaxation's shadow prices, solved exactly through its rank-one structure.

    With channels ordered by save rate (s_1 >= s_2 >= ...), counts n_j and cumulative counts
    N_j = n_1 + ... + n_j, the best fractional plan is worth
        sum_j (s_j - s_{j+1}) * A(N_j) - sum_j k_j n_j,   s_{C+1} = 0,
    where A(t) is the sum of the t largest a (linear between integers, so concave). Maximise
    over n subject to the budget, the capacities and N_C <= m, with A represented by its
    tangents (cutting planes added where the model over-estimates)."""
    n_channels = costs.size
    m = a.size
    if m == 0:
        return _Prices(0.0, np.zeros(n_channels))
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
    base_rows = [np.concatenate([costs[order], np.zeros(curved.size)]),
                  np.concatenate([np.ones(n_channels), np.zeros(curved.size)])]
    base_rhs = [budget, m]
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
        result = linprog(objective, A_ub=np.array(base_rows + cut_rows),
                         b_ub=np.array(base_rhs + cut_rhs), bounds=bounds, method="highs")
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
    capacity = np.zeros(n_channels)
    capacity[order] = -result.upper.marginals[:n_channels]
    return _Prices(max(-float(result.ineqlin.marginals[0]), 0.0), np.maximum(capacity, 0.0))


# --- the solvers ---------------------------------------------------------------------------

def _exact(values, costs, capacities, budget, prices, bound, incumbent, time_limit_s,
           ) -> tuple[np.ndarray, bool]:
    """The optimal plan: (channel per candidate or -1, proven optimal).

    Reduced-cost fixing first: at the LP prices, giving customer i option o instead of their
    best costs them ``loss_io`` (0 for the best; the no-contact option is worth 0) and any
    plan is worth at most ``bound - sum_i loss_i``, so a plan that beats the incumbent uses
    only options with ``loss_io <= bound - incumbent``. A customer left with one such option
    is fixed; the MILP decides the others (the core), which are few when the bound is
    tight."""
    n_channels = costs.size
    reduced = prices.reduced_values(values, costs)
    best = np.maximum(reduced.max(axis=1, initial=0.0), 0.0)
    slack = bound - _value(incumbent, values) + FIXING_TOLERANCE * max(1.0, abs(bound))
    open_option = (values > 0) & (best[:, None] - reduced <= slack)
    may_skip = best <= slack
    n_open = open_option.sum(axis=1)
    choice = np.where(n_open == 0, -1, open_option.argmax(axis=1))
    core = np.flatnonzero((n_open > 1) | ((n_open == 1) & may_skip))
    choice[core] = -1
    fixed = np.bincount(choice[choice >= 0], minlength=n_channels)
    choice[core], proven_optimal = _milp(
        np.where(open_option[core], values[core], 0.0), costs,
        np.maximum(capacities - fixed, 0), max(budget - _spend(fixed, costs), 0.0),
        time_limit_s)
    return choice, proven_optimal


def _milp(values, costs, capacities, budget, time_limit_s) -> tuple[np.ndarray, bool]:
    """The MILP over the options with a positive value: (channel per row or -1, proven
    optimal)."""
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
    # Shading the prices a little breaks the LP's ties in favour of using a capacity: the
    # customers it leaves exactly indifferent still join, and the scan enforces the cap.
    priced = np.where(values > 0, values - prices * (1 - PRICE_SHADING), -np.inf)
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
    free = order[:np.count_nonzero(cost_step == 0)]  # infinitely efficient: biggest first
    free[:] = free[np.argsort(-value_step[free], kind="stable")]
    customer, source, target, cost_step = (customer[order], source[order], target[order],
                                           cost_step[order])

    # Everything before the first step that breaks the budget or a capacity is bought at once.
    # The running sums carry rounding error, so they get a hair of slack; _within_budget
    # then checks the spend exactly.
    budget = budget * (1 + BUDGET_SLACK)
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

    # The rest one by one, in order of efficiency. A step that fits is bought; one that does
    # not fit the budget ends its customer's climb. A step into a full channel re-routes its
    # customer: their remaining hull steps are dropped and their best move among channels
    # with room (priced value gained per unit of extra cost, from where they stand) joins a
    # queue merged into the scan by efficiency; each re-routed move bought queues the next.
    # Steps dearer than the remaining budget can never fit (the budget only shrinks).
    tail = np.arange(accepted, customer.size)
    tail = tail[cost_step[tail] <= remaining]
    cheapest_after = np.minimum.accumulate(cost_step[tail][::-1])[::-1].tolist()
    current = choice.tolist()
    price = costs.tolist()
    stopped: set[int] = set()
    rerouted: set[int] = set()
    queue: list[tuple[float, int, int]] = []  # (-efficiency, customer, channel)

    def queue_best_move(i: int) -> None:
        held = current[i]
        held_cost, held_value = (price[held], priced[i, held]) if held >= 0 else (0.0, 0.0)
        best = None
        for c in range(n_channels):
            gain, extra = priced[i, c] - held_value, price[c] - held_cost
            if gain > 0 and load[c] < limit[c]:
                ratio = gain / extra if extra > 0 else math.inf
                if best is None or ratio > best[0]:
                    best = (ratio, c)
        if best is not None:
            heapq.heappush(queue, (-best[0], i, best[1]))

    def move(i: int, to: int) -> None:
        nonlocal remaining
        held = current[i]
        cost = price[to] - (price[held] if held >= 0 else 0.0)
        if cost > remaining:
            stopped.add(i)
        elif load[to] >= limit[to]:
            rerouted.add(i)
            queue_best_move(i)
        else:
            current[i] = to
            remaining -= cost
            load[to] += 1
            if held >= 0:
                load[held] -= 1
            if i in rerouted:
                queue_best_move(i)

    for position, (i, to, ratio) in enumerate(zip(
            customer[tail].tolist(), target[tail].tolist(), efficiency[order][tail].tolist(),
            strict=True)):
        while queue and -queue[0][0] >= ratio:
            _, j, channel = heapq.heappop(queue)
            move(j, channel)
        if remaining < cheapest_after[position]:
            break
        if i not in rerouted and i not in stopped:
            move(i, to)
    while queue:
        _, j, channel = heapq.heappop(queue)
        move(j, channel)
    return _top_up(np.array(current, dtype=np.int64), values, costs, capacities, budget)


def _top_up(choice, values, costs, capacities, budget) -> np.ndarray:
    """Use what the scan left over. The scan can strand budget or capacity: a step refused
    while a channel was full is not retried when a slot frees up, and priced ties may leave
    a slot empty. Move customers, biggest gain first, to any channel with room that is worth
    more to them than their current option (by true value), while the budget lasts; repeat
    until nothing moves (each round frees slots the next can use)."""
    n, n_channels = values.shape
    customers = np.arange(n)
    for _ in range(TOP_UP_ROUNDS):
        moved = False
        for c in range(n_channels):
            counts = np.bincount(choice[choice >= 0], minlength=n_channels)
            room = capacities[c] - counts[c]
            remaining = budget - _spend(counts, costs)
            contacted = choice >= 0
            held = np.where(contacted, values[customers, np.maximum(choice, 0)], 0.0)
            paid = np.where(contacted, costs[np.maximum(choice, 0)], 0.0)
            gain, extra = values[:, c] - held, costs[c] - paid
            movers = np.flatnonzero((gain > 0) & (extra <= remaining) & (choice != c))
            if room < 1 or movers.size == 0:
                continue
            movers = movers[np.argsort(-gain[movers], kind="stable")]
            fits = np.cumsum(extra[movers]) <= remaining
            stop = movers.size if fits.all() else int(np.argmin(fits))
            take = movers[:int(min(stop, room))]
            choice[take] = c
            moved |= take.size > 0
        if not moved:
            break
    return choice


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
