"""Train/serve skew: the scoring run compares the champion's features between its training
set and the scoring population, and stops (naming the feature, writing nothing) when one
that varies in training is absent or constant at scoring. A real champion in the session's
MLflow store, real relations in the session's DuckDB warehouse."""

from __future__ import annotations

import json
import logging
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml import registry
from ml.decisions.scoring import (
    FeatureSkewError,
    check_feature_skew,
    check_skew_for_jobs,
    feature_skew,
    plan_scoring,
    read_scores,
    score_model,
    staging_dir,
)
from ml.modeling.learners import build_pipeline
from ml.modeling.specs import Learner
from ml.modeling.training_data import model_frame
from ml.settings import REPO_ROOT
from ml.warehouse import connect, get_warehouse

MODEL = "skew_demo"
TRAINING = "skew_test.training_set"
SCORING = "skew_test.scoring_population"
AS_OF = date(2025, 1, 1)
EARLIER = date(2024, 12, 1)  # another snapshot in the scoring relation, always well filled
CAMPAIGNS = ["spring", "summer", "autumn", "winter"]
NUMERIC = ["orders", "revenue", "repeat_buyer"]
CATEGORICAL = ["channel", "campaign"]
ROWS = 2000

SPEC = f"""
name: {MODEL}
description: revenue per click on a toy click history (skew check tests)
task: regression
training_set: {TRAINING}
scoring:
  relation: {SCORING}
  segment_column: channel
columns:
  id: touch_id
label_description: revenue in the 7 days after the click
population_description: clicks
horizon_days: 7
features:
  include: [{", ".join(NUMERIC + CATEGORICAL)}]
candidate: xgboost
learners:
  xgboost:
    kind: xgboost
    params: {{n_estimators: 20, max_depth: 3}}
primary_metric: rmse
"""


def _features(rng: np.random.Generator, n: int, campaigns, revenue_scale: float = 1.0) -> dict:
    revenue = rng.lognormal(3, 1, n) * revenue_scale
    return {"channel": pa.array(rng.choice(["SEM", "CRM"], n)), "campaign": campaigns,
            "orders": pa.array(rng.poisson(3, n)),
            "revenue": pa.array(revenue, mask=rng.random(n) < 0.1),
            "repeat_buyer": pa.array(rng.random(n) < 0.3)}  # a boolean counts as numeric


def _training_table() -> pa.Table:
    rng = np.random.default_rng(1)
    months = pd.date_range("2024-01-01", periods=10, freq="MS").date
    columns = _features(rng, ROWS, pa.array(rng.choice(CAMPAIGNS, ROWS)))
    return pa.table({
        "touch_id": [f"T{i:05d}" for i in range(ROWS)],
        "customer_id": [f"C{i % 700:04d}" for i in range(ROWS)],
        "as_of_date": pa.array(rng.choice(months, ROWS), pa.date32()),
        **columns,
        "label": rng.gamma(2.0, columns["orders"].to_numpy() + 1.0),
        "label_matured_on": pa.array([date(2024, 12, 1)] * ROWS, pa.date32())})


def _snapshot(as_of: date, campaign: str, seed: int, revenue_scale: float = 1.0) -> pa.Table:
    """ROWS scoring rows at ``as_of``; ``campaign``: real, null, constant, missing (no column)
    or unseen (40% of rows in a campaign training never saw)."""
    rng = np.random.default_rng(seed)
    campaigns = {
        "real": lambda: pa.array(rng.choice(CAMPAIGNS, ROWS)),
        "null": lambda: pa.nulls(ROWS, pa.string()),
        "constant": lambda: pa.array(["spring"] * ROWS),
        "missing": lambda: None,
        "unseen": lambda: pa.array(np.where(rng.random(ROWS) < 0.4, "new-launch",
                                            rng.choice(CAMPAIGNS, ROWS))),
    }[campaign]()
    columns = _features(rng, ROWS, campaigns, revenue_scale)
    return pa.table({"customer_id": [f"C{i % 1000:04d}" for i in range(ROWS)],
                     "as_of_date": pa.array([as_of] * ROWS, pa.date32()),
                     **{k: v for k, v in columns.items() if v is not None}})


