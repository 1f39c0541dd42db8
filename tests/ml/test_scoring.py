"""Scoring's batch path: features built straight from Arrow batches and the prediction
threads must leave every score exactly the model's own ``predict_proba`` / ``predict`` on
``model_frame`` of the same rows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml.decisions import scoring
from ml.modeling.learners import build_pipeline, predict
from ml.modeling.specs import Learner
from ml.modeling.training_data import model_frame

NUMERIC = ["days", "orders", "revenue", "flag"]
CATEGORICAL = ["region", "channel"]


def _training_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    revenue = rng.lognormal(3, 1, rows)
    revenue[rng.random(rows) < 0.1] = np.nan
    region = rng.choice(["North", "South", "East", "West", "Rare"], rows, p=[.3, .3, .2, .19, .01])
    channel = rng.choice(["SEM", "CRM", None], rows, p=[.5, .3, .2])
    return pd.DataFrame({"days": rng.integers(0, 400, rows).astype(float),
                         "orders": rng.poisson(3, rows).astype(float), "revenue": revenue,
                         "flag": rng.integers(0, 2, rows).astype(float),
                         "region": region, "channel": channel})


def _scoring_batch(rows: int, seed: int) -> pa.RecordBatch:
    """What the warehouse returns: ints with nulls, a boolean, unseen and null categories."""
    rng = np.random.default_rng(seed)
    frame = _training_frame(rows, seed)
    days = pa.array(frame["days"].astype("int32"), mask=rng.random(rows) < 0.05)
    region = frame["region"].where(rng.random(rows) > 0.02, "Unseen").tolist()
    region = [None if rng.random() < 0.03 else r for r in region]
    return pa.record_batch({
        "customer_id": pa.array([f"C{i:07d}" for i in range(rows)]),
        "days": days, "orders": pa.array(frame["orders"].astype("int64")),
        "revenue": pa.array(frame["revenue"]), "flag": pa.array(frame["flag"].astype(bool)),
        "region": pa.array(region, type=pa.string()), "channel": pa.array(frame["channel"])})


def _fitted(kind: str, task: str, params: dict | None = None):
    frame = _training_frame(3000, seed=1)
    X = model_frame(frame, NUMERIC, CATEGORICAL)
    rng = np.random.default_rng(2)
    y = ((frame["days"] / 400 + rng.random(len(frame))) > 0.9).astype(int) if task == "binary" \
        else rng.gamma(2.0, frame["orders"] + 1.0)
    model = build_pipeline(Learner(kind=kind, params=params or {}), task, NUMERIC, CATEGORICAL, 90)
    return model.fit(X, y)


def _expected(model, batch: pa.RecordBatch, task: str) -> np.ndarray:
    return predict(model, model_frame(batch.to_pandas(), NUMERIC, CATEGORICAL), task)


@pytest.mark.parametrize(("kind", "task", "params"), [
    ("xgboost", "binary", {"n_estimators": 40, "max_depth": 3}),
    ("xgboost", "regression", {"n_estimators": 40, "max_depth": 3}),
    ("logistic_regression", "binary", {}),
    ("recency_rule", "binary", {"column": "days"}),
])
def test_batch_scores_equal_the_models_own_predictions(kind, task, params, caplog):
    model = _fitted(kind, task, params)
    scoring._use_predict_threads(model)
    scorer = scoring._batch_scorer(model, task, NUMERIC, CATEGORICAL)
    with caplog.at_level(logging.WARNING, logger="ml.decisions.scoring"):
        for seed in (3, 4):  # the first batch is checked, later ones are not
            batch = _scoring_batch(6000, seed)
            np.testing.assert_array_equal(scorer(batch), _expected(model, batch, task))
    assert "differ" not in caplog.text  # the Arrow path held; no fallback to pandas


def test_pipelines_take_the_arrow_path():
    model = _fitted("xgboost", "binary", {"n_estimators": 5})
    plan = scoring._column_plan(model.steps[0][1], NUMERIC, CATEGORICAL)
    assert [kind for kind, _, _ in plan] == ["raw", "distinct"]
    plan = scoring._column_plan(_fitted("logistic_regression", "binary").steps[0][1],
                                NUMERIC, CATEGORICAL)
    assert [kind for kind, _, _ in plan] == ["numeric", "distinct"]


def test_a_difference_on_the_first_batch_falls_back_to_pandas(monkeypatch, caplog):
    model = _fitted("xgboost", "binary", {"n_estimators": 20})
    real = scoring._as_float64
    monkeypatch.setattr(scoring, "_as_float64", lambda column: real(column) + 1.0)
    scorer = scoring._batch_scorer(model, "binary", NUMERIC, CATEGORICAL)
    batch = _scoring_batch(3000, 5)
    with caplog.at_level(logging.WARNING, logger="ml.decisions.scoring"):
        np.testing.assert_array_equal(scorer(batch), _expected(model, batch, "binary"))
    assert "using the pandas path" in caplog.text


def test_prediction_threads_change_speed_not_scores(monkeypatch):
    model = _fitted("xgboost", "binary", {"n_estimators": 40})
    batch = _scoring_batch(20000, 6)
    monkeypatch.setenv("ML_PREDICT_THREADS", "1")
    scoring._use_predict_threads(model)
    one = _expected(model, batch, "binary")
    monkeypatch.setenv("ML_PREDICT_THREADS", "2")
    scoring._use_predict_threads(model)
    config = model.steps[-1][1].get_booster().save_config()
    assert '"nthread":"2"' in config.replace(" ", "") and '"n_jobs":"2"' in config.replace(" ", "")
    np.testing.assert_array_equal(_expected(model, batch, "binary"), one)
    monkeypatch.delenv("ML_PREDICT_THREADS")
    assert scoring._predict_threads() >= 1


@pytest.mark.parametrize("many", [False, True])
def test_distinct_rows_map_every_row_to_its_combination(many, monkeypatch):
    rng = np.random.default_rng(7)
    n = 5000
    values = [f"v{i}" for i in range(3000 if many else 4)] + [None]
    batch = pa.record_batch({"a": pa.array(rng.choice(values, n).tolist(), type=pa.string()),
                             "b": pa.array(rng.choice(values, n).tolist(), type=pa.string())})
    first, inverse = scoring._distinct_rows(batch, ["a", "b"])
    assert len(first) == len(set(zip(batch["a"].to_pylist(), batch["b"].to_pylist(),
                                     strict=True)))
    rebuilt = batch.take(pa.array(first)).take(pa.array(inverse))
    assert rebuilt.equals(batch)


def test_ids_and_segments_are_strings_as_before():
    for column in (pa.array(["a", "b"]), pa.array(["a", None]), pa.array([1, 2]),
                   pa.array(["x", "y"], type=pa.large_string())):
        got = scoring._as_strings(column)
        assert got.type == pa.string()
        expected = pa.array(column.to_pandas().astype(str), type=pa.string())
        assert got.equals(expected)
