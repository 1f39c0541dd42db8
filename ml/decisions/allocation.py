"""The retention budget optimiser: whom to contact, through which channel, and who is held out.

Customer ``i`` has a churn probability ``p_i`` and a value ``v_i`` (trailing 12-month
margin); channel ``c`` has a contact cost ``k_c``, an assumed save rate ``s_c`` (the
probability that contacting a would-be churner keeps them) and optionally a capacity (the
most contacts it can take). Contacting ``i`` through ``c`` is worth, in expectation,

    e_ic = p_i * s_c * v_i - k_c      (expected retained value minus the contact cost)

The plan gives each customer at most one channel, only where ``e_ic > 0``, to maximise the
sum of ``e`` subject to the budget (sum of contact costs) and the capacities: a
multiple-choice knapsack problem (MCKP) with side constraints. Customers with at least one
option worth contacting are the *candidates*.

With an uplift model (``allocate_uplift``) the objective is expected *incremental* value,
``e_ic = u_i * r_c * v_i - k_c``: the customer's estimated effect of contact ``u_i`` in place
of ``p_i * s_c``'s guess that contact saves a fixed share of would-be churners, and a
channel's relative effect ``r_c`` in place of its save rate. Same shape, same solvers.

The structure that makes it tractable: every customer ranks the channels the same way
(``e_ic`` depends on the customer only through ``a_i = p_i v_i``), so once the number of
contacts per channel is fixed, the best plan gives the customers with the largest ``a`` to
the channels with the largest save rate, in consecutive blocks (the rearrangement
inequality). The problem collapses to choosing a handful of counts, whatever the number of
customers (see ``_best_counts``). Two solvers, both of which never exceed the budget or a
capacity:

- ``milp`` (up to ``exact_max_customers`` candidates): exact. ``scipy.optimize.milp``
  (HiGHS) on the whole counts, with the concave top-``t`` sums of ``a`` as lazily added
  cutting planes; checked against brute force and against the per-customer binary MILP,
  which HiGHS could not always finish (its presolve alone took minutes at 20k candidates,
  ignoring the time limit, and small knapsack-like instances ran out the 30 s).
- ``greedy`` (above that): Sinha & Zoltners (1979). Per customer keep only the
  LP-undominated options (the upper convex hull of (cost, value) starting at "no contact"),
  then buy the hulls' incremental steps in order of value per unit of cost while the budget
  lasts. Capacities enter through their LP shadow prices ``mu_c``: hulls are built on
  ``e_ic - mu_c``, so a channel that is full in the LP optimum attracts only the customers
  for whom it beats their next-best channel by more than its scarcity. Capacities are then
  enforced exactly while buying: a customer refused by a full channel is re-routed to their
  best channel with room, and a top-up spends whatever budget and capacity is left. The LP
  optimum rounded down to whole counts is a second candidate; the better plan is returned.

Both report the LP relaxation bound (budget *and* capacities, solved exactly with
``linprog`` on the same count formulation) and the relative gap
``(lp_bound - objective) / lp_bound``, an upper bound on how far the plan is from the true
optimum. The reported bound is the Lagrangian dual value at the LP's shadow prices: equal
to the LP optimum, and an upper bound whatever the solver's accuracy.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

log = logging.getLogger(__name__)

# HiGHS stops once the incumbent is provably within this relative distance of the optimum.
MIP_REL_GAP = 1e-9
# Cutting planes on A stop when the model over-estimates it by less than this (relative to
# the sum of all a), or after MAX_CUT_ROUNDS rounds (an LP bound then stays a valid bound).
CUT_TOLERANCE = 1e-10
MAX_CUT_ROUNDS = 200
# Whole counts in the LP optimum may come back a hair below the integer.
ROUNDING_TOLERANCE = 1e-6
# Relative slack on the greedy's running budget, so rounding in long sums of costs does not
# leave an exactly affordable contact out; the final spend is checked without slack.
BUDGET_SLACK = 1e-9
# Relative reduction of the capacity prices in the greedy's hulls (see _ladder).
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
    # (lp_bound - objective) / lp_bound, 0 when the bound is 0: at most the distance from
    # the optimum (for a milp plan, the optimum's own distance from the LP bound)
    gap: float
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
    return np.outer(p * v, [c.save_rate for c in channels]) - [c.cost for c in channels]


def allocate(p, v, channels: list[Channel], budget: float,
             exact_max_customers: int = 20_000, time_limit_s: float = 30) -> Allocation:
    """The best plan for ``budget``: exact MILP for up to ``exact_max_customers`` candidates
    (customers with an option worth contacting), the greedy above that, or if HiGHS does not
    prove optimality within ``time_limit_s`` (``method`` says which)."""
    return _solve(_Instance.build(p, v, channels), channels, budget, exact_max_customers,
                  time_limit_s)


def uplift_values(uplift, v, channels: list[Channel],
                  channel_effect: dict[str, float] | None = None) -> np.ndarray:
    """The (n, C) matrix of e_ic = u_i * r_c * v_i - k_c: the uplift objective. An (n, C)
    ``uplift`` (an effect per customer and channel) gives e_ic = u_ic * v_i - k_c."""
    if np.ndim(uplift) == 2:
        validate_channels(channels)
        u, v = _uplift_arrays(uplift, v)
        if u.shape[1] != len(channels) or channel_effect:
            raise ValueError(f"an (n, C) uplift needs one column per channel "
                             f"({len(channels)}, got {u.shape[1]}) and no channel_effect")
        return u * v[:, None] - [c.cost for c in channels]
    appeal, rates = _uplift_appeal(uplift, v, channels, channel_effect)
    return np.outer(appeal, rates) - [c.cost for c in channels]


def allocate_uplift(uplift, v, channels: list[Channel], budget: float,
                    channel_effect: dict[str, float] | None = None,
                    exact_max_customers: int = 20_000, time_limit_s: float = 30) -> Allocation:
    """The best plan for ``budget`` on expected *incremental* value: customer ``i``'s
    estimated effect of contact on retention ``u_i`` (an uplift model's score; negative when
    contact drives them away) times their value ``v_i`` times the channel's effect ``r_c``,
    minus the contact cost ``k_c``:

        e_ic = u_i * r_c * v_i - k_c

    ``r_c`` (``channel_effect``, default 1 for every channel) scales the pooled effect the
    uplift model learned to channel ``c`` (e.g. a channel's measured effect over the
    campaigns' average). The objective has the churn objective's shape, ``a_i * r_c - k_c``
    with ``a_i = u_i v_i``, so the same exact MILP and greedy solve it, within the budget and
    capacities. Customers with ``u_i <= 0`` (and ``v_i >= 0``) are never contacted: every
    option loses."""
    appeal, rates = _uplift_appeal(uplift, v, channels, channel_effect)
    return _solve(_Instance.from_appeal(appeal, rates, channels), channels, budget,
                  exact_max_customers, time_limit_s)


def _uplift_appeal(uplift, v, channels: list[Channel], channel_effect: dict[str, float] | None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    validate_channels(channels)
    u, v = _uplift_arrays(uplift, v)
    if u.ndim != 1:
        raise ValueError(f"uplift must be one-dimensional here, got shape {u.shape}")
    effect = dict(channel_effect or {})
    unknown = sorted(set(effect) - {c.name for c in channels})
    if unknown:
        raise ValueError(f"channel_effect names unknown channel(s) {unknown}; channels are "
                         f"{[c.name for c in channels]}")
    rates = np.array([effect.get(c.name, 1.0) for c in channels], dtype=np.float64)
    if not np.isfinite(rates).all() or (rates < 0).any():
        raise ValueError(f"channel_effect must be finite and >= 0, got {effect}")
    return u * v, rates


def allocate_values(values, channels: list[Channel], budget: float,
                    exact_max_customers: int = 20_000, time_limit_s: float = 30) -> Allocation:
    """The best plan for any (n, C) matrix of expected values ``e_ic`` of contacting
    customer ``i`` through channel ``c`` (e.g. an uplift model's effect of each channel
    times the customer's value, minus the cost), within the budget and capacities.

    Customers may rank the channels differently here (one answers e-mail, another only
    letters), so the counts formulation does not apply: the LP relaxation and its shadow
    prices come from the per-(customer, channel) LP, and the exact plan from the
    per-(customer, channel) binary MILP (HiGHS) up to ``exact_max_customers`` candidates;
    above that, or when HiGHS does not prove optimality within ``time_limit_s``, the same
    greedy (hulls at the LP's capacity prices) as ``allocate``, or the LP optimum's whole
    part topped up, whichever is worth more."""
    validate_channels(channels)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(channels):
        raise ValueError(f"values must have one column per channel ({len(channels)}), got "
                         f"shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values must be finite")
    return _solve(_Instance.from_values(values, channels), channels, budget,
                  exact_max_customers, time_limit_s)


def _uplift_arrays(uplift, v) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(uplift, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or u.ndim not in (1, 2) or u.shape[0] != v.shape[0]:
        raise ValueError(f"uplift and v must have one row per customer and equal length, "
                         f"got shapes {u.shape} and {v.shape}")
    if not np.isfinite(u).all() or (np.abs(u) > 1).any():
        raise ValueError("uplift (effect of contact on the retention probability) must be "
                         "finite and in [-1, 1]")
    if not np.isfinite(v).all():
        raise ValueError("v (customer value) must be finite")
    return u, v


def _solve(instance: _Instance, channels: list[Channel], budget: float,
           exact_max_customers: int, time_limit_s: float) -> Allocation:
    budget = _positive_budget(budget)
    relaxation = _relaxation(instance, budget)
    bound = relaxation.bound(instance, budget)
    if instance.candidates.size <= exact_max_customers:
        optimum = _optimum(instance, budget, time_limit_s)
        if optimum is not None:
            return _allocation(instance, channels, optimum, "milp", bound, budget)
        log.warning("MILP stopped at its %.0f s limit; returning the greedy plan", time_limit_s)
    choice = _heuristic(instance, _ladder(instance, relaxation), budget, relaxation)
    return _allocation(instance, channels, choice, "greedy", bound, budget)


def frontier(p, v, channels: list[Channel], budgets: Sequence[float]) -> pd.DataFrame:
    """The greedy plan at each budget, one row per budget:

    - ``spend``: contact costs actually committed (<= budget);
    - ``expected_return``: expected retained value, sum of p_i * s_c * v_i over the contacted;
    - ``net_value``: expected_return - spend (the optimiser's objective);
    - ``roi``: net_value / spend (NaN when nothing is spent);
    - ``n_contacted`` and ``gap`` (to the LP bound) for context.

    The same plans as ``allocate(..., exact_max_customers=0)``; consecutive budgets at which
    no capacity binds (or the capacity prices agree) share the hulls and their sorting."""
    budgets = [_positive_budget(budget) for budget in budgets]
    instance = _Instance.build(p, v, channels)
    rows, ladder = [], None
    for budget in budgets:
        relaxation = _relaxation(instance, budget)
        if ladder is None or not np.array_equal(ladder.capacity_prices,
                                                relaxation.capacity_prices):
            ladder = _ladder(instance, relaxation)
        plan = _allocation(instance, channels,
                           _heuristic(instance, ladder, budget, relaxation), "greedy",
                           relaxation.bound(instance, budget), budget)
        rows.append({"budget": budget, "spend": plan.spend,
                     "expected_return": plan.expected_return, "net_value": plan.objective,
                     "roi": _ratio(plan.objective, plan.spend),
                     "n_contacted": int(plan.contacted.sum()), "gap": plan.gap})
    return pd.DataFrame(rows, columns=["budget", "spend", "expected_return", "net_value", "roi",
                                       "n_contacted", "gap"])


def assign_control_group(score_deciles, share: float, seed: int, *, campaign: str | None = None,
                         customer_ids=None) -> np.ndarray:
    """The hashed, stratified holdout of ``ml.experiments.assignment``: within each decile
    ``d`` of ``n_d`` customers exactly ``round(share * n_d)`` (Python's round, half to even)
    are marked True, those whose hash of (campaign, customer) is smallest. The same
    campaign and customers give the same group. Without a campaign and ids (a bare array of
    deciles), the campaign is ``seed-<seed>`` and the ids are the positions."""
    from ml.experiments.assignment import assign_control

    _check_share(share)
    deciles = _deciles(score_deciles)
    ids = (np.arange(deciles.size).astype(str) if customer_ids is None
           else np.asarray(customer_ids).astype(str))
    return assign_control(campaign if campaign is not None else f"seed-{seed}", ids, deciles,
                          share)


def plan_campaign(p, v, deciles, channels: list[Channel], budget: float,
                  control_share: float | None, seed: int, exact_max_customers: int = 20_000, *,
                  uplift=None, channel_effect: dict[str, float] | None = None,
                  campaign: str | None = None, customer_ids=None,
                  min_detectable_effect: float | None = None,
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
    ``(allocation.channel_index >= 0) & ~is_control``.

    With ``uplift`` (each customer's estimated effect of contact, from the uplift champion)
    the plan maximises expected incremental value instead: ``allocate_uplift`` (with
    ``channel_effect``) for one effect per customer, ``allocate_values`` for an (n, C)
    effect per customer and channel; ``p`` then plays no part in whom to contact.

    The control group is hashed on (``campaign``, ``customer_ids``) within each decile
    (``assign_control_group``). ``control_share=None`` sizes it by the power calculation of
    ``ml.experiments.assignment.control_share_for`` for ``min_detectable_effect`` on the
    selected customers (baseline retention = 1 - their mean churn probability); the
    summary's ``power`` says what it can detect."""
    from ml.experiments.assignment import (
        DEFAULT_MIN_DETECTABLE_EFFECT,
        control_share_for,
        power_of_share,
    )

    if control_share is not None:
        _check_share(control_share)
    deciles = _deciles(deciles)
    if deciles.shape != np.shape(p):
        raise ValueError(f"deciles has shape {deciles.shape}, expected {np.shape(p)} "
                         "(one per customer)")
    if uplift is None:
        allocation = allocate(p, v, channels, budget, exact_max_customers=exact_max_customers)
        values = expected_values(p, v, channels)
    else:
        values = uplift_values(uplift, v, channels, channel_effect)
        allocation = (allocate_uplift(uplift, v, channels, budget, channel_effect,
                                      exact_max_customers=exact_max_customers)
                      if np.ndim(uplift) == 1 else
                      allocate_values(values, channels, budget,
                                      exact_max_customers=exact_max_customers))
    selected = np.flatnonzero(allocation.contacted)
    p_selected = np.asarray(p, dtype=np.float64)[selected]
    baseline = float(1 - p_selected.mean()) if selected.size else 0.5
    mde = min_detectable_effect or DEFAULT_MIN_DETECTABLE_EFFECT
    baseline = float(np.clip(baseline, 0.0, 1.0))
    power = (control_share_for(max(selected.size, 1), baseline, mde) if control_share is None
             else power_of_share(selected.size, baseline, float(control_share), mde))
    share = power.control_share
    is_control = np.zeros(allocation.channel_index.size, dtype=bool)
    ids = None if customer_ids is None else np.asarray(customer_ids)[selected]
    is_control[selected] = assign_control_group(deciles[selected], share, seed,
                                                campaign=campaign, customer_ids=ids)

    treated = np.flatnonzero(allocation.contacted & ~is_control)
    channel = allocation.channel_index[treated]
    incremental = float(values[treated, channel].sum())
    spend = _spend(np.bincount(channel, minlength=len(channels)),
                   np.array([c.cost for c in channels]))
    summary = {
        "spend": spend,
        "expected_incremental_value": incremental,
        "expected_return": incremental + spend,
        "roi": _ratio(incremental, spend),
        "n_treated": int(treated.size),
        "n_control": int(is_control.sum()),
        "method": allocation.method,
        "gap": allocation.gap,
        "control_share": share,
        "control_share_source": "power" if control_share is None else "given",
        "power": power.as_dict(),
    }
    return allocation, is_control, summary


# --- the problem, its LP relaxation and the exact solver -----------------------------------

@dataclass(frozen=True)
class _Instance:
    """The validated inputs, reduced to the candidates."""

    n_customers: int
    candidates: np.ndarray  # positions of the candidates among the customers
    values: np.ndarray  # (m, C) e_ic of the candidates
    by_appeal: np.ndarray  # the candidates (0..m-1) by a_i = p_i * v_i, largest first
    appeal: np.ndarray  # a_i in that order (all the LP needs of them)
    costs: np.ndarray
    save_rates: np.ndarray
    capacities: np.ndarray  # inf where uncapped
    # e_ic = a_i * r_c - k_c (every customer ranks the channels alike); False for a general
    # matrix (allocate_values), where by_appeal, appeal and save_rates play no part
    rank_one: bool = True

    @classmethod
    def build(cls, p, v, channels: list[Channel]) -> _Instance:
        validate_channels(channels)
        p, v = _customer_arrays(p, v)
        return cls.from_appeal(p * v, np.array([c.save_rate for c in channels]), channels)

    @classmethod
    def from_appeal(cls, appeal: np.ndarray, rates: np.ndarray,
                    channels: list[Channel]) -> _Instance:
        """e_ic = a_i * r_c - k_c: the churn objective (a = p v, r = save rate) and the
        uplift objective (a = uplift v, r = channel effect) alike."""
        values = np.outer(appeal, rates) - np.array([c.cost for c in channels])
        candidates = np.flatnonzero((values > 0).any(axis=1))
        appeal = appeal[candidates]
        by_appeal = np.argsort(-appeal, kind="stable")
        return cls(
            n_customers=values.shape[0],
            candidates=candidates,
            values=values[candidates],
            by_appeal=by_appeal,
            appeal=appeal[by_appeal],
            costs=np.array([c.cost for c in channels], dtype=np.float64),
            save_rates=np.asarray(rates, dtype=np.float64),
            capacities=np.array([np.inf if c.capacity is None else c.capacity
                                 for c in channels], dtype=np.float64),
        )

    @classmethod
    def from_values(cls, values: np.ndarray, channels: list[Channel]) -> _Instance:
        candidates = np.flatnonzero((values > 0).any(axis=1))
        return cls(
            n_customers=values.shape[0], candidates=candidates, values=values[candidates],
            by_appeal=np.arange(candidates.size), appeal=np.zeros(candidates.size),
            costs=np.array([c.cost for c in channels], dtype=np.float64),
            save_rates=np.zeros(len(channels)),
            capacities=np.array([np.inf if c.capacity is None else c.capacity
                                 for c in channels], dtype=np.float64),
            rank_one=False,
        )

    def value(self, choice: np.ndarray) -> float:
        """Objective of a choice (channel per candidate or -1)."""
        contacted = np.flatnonzero(choice >= 0)
        return float(self.values[contacted, choice[contacted]].sum())

    def counts(self, choice: np.ndarray) -> np.ndarray:
        return np.bincount(choice[choice >= 0], minlength=self.costs.size)


@dataclass(frozen=True)
class _Relaxation:
    """The LP relaxation's optimum: its contacts per channel (fractional) and its shadow
    prices, of one unit of budget and of one more contact in each channel (0 if uncapped)."""

    counts: np.ndarray
    budget_price: float
    capacity_prices: np.ndarray
    # general matrix only: the LP optimum's whole part (channel per candidate or -1)
    whole_part: np.ndarray | None = None

    def bound(self, instance: _Instance, budget: float) -> float:
        """The Lagrangian dual value: an upper bound on every plan's objective whatever the
        prices (weak duality), equal to the LP optimum at the LP's own prices."""
        capped = self.capacity_prices > 0
        reduced = (instance.values - self.budget_price * instance.costs
                   - self.capacity_prices)
        best = np.maximum(reduced.max(axis=1, initial=0.0), 0.0)
        return (self.budget_price * budget
                + float(self.capacity_prices[capped] @ instance.capacities[capped])
                + float(best.sum()))


def _relaxation(instance: _Instance, budget: float) -> _Relaxation:
    """The LP relaxation: its optimum and shadow prices."""
    if not instance.rank_one:
        return _pairs_relaxation(instance, budget)
    counts, result = _best_counts(instance, budget, whole=False)
    if result is None:
        return _Relaxation(counts, 0.0, np.zeros(counts.size))
    capacity_prices = np.zeros(counts.size)
    capacity_prices[_by_save_rate(instance)] = np.maximum(
        -result.upper.marginals[:counts.size], 0.0)
    return _Relaxation(counts, max(-float(result.ineqlin.marginals[0]), 0.0), capacity_prices)


def _optimum(instance: _Instance, budget: float, time_limit_s: float) -> np.ndarray | None:
    """The optimal plan (channel per candidate or -1), or None if HiGHS ran out of time."""
    if not instance.rank_one:
        return _pairs_optimum(instance, budget, time_limit_s)
    counts, _ = _best_counts(instance, budget, whole=True, time_limit_s=time_limit_s)
    return None if counts is None else _blocks(instance, counts)


def _best_counts(instance: _Instance, budget: float, whole: bool,
                 time_limit_s: float = math.inf) -> tuple[np.ndarray | None, object]:
    """The best number of contacts per channel, fractional (the LP relaxation) or whole (the
    problem itself), and the last HiGHS result (None when there are no candidates).

    Every customer ranks the channels the same way (e_ic depends on the customer only through
    a_i = p_i v_i), so for given counts the best plan gives the customers with the largest a
    to the channels with the largest save rate, in consecutive blocks (the rearrangement
    inequality; fractionally as well). With channels ordered by save rate (s_1 >= s_2 >= ...)
    and cumulative counts N_j = n_1 + ... + n_j, the plan is worth
        sum_j (s_j - s_{j+1}) * A(N_j) - sum_j k_j n_j,   s_{C+1} = 0,
    where A(t) is the sum of the t largest a (linear between integers, so concave). Maximise
    over n subject to the budget, the capacities and N_C <= m, with each A(N_j) represented
    by its tangents, added as cutting planes where the model over-estimates it: a handful of
    variables whatever the number of customers."""
    top, costs, capacities = instance.appeal, instance.costs, instance.capacities
    n_channels, m = costs.size, top.size
    if m == 0:
        return np.zeros(n_channels), None
    prefix = np.concatenate([[0.0], np.cumsum(top)])

    order = _by_save_rate(instance)
    rates = instance.save_rates[order]
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
    lower = np.concatenate([np.zeros(n_channels), np.full(curved.size, -np.inf)])
    upper = np.concatenate([np.where(capacities[order] < m, capacities[order], np.inf),
                            np.full(curved.size, np.inf)])
    integrality = np.concatenate([np.full(n_channels, int(whole)), np.zeros(curved.size)])

    grid = np.concatenate([np.geomspace(1, m, 48), np.linspace(1, m, 16)])
    segments = [set(np.unique(grid.astype(np.int64) - 1).tolist()) for _ in curved]
    tolerance = CUT_TOLERANCE * (prefix[-1] + 1)
    deadline = time.monotonic() + time_limit_s
    for _ in range(MAX_CUT_ROUNDS):
        cut_rows, cut_rhs = [], []
        for h, j in enumerate(curved):
            for r in sorted(segments[h]):
                # h_j <= A(r) + top[r] * (N_j - r), the tangent on segment [r, r + 1]
                row = np.zeros(n_channels + curved.size)
                row[:n_channels] = -top[r] * cumulative[j]
                row[n_channels + h] = 1.0
                cut_rows.append(row)
                cut_rhs.append(prefix[r] - top[r] * r)
        rows, rhs = np.array(base_rows + cut_rows), np.array(base_rhs + cut_rhs)
        if whole:
            result = milp(objective, integrality=integrality, bounds=Bounds(lower, upper),
                          constraints=LinearConstraint(rows, -np.inf, rhs),
                          options={"mip_rel_gap": MIP_REL_GAP,
                                   "time_limit": max(deadline - time.monotonic(), 0.0)})
            if result.status != 0:
                return None, result
            counts = np.rint(result.x[:n_channels])
        else:
            result = linprog(objective, A_ub=rows, b_ub=rhs,
                             bounds=list(zip(lower, upper, strict=True)), method="highs")
            if result.status != 0:
                raise RuntimeError(f"LP relaxation failed: {result.message}")
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
    else:
        if whole:  # the model may still over-estimate: not proven optimal
            return None, result
    by_channel = np.zeros(n_channels)
    by_channel[order] = counts
    return by_channel, result


def _pairs_program(instance: _Instance, budget: float):
    """One variable per (candidate, channel), x_ic in [0, 1] (0 where e_ic <= 0): at most
    one channel per candidate, the budget, each finite capacity. (objective, A, b, upper)
    for HiGHS, minimising."""
    from scipy import sparse

    m, n_channels = instance.values.shape
    capped = np.flatnonzero(np.isfinite(instance.capacities))
    rows = sparse.vstack([
        sparse.kron(sparse.eye(m, format="csr"), np.ones((1, n_channels))),
        sparse.csr_matrix(np.tile(instance.costs, m)[None, :]),
        sparse.kron(np.ones((1, m)), sparse.eye(n_channels, format="csr")[capped]),
    ]).tocsr()
    rhs = np.concatenate([np.ones(m), [budget], instance.capacities[capped]])
    upper = (instance.values > 0).ravel().astype(np.float64)
    return -instance.values.ravel(), rows, rhs, upper, capped


def _pairs_relaxation(instance: _Instance, budget: float) -> _Relaxation:
    m, n_channels = instance.values.shape
    if m == 0:
        return _Relaxation(np.zeros(n_channels), 0.0, np.zeros(n_channels), np.zeros(0, int))
    objective, rows, rhs, upper, capped = _pairs_program(instance, budget)
    result = linprog(objective, A_ub=rows, b_ub=rhs,
                     bounds=np.column_stack([np.zeros(upper.size), upper]), method="highs")
    if result.status != 0:
        raise RuntimeError(f"LP relaxation failed: {result.message}")
    x = result.x.reshape(m, n_channels)
    duals = np.maximum(-result.ineqlin.marginals, 0.0)
    capacity_prices = np.zeros(n_channels)
    capacity_prices[capped] = duals[m + 1:]
    whole = x >= 1 - ROUNDING_TOLERANCE
    return _Relaxation(x.sum(axis=0), float(duals[m]), capacity_prices,
                       np.where(whole.any(axis=1), whole.argmax(axis=1), -1))


def _pairs_optimum(instance: _Instance, budget: float, time_limit_s: float,
                   ) -> np.ndarray | None:
    m, n_channels = instance.values.shape
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    objective, rows, rhs, upper, _ = _pairs_program(instance, budget)
    result = milp(objective, integrality=np.ones(upper.size),
                  bounds=Bounds(np.zeros(upper.size), upper),
                  constraints=LinearConstraint(rows, -np.inf, rhs),
                  options={"mip_rel_gap": MIP_REL_GAP, "time_limit": time_limit_s})
    if result.status != 0:
        return None
    x = result.x.reshape(m, n_channels) > 0.5
    return np.where(x.any(axis=1), x.argmax(axis=1), -1).astype(np.int64)


def _by_save_rate(instance: _Instance) -> np.ndarray:
    return np.argsort(-instance.save_rates, kind="stable")


def _blocks(instance: _Instance, counts: np.ndarray) -> np.ndarray:
    """The plan with whole ``counts`` per channel: the candidates by a, largest first, in
    consecutive blocks per channel in save-rate order (leaving out anyone a block would
    contact at a loss, and never more than a capacity)."""
    order = _by_save_rate(instance)
    ends = np.cumsum(counts[order]).astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    choice = np.full(instance.values.shape[0], -1, dtype=np.int64)
    for channel, start, end in zip(order, starts, ends, strict=True):
        block = instance.by_appeal[start:int(min(end, start + instance.capacities[channel]))]
        choice[block[instance.values[block, channel] > 0]] = channel
    return choice


# --- the greedy -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ladder:
    """Every candidate's LP-undominated options at given capacity prices, as incremental
    steps in the order the greedy buys them (most value per unit of cost first)."""

    capacity_prices: np.ndarray
    priced: np.ndarray  # (m, C) values net of the (shaded) prices, -inf where e_ic <= 0
    hull: np.ndarray  # (m, C + 1) channel at each hull point, -1 = no contact
    customer: np.ndarray  # per step, in buying order
    source: np.ndarray
    target: np.ndarray
    cost: np.ndarray
    efficiency: np.ndarray


def _ladder(instance: _Instance, relaxation: _Relaxation) -> _Ladder:
    """Upper convex hull of {(0, 0)} + {(k_c, e_ic - mu_c)} per customer, all customers at
    once: channels in cost order (the same for everyone), a stack of hull points per customer,
    popping points that fall on or below the chord to the new point. Shading the prices a
    little breaks the LP's ties in favour of using a capacity: the customers it leaves exactly
    indifferent still join, and the scan enforces the cap."""
    costs = instance.costs
    m, n_channels = instance.values.shape
    priced = np.where(instance.values > 0,
                      instance.values
                      - relaxation.capacity_prices * (1 - PRICE_SHADING), -np.inf)
    # Hull points as flat arrays (customer i's point d at i * width + d): 1-D gathers are
    # several times faster than 2-D fancy indexing at a million customers.
    width = n_channels + 1
    hull = np.full(m * width, -1, dtype=np.int64)
    hull_cost = np.zeros(m * width)
    hull_value = np.zeros(m * width)
    first = np.arange(m) * width  # each customer's "no contact" point
    depth = np.ones(m, dtype=np.int64)
    for c in np.argsort(costs, kind="stable"):
        value = priced[:, c]
        joins = np.flatnonzero(value > hull_value[first + depth - 1])  # else dominated
        popping = joins
        while popping.size:
            popping = popping[depth[popping] >= 2]
            top = first[popping] + depth[popping] - 1
            below = top - 1
            not_above = ((hull_cost[top] - hull_cost[below])
                         * (value[popping] - hull_value[below])
                         - (hull_value[top] - hull_value[below])
                         * (costs[c] - hull_cost[below])) >= 0
            popping = popping[not_above]
            depth[popping] -= 1
        slot = first[joins] + depth[joins]
        hull[slot] = c
        hull_cost[slot] = costs[c]
        hull_value[slot] = value[joins]
        depth[joins] += 1

    # Steps along each hull: step 1 of every customer first, then step 2, ..., so a stable
    # sort by efficiency keeps each customer's steps in order (their efficiencies fall).
    steps = [np.flatnonzero(depth > s) for s in range(1, n_channels + 1)]
    customer = np.concatenate(steps)
    end = first[customer] + np.repeat(np.arange(1, width), [rows.size for rows in steps])
    cost = hull_cost[end] - hull_cost[end - 1]
    gain = hull_value[end] - hull_value[end - 1]
    efficiency = np.divide(gain, cost, out=np.full(customer.size, np.inf), where=cost > 0)
    order = np.argsort(-efficiency, kind="stable")
    free = order[:np.count_nonzero(cost == 0)]  # infinitely efficient: biggest gain first
    free[:] = free[np.argsort(-gain[free], kind="stable")]
    customer, end = customer[order], end[order]
    return _Ladder(capacity_prices=relaxation.capacity_prices, priced=priced,
                   hull=hull.reshape(m, width), customer=customer, source=hull[end - 1],
                   target=hull[end], cost=cost[order], efficiency=efficiency[order])


def _heuristic(instance: _Instance, ladder: _Ladder, budget: float,
               relaxation: _Relaxation) -> np.ndarray:
    """The better of the greedy and the LP optimum rounded down (which is the optimum
    itself when the LP's counts come out whole, as they often do)."""
    return max(_greedy(instance, ladder, budget, relaxation),
               _rounded_relaxation(instance, budget, relaxation), key=instance.value)


def _rounded_relaxation(instance: _Instance, budget: float, relaxation: _Relaxation,
                        ) -> np.ndarray:
    """The LP optimum's plan with its counts rounded down (see _best_counts), fitted to the
    budget and topped up (for a general matrix: the LP's whole assignments)."""
    if not instance.rank_one:
        return _top_up(instance, _fit_budget(instance, relaxation.whole_part.copy(), budget),
                       budget, relaxation)
    order = _by_save_rate(instance)
    ends = np.floor(np.cumsum(relaxation.counts[order]) + ROUNDING_TOLERANCE)
    counts = np.zeros(order.size)
    counts[order] = np.diff(ends, prepend=0.0)
    return _top_up(instance, _fit_budget(instance, _blocks(instance, counts), budget), budget,
                   relaxation)


def _greedy(instance: _Instance, ladder: _Ladder, budget: float, relaxation: _Relaxation,
            ) -> np.ndarray:
    """Buy the ladder's steps within the budget and capacities; the channel per candidate
    or -1."""
    m, n_channels = instance.values.shape
    capacities, priced = instance.capacities, ladder.priced
    customer, target, step_cost = ladder.customer, ladder.target, ladder.cost
    # The running sums carry rounding error, so they get a hair of slack; _allocation then
    # checks the spend exactly.
    budget = budget * (1 + BUDGET_SLACK)

    # Everything before the first step that breaks the budget or a capacity at once.
    spent = np.cumsum(step_cost)
    accepted = int(np.searchsorted(spent, budget, side="right"))
    for c in np.flatnonzero(np.isfinite(capacities)):
        load = np.cumsum((target == c).astype(np.int64) - (ladder.source == c))
        over = np.flatnonzero(load > capacities[c])
        if over.size:
            accepted = min(accepted, int(over[0]))
    climbed = np.bincount(customer[:accepted], minlength=m)  # steps taken per customer
    choice = ladder.hull[np.arange(m), climbed]
    remaining = budget - (spent[accepted - 1] if accepted else 0.0)

    # The rest one by one, in order of efficiency. A step that fits is bought; one that does
    # not fit the budget ends its customer's climb. A step into a full channel re-routes its
    # customer: their remaining hull steps are dropped and their best move among channels
    # with room (priced value gained per unit of extra cost, from where they stand) joins a
    # queue merged into the scan by efficiency; each re-routed move bought queues the next.
    # Steps dearer than the remaining budget can never fit (the budget only shrinks).
    tail = np.arange(accepted, customer.size)
    tail = tail[step_cost[tail] <= remaining]
    cheapest_after = np.minimum.accumulate(step_cost[tail][::-1])[::-1].tolist()
    current = choice.tolist()
    load = instance.counts(choice).tolist()
    limit = capacities.tolist()
    price = instance.costs.tolist()
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
                efficiency = gain / extra if extra > 0 else math.inf
                if best is None or efficiency > best[0]:
                    best = (efficiency, c)
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

    for position, (i, to, efficiency) in enumerate(zip(
            customer[tail].tolist(), target[tail].tolist(), ladder.efficiency[tail].tolist(),
            strict=True)):
        while queue and -queue[0][0] >= efficiency:
            _, j, channel = heapq.heappop(queue)
            move(j, channel)
        if remaining < cheapest_after[position]:
            break
        if i not in rerouted and i not in stopped:
            move(i, to)
    while queue:
        _, j, channel = heapq.heappop(queue)
        move(j, channel)
    return _top_up(instance, np.array(current, dtype=np.int64), budget, relaxation)


def _top_up(instance: _Instance, choice: np.ndarray, budget: float,
            relaxation: _Relaxation) -> np.ndarray:
    """Use what a plan leaves over. The scan can strand budget or capacity (a step refused
    while a channel was full is not retried when a slot frees up, and priced ties may leave
    a slot empty), and so does rounding the LP down. Move customers to any channel with room
    that is worth more to them than their current option, while the budget lasts, biggest
    gain at the capacity prices first (so a scarce slot goes to whom it helps most net of
    the slot it frees); repeat until nothing moves (each round frees slots the next uses)."""
    values, costs = instance.values, instance.costs
    customers = np.arange(values.shape[0])
    for _ in range(TOP_UP_ROUNDS):
        moved = False
        for c in range(costs.size):
            counts = instance.counts(choice)
            room = instance.capacities[c] - counts[c]
            if room < 1:
                continue
            remaining = budget - _spend(counts, costs)
            contacted = choice >= 0
            held = np.maximum(choice, 0)
            gain = values[:, c] - np.where(contacted, values[customers, held], 0.0)
            extra = costs[c] - np.where(contacted, costs[held], 0.0)
            movers = np.flatnonzero((gain > 0) & (extra <= remaining) & (choice != c))
            prices = relaxation.capacity_prices
            freed = np.where(contacted[movers], prices[held[movers]], 0.0)
            movers = movers[np.argsort(-(gain[movers] - prices[c] + freed), kind="stable")]
            fits = np.cumsum(extra[movers]) <= remaining
            stop = movers.size if fits.all() else int(np.argmin(fits))
            take = movers[:int(min(stop, room))]
            choice[take] = c
            moved |= take.size > 0
        if not moved:
            break
    return choice


# --- helpers --------------------------------------------------------------------------------

def _allocation(instance: _Instance, channels: list[Channel], choice: np.ndarray,
                method: Literal["milp", "greedy"], bound: float, budget: float) -> Allocation:
    """The reported plan. Solver tolerance and rounding could leave the spend a hair over
    the budget, hence the final fit."""
    choice = _fit_budget(instance, choice, budget)
    channel_index = np.full(instance.n_customers, -1, dtype=np.int64)
    channel_index[instance.candidates] = choice
    counts = instance.counts(choice)
    objective = instance.value(choice)
    bound = max(bound, objective)  # equal when the LP is integral, up to rounding
    return Allocation(
        channel_index=channel_index,
        objective=objective,
        spend=_spend(counts, instance.costs),
        method=method,
        lp_bound=bound,
        gap=(bound - objective) / bound if bound > 0 else 0.0,
        per_channel={c.name: int(n) for c, n in zip(channels, counts, strict=True)},
    )


def _fit_budget(instance: _Instance, choice: np.ndarray, budget: float) -> np.ndarray:
    """Drop the least efficient contacts until the spend, computed exactly as reported,
    fits the budget."""
    costs, choice = instance.costs, choice.copy()
    over = _spend(instance.counts(choice), costs) - budget
    if over > 0:
        paid = np.flatnonzero((choice >= 0) & (costs[np.maximum(choice, 0)] > 0))
        paid = paid[np.argsort(instance.values[paid, choice[paid]] / costs[choice[paid]],
                               kind="stable")]
        dropped = int(np.searchsorted(np.cumsum(costs[choice[paid]]), over)) + 1
        choice[paid[:dropped]] = -1
        while _spend(instance.counts(choice), costs) > budget:  # rounding in the sums
            choice[paid[dropped]] = -1
            dropped += 1
    return choice


def _spend(counts, costs) -> float:
    return math.fsum(int(n) * float(k) for n, k in zip(counts, costs, strict=True))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _is_number(value) -> bool:
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool))


def _positive_budget(budget) -> float:
    if not _is_number(budget) or not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    return float(budget)


def _check_share(share) -> None:
    if not _is_number(share) or not 0 <= share <= 0.5:
        raise ValueError(f"share must be in [0, 0.5], got {share!r}")


def _deciles(score_deciles) -> np.ndarray:
    deciles = np.asarray(score_deciles)
    if deciles.ndim != 1:
        raise ValueError(f"score_deciles must be one-dimensional, got shape {deciles.shape}")
    if deciles.dtype.kind == "f" and np.isnan(deciles).any():
        raise ValueError("score_deciles has missing values")
    return deciles


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
