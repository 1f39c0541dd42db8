"""No champion is a decision, not a crash.

- The allocate DAG, with no churn scores to plan from, skips with the reason instead of
  failing.
- Ten weeks of real orders and order items, through the CLI (`ml import`, `ml run`,
  `ml status --json`) in its own state directory: churn's 90-day labels never mature, so
  train_churn records why and skips; revenue_per_click (no marketing touches) skips;
  nothing has a champion, so scoring and the campaign are skipped with their reasons, and
  `ml run` exits 0. (purchase_propensity is left out: on ten weeks its 90-day trend
  features are null in every row, which load_training_set refuses as a broken feature.)
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ml.ops.orchestration import run_dag
from ml.ops.status import platform_status
from ml.settings import REPO_ROOT
from ml.warehouse import connect

pytestmark = pytest.mark.slow
CHANNELS = REPO_ROOT / "dbt_project" / "seeds" / "retention_channels.csv"


def test_allocate_skips_without_churn_scores(tmp_path, monkeypatch, airflow_db):
    """A warehouse with channels but no churn scores (churn has no champion, or it has one
    that is not scored yet: either way nothing to plan from)."""
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    with connect() as con:
        con.execute("CREATE SCHEMA seeds")
        con.execute(f"CREATE TABLE seeds.retention_channels AS SELECT * FROM '{CHANNELS}'")
    report = run_dag("allocate", {"budget": 100.0})
    assert report.state == "success"
    assert [t.state for t in report.tasks if t.task_id == "plan_campaign"] == ["skipped"]
    status = platform_status()
    assert status["campaign_blocked_by"]
    assert "ml.campaign_targets" not in status["tables"]


def _ml(args: list[str], env: dict) -> subprocess.CompletedProcess:
    ml = Path(sys.executable).with_name("ml")
    result = subprocess.run([str(ml), *args], env=env, capture_output=True, text=True,
                            timeout=900, cwd=REPO_ROOT)
    assert result.returncode == 0, (f"ml {' '.join(args)} failed:\n{result.stdout[-4000:]}\n"
                                    f"{result.stderr[-4000:]}")
    return result


def _write_short_history(out: Path, days: int = 70, customers: int = 150) -> dict[str, Path]:
    """Orders from 2024-01-01 (two lines each) by customers who buy at their own rate."""
    rng = np.random.default_rng(1)
    start = datetime(2024, 1, 1)
    orders, items = [], []
    for customer in range(customers):
        day, rate = rng.uniform(0, days * 0.8), rng.gamma(1.5, 1 / 20)
        while day < days:
            order_id = f"o{len(orders) + 1}"
            orders.append({"order_id": order_id, "customer_id": f"c{customer}",
                           "ordered_at": f"{start + timedelta(days=day):%Y-%m-%d %H:%M}",
                           "revenue": round(float(rng.lognormal(3.5, 0.4)), 2)})
            items += [{"order_id": order_id, "line_number": line, "product_id": f"p{line}",
                       "category": "home", "quantity": 1, "price": 20.0} for line in (1, 2)]
            day += rng.exponential(1 / rate)
    files = {}
    for table, rows in (("orders", orders), ("order_items", items)):
        files[table] = out / f"{table}.csv"
        with files[table].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return files


def test_a_history_too_short_to_train_churn_runs_to_the_end(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "DBT_", "MLFLOW", "WAREHOUSE"))}
    env["PLATFORM_LOCAL_DIR"] = str(tmp_path / "state")
    files = _write_short_history(tmp_path)
    _ml(["init"], env)
    _ml(["import", "--orders", str(files["orders"]), "--order-items", str(files["order_items"])],
        env)
    run = _ml(["run", "--folds", "2", "--model", "churn", "--model", "revenue_per_click"], env)
    assert "Skipped" in run.stdout and "train_churn" in run.stdout

    status = json.loads(_ml(["status", "--json"], env).stdout)
    churn, touches = status["models"]["churn"], status["models"]["revenue_per_click"]
    assert churn["champion"] is None and churn["challenger"] is None
    assert churn["last_decision"]["decision"] == "skipped"
    assert "0 rows with a matured label" in churn["no_champion_reason"]
    assert "horizon_days" in churn["no_champion_reason"]
    assert touches["last_decision"]["decision"] == "skipped"
    assert "marketing_touches" in touches["no_champion_reason"]
    assert "never trained" in status["models"]["purchase_propensity"]["no_champion_reason"]
    assert "0 rows with a matured label" in status["campaign_blocked_by"]  # churn's reason
    assert "ml.scores" not in status["tables"]
