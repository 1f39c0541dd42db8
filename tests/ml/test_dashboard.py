"""The platform dashboard and the monitoring behind it, on a real (small) platform state:
a toy binary model with two registered versions in the session's MLflow store, scored by
the real scoring job at two past as-of dates (labels matured) and today's (not matured)
into the session's DuckDB warehouse, plus a campaign plan."""

from __future__ import annotations

import re
import tempfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from ml import registry
from ml.decisions.monitoring import monitor_models, read_monitoring
from ml.decisions.scoring import score_model
from ml.modeling.learners import build_pipeline
from ml.modeling.specs import Learner
from ml.modeling.training_data import model_frame
from ml.ops.dashboard import build_sections, render_page
from ml.warehouse import connect, get_warehouse

MODEL = "dash_demo"
TRAINING = "dash_test.training_set"
SCORING = "dash_test.population"
MATURED = [date(2024, 10, 1), date(2024, 11, 1)]
TODAY = date(2025, 1, 1)  # the scoring snapshot: its labels have not matured
PLAN_AS_OF = date(2031, 1, 1)  # later than any other test's plan, so it is "the latest"
NUMERIC = ["x1", "x2"]
CUSTOMERS = 600

SPEC = f"""
name: {MODEL}
description: a toy binary model for the dashboard tests
task: binary
training_set: {TRAINING}
scoring:
  relation: {SCORING}
label_description: a coin weighted by x1
population_description: every toy customer
horizon_days: 30
features:
  include: [x1, x2]
candidate: logistic_regression
learners:
  logistic_regression:
    kind: logistic_regression
    params: {{C: 1.0}}
primary_metric: roc_auc
"""


def _snapshot(as_of: date, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=CUSTOMERS), rng.normal(size=CUSTOMERS)
    label = rng.random(CUSTOMERS) < 1 / (1 + np.exp(-2 * x1))
    return pd.DataFrame({"customer_id": [f"D{i:04d}" for i in range(CUSTOMERS)],
                         "as_of_date": as_of, "x1": x1, "x2": x2, "label": label.astype(int)})


def _register(training: pd.DataFrame, promise: float) -> str:
    from mlflow.models import infer_signature

    frame = model_frame(training, NUMERIC, [])
    model = build_pipeline(Learner(kind="logistic_regression", params={}), "binary", NUMERIC, [],
                           30).fit(frame, training["label"])
    predictions = model.predict_proba(frame)[:, 1]
    mlflow = registry.configure()
    with mlflow.start_run(experiment_id=registry.experiment_id(MODEL)):
        mlflow.set_tag("candidate", "logistic_regression")
        mlflow.log_dict({"candidate": "logistic_regression", "summary": {
            "logistic_regression": {"roc_auc": {"mean": promise, "std": 0.01}}}},
            "backtest_summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "backtest_predictions.parquet"
            pd.DataFrame({"logistic_regression": predictions}).to_parquet(path)
            mlflow.log_artifact(str(path))
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle",
            signature=infer_signature(frame, predictions), pip_requirements=[],
            registered_model_name=MODEL)
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def platform_state(tmp_path_factory):
    specs = tmp_path_factory.mktemp("dashboard_specs")
    (specs / f"{MODEL}.yaml").write_text(SPEC)
    wh = get_warehouse()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODEL_SPECS_DIR", str(specs))
        snapshots = {d: _snapshot(d, seed) for seed, d in enumerate([*MATURED, TODAY])}
        training = pd.concat([snapshots[d] for d in MATURED], ignore_index=True)
        wh.replace_tables({
            TRAINING: pa.Table.from_pandas(training.assign(label_matured_on=TODAY),
                                           preserve_index=False),
            SCORING: pa.Table.from_pandas(pd.concat(snapshots.values(), ignore_index=True)
                                          .drop(columns="label"), preserve_index=False)})
        _register(training, promise=0.71)
        version = _register(training, promise=0.74)
        registry.set_alias(MODEL, registry.CHAMPION, version)
        for as_of in [*MATURED, TODAY]:
            score_model(MODEL, as_of.isoformat())
        created = _plan_campaign(wh)
        yield {"version": version, "training": training}
        registry.client().delete_registered_model(MODEL)
        with connect() as con:
            for table in ("scores", "score_runs", "model_monitoring"):
                con.execute(f"DELETE FROM ml.{table} WHERE model_name = ?", [MODEL])
            for table in ("campaign_summary", "campaign_targets"):
                con.execute(f"DELETE FROM ml.{table} WHERE as_of_date = ?", [PLAN_AS_OF])
        wh.replace_tables({}, drop=[TRAINING, SCORING, *created])


