"""Tuning without leakage: the search behind each evaluation fold sees only rows whose label
matured strictly before that fold's as-of date (nested rolling), never the fold's own rows,
and records what it chose and how many trials it ran. A spec's search space is validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml.modeling.backtest import plan_folds, run_backtest
from ml.modeling.specs import Learner, ModelSpec, SpecError, Tuning, load_spec, specs_dir
from ml.modeling.training_data import TrainingSet
from ml.modeling.tuning import tune

CUSTOMERS = 150
SNAPSHOTS = pd.date_range("2024-01-01", periods=10, freq="MS")
TUNED = Learner(kind="lightgbm", params={"n_estimators": 20},
                tuning=Tuning(trials=3, inner_folds=2, space={
                    "num_leaves": {"type": "int", "low": 4, "high": 16},
                    "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
                    "min_child_samples": {"type": "categorical", "choices": [5, 20]}}))


def _spec() -> ModelSpec:
    return ModelSpec(name="tuning_demo", description="toy", task="binary",
                     training_set="toy.training_set", scoring={"relation": "toy.population"},
                     label_description="toy", population_description="toy", horizon_days=31,
                     candidate="tuned", learners={"tuned": TUNED}, primary_metric="roc_auc",
                     backtest={"folds": 3, "bootstrap_samples": 50})


def _data() -> TrainingSet:
    """Monthly snapshots; a label matures one calendar month later, so the snapshot just
    before a fold matures exactly on the fold's date: the outer fold trains on it, the
    search behind that fold must not see it."""
    rng = np.random.default_rng(3)
    rows = len(SNAPSHOTS) * CUSTOMERS
    as_of = np.repeat(SNAPSHOTS.to_numpy(), CUSTOMERS)
    signal = rng.normal(size=rows)
    frame = pd.DataFrame({
        "customer_id": np.tile([f"C{i:04d}" for i in range(CUSTOMERS)], len(SNAPSHOTS)),
        "as_of_date": as_of,
        "label": (signal + rng.normal(0, 1, rows) > 0).astype(float),
        "label_matured_on": pd.DatetimeIndex(as_of) + pd.DateOffset(months=1),
        "signal": signal, "noise": rng.normal(size=rows),
        "segment": rng.choice(["a", "b", "c"], rows).astype(object),
    })
    return TrainingSet(frame, ["signal", "noise"], ["segment"], rows, False, "toy", [])


def test_no_evaluation_fold_row_reaches_the_tuner():
    spec, data = _spec(), _data()
    frame = data.frame
    folds = plan_folds(frame["as_of_date"], frame["label_matured_on"], spec.backtest.folds)
    result = run_backtest(spec, data, spec.learners)
    records = result.tuning["tuned"]
    assert [r.fold_as_of for r in records] == [f.as_of for f in folds]
    for fold, record in zip(folds, records, strict=True):
        seen = record.seen_rows
        assert seen.size and set(seen).isdisjoint(fold.test_rows)
        # strictly before: no label the search scored matured on or after the fold date
        assert (frame["label_matured_on"].iloc[seen] < fold.as_of).all()
        assert (frame["as_of_date"].iloc[seen] < fold.as_of).all()
        boundary = np.flatnonzero(frame["label_matured_on"] == fold.as_of)
        assert boundary.size and set(boundary) <= set(fold.train_rows)  # the outer fold uses it
        assert set(boundary).isdisjoint(seen)  # the search behind the fold does not
        # nested rolling: validation on the two latest snapshots matured before the fold
        allowed = sorted(frame.loc[frame["label_matured_on"] < fold.as_of, "as_of_date"].unique())
        assert record.inner_fold_dates == [pd.Timestamp(d) for d in allowed[-2:]]
        assert frame["as_of_date"].iloc[seen].max() == allowed[-1]
        assert record.trials == 3
        assert 4 <= record.best_params["num_leaves"] <= 16
        assert 0.05 <= record.best_params["learning_rate"] <= 0.3
        assert record.best_params["min_child_samples"] in (5, 20)
        summary = record.summary(data, spec)
        assert summary["latest_label_matured_seen"] < f"{fold.as_of:%Y-%m-%d}"
        assert summary["trials"] == 3 and summary["best_params"] == record.best_params


def test_final_fit_searches_the_whole_history_and_a_fold_without_a_past_refuses():
    spec, data = _spec(), _data()
    learner, record = tune(spec, data, TUNED, before=None)
    assert record.fold_as_of is None
    assert record.inner_fold_dates == list(SNAPSHOTS[-2:])
    assert learner.tuning is None
    assert learner.params == {"n_estimators": 20, **record.best_params}
    with pytest.raises(ValueError, match="no inner fold"):
        tune(spec, data, TUNED, before=SNAPSHOTS[2])  # one matured snapshot: nothing to train


def _spec_file(tmp_path: Path, tuning: dict) -> Path:
    raw = yaml.safe_load((specs_dir() / "churn.yaml").read_text())
    raw["learners"]["xgboost"]["tuning"] = tuning
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_spec_takes_a_search_space_per_learner(tmp_path):
    spec = load_spec(_spec_file(tmp_path, {"trials": 7, "timeout_seconds": 60, "space": {
        "max_depth": {"type": "int", "low": 2, "high": 6},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True}}}))
    tuning = spec.learners["xgboost"].tuning
    assert tuning.trials == 7 and tuning.timeout_seconds == 60
    assert tuning.space["learning_rate"].log is True


@pytest.mark.parametrize(("tuning", "fragment"), [
    ({"space": {"max_depth": {"type": "int", "low": 6, "high": 2}}}, "low < high"),
    ({"space": {"eta": {"type": "float", "low": 0, "high": 1, "log": True}}}, "low > 0"),
    ({"space": {"booster": {"type": "categorical"}}}, "choices"),
    ({"space": {}}, "at least one parameter"),
    ({"trials": 0, "space": {"max_depth": {"type": "int", "low": 2, "high": 6}}}, "trials"),
])
def test_a_bad_search_space_names_the_field(tmp_path, tuning, fragment):
    path = _spec_file(tmp_path, tuning)
    with pytest.raises(SpecError, match="learners.xgboost.tuning") as err:
        load_spec(path)
    assert fragment in str(err.value)
