"""BG/NBD baseline: the likelihood and predictions against hand-worked values, the paper's
worked example and Monte Carlo simulation of the model; fitting against simulated data."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.optimize import OptimizeResult
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from ml.modeling import bgnbd
from ml.modeling.bgnbd import (
    BGNBDClassifier,
    BGNBDDegenerateFitWarning,
    BGNBDFitError,
    BGNBDParams,
    expected_purchases,
    fit,
    probability_alive,
    probability_purchase,
)


def log_likelihood(params: BGNBDParams, x, t_x, T) -> np.ndarray:
    """Per-customer log-likelihood: the sum of the two branches the fit maximises."""
    return np.logaddexp(*bgnbd._log_likelihood_branches(params, *bgnbd._customer_arrays(x, t_x, T)))


# Fader, Hardie & Lee (2005)'s estimates on the CDNOW data, in weeks.
CDNOW = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
BGNBD_COLUMNS = ["bgnbd_x", "bgnbd_t_x", "bgnbd_T"]


def simulate_histories(params: BGNBDParams, T, rng: np.random.Generator):
    """(x, t_x, T) per customer observed for T after their first purchase, drawn from the
    BG/NBD generative process (one customer per element of T)."""
    T = np.asarray(T, dtype=float)
    rate = rng.gamma(params.r, 1 / params.alpha, T.shape)
    dropout = rng.beta(params.a, params.b, T.shape)
    # Purchases while alive are a Poisson process; the customer drops out right after repeat
    # purchase number `last` (geometric), so only the first `last` of them happen.
    while_alive = rng.poisson(rate * T)
    last = rng.geometric(dropout)
    x = np.minimum(while_alive, last)
    # Given k Poisson arrivals in (0, T], the x-th is T times the x-th of k uniform order
    # statistics, which is Beta(x, k - x + 1).
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), while_alive - x + 1), 0.0)
    return x.astype(float), t_x, T


def observed_information(params: BGNBDParams, x, t_x, T, step=1e-3) -> np.ndarray:
    """Minus the Hessian of the total log-likelihood in log-parameters (central differences)."""
    def total(log_params):
        return log_likelihood(BGNBDParams(*np.exp(log_params)), x, t_x, T).sum()

    centre, steps = np.log(astuple(params)), np.eye(4) * step
    hessian = np.array([[
        (total(centre + steps[i] + steps[j]) - total(centre + steps[i] - steps[j])
         - total(centre - steps[i] + steps[j]) + total(centre - steps[i] - steps[j]))
        / (4 * step**2) for j in range(4)] for i in range(4)])
    return -hessian


def hypergeometric_series(a, b, c, z, terms=500) -> float:
    """Gauss's 2F1(a, b; c; z) = sum_n (a)_n (b)_n / ((c)_n n!) z^n, for |z| < 1."""
    total, term = 0.0, 1.0
    for n in range(terms):
        total += term
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
    return total


# --- fitting ---------------------------------------------------------------------------------

def test_fit_recovers_the_parameters_it_simulated_from():
    x, t_x, T = simulate_histories(CDNOW, np.full(5000, 39.0), np.random.default_rng(2005))

    estimate = fit(x, t_x, T)

    errors = np.log(astuple(estimate)) - np.log(astuple(CDNOW))
    standard_errors = np.sqrt(np.diag(np.linalg.inv(observed_information(estimate, x, t_x, T))))
    assert np.all(np.abs(errors) < 4 * standard_errors), (estimate, standard_errors)
    # Sampling spread at n = 5000 (sd over 300 seeds): r 3%, alpha 5%, a 14%, b 19%.
    assert np.all(np.abs(np.expm1(errors)) < [0.15, 0.25, 0.6, 0.8]), estimate
    assert (log_likelihood(estimate, x, t_x, T).sum()
            >= log_likelihood(CDNOW, x, t_x, T).sum() - 1e-6)


def test_weights_count_identical_customers():
    x, t_x, T = simulate_histories(CDNOW, np.full(400, 39.0), np.random.default_rng(1))
    counts = np.random.default_rng(2).integers(0, 5, x.size)
    counts[x > 0] = np.maximum(counts[x > 0], 1)  # keep some repeat buyers

    weighted = fit(x, t_x, T, weights=counts)
    repeated = fit(np.repeat(x, counts), np.repeat(t_x, counts), np.repeat(T, counts))

    np.testing.assert_allclose(astuple(weighted), astuple(repeated), rtol=1e-6)


