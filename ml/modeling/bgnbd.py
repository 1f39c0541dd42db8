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

import warnings
from dataclasses import astuple, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

# Log-parameters are searched in [-15, 15] (about 3e-7 .. 3e6): wide enough for any unit of
# time, narrow enough that gammaln/betaln stay accurate. An optimum on this box's edge means
# the likelihood keeps rising towards a limiting case of the model.
_LOG_PARAM_BOUND = 15.0
_GRADIENT_TOLERANCE = 1e-5  # on the mean log-likelihood per customer, in log-parameters
_LIMIT_MARGIN = 3.0  # log-parameters beyond e^12 (about 160,000) count as at the limit
_PARAM_NAMES = ("r", "alpha", "a", "b")


class BGNBDFitError(RuntimeError):
    """Maximum likelihood did not converge."""


class BGNBDDegenerateFitWarning(RuntimeWarning):
    """The likelihood is maximised only in a limit of the model (a parameter -> 0 or inf)."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self):
        for name, value in zip(_PARAM_NAMES, astuple(self), strict=True):
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
    return (*(keys.get_level_values(name).to_numpy(float) for name in ("x", "t_x", "T")),
            grouped.to_numpy(float))


def fit(x, t_x, T, weights=None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters.

    `weights` (optional, non-negative) count identical customers; identical rows are
    collapsed internally anyway, so a million customers fit in seconds. Raises BGNBDFitError
    when the optimiser stops short of a stationary point. When the likelihood keeps rising
    towards a limiting case of the model (e.g. r, alpha -> inf: no heterogeneity in purchase
    rates), warns and returns the parameters at the search limit, which describe that limit.
    """
    x, t_x, T = (v.ravel() for v in _customer_arrays(x, t_x, T))
    if x.size == 0:
        raise ValueError("BG/NBD cannot be fitted to no customers")
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
    log_params, gradient = np.asarray(result.x), np.asarray(result.jac)
    # Within _LIMIT_MARGIN of the bound a parameter has run off towards a limiting case:
    # out there the likelihood is flat to rounding, and L-BFGS-B stops on that noise
    # ("ABNORMAL") a little short of the bound, where it lands depending on the machine's
    # floating point. With so tight a tolerance it may also stop on rounding noise at the
    # optimum: judge convergence by the gradient of the coordinates not run off.
    at_edge = np.abs(log_params) > _LOG_PARAM_BOUND - _LIMIT_MARGIN
    stationary = np.all(np.abs(gradient[~at_edge]) < _GRADIENT_TOLERANCE)
    if not (np.all(np.isfinite(log_params)) and (result.success or stationary)):
        raise BGNBDFitError(
            f"BG/NBD maximum likelihood did not converge after {result.nit} iterations "
            f"({result.message}); log-parameters {np.round(log_params, 3).tolist()}, "
            f"gradient {np.round(gradient, 6).tolist()}")
    if np.any(at_edge):
        names = ", ".join(name for name, edge in zip(_PARAM_NAMES, at_edge, strict=True) if edge)
        warnings.warn(
            f"BG/NBD likelihood keeps rising towards a limiting case of the model: {names} "
            f"reached the search limit (within e^{_LIMIT_MARGIN:g} of e^{_LOG_PARAM_BOUND:g} or "
            "its inverse); predictions use that limit", BGNBDDegenerateFitWarning, stacklevel=2)
    return BGNBDParams(*(float(v) for v in np.exp(log_params)))


def probability_alive(params: BGNBDParams, x, t_x, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T): the alive term's share of the likelihood,
    1 / (1 + [x > 0] a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))."""
    x, t_x, T = _customer_arrays(x, t_x, T)
    r, alpha, a, b = astuple(params)
    log_odds_dropped = (np.log(a) - np.log(b + np.maximum(x, 1) - 1)
                        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(x > 0, expit(-log_odds_dropped), 1.0)


def _purchases_if_alive(r, alpha, a, b, t, x, T) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T]: eq. 10 without its P(alive) factor.

    Eq. 10's ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) is evaluated through
    Euler's transformation as (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): the same value,
    without 0 * inf for frequent buyers over long horizons.
    """
    # scipy's 2F1 overflows when r - a is (within ~1e-13 of) a whole number, and this is 0/0
    # at a + b = 1 for x = 0; the value is continuous there, so step just off those points.
    whole = round(r - a)
    if abs(r - a - whole) < 1e-11:
        r = a + whole + 1e-11
    if abs(a + b - 1) < 1e-9:
        b = 1 - a + 1e-9
    log_survival = np.log1p(-t / (alpha + T + t))  # log(1 - z)
    c = a + b + x - 1
    hypergeometric = hyp2f1(a + b - 1 - r, a - 1, c, -np.expm1(log_survival))
    return c / (a - 1) * (1 - np.exp((a - 1) * log_survival) * hypergeometric)