def _plan_campaign(wh) -> list[str]:
    """A plan as the allocate DAG writes it (its own tests cover how it is made), with only
    the columns the dashboard reads; returns the tables it created, to drop afterwards (the
    real plan's columns would not fit them)."""
    planned_at = datetime(2031, 1, 1, 7, 0)
    summary = {"as_of_date": PLAN_AS_OF, "budget": 5000.0, "planned_at": planned_at,
               "control_share": 0.1, "seed": 1, "churn_model_version": "3", "spend": 4800.0,
               "expected_incremental_value": 2100.0, "expected_return": 6900.0, "roi": 1.44,
               "n_treated": 90, "n_control": 10, "method": "exact", "gap": 0.0}
    targets = pd.DataFrame({"as_of_date": PLAN_AS_OF, "customer_id": [f"D{i:04d}" for i in
                                                                      range(100)],
                            "channel": ["email", "call"] * 50,
                            "group": ["treatment"] * 90 + ["control"] * 10, "cost": 48.0})
    created = []
    for table, rows in (("campaign_targets", pa.Table.from_pandas(targets,
                                                                  preserve_index=False)),
                        ("campaign_summary", pa.Table.from_pylist([summary]))):
        if not wh.table_exists("ml", table):
            created.append(f"ml.{table}")
        wh.replace_rows("ml", table, "SELECT * FROM {rows}", key={"as_of_date": PLAN_AS_OF},
                        sources={"rows": rows})
    return created


def test_monitoring_stores_the_realised_auc_of_matured_scores(platform_state):
    report = monitor_models([MODEL])
    assert report == [{"model": MODEL, "matured_as_of_dates": 2, "metric": "roc_auc",
                       "latest_realised": pytest.approx(report[0]["latest_realised"])}]
    monitored = read_monitoring()
    monitored = monitored[monitored["model_name"] == MODEL]
    assert list(monitored["as_of_date"]) == MATURED  # today's scores have no labels yet
    wh = get_warehouse()
    scores = wh.query("SELECT customer_id, as_of_date, score FROM ml.scores "
                      "WHERE model_name = ?", [MODEL]).to_pandas()
    joined = scores.merge(platform_state["training"], on=["customer_id", "as_of_date"])
    for as_of, row in monitored.set_index("as_of_date").iterrows():
        rows = joined[joined["as_of_date"] == as_of]
        assert row["rows"] == CUSTOMERS == len(rows)
        assert row["realised"] == pytest.approx(roc_auc_score(rows["label"], rows["score"]),
                                                abs=1e-12)
        assert row["realised"] > 0.7  # the champion is a good model of the coin
        assert row["backtest_promise"] == pytest.approx(0.74)
        assert row["model_version"] == platform_state["version"]
    monitor_models([MODEL])  # idempotent: the same rows, not twice as many
    again = read_monitoring()
    assert len(again[again["model_name"] == MODEL]) == 2


def test_every_section_has_data_and_the_page_renders_offline(platform_state):
    monitor_models([MODEL])
    sections = {s.key: s for s in build_sections()}
    assert list(sections) == ["models", "drift", "realised", "freshness", "campaign",
                              "experiments", "recommendations", "media"]
    for key in ("models", "drift", "realised", "freshness", "campaign"):
        assert sections[key].has_data, key
    assert f"v{platform_state['version']}" in sections["models"].body
    assert 'id="chart-models"' in sections["models"].body
    assert 'id="chart-drift"' in sections["drift"].body
    assert 'id="chart-realised"' in sections["realised"].body
    assert f"{MODEL} last scored" in sections["freshness"].body
    assert "4,800" in sections["campaign"].body and "6,900" in sections["campaign"].body
    wh = get_warehouse()
    for key, table, message in (("experiments", "experiment_readouts",
                                 "no experiment readouts yet"),
                                ("recommendations", "recommendations", "no recommendations yet"),
                                ("media", "media_plans", "no media plan yet")):
        present = wh.table_exists("ml", table) and bool(
            wh.scalar(f"SELECT count(*) FROM ml.{table}"))
        assert sections[key].has_data is present
        assert (message in sections[key].body) is not present

    from plotly.offline import get_plotlyjs

    page = render_page(list(sections.values()))
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched: renders offline
    assert "https://cdn" not in page.replace(get_plotlyjs(), "")
    assert page.count(get_plotlyjs()) == 1  # plotly.js inlined once for all figures
    assert page.count('data-has-data="true"') >= 5


def test_ml_report_writes_the_static_page(platform_state, tmp_path):
    from ml.cli import app

    out = tmp_path / "site" / "dashboard.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote the dashboard to {out}" in result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for key in ("models", "drift", "realised", "freshness", "campaign"):
        assert f'<section id="{key}" data-has-data="true">' in page
