"""Every learner kind the benchmark adds is a whole scikit-learn pipeline: it fits and predicts
on the platform's feature frame (numeric with nulls, categorical with nulls and values it
never saw), survives the round trip the logged artifact takes, scores the same through the
batch-scoring path, and honours the thread and device switches."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from ml.decisions.scoring import _batch_scorer
from ml.modeling.learners import build_pipeline, predict
from ml.modeling.specs import Learner
from ml.modeling.training_data import model_frame

NUMERIC = ["days_since_last_order", "orders_365d", "revenue_365d"]
CATEGORICAL = ["region", "channel"]
SMALL = {
    "lightgbm": {"n_estimators": 40, "num_leaves": 8},
    "catboost": {"iterations": 40, "depth": 4},
    "hist_gradient_boosting": {"max_iter": 40},
    "flaml": {"time_budget": 5, "estimator_list": ["lgbm"]},  # 1 s fitted nothing under load
}


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Feature frame as ``model_frame`` makes it, a binary label and a positive amount,
    both driven by recency and region."""
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({
        "days_since_last_order": rng.exponential(60, n),
        "orders_365d": rng.poisson(4, n),
        "revenue_365d": rng.lognormal(4, 1, n),
        "region": rng.choice(["North", "South", "East"], n),
        "channel": rng.choice(["SEM", "CRM", "Direct", "Display"], n),
    })
    raw.loc[rng.random(n) < 0.15, "days_since_last_order"] = np.nan
    raw["region"] = raw["region"].astype(object).where(rng.random(n) > 0.1, None)
    signal = (raw["days_since_last_order"].fillna(200) / 60 - 0.5 * raw["orders_365d"] / 4
              + (raw["region"] == "North") * 1.0)
    label = (signal + rng.normal(0, 0.7, n) > 0.8).astype(float).to_numpy()
    amount = np.exp(0.5 * signal.to_numpy()) * rng.gamma(2.0, 1.0, n)
    return model_frame(raw, NUMERIC, CATEGORICAL), label, amount


@pytest.fixture(scope="module")
def frames():
    train, label, amount = _frame(1200, seed=1)
    test, test_label, _ = _frame(400, seed=2)
    test.loc[test.index[:20], "region"] = "Atlantis"  # a category training never saw
    test.loc[test.index[20:25], NUMERIC] = np.nan
    return train, label, amount, test, test_label


@pytest.mark.parametrize("kind", SMALL)
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_each_kind_fits_and_predicts_inside_the_pipeline(frames, kind, task):
    train, label, amount, test, test_label = frames
    model = build_pipeline(Learner(kind=kind, params=SMALL[kind]), task, NUMERIC, CATEGORICAL,
                           horizon_days=90)
    assert isinstance(model, Pipeline)
    model.fit(train, label if task == "binary" else amount)
    scores = predict(model, test, task)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    if task == "binary":
        assert ((scores >= 0) & (scores <= 1)).all()
        assert roc_auc_score(test_label, scores) > 0.75  # it learned the signal out of sample
    else:
        assert (scores > 0).all()  # the default objectives are for non-negative amounts
    # the logged artifact is this pipeline, pickled whole: it scores the same after the trip
    restored = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(predict(restored, test, task), scores)


@pytest.mark.parametrize("kind", ["lightgbm", "catboost", "hist_gradient_boosting"])
def test_batch_scoring_path_gives_the_pipelines_own_scores(frames, kind):
    train, label, _, test, _ = frames
    model = build_pipeline(Learner(kind=kind, params=SMALL[kind]), "binary", NUMERIC,
                           CATEGORICAL, horizon_days=90).fit(train, label)
    batch = pa.RecordBatch.from_pandas(test.reset_index(drop=True), preserve_index=False)
    scored = _batch_scorer(model, "binary", NUMERIC, CATEGORICAL)(batch)
    np.testing.assert_allclose(scored, predict(model, test, "binary"), rtol=0, atol=1e-12)


def test_cuda_request_reaches_xgboost_and_lightgbm(monkeypatch):
    monkeypatch.setenv("ML_DEVICE", "cuda")

    def estimator(kind: str):
        return build_pipeline(Learner(kind=kind), "binary", NUMERIC, CATEGORICAL,
                              horizon_days=90).named_steps["model"]

    assert estimator("xgboost").get_params()["device"] == "cuda"
    assert estimator("lightgbm").get_params()["device_type"] == "cuda"
    monkeypatch.setenv("ML_DEVICE", "cpu")
    assert estimator("xgboost").get_params()["device"] == "cpu"
    assert estimator("lightgbm").get_params()["device_type"] == "cpu"
    monkeypatch.setenv("ML_DEVICE", "tpu")
    with pytest.raises(ValueError, match="ML_DEVICE='tpu'"):
        estimator("xgboost")


def test_training_threads_reach_every_library(monkeypatch):
    monkeypatch.setenv("ML_N_JOBS", "2")

    def params(kind: str) -> dict:
        return build_pipeline(Learner(kind=kind), "binary", NUMERIC, CATEGORICAL,
                              horizon_days=90).named_steps["model"].get_params()

    assert params("xgboost")["n_jobs"] == 2
    assert params("lightgbm")["n_jobs"] == 2
    assert params("catboost")["thread_count"] == 2