def test_fit_reports_an_optimiser_that_stops_short(monkeypatch):
    stopped = OptimizeResult(x=np.zeros(4), jac=np.full(4, 0.3), success=False, nit=2000,
                             message="STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT")
    monkeypatch.setattr(bgnbd, "minimize", lambda *args, **kwargs: stopped)
    x, t_x, T = simulate_histories(CDNOW, np.full(200, 39.0), np.random.default_rng(3))

    with pytest.raises(BGNBDFitError, match="did not converge after 2000 iterations"):
        fit(x, t_x, T)


def test_fit_warns_when_the_likelihood_runs_off_to_a_limit_of_the_model():
    # Identical customers: no heterogeneity to estimate, so the MLE is a limiting case.
    with pytest.warns(BGNBDDegenerateFitWarning, match="search limit"):
        params = fit([5] * 10, [1.0] * 10, [40.0] * 10)
    assert np.all(np.isfinite(probability_purchase(params, 4, [0, 5], [0, 1], [1, 40])))


# --- likelihood and predictions against hand-worked values -----------------------------------

def log_beta(p, q):
    return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)


def test_log_likelihood_matches_hand_worked_values():
    # x = 0 leaves only the alive term, B(a, b)/B(a, b) * Gamma(r)/Gamma(r) * alpha^r /
    # (alpha + T)^r = (alpha / (alpha + T))^r; for CDNOW and T = 39: (4.414 / 43.414)^0.243.
    assert log_likelihood(CDNOW, 0, 0, 39)[()] == pytest.approx(
        0.243 * math.log(4.414 / 43.414), rel=1e-12)

    # r = alpha = a = b = 1, x = 2, t_x = 3, T = 5; Gamma(r + x)/Gamma(r) = Gamma(3) = 2:
    #   alive:   B(1, 3)/B(1, 1) * 2 / (1 + 5)^3 = 1/3 * 2/216 = 1/324
    #   dropped: B(2, 2)/B(1, 1) * 2 / (1 + 3)^3 = 1/6 * 2/64  = 1/192
    #   L = 1/324 + 1/192 = (16 + 27) / 5184 = 43/5184
    ones = BGNBDParams(1.0, 1.0, 1.0, 1.0)
    assert log_likelihood(ones, 2, 3, 5)[()] == pytest.approx(math.log(43 / 5184), rel=1e-12)

    # CDNOW, x = 3, t_x = 20, T = 39, term by term in scalar arithmetic.
    r, alpha, a, b = astuple(CDNOW)
    x, t_x, T = 3, 20.0, 39.0
    rate_part = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    alive = math.exp(log_beta(a, b + x) - log_beta(a, b) + rate_part
                     - (r + x) * math.log(alpha + T))
    dropped = math.exp(log_beta(a + 1, b + x - 1) - log_beta(a, b) + rate_part
                       - (r + x) * math.log(alpha + t_x))
    assert log_likelihood(CDNOW, x, t_x, T)[()] == pytest.approx(math.log(alive + dropped),
                                                                 rel=1e-12)
    assert probability_alive(CDNOW, x, t_x, T)[()] == pytest.approx(alive / (alive + dropped),
                                                                    rel=1e-12)


def test_expected_purchases_matches_hand_worked_values():
    # r = alpha = 1, a = 2, b = 1, x = 0, T = 1, t = 2: z = t / (alpha + T + t) = 1/2 and
    # 2F1(1, 1; 2; z) = -ln(1 - z) / z = 2 ln 2, so eq. 10 gives
    # (a + b - 1)/(a - 1) * (1 - (2/4)^1 * 2 ln 2) = 2 (1 - ln 2).
    assert expected_purchases(BGNBDParams(1.0, 1.0, 2.0, 1.0), 2, 0, 0, 1)[()] == pytest.approx(
        2 * (1 - math.log(2)), rel=1e-10)


@pytest.mark.parametrize("a", [0.793, 1.0004, 3.5])
def test_expected_purchases_matches_equation_10_summed_by_hand(a):
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86, next 39 weeks. Eq. 10 as
    # printed (untransformed 2F1, summed as a series), near a = 1 too, where the module
    # interpolates.
    r, alpha, _, b = astuple(CDNOW)
    x, t_x, T, t = 2, 30.43, 38.86, 39.0
    z = t / (alpha + T + t)
    if_alive = (a + b + x - 1) / (a - 1) * (
        1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
        * hypergeometric_series(r + x, b + x, a + b + x - 1, z))
    by_hand = if_alive / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))

    params = BGNBDParams(r, alpha, a, b)
    assert expected_purchases(params, t, x, t_x, T)[()] == pytest.approx(by_hand, rel=1e-5)
    if a == CDNOW.a:
        assert expected_purchases(params, t, x, t_x, T)[()] == pytest.approx(by_hand, rel=1e-10)
        assert by_hand == pytest.approx(1.226, abs=5e-4)  # as published in FHL 2005


