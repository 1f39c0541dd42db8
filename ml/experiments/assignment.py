"""Assignment by design: a hashed, stratified control group sized by a power calculation.

**Hash.** Each customer's unit value is ``blake2b(campaign + customer_id)`` mapped to
[0, 1): the same (campaign, customer) always lands in the same group, whatever else is
in the plan, on any machine, with no seed to store; another campaign reshuffles.
**Strata.** Within each score decile of ``n_d`` customers the ``round(share * n_d)`` with
the smallest unit values are the control group, so every decile holds out exactly its
share and treated and control are the same mix of risk (a plain threshold on the hash
would only be balanced on average).

**Power.** The control share is the smallest that lets a two-sided z-test at level
``alpha`` detect a difference in retention of ``min_detectable_effect`` (absolute) with
the stated power, for the selected customers and their expected baseline retention:
with ``n`` customers and share ``s``, the detectable effect is
``(z_{1-alpha/2} + z_power) * sqrt(p (1 - p) (1/(s n) + 1/((1 - s) n)))``, which gives
``s (1 - s) >= (z_{1-alpha/2} + z_power)^2 p (1 - p) / (n mde^2)``. The share is kept
within [``MIN_CONTROL_SHARE``, ``MAX_CONTROL_SHARE``]; when even an even split cannot
reach the stated effect, the plan says so and shows the effect it can detect. Written
here (a closed form on ``scipy.stats.norm``) because statsmodels, whose ``NormalIndPower``
solves the same equation, is not in the stack.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np

MIN_CONTROL_SHARE = 0.05
MAX_CONTROL_SHARE = 0.5
DEFAULT_MIN_DETECTABLE_EFFECT = 0.05  # retention points (absolute)
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8


def unit_values(campaign: str, customer_ids) -> np.ndarray:
    """A deterministic value in [0, 1) per customer for this campaign."""
    prefix = campaign.encode() + b"\x1f"
    return np.array([int.from_bytes(hashlib.blake2b(prefix + str(c).encode(),
                                                    digest_size=8).digest(), "big") / 2**64
                     for c in customer_ids], dtype=np.float64)


def assign_control(campaign: str, customer_ids, strata, share: float) -> np.ndarray:
    """True for the control group: in each stratum the ``round(share * n)`` customers with
    the smallest unit values (Python's round, half to even)."""
    if not 0 <= share <= MAX_CONTROL_SHARE:
        raise ValueError(f"control share must be between 0 and {MAX_CONTROL_SHARE}, got {share}")
    strata = np.asarray(strata)
    customer_ids = np.asarray(customer_ids)
    if strata.shape != customer_ids.shape or strata.ndim != 1:
        raise ValueError(f"strata has shape {strata.shape}, expected one per customer "
                         f"({customer_ids.shape})")
    if customer_ids.size != np.unique(customer_ids).size:
        raise ValueError("customer ids must be unique within a campaign")
    values = unit_values(campaign, customer_ids)
    _, stratum = np.unique(strata, return_inverse=True)
    sizes = np.bincount(stratum)
    held_out = np.array([round(share * size) for size in sizes], dtype=np.int64)
    order = np.lexsort((values, stratum))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(strata.size, dtype=np.int64)
    rank[order] = np.arange(strata.size) - starts[stratum[order]]
    return rank < held_out[stratum]


@dataclass(frozen=True)
class PowerPlan:
    """The control share of a campaign and why."""

    control_share: float
    min_detectable_effect: float  # the stated one
    detectable_effect: float  # what the chosen share can detect
    baseline_retention: float
    alpha: float
    power: float
    customers: int
    reaches_target: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def detectable_effect(n_treated: int, n_control: int, baseline: float,
                      alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> float:
    """Smallest absolute difference in a rate the two-sided z-test detects with ``power``."""
    from scipy.stats import norm

    if n_treated < 1 or n_control < 1:
        return float("inf")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    variance = max(baseline * (1 - baseline), 1e-6)
    return float(z * np.sqrt(variance * (1 / n_treated + 1 / n_control)))


def control_share_for(customers: int, baseline_retention: float,
                      min_detectable_effect: float = DEFAULT_MIN_DETECTABLE_EFFECT,
                      alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> PowerPlan:
    """The smallest control share that detects ``min_detectable_effect`` (see the module)."""
    from scipy.stats import norm

    if not 0 < min_detectable_effect < 1:
        raise ValueError(f"min_detectable_effect must be in (0, 1), got {min_detectable_effect}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if not 0 <= baseline_retention <= 1:
        raise ValueError(f"baseline retention must be in [0, 1], got {baseline_retention}")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    variance = max(baseline_retention * (1 - baseline_retention), 1e-6)
    needed = z**2 * variance / (max(customers, 1) * min_detectable_effect**2)  # s (1 - s)
    share = (1 - np.sqrt(1 - 4 * needed)) / 2 if needed <= 0.25 else MAX_CONTROL_SHARE
    # whole customers: round the control group up, then keep it within the bounds
    n_control = int(np.clip(math.ceil(share * customers - 1e-9),
                            math.ceil(MIN_CONTROL_SHARE * customers),
                            math.floor(MAX_CONTROL_SHARE * customers)))
    share = n_control / customers if customers else MAX_CONTROL_SHARE
    achieved = detectable_effect(customers - n_control, n_control, baseline_retention, alpha,
                                 power)
    reaches = achieved <= min_detectable_effect * (1 + 1e-9)
    if reaches:
        reason = (f"{share:.1%} of {customers:,} customers held out detects a retention "
                  f"difference of {achieved:.1%} (stated minimum {min_detectable_effect:.1%}; "
                  f"alpha {alpha}, power {power:.0%}, baseline retention "
                  f"{baseline_retention:.1%})")
    else:
        reason = (f"{customers:,} customers are too few to detect {min_detectable_effect:.1%} "
                  f"(alpha {alpha}, power {power:.0%}, baseline retention "
                  f"{baseline_retention:.1%}): holding out {share:.1%} detects {achieved:.1%}")
    return PowerPlan(share, min_detectable_effect, achieved, baseline_retention, alpha, power,
                     customers, bool(reaches), reason)


def power_of_share(customers: int, baseline_retention: float, share: float,
                   min_detectable_effect: float = DEFAULT_MIN_DETECTABLE_EFFECT,
                   alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> PowerPlan:
    """What a given control share can detect (a share set by hand rather than sized)."""
    n_control = round(share * customers)
    achieved = detectable_effect(customers - n_control, n_control, baseline_retention, alpha,
                                 power)
    reaches = achieved <= min_detectable_effect * (1 + 1e-9)
    reason = (f"control share {share:.1%} set by hand: with {customers:,} customers it detects "
              f"a retention difference of {achieved:.1%} (stated minimum "
              f"{min_detectable_effect:.1%}; alpha {alpha}, power {power:.0%}, baseline "
              f"retention {baseline_retention:.1%})")
    return PowerPlan(float(share), min_detectable_effect, achieved, baseline_retention, alpha,
                     power, customers, bool(reaches), reason)
