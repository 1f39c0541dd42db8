"""A failing dbt test in the features DAG is named, with its failing rows.

The DAG's dbt tasks run with ``--no-write-json`` (no run_results.json: writing it and the
manifest was half of each one-model task), so the failing node reaches ``ml run``'s
explanation through the dbtRunner callback ``record_failed_node``. Here the DAG's own
tasks are checked to carry both, and dbt runs in-process exactly as a Cosmos task invokes
it, on raw orders with one negative revenue (the DAG itself would stop at the same test).
"""

from __future__ import annotations

import pytest

from ml.dbt import (
    _environ,
    release_dbt_adapters,
    clear_failed_nodes,
    failed_nodes,
    failed_nodes_file,
    record_failed_node,
)
from ml.settings import REPO_ROOT, dbt_environment, get_settings
from ml.warehouse import connect

pytestmark = pytest.mark.slow


def test_features_dag_dbt_tasks_record_failures_without_json(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "features.py")).get_dag("features")
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks
    for task in dbt_tasks:
        assert "--no-write-json" in task.dbt_cmd_flags, task.task_id
        assert record_failed_node in task._dbt_runner_callbacks, task.task_id


def test_failing_dbt_test_is_named_with_its_rows(tmp_path, monkeypatch, dbt_manifest):
    from dbt.cli.main import dbtRunner

    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    with connect() as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.orders AS SELECT 'o' || i AS order_id, 'c' || (i % 5) "
                    "AS customer_id, TIMESTAMP '2024-01-01' + i * INTERVAL 3 DAY AS ordered_at, "
                    "CASE WHEN i = 7 THEN -5.0 ELSE 20.0 END AS revenue, 0.0 AS discount, "
                    "'completed' AS status, 'web' AS order_channel FROM range(40) t(i)")
    failed_nodes_file().parent.mkdir(parents=True, exist_ok=True)
    failed_nodes_file().write_text('{"unique_id": "test.customer_ml.stale", "status": "fail", '
                                   '"failures": 1, "message": "a previous run"}\n')
    clear_failed_nodes()  # what the DAG's load_seeds task does first
    s = get_settings()
    with _environ(dbt_environment(s)):
        try:
            result = dbtRunner(callbacks=[record_failed_node]).invoke(
                ["build", "--select", "stg_shop__orders", "--no-write-json", "--project-dir",
                 str(s.dbt_project_dir), "--profiles-dir", str(s.dbt_profiles_dir)])
        finally:
            release_dbt_adapters()
    assert not result.success
    nodes = failed_nodes()
    assert [(n.name, n.status, n.failures) for n in nodes] == [
        ("raw_orders__revenue__non_negative", "fail", 1)], nodes
