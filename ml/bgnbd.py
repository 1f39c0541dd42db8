"""BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way".

The customer model: while alive, a customer buys at Poisson rate lambda ~ Gamma(r, alpha)
(alpha is a rate); right after each repeat purchase they drop out for good with probability
p ~ Beta(a, b). A purchase history is summarised as (x, t_x, T): the number of repeat
purchases, the time of the last purchase and the customer's age, all measured from the first
purchase in one time unit (weeks by default).

Everything is computed in logs and vectorised over customers. `BGNBDClassifier` wraps the
model as a scikit-learn classifier over the feature mart's `bgnbd_*` columns.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

# Log-parameters are searched in [-15, 15] (about 3e-7 .. 3e6): wide enough for any unit of
# time, narrow enough that gammaln/betaln stay accurate. An optimum on this box edge means the
# likelihood keeps rising towards a degenerate model, which fit() reports as non-convergence.
_LOG_PARAM_BOUND = 15.0


class BGNBDFitError(RuntimeError):
    """Maximum likelihood did not converge to an interior optimum."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self):
        for name, value in zip(("r", "alpha", "a", "b"), astuple(self), strict=True):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be finite and > 0, got {value!r}")


def _customer_arrays(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float arrays (broadcast to one shape) of repeat purchases, recency, age."""
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    for name, values in (("x", x), ("t_x", t_x), ("T", T)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        if np.any(values < 0):
            raise ValueError(f"{name} must be non-negative, got a minimum of {values.min()}")
    if np.any(x != np.floor(x)):
        raise ValueError("x (number of repeat purchases) must be whole numbers")
    late = t_x > T
    if np.any(late):
        raise ValueError(
            f"t_x (time of the last purchase) must not exceed T (customer age): {late.sum()} "
            f"customer(s) violate it, e.g. t_x={t_x[late][0]} > T={T[late][0]}")
    return x, t_x, T


def _horizon(t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("the horizon t must be finite and non-negative")
    return t


def rfm_summary(purchase_times: pd.DataFrame, customer_col: str, time_col: str,
                observation_end, time_unit_days: float = 7.0) -> pd.DataFrame:
    """Per customer (index `customer_col`): x, t_x and T in units of `time_unit_days`.

    Uses only purchases strictly before `observation_end`; several purchases on one calendar
    day count as one, so x = distinct purchase days - 1. T runs from the first purchase day to
    `observation_end`.
    """
    if time_unit_days <= 0:
        raise ValueError("time_unit_days must be positive")
    end = pd.Timestamp(observation_end)
    times = pd.to_datetime(purchase_times[time_col])
    before = times < end
    days = pd.DataFrame({customer_col: purchase_times.loc[before, customer_col],
                         "day": times[before].dt.normalize()})
    per_customer = days.groupby(customer_col)["day"].agg(["min", "max", "nunique"])
    unit = pd.Timedelta(days=time_unit_days)
    return pd.DataFrame({
        "x": (per_customer["nunique"] - 1).astype(float),
        "t_x": (per_customer["max"] - per_customer["min"]) / unit,
        "T": (end - per_customer["min"]) / unit,
    }, index=per_customer.index)


def _log_likelihood_branches(params: BGNBDParams, x, t_x, T):
    """log P(data, alive at T) and log P(data, dropped out after the last repeat purchase)."""
    r, alpha, a, b = astuple(params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    log_alive = common + betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # Dropping out needs a repeat purchase to drop out after; B(a+1, b-1) is undefined at x=0.
    log_dropped = np.where(
        x > 0,
        common + betaln(a + 1, b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x),
        -np.inf)
    return log_alive, log_dropped


def log_likelihood(params: BGNBDParams, x, t_x, T) -> np.ndarray:
    """Per-customer log-likelihood of (x, t_x, T) (FHL 2005, eq. 6)."""
    x, t_x, T = _customer_arrays(x, t_x, T)
    return np.logaddexp(*_log_likelihood_branches(params, x, t_x, T))


def _negative_mean_log_likelihood(log_params, x, t_x, T, weights):
    """Weighted mean negative log-likelihood and its gradient in log-parameters."""
    r, alpha, a, b = np.exp(log_params)
    log_alive, log_dropped = _log_likelihood_branches(BGNBDParams(r, alpha, a, b), x, t_x, T)
    total = np.logaddexp(log_alive, log_dropped)
    share_alive = np.exp(log_alive - total)
    share_dropped = 1.0 - share_alive
    x_before_last = np.maximum(x, 1) - 1  # any finite value at x=0, where share_dropped is 0

    # d/dtheta log L = share_alive * d(log_alive) + share_dropped * d(log_dropped).
    d_common_r = digamma(r + x) - digamma(r) + np.log(alpha)
    d_r = d_common_r - share_alive * np.log(alpha + T) - share_dropped * np.log(alpha + t_x)
    d_alpha = (r / alpha - share_alive * (r + x) / (alpha + T)
               - share_dropped * (r + x) / (alpha + t_x))
    d_common_a = digamma(a + b) - digamma(a)
    d_common_b = digamma(a + b) - digamma(b)
    d_a = (d_common_a - digamma(a + b + x)
           + share_alive * digamma(a) + share_dropped * digamma(a + 1))
    d_b = (d_common_b - digamma(a + b + x)
           + share_alive * digamma(b + x) + share_dropped * digamma(b + x_before_last))

    gradient = np.array([r * d_r, alpha * d_alpha, a * d_a, b * d_b]) @ weights
    return -(total @ weights), -gradient


def _compress(x, t_x, T, weights):
    """Identical (x, t_x, T) rows collapsed into one row carrying their summed weight."""
    frame = pd.DataFrame({"x": x, "t_x": t_x, "T": T, "w": weights})
    grouped = frame[frame["w"] > 0].groupby(["x", "t_x", "T"], sort=False)["w"].sum()
    keys = grouped.index
    return (keys.get_level_values("x").to_numpy(float), keys.get_level_values("t_x").to_numpy(float),
            keys.get_level_values("T").to_numpy(float), grouped.to_numpy(float))


def fit(x, t_x, T, weights=None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters.

    `weights` (optional, non-negative) count identical customers; identical rows are
    collapsed internally anyway, so millions of customers fit in seconds.
    Raises BGNBDFitError when the optimiser does not reach an interior optimum.
    """
    x, t_x, T = (v.ravel() for v in _customer_arrays(x, t_x, T))
    weights = (np.ones_like(x) if weights is None
               else np.broadcast_to(np.asarray(weights, dtype=float), x.shape).ravel())
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    x, t_x, T, weights = _compress(x, t_x, T, weights)
    if not np.any(x > 0):
        raise ValueError("BG/NBD cannot be fitted without any repeat purchase (all x == 0)")
    weights = weights / weights.sum()  # a mean keeps the optimiser's tolerances scale-free

    # Start from one purchase-rate shape (r=1) matching the observed rate, and uniform p.
    rate = (x @ weights) / max(T @ weights, 1e-12)
    start = np.log([1.0, 1.0 / rate, 1.0, 1.0]).clip(-_LOG_PARAM_BOUND + 1, _LOG_PARAM_BOUND - 1)
    result = minimize(_negative_mean_log_likelihood, start, args=(x, t_x, T, weights),
                      jac=True, method="L-BFGS-B",
                      bounds=[(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * 4,
                      options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
    if not (result.success and np.all(np.isfinite(result.x))):
        raise BGNBDFitError(f"BG/NBD maximum likelihood did not converge: {result.message}")
    at_edge = np.abs(result.x) > _LOG_PARAM_BOUND - 1e-3
    if np.any(at_edge):
        names = [name for name, edge in zip(("r", "alpha", "a", "b"), at_edge) if edge]
        raise BGNBDFitError(
            f"BG/NBD maximum likelihood ran off to a degenerate model ({', '.join(names)} "
            f"at the search limit {np.exp(_LOG_PARAM_BOUND):.0e} or its inverse); the data do "
            "not identify the model")
    return BGNBDParams(*(float(v) for v in np.exp(result.x)))


def probability_alive(params: BGNBDParams, x, t_x, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T) (FHL 2005 note, eq. 2 of "Computing P(alive)")."""
    x, t_x, T = _customer_arrays(x, t_x, T)
    r, alpha, a, b = astuple(params)
    log_odds_dropped = (np.log(a) - np.log(b + np.maximum(x, 1) - 1)
                        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(x > 0, expit(-log_odds_dropped), 1.0)


def expected_purchases(params: BGNBDParams, t, x, t_x, T) -> np.ndarray:
    """E[number of purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10).

    Eq. 10's factor ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) is evaluated
    through Euler's transformation as (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): the same
    value, without 0 * inf for frequent buyers over long horizons.
    """
    x, t_x, T = _customer_arrays(x, t_x, T)
    t = _horizon(t)
    r, alpha, a, b = astuple(params)
    # The value is continuous in the parameters, but the closed form is 0/0 at a = 1 (and at
    # a + b = 1 when x = 0), and scipy's 2F1 overflows when r - a is a whole number. Evaluate a
    # hair away from those points: at most ~1e-5 relative error, and only there.
    if abs(a - 1) < 1e-6:
        a = 1 + 1e-6
    if a + b == 1:
        b *= 1 + 1e-9
    if r - a == round(r - a):
        r *= 1 + 1e-9
    log_survival = np.log1p(-t / (alpha + T + t))  # log(1 - z)
    c = a + b + x - 1
    hypergeometric = hyp2f1(a + b - 1 - r, a - 1, c, -np.expm1(log_survival))
    purchases_if_alive = c / (a - 1) * (1 - np.exp((a - 1) * log_survival) * hypergeometric)
    return probability_alive(params, x, t_x, T) * purchases_if_alive


def probability_purchase(params: BGNBDParams, t, x, t_x, T) -> np.ndarray:
    """P(at least one purchase in (T, T+t] | x, t_x, T).

    A customer alive at T cannot drop out before their next purchase, so they make none in
    (T, T+t] with probability exp(-lambda t); given alive and the data, lambda ~
    Gamma(r + x, alpha + T). Hence P = P(alive) * (1 - ((alpha+T) / (alpha+T+t))^(r+x)).
    """
    x, t_x, T = _customer_arrays(x, t_x, T)
    t = _horizon(t)
    r, alpha, _, _ = astuple(params)
    some_purchase_if_alive = -np.expm1(-(r + x) * np.log1p(t / (alpha + T)))
    return probability_alive(params, x, t_x, T) * some_purchase_if_alive
