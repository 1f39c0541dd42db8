"""The benchmark on a tiny synthetic history: at least six learners on the same folds, each with
CIs, lift, profit at capacity, times and memory; a ranking; the oracle and a data-rich
reference; a tuned learner whose searches saw no evaluation-fold row; the report in the
MLflow experiment ``benchmark``; and ``ml benchmark --json`` end to end. Real warehouse
and MLflow of the test session."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from ml import registry
from ml.benchmark.economics import Campaign
from ml.benchmark.harness import MIN_LEARNERS, REFERENCE, benchmark, roster
from ml.benchmark.report import EXPERIMENT, log_benchmark
from ml.modeling.specs import get_spec
from ml.modeling.training_data import load_training_set
from ml.schema import oracle_column
from ml.warehouse import get_warehouse

MODEL = "bench_demo"
HORIZON = 30
SNAPSHOTS = pd.date_range("2024-01-01", periods=9, freq="MS")
SPEC = f"""
name: {MODEL}
description: churn on a toy history (benchmark tests)
task: binary
training_set: bench_test.training_set
scoring:
  relation: bench_test.training_set
label_description: no order in the next {HORIZON} days
population_description: toy customers
horizon_days: {HORIZON}
candidate: best
learners:
  xgboost:
    kind: xgboost
    params: {{n_estimators: 40, max_depth: 3}}
  logistic_regression:
    kind: logistic_regression
    params: {{C: 0.5}}
  recency_rule:
    kind: recency_rule
    params: {{column: days_since_last_order}}
primary_metric: roc_auc
guardrails: {{ece: 0.02, lift_share_of_max: 0.05}}
backtest: {{folds: 3, bootstrap_samples: 100}}
oracle:
  relation: bench_test.oracle_labels
  event: no_order
"""
CAMPAIGN = Campaign(channel="direct_mail", cost_per_contact=1.5, save_rate=0.08, capacity=20)


def _history(customers: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """Monthly snapshots of customers who buy at a latent rate until a latent dropout; the
    label is no order in the next 30 days, the oracle its true probability."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.5, 1 / 60, customers)
    dropout = rng.integers(2, 14, customers)  # snapshot index after which they never buy
    rows = []
    for index, as_of in enumerate(SNAPSHOTS):
        alive = index < dropout
        p_no_order = np.where(alive, np.exp(-HORIZON * rate), 1.0)
        seen_rate = rate * np.where(alive, 1.0, 0.15)
        orders = rng.poisson(365 * seen_rate)
        rows.append(pd.DataFrame({
            "customer_id": [f"C{seed}-{i:05d}" for i in range(customers)],
            "as_of_date": as_of.date(),
            "days_since_last_order": rng.exponential(1 / np.maximum(seen_rate, 1e-3)),
            "orders_365d": orders,
            "revenue_365d": orders * rng.lognormal(3.5, 0.5, customers),
            "region": np.where(rng.random(customers) < 0.1, None,
                               rng.choice(["North", "South", "East"], customers)),
            "label": (rng.random(customers) < p_no_order).astype(int),
            "label_matured_on": (as_of + pd.Timedelta(days=HORIZON)).date(),
            oracle_column(HORIZON): p_no_order,
        }))
    frame = pd.concat(rows, ignore_index=True)
    oracle = frame[["customer_id", "as_of_date", oracle_column(HORIZON)]]
    return (pa.Table.from_pandas(frame.drop(columns=oracle_column(HORIZON)), preserve_index=False),
            pa.Table.from_pandas(oracle, preserve_index=False))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    specs = tmp_path_factory.mktemp("bench_specs")
    (specs / f"{MODEL}.yaml").write_text(SPEC)
    training, oracle = _history(240, seed=1)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODEL_SPECS_DIR", str(specs))
        get_warehouse().replace_tables({"bench_test.training_set": training,
                                        "bench_test.oracle_labels": oracle})
        yield get_spec(MODEL)


@pytest.fixture(scope="module")
def result(toy):
    spec = toy
    data = load_training_set(spec)
    big, _ = _history(1200, seed=2)  # the same generator, 5x the customers
    get_warehouse().replace_tables({"bench_test.reference_set": big})
    reference = load_training_set(spec.model_copy(update={
        "training_set": "bench_test.reference_set"}))
    learners = roster(spec, trials=2, automl_seconds=1)
    return benchmark(spec, data, learners, reference=reference, campaign=CAMPAIGN,
                     predict_rows=20_000)


