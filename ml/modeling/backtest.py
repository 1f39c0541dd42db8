"""Rolling-origin, out-of-time back-test.

The test folds are the K latest snapshots whose labels have matured. A fold at as-of date
``d`` trains only on rows whose label had matured by ``d`` (``label_matured_on <= d``), so
no training label looks past the fold's own as-of date.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.modeling import metrics as m
from ml.modeling.folds import Fold, plan_folds
from ml.modeling.learners import build_pipeline, predict
from ml.modeling.specs import BEST, Learner, ModelSpec
from ml.modeling.training_data import NoMaturedLabels, TrainingSet, UntrainableHistory
from ml.modeling.tuning import TuningRecord, tune

__all__ = ["BacktestResult", "Fold", "choose_candidate", "gains_over", "plan_folds",
           "run_backtest", "task_metrics"]


@dataclass
class BacktestResult:
    predictions: pd.DataFrame  # fold, as_of, id, y, one column per learner
    fold_metrics: pd.DataFrame  # fold, as_of, learner, metric, value
    fit_seconds: dict[str, float] = field(default_factory=dict)  # tuning not included
    predict_seconds: dict[str, float] = field(default_factory=dict)
    tuning: dict[str, list[TuningRecord]] = field(default_factory=dict)  # per tuned learner
    latest_models: dict[str, object] = field(default_factory=dict)  # fitted on the last fold

    def summary(self) -> pd.DataFrame:
        """Mean and std over folds, one row per (learner, metric)."""
        return (self.fold_metrics.groupby(["learner", "metric"])["value"]
                .agg(["mean", "std"]).reset_index())

    def mean(self, learner: str, metric: str) -> float:
        rows = self.fold_metrics[(self.fold_metrics.learner == learner)
                                 & (self.fold_metrics.metric == metric)]
        return float(rows["value"].mean())


def task_metrics(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return m.binary_metrics(y, p) if task == "binary" else m.regression_metrics(y, p)


def run_backtest(spec: ModelSpec, data: TrainingSet, learners: dict[str, Learner],
                 folds: int | None = None) -> BacktestResult:
    cols = spec.columns
    frame = data.frame
    plan = plan_folds(frame[cols.as_of], frame[cols.label_matured_on],
                      folds or spec.backtest.folds)
    if not plan:
        dates = frame[cols.as_of]
        raise NoMaturedLabels(
            f"model {spec.name}, relation {spec.training_set}: no back-test fold has matured "
            f"training data (snapshots {dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}, horizon "
            f"{spec.horizon_days} days). A fold needs at least {spec.horizon_days} days of "
            "labelled history before it: load a longer history, lower horizon_days or use "
            "fewer folds.")
    X = frame[data.features]
    y = frame[cols.label].to_numpy(dtype=float)
    parts, rows = [], []
    fit_seconds, predict_seconds = dict.fromkeys(learners, 0.0), dict.fromkeys(learners, 0.0)
    tuning: dict[str, list[TuningRecord]] = {}
    latest_models: dict[str, object] = {}
    for fold in plan:
        test = frame.iloc[fold.test_rows]
        part = pd.DataFrame({"fold": fold.index, "as_of": fold.as_of,
                             cols.id: test[cols.id].to_numpy(), "y": y[fold.test_rows]})
        y_train = y[fold.train_rows]
        if spec.task == "binary" and len(np.unique(y_train)) < 2:
            continue
        for name, learner in learners.items():
            if learner.tuning is not None:  # on this fold's own past only
                learner, record = tune(spec, data, learner, before=fold.as_of)
                tuning.setdefault(name, []).append(record)
            model = build_pipeline(learner, spec.task, data.numeric, data.categorical,
                                   spec.horizon_days)
            started = time.perf_counter()
            model.fit(X.iloc[fold.train_rows], y_train)
            fit_seconds[name] += time.perf_counter() - started
            started = time.perf_counter()
            part[name] = predict(model, X.iloc[fold.test_rows], spec.task)
            predict_seconds[name] += time.perf_counter() - started
            latest_models[name] = model
            if spec.task == "binary" and len(np.unique(part["y"])) < 2:
                continue
            for metric, value in task_metrics(spec.task, part["y"].to_numpy(),
                                              part[name].to_numpy()).items():
                rows.append((fold.index, fold.as_of, name, metric, value))
        parts.append(part)
    if not rows:
        raise UntrainableHistory(f"model {spec.name}, relation {spec.training_set}: every "
                                "back-test fold had a single class; load more history")
    return BacktestResult(
        predictions=pd.concat(parts, ignore_index=True),
        fold_metrics=pd.DataFrame(rows, columns=["fold", "as_of", "learner", "metric", "value"]),
        fit_seconds=fit_seconds, predict_seconds=predict_seconds, tuning=tuning,
        latest_models=latest_models,
    )


def gains_over(result: BacktestResult, spec: ModelSpec, model: str, baselines: list[str],
               n_boot: int | None = None) -> dict[str, dict]:
    """Paired bootstrap CI of ``model``'s gain in the primary metric over each baseline,
    resampling within folds, on the rows both predicted."""
    preds = result.predictions
    out = {}
    for baseline in baselines:
        if baseline not in preds or baseline == model:
            continue
        both = preds[preds[model].notna() & preds[baseline].notna()]
        out[baseline] = m.bootstrap_gain_ci(
            both["y"].to_numpy(), both[model].to_numpy(), both[baseline].to_numpy(),
            metric=spec.primary_metric, n_boot=n_boot or spec.backtest.bootstrap_samples,
            groups=both["fold"].to_numpy())
    return out


# Simpler first: a tie on the back-test goes to the learner earlier in this list.
SIMPLICITY = ("recency_rule", "group_mean", "bgnbd", "logistic_regression", "xgboost")


def choose_candidate(result: BacktestResult, spec: ModelSpec) -> dict:
    """The learner a ``candidate: best`` spec registers: the best mean primary metric over
    the folds; a simpler learner within ``promotion.min_improvement`` of it is a tie and
    wins. A spec naming its candidate keeps it. Returns the choice and the ranking."""
    metric = spec.primary_metric
    sign = 1.0 if m.GREATER_IS_BETTER[metric] else -1.0
    means = {name: result.mean(name, metric) for name in spec.learners}
    ranking = sorted(means, key=lambda name: -sign * means[name])
    if spec.candidate != BEST:
        return {"rule": "named in the spec", "winner": spec.candidate, "metric": metric,
                "ranking": [{"learner": n, "mean": means[n]} for n in ranking]}
    best = ranking[0]
    tied = [n for n in ranking if sign * (means[best] - means[n]) <= spec.promotion.min_improvement]
    kind_rank = {name: SIMPLICITY.index(spec.learners[name].kind) for name in spec.learners}
    winner = min(tied, key=lambda n: (kind_rank[n], -sign * means[n]))
    runner_up = next((n for n in ranking if n != winner), None)
    return {"rule": (f"best mean {metric} over the folds; within {spec.promotion.min_improvement} "
                     "counts as a tie and goes to the simpler learner"),
            "winner": winner, "metric": metric, "runner_up": runner_up,
            "margin": sign * (means[winner] - means[runner_up]) if runner_up else None,
            "ranking": [{"learner": n, "mean": means[n]} for n in ranking]}
