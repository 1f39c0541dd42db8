"""The main job on BigQuery (bqemulator): the same DAGs, run through dag.test(), with
WAREHOUSE=bigquery: dbt-bigquery builds the marts, training reads them through the
Storage API, scores, targets and the ledger are written by load jobs and MERGE. The
embedded DuckDB file is never touched."""

from __future__ import annotations

from datetime import date

import pytest

from ml.lifecycle.ledger import read_ledger
from ml.ops import orchestration
from ml.ops.pipeline import run_pipeline
from ml.settings import get_settings
from ml.sim.history import generate
from ml.warehouse import get_warehouse

pytestmark = pytest.mark.slow

BUDGET = 400.0


@pytest.fixture
def fresh_dags():
    """DAG files read the warehouse switch when parsed: parse them again for this test."""
    orchestration._dagbag.cache_clear()
    yield
    orchestration._dagbag.cache_clear()


def test_features_train_score_allocate_on_bigquery(on_bigquery, airflow_db, fresh_dags,
                                                   tmp_path, monkeypatch):
    # a registry of its own, so the champion is the one trained on BigQuery data
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DIR", str(tmp_path / "mlartifacts"))
    # A DuckDB path of its own, which nothing may create: the session's file can be written
    # by what earlier tests in this process left (a connection closed when collected).
    duckdb_file = tmp_path / "embedded.duckdb"
    monkeypatch.setenv("WAREHOUSE_PATH", str(duckdb_file))
    assert get_settings().warehouse_path == duckdb_file

    generate(customers=300, seed=11, start=date(2023, 1, 1), end=date(2024, 12, 31))
    result = run_pipeline({"snapshot_cadence": "month"},
                          train_conf={"folds": 2, "learners": None, "max_training_rows": None},
                          models=["churn"], allocate_conf={"budget": BUDGET})

    wh = get_warehouse()
    assert wh.kind == "bigquery"
    assert result["features"]["row_counts"]["customer_features"] > 0
    champion = result["models"]["churn"]["champion"]
    assert champion is not None, result["models"]["churn"]

    # every eligible customer of the scoring snapshot has one score from the champion
    as_of = wh.scalar(f"SELECT max(as_of_date) FROM {wh.relation('marts', 'snapshot_calendar')} "
                      "WHERE is_scoring_snapshot")
    eligible = wh.scalar(f"SELECT count(*) FROM {wh.relation('marts', 'customer_features')} "
                         "WHERE as_of_date = ? AND in_churn_population", [as_of])
    scores = wh.query(f"SELECT customer_id, model_version, decile FROM "
                      f"{wh.relation('ml', 'scores')} WHERE model_name = ? AND as_of_date = ?",
                      ["churn", as_of]).to_pandas()
    assert len(scores) == eligible > 0 and scores["customer_id"].is_unique
    assert set(scores["model_version"]) == {champion["version"]}
    assert set(scores["decile"]) <= set(range(1, 11))

    # the campaign respects the budget; the ledger records the promotion
    campaign = result["campaign"]
    targets = wh.query(f"SELECT cost FROM {wh.relation('ml', 'campaign_targets')} "
                       "WHERE as_of_date = ?", [as_of]).to_pandas()
    assert 0 < campaign["spend"] <= BUDGET and targets["cost"].sum() <= BUDGET + 1e-6
    ledger = read_ledger("churn")
    assert list(ledger["decision"]) == ["promoted"]
    assert not duckdb_file.exists(), "the BigQuery run opened the embedded DuckDB warehouse"
