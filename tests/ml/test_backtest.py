"""Fold construction: no training label may mature after its fold's as-of date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.modeling.backtest import plan_folds


@st.composite
def snapshots(draw):
    n_dates = draw(st.integers(2, 30))
    step = draw(st.sampled_from([7, 14, 30, 31]))
    horizon = draw(st.integers(1, 200))
    dates = pd.date_range("2022-01-01", periods=n_dates, freq=f"{step}D")
    counts = draw(st.lists(st.integers(1, 5), min_size=n_dates, max_size=n_dates))
    as_of = pd.Series(np.repeat(dates.to_numpy(), counts))
    matured_on = as_of + pd.Timedelta(days=horizon)
    return as_of, matured_on, draw(st.integers(1, 8))


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_training_labels_mature_before_their_fold(case):
    as_of, matured_on, k = case
    folds = plan_folds(as_of, matured_on, k)
    assert len(folds) <= k
    for fold in folds:
        assert (matured_on.iloc[fold.train_rows] <= fold.as_of).all()
        assert (as_of.iloc[fold.test_rows] == fold.as_of).all()
        assert set(fold.train_rows).isdisjoint(fold.test_rows)
        # every row whose label matured by the fold date is used (no needless loss of data)
        assert len(fold.train_rows) == int((matured_on <= fold.as_of).sum())
    fold_dates = [f.as_of for f in folds]
    assert fold_dates == sorted(fold_dates)
    assert set(fold_dates) <= set(sorted(as_of.unique())[-k:])


def test_latest_snapshots_become_folds():
    as_of = pd.Series(pd.to_datetime(["2024-01-01"] * 3 + ["2024-02-01"] * 3 + ["2024-03-01"] * 3
                                     + ["2024-04-01"] * 3 + ["2024-05-01"] * 3))
    matured_on = as_of + pd.Timedelta(days=30)
    folds = plan_folds(as_of, matured_on, 2)
    assert [f.as_of for f in folds] == [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-05-01")]
    # fold 2024-04-01: Jan labels (mature Jan 31) and Feb labels (Mar 2) yes; Mar (Mar 31) yes
    assert len(folds[0].train_rows) == 9
    # a fold with no matured history is left out
    assert plan_folds(as_of, as_of + pd.Timedelta(days=400), 3) == []


def _result(means: dict[str, list[float]]):
    from ml.modeling.backtest import BacktestResult

    rows = [(fold, pd.Timestamp("2024-01-01") + pd.DateOffset(months=fold), learner, "roc_auc", v)
            for learner, values in means.items() for fold, v in enumerate(values)]
    return BacktestResult(pd.DataFrame(), pd.DataFrame(
        rows, columns=["fold", "as_of", "learner", "metric", "value"]))


def test_candidate_best_picks_the_best_and_breaks_ties_toward_the_simpler_learner():
    from ml.modeling.backtest import choose_candidate
    from ml.modeling.specs import get_spec

    spec = get_spec("churn")  # candidate: best, min_improvement 0.002
    clear = choose_candidate(_result({"xgboost": [0.86, 0.88], "logistic_regression": [0.84, 0.85],
                                      "recency_rule": [0.78, 0.79], "bgnbd": [0.83, 0.83]}), spec)
    assert clear["winner"] == "xgboost"
    assert clear["runner_up"] == "logistic_regression"
    assert clear["margin"] == pytest.approx(0.87 - 0.845)
    # xgboost ahead by 0.001 only: a tie, and logistic regression is the simpler learner
    tie = choose_candidate(_result({"xgboost": [0.851, 0.851], "logistic_regression": [0.85, 0.85],
                                    "recency_rule": [0.70, 0.70], "bgnbd": [0.80, 0.80]}), spec)
    assert tie["winner"] == "logistic_regression"
    assert tie["margin"] == pytest.approx(-0.001)
    # a baseline that beats XGBoost outright wins (small or unusual histories)
    small = choose_candidate(_result({"xgboost": [0.70, 0.72], "logistic_regression": [0.74, 0.74],
                                      "recency_rule": [0.70, 0.70], "bgnbd": [0.76, 0.78]}), spec)
    assert small["winner"] == "bgnbd"


def test_a_named_candidate_is_kept_whatever_the_back_test_says():
    from ml.modeling.backtest import choose_candidate
    from ml.modeling.specs import get_spec

    spec = get_spec("churn").with_candidate("xgboost")
    chosen = choose_candidate(_result({"xgboost": [0.70], "logistic_regression": [0.80],
                                       "recency_rule": [0.60], "bgnbd": [0.65]}), spec)
    assert chosen["winner"] == "xgboost"
    assert chosen["rule"] == "named in the spec"