def test_expected_purchases_at_a_equal_one():
    # Eq. 10 is 0/0 at a = 1; integrate its definition E[(1 - (1 + p s)^-(r+x)) / p] over
    # p ~ Beta(1, b + x) instead (s = t / (alpha + T); a customer with t_x = T = 0 is alive).
    r, alpha, b, x, T, t = 0.5, 3.0, 2.0, 0, 0.0, 10.0
    s = t / (alpha + T)
    value, _ = integrate.quad(
        lambda p: (b + x) * (1 - p) ** (b + x - 1) * -math.expm1(-(r + x) * math.log1p(p * s)) / p,
        0, 1, epsabs=0, epsrel=1e-12)
    params = BGNBDParams(r, alpha, 1.0, b)
    assert expected_purchases(params, t, x, T, T)[()] == pytest.approx(value, rel=1e-5)


# --- predictions against Monte Carlo simulation from the posterior ---------------------------

def weighted_mean_and_standard_error(values, weights):
    mean = weights @ values / weights.sum()
    return mean, np.sqrt(weights**2 @ (values - mean) ** 2) / weights.sum()


@pytest.mark.parametrize("x, t_x, T", [(2, 30.43, 38.86), (0, 0.0, 39.0), (7, 12.0, 39.0)])
def test_predictions_match_monte_carlo_from_the_posterior(x, t_x, T):
    # Importance sampling: draw (rate, dropout) from the prior and weight each draw by the
    # probability of the customer's history, split into "alive at T" (survived all x repeat
    # purchases, none since t_x) and "dropped out right after the x-th purchase at t_x".
    rng = np.random.default_rng(x)
    draws, horizon = 1_000_000, 26.0
    rate = rng.gamma(CDNOW.r, 1 / CDNOW.alpha, draws)
    dropout = rng.beta(CDNOW.a, CDNOW.b, draws)
    alive = np.exp(x * np.log(rate) + x * np.log1p(-dropout) - rate * T)
    dropped = (np.exp(x * np.log(rate) + np.log(dropout) + (x - 1) * np.log1p(-dropout)
                      - rate * t_x) if x > 0 else np.zeros(draws))
    weight = alive + dropped
    share_alive = alive / weight
    # Alive at T, the customer buys at `rate` until the purchase after which they drop out.
    future = np.minimum(rng.poisson(rate * horizon), rng.geometric(dropout))

    for predicted, outcome in [
        (probability_alive(CDNOW, x, t_x, T), share_alive),
        (probability_purchase(CDNOW, horizon, x, t_x, T), share_alive * (future > 0)),
        (expected_purchases(CDNOW, horizon, x, t_x, T), share_alive * future),
    ]:
        simulated, standard_error = weighted_mean_and_standard_error(outcome, weight)
        assert abs(predicted - simulated) <= 4 * standard_error + 1e-12, (predicted, simulated)


# --- shape of the predictions ----------------------------------------------------------------

def test_probability_alive_is_one_without_repeat_purchases_and_falls_with_time_since_last():
    assert np.all(probability_alive(CDNOW, 0, 0, [0.0, 1.0, 39.0, 520.0]) == 1.0)

    last_purchase = np.linspace(39, 0, 40)  # ever longer ago, for a customer aged 39 weeks
    alive = probability_alive(CDNOW, 3, last_purchase, 39)
    assert np.all(np.diff(alive) < 0)
    older = probability_alive(CDNOW, 3, 10.0, np.linspace(10, 100, 40))
    assert np.all(np.diff(older) < 0)


@settings(max_examples=200, deadline=None, database=None)
@given(params=st.tuples(*[st.floats(0.05, 20)] * 4), x=st.integers(0, 300),
       recency=st.floats(0, 1), T=st.floats(0, 500), t=st.floats(0.01, 500))
def test_predictions_are_consistent_probabilities(params, x, recency, T, t):
    params = BGNBDParams(*params)
    t_x = recency * T if x > 0 else 0.0
    alive = probability_alive(params, x, t_x, T)
    purchase = probability_purchase(params, t, x, t_x, T)
    expected = expected_purchases(params, t, x, t_x, T)
    assert 0 <= purchase <= alive <= 1
    # N >= 1{N > 0} for counts, and a longer horizon cannot lower either.
    assert expected >= purchase * (1 - 1e-6)
    assert probability_purchase(params, 2 * t, x, t_x, T) >= purchase
    assert expected_purchases(params, 2 * t, x, t_x, T) >= expected * (1 - 1e-6)


