"""Learners as whole scikit-learn pipelines (preprocessing + estimator).

The logged model is the pipeline itself, so scoring applies exactly the preprocessing
that training did. Every learner takes the same feature frame: numeric columns as
float64 (NaN = unknown), categorical columns as strings (None = unknown).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.modeling.specs import Learner

RANDOM_STATE = 17


def _categorical_encoder() -> Pipeline:
    return Pipeline([
        ("fill", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20,
                                 sparse_output=False)),
    ])


def _preprocessor(numeric: list[str], categorical: list[str], scale: bool) -> ColumnTransformer:
    numeric_steps = (
        Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True,
                                           keep_empty_features=True)),
                  ("scale", StandardScaler())])
        if scale else "passthrough"
    )
    return ColumnTransformer(
        [("num", numeric_steps, numeric), ("cat", _categorical_encoder(), categorical)],
        remainder="drop",
        verbose_feature_names_out=False,
    )


class RecencyRule(ClassifierMixin, BaseEstimator):
    """No-fit baseline: the longer since the last order, the likelier churn (and the
    less likely a purchase). Probability = days / (days + horizon) for churn."""

    def __init__(self, column: str = "days_since_last_order", horizon_days: int = 90,
                 target: str = "churn"):
        self.column = column
        self.horizon_days = horizon_days
        self.target = target

    def fit(self, X: pd.DataFrame, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        days = pd.to_numeric(X[self.column], errors="coerce").to_numpy(dtype=float)
        churn = np.where(np.isnan(days), 0.99, days / (days + self.horizon_days))
        p = churn if self.target == "churn" else 1.0 - churn
        p = np.clip(p, 1e-3, 1 - 1e-3)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class GroupMeanRegressor(RegressorMixin, BaseEstimator):
    """Baseline for regression: the training mean of the label within each group
    (e.g. marketing channel), the overall mean for unseen groups."""

    def __init__(self, column: str = "channel"):
        self.column = column

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y, dtype=float)
        groups = X[self.column].astype("string").fillna("missing").to_numpy()
        frame = pd.DataFrame({"g": groups, "y": y})
        self.means_ = frame.groupby("g")["y"].mean().to_dict()
        self.overall_ = float(y.mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        groups = X[self.column].astype("string").fillna("missing")
        return groups.map(self.means_).astype(float).fillna(self.overall_).to_numpy()


def build_pipeline(learner: Learner, task: str, numeric: list[str], categorical: list[str],
                   horizon_days: int) -> Pipeline | BaseEstimator:
    params = dict(learner.params)
    if learner.kind == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        # One thread by default: on a 2-core box shared with the scheduler, more threads thrash.
        common = {"tree_method": "hist", "n_jobs": int(os.environ.get("ML_N_JOBS", "1")),
                  "random_state": RANDOM_STATE}
        estimator = (XGBClassifier(eval_metric="logloss", **common, **params) if task == "binary"
                     else XGBRegressor(**{"objective": "reg:tweedie", **common, **params}))
        return Pipeline([("prep", _preprocessor(numeric, categorical, scale=False)),
                         ("model", estimator)])
    if learner.kind == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return Pipeline([("prep", _preprocessor(numeric, categorical, scale=True)),
                         ("model", LogisticRegression(max_iter=2000, **params))])
    if learner.kind == "recency_rule":
        return RecencyRule(horizon_days=horizon_days, **params)
    if learner.kind == "bgnbd":
        from ml.modeling.bgnbd import BGNBDClassifier

        return BGNBDClassifier(horizon_days=horizon_days, **params)
    if learner.kind == "group_mean":
        return GroupMeanRegressor(**params)
    raise ValueError(f"unknown learner kind {learner.kind!r}")


def predict(model, X: pd.DataFrame, task: str) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if task == "binary" else model.predict(X)
