"""The media_mix DAG through the real Airflow harness: on data without media spend both
tasks skip (a decision, not a failure) and no plan table appears."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_dag_skips_cleanly_without_media_spend(tmp_path, monkeypatch, airflow_db):
    from ml.ops.orchestration import run_dag
    from ml.warehouse import connect, get_warehouse

    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    with connect() as con:  # the mart as dbt leaves it without raw.media_spend: empty
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.media_mix_daily (date DATE, channel VARCHAR, spend DOUBLE, "
                    "impressions INTEGER, clicks INTEGER, new_customers INTEGER, "
                    "first_day_revenue DOUBLE, promotion DOUBLE)")
    report = run_dag("media_mix", {"mode": "auto"})
    assert report.state == "success"
    assert {t.task_id: t.state for t in report.tasks} == {"train": "skipped", "plan": "skipped"}
    assert not get_warehouse().table_exists("ml", "media_plans")