# --- the scikit-learn wrapper ----------------------------------------------------------------

def feature_mart_rows(customers: int, seed: int) -> pd.DataFrame:
    """Feature-mart-like rows: BG/NBD columns in days, a few customers with no purchase yet,
    and an unrelated column."""
    rng = np.random.default_rng(seed)
    x, t_x, T = simulate_histories(CDNOW, rng.integers(1, 79, customers), rng)
    frame = pd.DataFrame({"bgnbd_x": x, "bgnbd_t_x": t_x * 7, "bgnbd_T": T * 7,
                          "channel": rng.choice(["SEM", "CRM"], customers)})
    frame.loc[frame.index[:20], BGNBD_COLUMNS] = np.nan
    return frame


def test_classifier_in_a_pipeline_scores_purchase_and_churn():
    X = feature_mart_rows(3000, seed=11)
    y = np.random.default_rng(0).integers(0, 2, len(X))
    select = ColumnTransformer([("bgnbd", "passthrough", BGNBD_COLUMNS)],
                               verbose_feature_names_out=False).set_output(transform="pandas")
    purchase = Pipeline([("select", select),
                         ("model", BGNBDClassifier(horizon_days=91, target="purchase"))])
    churn = clone(purchase).set_params(model__target="churn")

    p_purchase = purchase.fit(X, y).predict_proba(X)
    p_churn = churn.fit(X, y).predict_proba(X)

    params = purchase.named_steps["model"].params_
    known = X["bgnbd_x"].notna().to_numpy()
    weeks = X.loc[known, BGNBD_COLUMNS].to_numpy() / [1, 7, 7]
    assert params == fit(*weeks.T)
    np.testing.assert_allclose(p_purchase[known, 1], probability_purchase(params, 13, *weeks.T))
    # No purchase yet: scored from the prior, as a customer buying for the first time now.
    np.testing.assert_allclose(p_purchase[~known, 1],
                               1 - (params.alpha / (params.alpha + 13)) ** params.r)
    np.testing.assert_allclose(p_purchase.sum(axis=1), 1.0)
    np.testing.assert_allclose(p_churn[:, 1], 1 - p_purchase[:, 1])
    assert set(purchase.predict(X)) <= {0, 1}
    assert list(purchase.classes_) == [0, 1]


def test_classifier_rejects_bad_input():
    X = feature_mart_rows(300, seed=5)
    with pytest.raises(ValueError, match="target must be"):
        BGNBDClassifier(horizon_days=30, target="revenue").fit(X)
    with pytest.raises(TypeError, match="needs a DataFrame"):
        BGNBDClassifier(horizon_days=30, target="churn").fit(X[BGNBD_COLUMNS].to_numpy())

    late = X.copy()
    late.loc[late.index[-1], ["bgnbd_t_x", "bgnbd_T"]] = [40.0, 30.0]
    with pytest.raises(ValueError, match=r"bgnbd_t_x.*must not exceed T"):
        BGNBDClassifier(horizon_days=30, target="churn").fit(late)
    negative = X.copy()
    negative.loc[negative.index[-1], "bgnbd_x"] = -1.0
    with pytest.raises(ValueError, match="x must be non-negative"):
        BGNBDClassifier(horizon_days=30, target="purchase").fit(negative)


# --- bad input to the functions --------------------------------------------------------------

@pytest.mark.parametrize("x, t_x, T, message", [
    (-1, 0, 5, "x must be non-negative"),
    (1, -2, 5, "t_x must be non-negative"),
    (1, 0, -5, "T must be non-negative"),
    (1, 6, 5, "t_x .* must not exceed T"),
    (1.5, 2, 5, "whole numbers"),
    (np.nan, 2, 5, "x must be finite"),
])
def test_bad_histories_raise(x, t_x, T, message):
    for call in (lambda: log_likelihood(CDNOW, x, t_x, T),
                 lambda: probability_alive(CDNOW, x, t_x, T),
                 lambda: probability_purchase(CDNOW, 4, x, t_x, T),
                 lambda: expected_purchases(CDNOW, 4, x, t_x, T),
                 lambda: fit([x, 2], [t_x, 3], [T, 5])):
        with pytest.raises(ValueError, match=message):
            call()


def test_bad_parameters_horizons_and_data_raise():
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        BGNBDParams(0.2, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="horizon"):
        probability_purchase(CDNOW, -1, 1, 1, 2)
    with pytest.raises(ValueError, match="without any repeat purchase"):
        fit([0, 0], [0, 0], [3, 4])
    with pytest.raises(ValueError, match="weights"):
        fit([1, 2], [1, 2], [3, 4], weights=[1, -1])