def test_every_learner_reports_metrics_with_cis_times_and_memory(result):
    summary, _ = result
    json.dumps(summary)  # JSON-able as it is
    rows = {r["learner"]: r for r in summary["learners"]}
    assert len(rows) >= MIN_LEARNERS
    assert {"xgboost", "lightgbm", "catboost", "hist_gradient_boosting", "flaml",
            "lightgbm_tuned"} <= set(rows)
    folds = [f["as_of"] for f in summary["data"]["folds"]]
    assert folds == [f"{d:%Y-%m-%d}" for d in SNAPSHOTS[-3:]]
    for name, row in rows.items():
        assert row["error"] is None, name
        for metric in ("roc_auc", "ece", "lift_share_of_max"):
            stats = row["metrics"][metric]
            # the CI is of the very number reported: the mean over folds
            assert stats["ci"]["value"] == pytest.approx(stats["mean"]), name
            assert stats["ci"]["low"] <= stats["ci"]["high"], name
        auc = row["metrics"]["roc_auc"]
        assert auc["ci"]["low"] <= auc["mean"] <= auc["ci"]["high"], name
        assert row["metrics"]["roc_auc"]["mean"] > 0.6, name  # every learner found the signal
        assert row["lift_top_decile"] > 1
        profit = row["profit_at_capacity"]
        assert profit["contacts"] == 3 * CAMPAIGN.capacity  # the capacity binds in each fold
        assert row["fit_seconds"] >= 0 and row["predict_seconds_per_1m_rows"] > 0
        assert row["peak_rss_mib"] > 0 and row["rss_increase_mib"] >= 0
    assert rows["flaml"]["fit_seconds"] >= 3 * 1  # time-boxed: one second per fold at least
    ranking = summary["ranking"]
    assert [r["rank"] for r in ranking] == list(range(1, len(rows) + 1))
    means = [r["mean"] for r in ranking]
    assert means == sorted(means, reverse=True)
    for upper, lower in zip(ranking, ranking[1:], strict=False):
        gap = upper["gap_to_next"]
        assert gap["vs"] == lower["learner"] and gap["low"] <= gap["high"]
        assert gap["significant"] == (gap["low"] > 0)


def test_the_limit_shows_model_reference_and_oracle(result):
    summary, backtest = result
    limit = summary["limit"]
    assert limit["model"] in ("xgboost", "logistic_regression", "recency_rule")
    oracle = summary["oracle"]["metrics"]["roc_auc"]["mean"]
    assert limit["oracle_value"] == oracle
    assert limit["reference_value"] == summary["reference"]["metrics"]["roc_auc"]["mean"]
    assert summary["reference"]["learner"] == limit["model"]
    assert summary["reference"]["customers"] == 1200
    assert oracle > limit["model_value"] > limit["best_baseline_value"] - 0.05
    assert {"oracle", REFERENCE} <= set(backtest.predictions.columns)
    # the oracle's ranking is the best any targeting can do on these labels in expectation
    assert summary["oracle"]["profit_at_capacity"]["contacts"] == 3 * CAMPAIGN.capacity


def test_the_tuned_learner_searched_each_fold_on_its_own_past(result):
    summary, _ = result
    tuned = next(r for r in summary["learners"] if r["learner"] == "lightgbm_tuned")
    assert tuned["tuned"] and tuned["tuning_seconds"] > 0
    assert [t["fold_as_of"] for t in tuned["tuning"]] == [f"{d:%Y-%m-%d}" for d in SNAPSHOTS[-3:]]
    for search in tuned["tuning"]:
        assert search["trials"] == 2
        assert search["latest_label_matured_seen"] < search["fold_as_of"]
        assert search["latest_as_of_seen"] < search["fold_as_of"]


def test_report_is_logged_to_the_benchmark_experiment(toy, result, tmp_path):
    import mlflow

    summary, backtest = result
    logged = log_benchmark(toy, summary, backtest)
    client = registry.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and logged["experiment"] == EXPERIMENT
    run = client.get_run(logged["run_id"])
    assert run.info.experiment_id == experiment.experiment_id
    assert run.data.metrics["xgboost.roc_auc"] == pytest.approx(
        next(r for r in summary["learners"] if r["learner"] == "xgboost")["metrics"]["roc_auc"][
            "mean"])
    page = (tmp_path / "report").joinpath("report.html")
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report",
                                        dst_path=str(tmp_path))
    html = page.read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") >= 3
    assert "<script" not in html  # self-contained: nothing fetched from a CDN
    for name in ("lightgbm_tuned", "data-rich reference", "oracle"):
        assert name in html
    logged_json = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/benchmark.json")
    assert json.loads(logged_json)["ranking"][0]["learner"] == summary["ranking"][0]["learner"]


def test_ml_benchmark_json_end_to_end(toy, dbt_manifest):
    from ml.cli import app

    run = CliRunner().invoke(app, ["benchmark", "--model", MODEL, "--learners",
                                   "recency_rule,xgboost", "--learners", "lightgbm_tuned",
                                   "--trials", "2", "--reference-customers", "0", "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert [r["learner"] for r in summary["learners"]] == ["xgboost", "recency_rule",
                                                           "lightgbm_tuned"]
    assert summary["reference"]["note"] == "skipped (reference customers 0)"
    assert summary["oracle"]["metrics"]["roc_auc"]["ci"] is not None
    assert registry.client().get_run(summary["mlflow"]["run_id"]).info.status == "FINISHED"
