"""Hyper-parameter search without leakage: nested, rolling.

A learner with ``tuning`` in its spec is searched with Optuna once per evaluation fold, on
that fold's past only. The rows the search may touch are those whose label matured
strictly before the fold's as-of date; among them the ``inner_folds`` latest snapshots are
the search's validation folds, each trained on the rows matured by its own date (the same
rule as the outer back-test, one level down). The evaluation fold's rows, and every label
that matured on or after its date, never reach the objective. The chosen parameters, the
trial count and what the objective saw are recorded per fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.modeling import metrics as m
from ml.modeling.folds import plan_folds
from ml.modeling.learners import RANDOM_STATE, build_pipeline, predict
from ml.modeling.specs import Learner, ModelSpec, SearchDimension
from ml.modeling.training_data import TrainingSet


class TuningError(ValueError):
    """The tuner has no past to search on (no inner fold before the evaluation fold)."""


@dataclass
class TuningRecord:
    """One search: for which fold, what it chose, and exactly which rows it saw."""

    fold_as_of: pd.Timestamp | None  # the evaluation fold served; None for the final fit
    trials: int
    best_params: dict
    best_value: float
    metric: str
    inner_fold_dates: list[pd.Timestamp]
    seen_rows: np.ndarray  # positional rows the objective fitted or scored on
    seconds: float

    def summary(self, data: TrainingSet, spec: ModelSpec) -> dict:
        """JSON-able: the choice, the trial count and the latest dates the search saw."""
        frame, cols = data.frame, spec.columns
        seen = frame.iloc[self.seen_rows]
        return {
            "fold_as_of": None if self.fold_as_of is None else f"{self.fold_as_of:%Y-%m-%d}",
            "trials": self.trials, "metric": self.metric, "best_value": self.best_value,
            "best_params": self.best_params,
            "inner_fold_dates": [f"{d:%Y-%m-%d}" for d in self.inner_fold_dates],
            "rows_seen": int(self.seen_rows.size),
            "latest_as_of_seen": f"{seen[cols.as_of].max():%Y-%m-%d}",
            "latest_label_matured_seen": f"{seen[cols.label_matured_on].max():%Y-%m-%d}",
            "seconds": round(self.seconds, 2),
        }


def _suggest(trial, name: str, dimension: SearchDimension):
    if dimension.type == "categorical":
        return trial.suggest_categorical(name, dimension.choices)
    if dimension.type == "int":
        return trial.suggest_int(name, int(dimension.low), int(dimension.high), log=dimension.log)
    return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)


def tune(spec: ModelSpec, data: TrainingSet, learner: Learner,
         before: pd.Timestamp | None) -> tuple[Learner, TuningRecord]:
    """Search ``learner.tuning.space`` on the rows whose label matured strictly before
    ``before`` (all rows when None: the final fit) and return the learner with the best
    parameters fixed, plus the record of the search."""
    from optuna import create_study
    from optuna import logging as optuna_logging
    from optuna.samplers import TPESampler


    settings = learner.tuning
    cols = spec.columns
    frame = data.frame
    matured = frame[cols.label_matured_on]
    allowed = np.flatnonzero((matured < before).to_numpy() if before is not None
                             else np.ones(len(frame), dtype=bool))
    inner = plan_folds(frame[cols.as_of].iloc[allowed], matured.iloc[allowed],
                       settings.inner_folds)
    if spec.task == "binary":
        labels = frame[cols.label].to_numpy(dtype=float)
        inner = [f for f in inner if len(np.unique(labels[allowed[f.train_rows]])) == 2
                 and len(np.unique(labels[allowed[f.test_rows]])) == 2]
    if not inner:
        raise TuningError(f"model {spec.name}: no inner fold with matured labels before "
                          f"{before:%Y-%m-%d} to tune {learner.kind} on; use fewer back-test "
                          "folds or more history")
    X = frame[data.features]
    y = frame[cols.label].to_numpy(dtype=float)
    score = (m.BINARY_METRICS if spec.task == "binary" else m.REGRESSION_METRICS)[
        spec.primary_metric]
    seen = np.zeros(len(frame), dtype=bool)

    def objective(trial) -> float:
        params = {name: _suggest(trial, name, dim) for name, dim in settings.space.items()}
        candidate = Learner(kind=learner.kind, params={**learner.params, **params})
        values = []
        for fold in inner:
            train, valid = allowed[fold.train_rows], allowed[fold.test_rows]
            seen[train] = True
            seen[valid] = True
            model = build_pipeline(candidate, spec.task, data.numeric, data.categorical,
                                   spec.horizon_days)
            model.fit(X.iloc[train], y[train])
            values.append(score(y[valid], predict(model, X.iloc[valid], spec.task)))
        return float(np.mean(values))

    optuna_logging.set_verbosity(optuna_logging.WARNING)
    direction = "maximize" if m.GREATER_IS_BETTER[spec.primary_metric] else "minimize"
    study = create_study(direction=direction, sampler=TPESampler(seed=RANDOM_STATE))
    started = time.perf_counter()
    study.optimize(objective, n_trials=settings.trials, timeout=settings.timeout_seconds)
    record = TuningRecord(
        fold_as_of=before, trials=len(study.trials), best_params=dict(study.best_params),
        best_value=float(study.best_value), metric=spec.primary_metric,
        inner_fold_dates=[f.as_of for f in inner], seen_rows=np.flatnonzero(seen),
        seconds=time.perf_counter() - started)
    return Learner(kind=learner.kind, params={**learner.params, **study.best_params}), record
