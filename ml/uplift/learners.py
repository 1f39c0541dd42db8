"""Uplift learners: estimate how much a contact changes a customer's outcome.

Every learner is fitted on randomised campaigns, ``fit(X, treated, y)``, and
``predict(X)`` returns the estimated effect of contact on the outcome (for retention: the
change in the probability of ordering within the horizon; higher = contact helps more).

- **T-learner**: one model of the outcome per arm, ``tau(x) = mu_1(x) - mu_0(x)``.
- **X-learner** (Kuenzel, Sekhon, Bickel & Yu, PNAS 2019): the T-learner's outcome models
  impute each customer's effect (``y - mu_0(x)`` for the treated, ``mu_1(x) - y`` for the
  control), a regression per arm learns those, and the two are blended by the propensity
  ``g``: ``tau(x) = g * tau_0(x) + (1 - g) * tau_1(x)``. The campaigns are randomised, so
  the propensity is the design's treated share, not a model. The X-learner helps when one
  arm is much smaller than the other (a 10% control group), as here.
- Baselines: **churn rank** (a churn classifier, P(no order in the horizon), as the
  ranking: today's rule, which contacts those most likely to leave) and **random**.

The outcome and effect models are the platform's own scikit-learn pipelines
(``ml.modeling.learners.build_pipeline``), so preprocessing, thread limits and devices are
those of every other model, and the logged artifact is one picklable object. CausalML 0.18
and EconML 0.17 ship the same meta-learners, but pull 48 and 25 packages (EconML also caps
scikit-learn below 1.10), and would wrap our pipelines rather than replace them; the
meta-learner arithmetic is a few lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from ml.modeling.learners import RANDOM_STATE, build_pipeline
from ml.modeling.specs import UPLIFT_LEARNERS, Learner

# Simplest first: a tie on the back-test goes to the learner earlier in this list.
SIMPLICITY = ("random_rank", "churn_rank", "t_learner", "x_learner")


class UpliftError(ValueError):
    """The training rows cannot fit an uplift model (an arm is empty, an outcome constant)."""


def _arms(treated, y, n: int) -> tuple[np.ndarray, np.ndarray]:
    treated = np.asarray(treated).astype(bool)
    y = np.asarray(y, dtype=np.float64)
    if treated.shape != (n,) or y.shape != (n,):
        raise UpliftError(f"treated and y need one value per row of X ({n}), got shapes "
                          f"{treated.shape} and {y.shape}")
    for arm, name in ((treated, "treated"), (~treated, "control")):
        if arm.sum() < 2:
            raise UpliftError(f"uplift needs at least 2 {name} rows, got {int(arm.sum())} of {n}")
    return treated, y


def _binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


class _ArmModel:
    """An outcome model of one arm: a classifier's P(y = 1) for a 0/1 outcome (falling back
    to the arm's rate when the arm saw one class only), a regressor otherwise."""

    def __init__(self, base, regressor, binary: bool):
        self.model = clone(base if binary else regressor)
        self.binary = binary

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> _ArmModel:
        self.constant = float(y.mean()) if self.binary and np.unique(y).size < 2 else None
        if self.constant is None:
            self.model.fit(X, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(X), self.constant)
        if self.binary:
            return self.model.predict_proba(X)[:, 1]
        return np.asarray(self.model.predict(X), dtype=np.float64)


