"""Learners as whole scikit-learn pipelines (preprocessing + estimator).

The logged model is the pipeline itself, so scoring applies exactly the preprocessing
that training did. Every learner takes the same feature frame: numeric columns as
float64 (NaN = unknown), categorical columns as strings (None = unknown).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ml.modeling.specs import Learner

RANDOM_STATE = 17
DEVICES = ("cpu", "cuda")
MISSING_CATEGORY = "missing"


def training_threads() -> int:
    """``ML_N_JOBS``: one thread by default, because on a 2-core box shared with the
    scheduler more threads thrash."""
    return int(os.environ.get("ML_N_JOBS", "1"))


def training_device() -> str:
    """``ML_DEVICE``: ``cuda`` asks XGBoost and LightGBM to train on the GPU (LightGBM needs
    a CUDA build for it); ``cpu`` (the default) everywhere else."""
    device = os.environ.get("ML_DEVICE", "cpu").strip().lower() or "cpu"
    if device not in DEVICES:
        raise ValueError(f"ML_DEVICE={device!r}: choose one of {', '.join(DEVICES)}")
    return device


class CategoricalFrame(TransformerMixin, BaseEstimator):
    """The feature frame as the GBM libraries take it natively: numeric columns as float64,
    categorical columns as pandas ``category`` with the categories seen in training
    (an unseen value becomes unknown). LightGBM and HistGradientBoosting read unknowns as
    missing; CatBoost refuses missing categories, so ``fill`` names a category for them."""

    def __init__(self, numeric: list[str], categorical: list[str], fill: str | None = None):
        self.numeric = numeric
        self.categorical = categorical
        self.fill = fill

    def fit(self, X: pd.DataFrame, y=None):
        self.categories_ = {}
        for column in self.categorical:
            seen = pd.Series(X[column]).dropna().astype(str).unique().tolist()
            self.categories_[column] = sorted(set(seen) | ({self.fill} if self.fill else set()))
        self.feature_names_in_ = np.array(self.numeric + self.categorical, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {c: pd.to_numeric(X[c], errors="coerce").astype("float64") for c in self.numeric}
        for column, categories in self.categories_.items():
            values = pd.Series(X[column], index=X.index)
            values = values.where(values.isna(), values.astype(str))
            codes = pd.Categorical(values, categories=categories)
            if self.fill:
                codes = codes.fillna(self.fill)
            out[column] = codes
        return pd.DataFrame(out, index=X.index)[self.numeric + self.categorical]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return self.feature_names_in_


class _ThreadBound:
    """HistGradientBoosting has no thread setting of its own (OpenMP takes every core):
    fit within ``ML_N_JOBS`` threads like the other learners."""

    def fit(self, X, y, **fit_params):
        with threadpool_limits(limits=training_threads(), user_api="openmp"):
            return super().fit(X, y, **fit_params)


class ThreadBoundHGBClassifier(_ThreadBound, HistGradientBoostingClassifier):
    pass


class ThreadBoundHGBRegressor(_ThreadBound, HistGradientBoostingRegressor):
    pass


class AutoMLEstimator(BaseEstimator):
    """FLAML's time-boxed AutoML as one estimator: what a user would pick instead of a
    recipe. Within each fit FLAML searches ``estimator_list`` for ``time_budget`` seconds,
    validating on the latest rows (the back-test hands rows over in time order), then
    refits the best configuration on all of them."""

    def __init__(self, time_budget: float = 20.0,
                 estimator_list: tuple[str, ...] = ("lgbm", "xgboost", "rf", "extra_tree"),
                 metric: str | None = None):
        self.time_budget = time_budget
        self.estimator_list = estimator_list
        self.metric = metric

    _flaml_task = ""
    _default_metric = ""

    def fit(self, X: pd.DataFrame, y):
        from flaml import AutoML

        self.automl_ = AutoML()
        self.automl_.fit(X, np.asarray(y), task=self._flaml_task,
                         metric=self.metric or self._default_metric,
                         time_budget=self.time_budget, estimator_list=list(self.estimator_list),
                         eval_method="holdout", split_type="time", n_jobs=training_threads(),
                         seed=RANDOM_STATE, verbose=0, mlflow_logging=False, log_file_name="")
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.automl_.predict(X))


class AutoMLClassifier(ClassifierMixin, AutoMLEstimator):
    _flaml_task = "classification"
    _default_metric = "roc_auc"

    def fit(self, X: pd.DataFrame, y):
        super().fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.automl_.predict_proba(X)


class AutoMLRegressor(RegressorMixin, AutoMLEstimator):
    _flaml_task = "regression"
    _default_metric = "rmse"


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

        common = {"tree_method": "hist", "n_jobs": training_threads(),
                  "random_state": RANDOM_STATE, "device": training_device()}
        estimator = (XGBClassifier(eval_metric="logloss", **common, **params) if task == "binary"
                     else XGBRegressor(**{"objective": "reg:tweedie", **common, **params}))
        return Pipeline([("prep", _preprocessor(numeric, categorical, scale=False)),
                         ("model", estimator)])
    if learner.kind == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        common = {"n_jobs": training_threads(), "random_state": RANDOM_STATE, "verbose": -1,
                  "device_type": training_device()}
        estimator = (LGBMClassifier(**common, **params) if task == "binary"
                     else LGBMRegressor(**{"objective": "tweedie", **common, **params}))
        return Pipeline([("prep", CategoricalFrame(numeric, categorical)), ("model", estimator)])
    if learner.kind == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor

        common = {"thread_count": training_threads(), "random_seed": RANDOM_STATE, "verbose": 0,
                  "allow_writing_files": False, "cat_features": list(categorical)}
        estimator = (CatBoostClassifier(**common, **params) if task == "binary"
                     else CatBoostRegressor(**{"loss_function": "Tweedie:variance_power=1.5",
                                               **common, **params}))
        return Pipeline([("prep", CategoricalFrame(numeric, categorical, fill=MISSING_CATEGORY)),
                         ("model", estimator)])
    if learner.kind == "hist_gradient_boosting":
        common = {"categorical_features": "from_dtype", "random_state": RANDOM_STATE}
        estimator = (ThreadBoundHGBClassifier(**common, **params) if task == "binary"
                     else ThreadBoundHGBRegressor(**{"loss": "poisson", **common, **params}))
        return Pipeline([("prep", CategoricalFrame(numeric, categorical)), ("model", estimator)])
    if learner.kind == "flaml":
        estimator = AutoMLClassifier(**params) if task == "binary" else AutoMLRegressor(**params)
        return Pipeline([("prep", CategoricalFrame(numeric, categorical)), ("model", estimator)])
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