def _set_scoring(campaign: str, revenue_scale: float = 1.0) -> None:
    today = _snapshot(AS_OF, campaign, seed=2, revenue_scale=revenue_scale)
    earlier = _snapshot(EARLIER, "real", seed=3).select(today.column_names)
    get_warehouse().replace_tables({SCORING: pa.concat_tables([earlier, today])})


def _register_champion(training: pa.Table) -> str:
    from mlflow.models import infer_signature

    frame = model_frame(training.to_pandas(), NUMERIC, CATEGORICAL)
    model = build_pipeline(Learner(kind="xgboost", params={"n_estimators": 20, "max_depth": 3}),
                           "regression", NUMERIC, CATEGORICAL, 7)
    model.fit(frame, training.column("label").to_numpy())
    mlflow = registry.configure()
    with mlflow.start_run(experiment_id=registry.experiment_id(MODEL)):
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle",
            signature=infer_signature(frame, model.predict(frame)),
            pip_requirements=[], registered_model_name=MODEL)  # no slow inference
    version = str(info.registered_model_version)
    registry.set_alias(MODEL, registry.CHAMPION, version)
    return version


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    specs = tmp_path_factory.mktemp("skew_specs")
    (specs / f"{MODEL}.yaml").write_text(SPEC)
    wh = get_warehouse()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODEL_SPECS_DIR", str(specs))
        training = _training_table()
        wh.replace_tables({TRAINING: training})
        _set_scoring("real")
        version = _register_champion(training)
        yield version
        registry.client().delete_registered_model(MODEL)
        if wh.table_exists("ml", "scores"):
            with connect() as con:
                con.execute("DELETE FROM ml.scores WHERE model_name = ?", [MODEL])
        wh.replace_tables({}, drop=[TRAINING, SCORING])


def test_null_campaign_at_scoring_fails_naming_campaign_and_its_numbers(champion):
    _set_scoring("null")  # the earlier snapshot keeps real campaigns: only AS_OF counts
    with pytest.raises(FeatureSkewError) as caught:
        check_feature_skew(MODEL, AS_OF.isoformat())
    message = str(caught.value)
    assert f"champion {MODEL} v{champion} cannot score {SCORING} at {AS_OF}" in message
    assert f"'campaign' is null in all {ROWS:,} scoring rows" in message
    assert "null share 0.0% in training vs 100.0% at scoring, distinct values 4 vs 0" in message
    assert f"vary in {TRAINING} ({ROWS:,} rows)" in message
    assert "previous scores are unchanged" in message and "retrain" in message
    assert "'channel'" not in message and "'revenue'" not in message and "'orders'" not in message


@pytest.mark.parametrize(("campaign", "problem"), [
    ("constant", f"'campaign' has one value in all {ROWS:,} scoring rows"),
    ("missing", f"'campaign' is missing from {SCORING}"),
])
def test_constant_or_missing_campaign_fails_naming_campaign(champion, campaign, problem):
    _set_scoring(campaign)
    with pytest.raises(FeatureSkewError) as caught:
        check_feature_skew(MODEL, AS_OF.isoformat())
    assert problem in str(caught.value)
    assert "'revenue'" not in str(caught.value)


def test_real_campaigns_pass_with_a_json_report(champion, caplog):
    _set_scoring("real")
    with caplog.at_level(logging.WARNING, logger="ml.decisions.scoring"):
        report = check_feature_skew(MODEL, AS_OF.isoformat())
    assert caplog.records == []
    assert json.loads(json.dumps(report)) == report
    assert (report["model"], report["version"], report["as_of"]) == \
        (MODEL, champion, AS_OF.isoformat())
    assert (report["training_rows"], report["scoring_rows"]) == (ROWS, ROWS)
    assert report["failed"] == [] and report["drifted"] == []
    assert sorted(report["features"]) == sorted(NUMERIC + CATEGORICAL)
    campaign = report["features"]["campaign"]
    assert (campaign["scoring_null_share"], campaign["scoring_distinct"],
            campaign["unseen_share"]) == (0.0, 4, 0.0)
    assert campaign["psi"] < 0.02
    revenue = report["features"]["revenue"]
    assert revenue["kind"] == "numeric" and revenue["psi"] < 0.05
    assert revenue["training_null_share"] == pytest.approx(0.1, abs=0.02)
    assert revenue["scoring_null_share"] == pytest.approx(0.1, abs=0.02)
    repeat_buyer = report["features"]["repeat_buyer"]
    assert (repeat_buyer["training_distinct"], repeat_buyer["scoring_distinct"]) == (2, 2)
    assert repeat_buyer["psi"] < 0.02