class UpliftModel(BaseEstimator):
    """Base of the learners: ``fit(X, treated, y)``, then ``predict(X)`` gives effects."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


class TLearner(UpliftModel):
    def __init__(self, base, regressor):
        self.base = base  # a classifier pipeline (0/1 outcomes)
        self.regressor = regressor  # a regressor pipeline (revenue outcomes)

    def fit(self, X: pd.DataFrame, treated, y) -> TLearner:
        treated, y = _arms(treated, y, len(X))
        binary = _binary(y)
        self.treated_model_ = _ArmModel(self.base, self.regressor, binary).fit(X[treated],
                                                                               y[treated])
        self.control_model_ = _ArmModel(self.base, self.regressor, binary).fit(X[~treated],
                                                                               y[~treated])
        return self

    def outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(mu_0, mu_1): the expected outcome without and with contact."""
        return self.control_model_.predict(X), self.treated_model_.predict(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        mu_0, mu_1 = self.outcomes(X)
        return mu_1 - mu_0


class XLearner(UpliftModel):
    def __init__(self, base, regressor, effect):
        self.base = base
        self.regressor = regressor
        self.effect = effect  # a regressor pipeline for the imputed effects (any sign)

    def fit(self, X: pd.DataFrame, treated, y) -> XLearner:
        treated, y = _arms(treated, y, len(X))
        outcomes = TLearner(self.base, self.regressor).fit(X, treated, y)
        mu_0, mu_1 = outcomes.outcomes(X)
        self.outcomes_ = outcomes
        self.treated_effect_ = clone(self.effect).fit(X[treated], y[treated] - mu_0[treated])
        self.control_effect_ = clone(self.effect).fit(X[~treated], mu_1[~treated] - y[~treated])
        self.propensity_ = float(treated.mean())  # randomised: the design's treated share
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        g = self.propensity_
        return (g * np.asarray(self.control_effect_.predict(X), dtype=np.float64)
                + (1 - g) * np.asarray(self.treated_effect_.predict(X), dtype=np.float64))


class ChurnRank(UpliftModel):
    """Today's rule as an uplift ranking: P(no order in the horizon) from a churn classifier
    fitted on every campaign row (treated or not: contact moves few of them). Needs a 0/1
    retention outcome."""

    def __init__(self, base):
        self.base = base

    def fit(self, X: pd.DataFrame, treated, y) -> ChurnRank:
        _, y = _arms(treated, y, len(X))
        if not _binary(y):
            raise UpliftError("churn_rank needs a 0/1 retention outcome")
        self.model_ = _ArmModel(self.base, None, True).fit(X, 1.0 - y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(X)


class RandomRank(UpliftModel):
    """A seeded random ranking: what a campaign that cannot tell customers apart achieves."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X: pd.DataFrame, treated, y) -> RandomRank:
        _arms(treated, y, len(X))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(X))


def _pipeline(config: dict | None, task: str, numeric: list[str], categorical: list[str],
              horizon_days: int, default: dict):
    config = config or default
    return build_pipeline(Learner(kind=config["kind"], params=config.get("params", {})), task,
                          numeric, categorical, horizon_days)


# Outcome models: XGBoost as the churn spec uses it; effect models regress on imputed
# effects of either sign, so squared error (the pipeline's default Tweedie needs y >= 0).
DEFAULT_BASE = {"kind": "xgboost", "params": {"n_estimators": 200, "max_depth": 3,
                                              "learning_rate": 0.05, "min_child_weight": 5}}
DEFAULT_EFFECT = {"kind": "xgboost", "params": {"objective": "reg:squarederror",
                                                "n_estimators": 150, "max_depth": 2,
                                                "learning_rate": 0.05, "min_child_weight": 10}}
DEFAULT_REGRESSOR = {"kind": "xgboost", "params": {"objective": "reg:squarederror",
                                                   "n_estimators": 200, "max_depth": 3,
                                                   "learning_rate": 0.05}}


def build_uplift_learner(kind: str, params: dict, numeric: list[str], categorical: list[str],
                         horizon_days: int) -> UpliftModel:
    """An unfitted learner from a spec entry: ``params`` may name the pipelines it is built
    on, ``base`` (outcome classifier), ``regressor`` (outcome regressor, revenue outcomes)
    and ``effect`` (X-learner), each ``{kind, params}`` of ``ml.modeling.learners``."""
    unknown = set(params) - {"base", "regressor", "effect", "seed"}
    if unknown:
        raise UpliftError(f"uplift learner {kind}: unknown params {sorted(unknown)}")

    def pipe(key: str, task: str, default: dict):
        return _pipeline(params.get(key), task, numeric, categorical, horizon_days, default)

    if kind == "t_learner":
        return TLearner(pipe("base", "binary", DEFAULT_BASE),
                        pipe("regressor", "regression", DEFAULT_REGRESSOR))
    if kind == "x_learner":
        return XLearner(pipe("base", "binary", DEFAULT_BASE),
                        pipe("regressor", "regression", DEFAULT_REGRESSOR),
                        pipe("effect", "regression", DEFAULT_EFFECT))
    if kind == "churn_rank":
        return ChurnRank(pipe("base", "binary", DEFAULT_BASE))
    if kind == "random_rank":
        return RandomRank(seed=int(params.get("seed", RANDOM_STATE)))
    raise UpliftError(f"unknown uplift learner kind {kind!r}; choose from {list(UPLIFT_LEARNERS)}")


class CalibratedUplift(UpliftModel):
    """What the plan spends on: each channel's measured average effect plus the model's
    heterogeneity around it, scaled by how much of it held up out of time.

        tau(x, c) = ate_c + slope * (model(x, c) - mean_c)

    ``ate_c`` is the treated-minus-control retention of channel ``c``'s training campaigns
    (randomised, so unbiased), shrunk towards the pooled effect by its sampling variance
    (empirical Bayes, method of moments); ``mean_c`` is the model's mean estimate there;
    ``slope`` in [0, 1] is the back-test's calibration slope (``calibration_slope``): 0 when
    the model's ranking did not hold up on later campaigns, so the plan then spends on the
    channels' measured effects alone rather than on noise. The ranking within a channel,
    which the gate judges, is the model's own."""

    def __init__(self, model, channel_column: str, slope: float):
        self.model = model
        self.channel_column = channel_column
        self.slope = slope

    def fit(self, X: pd.DataFrame, treated, y) -> CalibratedUplift:
        treated, y = _arms(treated, y, len(X))
        self.model.fit(X, treated, y)
        channel = X[self.channel_column].astype(str).to_numpy()
        estimate = self.model.predict(X)
        rows = {}
        for name in np.unique(channel):
            here = channel == name
            t, c = y[here & treated], y[here & ~treated]
            if t.size < 2 or c.size < 2:
                continue
            rows[name] = (t.mean() - c.mean(), t.var(ddof=1) / t.size + c.var(ddof=1) / c.size,
                          float(estimate[here].mean()))
        pooled = float(y[treated].mean() - y[~treated].mean())
        effects = np.array([r[0] for r in rows.values()])
        variances = np.array([r[1] for r in rows.values()])
        between = max(float(np.var(effects, ddof=1)) - float(variances.mean()), 0.0) \
            if effects.size > 1 else 0.0
        self.pooled_effect_ = pooled
        self.channel_effect_ = {
            name: float(pooled + between / (between + var) * (effect - pooled)
                        if between + var > 0 else pooled)
            for name, (effect, var, _) in rows.items()}
        self.channel_mean_ = {name: mean for name, (_, _, mean) in rows.items()}
        self.overall_mean_ = float(estimate.mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        channel = pd.Series(X[self.channel_column].astype(str).to_numpy())
        level = channel.map(self.channel_effect_).fillna(self.pooled_effect_).to_numpy()
        centre = channel.map(self.channel_mean_).fillna(self.overall_mean_).to_numpy()
        return level + self.slope * (self.model.predict(X) - centre)


def calibration_slope(y, treated, estimate, groups) -> float:
    """How much of the estimated heterogeneity held up out of time: the least-squares slope
    of the transformed outcome ``y * (t / e - (1 - t) / (1 - e))`` (whose mean given x is
    the effect, e = the campaign's treated share) on the estimate, both centred within each
    campaign (so it measures the ranking within a campaign, not the campaigns' levels),
    clipped to [0, 1]."""
    y, treated = np.asarray(y, float), np.asarray(treated, bool)
    estimate, groups = np.asarray(estimate, float), np.asarray(groups)
    xs, ys = [], []
    for g in np.unique(groups):
        here = groups == g
        e = treated[here].mean()
        if not 0 < e < 1:
            continue
        transformed = y[here] * (treated[here] / e - (~treated[here]) / (1 - e))
        xs.append(estimate[here] - estimate[here].mean())
        ys.append(transformed - transformed.mean())
    if not xs:
        return 0.0
    x, t = np.concatenate(xs), np.concatenate(ys)
    spread = float(x @ x)
    return float(np.clip(x @ t / spread, 0.0, 1.0)) if spread > 0 else 0.0