def expected_purchases(params: BGNBDParams, t, x, t_x, T) -> np.ndarray:
    """E[number of purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10)."""
    x, t_x, T = _customer_arrays(x, t_x, T)
    t = _horizon(t)
    r, alpha, a, b = astuple(params)
    step = 1e-3
    if abs(a - 1) < step:
        # a = 1 is a removable singularity of eq. 10 where it loses all precision; interpolate
        # between a = 1 -/+ step, where it is well conditioned (error ~step^2).
        weight = (a - 1 + step) / (2 * step)
        purchases = ((1 - weight) * _purchases_if_alive(r, alpha, 1 - step, b, t, x, T)
                     + weight * _purchases_if_alive(r, alpha, 1 + step, b, t, x, T))
    else:
        purchases = _purchases_if_alive(r, alpha, a, b, t, x, T)
    return probability_alive(params, x, t_x, T) * purchases


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


class BGNBDClassifier(ClassifierMixin, BaseEstimator):
    """BG/NBD as a scikit-learn classifier over the feature mart's BG/NBD columns.

    The columns are in days (`frequency_col` is a count of repeat purchase days); recency and
    age are converted to units of `time_unit_days` before fitting. `y` is ignored: the model
    is fitted to the purchase histories alone. Column 1 of `predict_proba` is P(at least one
    purchase within `horizon_days`) for target="purchase", its complement for "churn".

    Rows with any of the three columns missing (customers without a purchase yet) are left
    out of the fit and scored as a customer whose first purchase is happening now
    (x = t_x = T = 0), i.e. from the fitted prior alone.
    """

    def __init__(self, horizon_days: int, target: Literal["purchase", "churn"],
                 frequency_col: str = "bgnbd_x", recency_col: str = "bgnbd_t_x",
                 age_col: str = "bgnbd_T", time_unit_days: float = 7.0):
        self.horizon_days = horizon_days
        self.target = target
        self.frequency_col = frequency_col
        self.recency_col = recency_col
        self.age_col = age_col
        self.time_unit_days = time_unit_days

    def _histories(self, X: pd.DataFrame):
        """(x, t_x, T) in model time units, and which rows have a purchase history."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} needs a DataFrame with columns "
                            f"{self.frequency_col!r}, {self.recency_col!r}, {self.age_col!r}")
        if not self.time_unit_days > 0:
            raise ValueError("time_unit_days must be positive")
        columns = [X[c].to_numpy(dtype=float, na_value=np.nan)
                   for c in (self.frequency_col, self.recency_col, self.age_col)]
        known = ~np.any(np.isnan(np.column_stack(columns)), axis=1)
        x, t_x, T = (np.where(known, values, 0.0) for values in columns)
        try:
            x, t_x, T = _customer_arrays(x, t_x / self.time_unit_days, T / self.time_unit_days)
        except ValueError as error:
            raise ValueError(f"columns ({self.frequency_col}, {self.recency_col}, "
                             f"{self.age_col}) are (x, t_x, T): {error}") from error
        return x, t_x, T, known

    def fit(self, X: pd.DataFrame, y=None):
        if self.target not in ("purchase", "churn"):
            raise ValueError(f"target must be 'purchase' or 'churn', got {self.target!r}")
        x, t_x, T, known = self._histories(X)
        self.params_ = fit(x[known], t_x[known], T[known])
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "params_")
        x, t_x, T, _ = self._histories(X)
        purchase = probability_purchase(self.params_, self.horizon_days / self.time_unit_days,
                                        x, t_x, T)
        positive = purchase if self.target == "purchase" else 1.0 - purchase
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