def test_drift_warns_but_does_not_fail(champion, caplog):
    _set_scoring("unseen", revenue_scale=8.0)
    with caplog.at_level(logging.WARNING, logger="ml.decisions.scoring"):
        report = check_feature_skew(MODEL, AS_OF.isoformat())
    assert report["failed"] == []
    assert sorted(report["drifted"]) == ["campaign", "revenue"]
    assert report["features"]["revenue"]["psi"] > 1.0
    assert report["features"]["campaign"]["unseen_share"] == pytest.approx(0.4, abs=0.03)
    assert report["features"]["orders"]["psi"] < 0.05
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "feature revenue differs" in warned and "feature campaign differs" in warned
    assert "feature orders" not in warned and "feature channel" not in warned


def test_a_failing_check_scores_nothing_and_keeps_the_previous_scores(champion):
    _set_scoring("real")
    first = score_model(MODEL, AS_OF.isoformat(), shards=2)
    assert first["rows"] == ROWS and first["feature_skew"]["failed"] == []
    before = read_scores(MODEL, AS_OF)
    assert len(before) == ROWS

    _set_scoring("null")
    with pytest.raises(FeatureSkewError, match="'campaign' is null"):
        score_model(MODEL, AS_OF.isoformat(), shards=2)
    jobs = plan_scoring(MODEL, AS_OF.isoformat(), 2, None)  # the DAG's path: plan, then check
    with pytest.raises(FeatureSkewError, match=f"champion {MODEL} .*'campaign' is null"):
        check_skew_for_jobs(jobs)
    pd.testing.assert_frame_equal(read_scores(MODEL, AS_OF), before)
    assert not list(staging_dir(MODEL, AS_OF).glob("shard-*"))


def test_the_score_dag_checks_skew_before_any_shard():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "score.py")).dags["score"]
    check = dag.get_task("check_feature_skew")
    assert check.upstream_task_ids == {"plan"}
    assert "check_feature_skew" in dag.get_task("score_shard").upstream_task_ids


@pytest.mark.slow
def test_the_revenue_per_click_population_carries_each_channels_current_campaign(
        tmp_path, monkeypatch):
    """The real dbt model on a generated history: every (snapshot, channel) carries the
    campaign of the channel's latest touch before the snapshot, and the real spec's
    features pass the skew check at the scoring snapshot."""
    from ml.modeling.specs import load_spec
    from ml.modeling.training_data import feature_columns, read_relation
    from ml.sim.history import generate_tables
    from ml.warehouse import replace_tables
    from tests.dbt.harness import Warehouse

    tables = generate_tables(customers=300, seed=5, start=date(2024, 1, 1),
                             end=date(2024, 12, 31))
    built = Warehouse(tmp_path)
    replace_tables(tables, built.path)
    run = built.build()
    assert run.ok, run.output
    monkeypatch.setenv("WAREHOUSE_PATH", str(built.path))

    population = built.query("select distinct as_of_date, channel, campaign "
                             "from marts.revenue_per_click_scoring_population")
    touches = tables["raw.marketing_touches"].to_pandas().dropna(subset=["campaign"])
    touches = touches.sort_values(["touched_at", "campaign"])
    for row in population.itertuples():
        earlier = touches[(touches["channel"] == row.channel)
                          & (touches["touched_at"] < pd.Timestamp(row.as_of_date))]
        expected = earlier["campaign"].iloc[-1] if len(earlier) else None
        assert row.campaign == expected, (row.as_of_date, row.channel)

    spec = load_spec(REPO_ROOT / "ml" / "modeling" / "model_specs" / "revenue_per_click.yaml")
    scoring_day = built.query("select max(as_of_date) as d from marts.snapshot_calendar "
                              "where is_scoring_snapshot")["d"].iloc[0].date()
    assert population[population["as_of_date"] == pd.Timestamp(scoring_day)]["campaign"] \
        .notna().all()
    training = read_relation(spec.training_set)
    numeric, categorical = feature_columns(spec, training.columns, training.dtypes)
    assert "campaign" in categorical
    report = feature_skew(spec, scoring_day, numeric, categorical)
    assert report["failed"] == []
    assert report["features"]["campaign"]["scoring_null_share"] == 0.0
