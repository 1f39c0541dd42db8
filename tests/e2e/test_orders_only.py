"""Bring your own data: an orders-only export goes through the real CLI (`ml import`,
`ml run`, `ml status --json`, `ml export`) in its own state directory and ends with
champions, scores and a target list; features from absent tables are absent, and the
model that needs marketing touches is skipped rather than failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ml.settings import REPO_ROOT

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "examples" / "shop_export"


def _ml(args: list[str], env: dict) -> subprocess.CompletedProcess:
    ml = Path(sys.executable).with_name("ml")
    return subprocess.run([str(ml), *args], env=env, capture_output=True, text=True,
                          timeout=1500, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def orders_only(tmp_path_factory):
    state = tmp_path_factory.mktemp("orders-only")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "DBT_", "MLFLOW", "WAREHOUSE"))}
    env["PLATFORM_LOCAL_DIR"] = str(state)
    for step in (["init"],
                 ["import", "--orders", str(EXAMPLE / "orders.csv"),
                  "--mapping", str(EXAMPLE / "mapping.yml")],
                 ["run", "--folds", "2", "--budget", "500"]):
        result = _ml(step, env)
        assert result.returncode == 0, f"ml {step[0]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return state, env


def test_orders_only_ends_with_champions_scores_and_targets(orders_only, tmp_path):
    state, env = orders_only
    status = json.loads(_ml(["status", "--json"], env).stdout)
    for model in ("churn", "purchase_propensity"):
        champion = status["models"][model]["champion"]
        assert champion and champion["version"], f"{model} has no champion"
        backtest = champion["backtest"]
        assert {"xgboost", "bgnbd", "recency_rule", "logistic_regression"} <= set(backtest)
        assert champion["candidate"] in backtest  # the learner `candidate: best` registered
        assert backtest["xgboost"]["roc_auc"]["mean"] > backtest["recency_rule"]["roc_auc"]["mean"]
    skipped = status["models"]["revenue_per_click"]
    assert skipped["challenger"] is None  # needs touches: skipped, and says so
    assert skipped["last_decision"]["decision"] == "skipped"
    assert "marketing_touches" in skipped["no_champion_reason"]
    # the capabilities' own models are listed too: uplift has no past campaigns to learn from
    assert set(status["capabilities"]) == {"recommendations", "uplift", "media_mix"}
    uplift = status["capabilities"]["uplift"]
    assert uplift["champion"] is None and uplift["last_decision"]["decision"] == "skipped"
    assert "campaign" in uplift["no_champion_reason"]
    assert status["tables"]["ml.scores"] > 0
    assert status["tables"]["ml.campaign_targets"] > 0
    out = tmp_path / "targets.csv"
    assert _ml(["export", "targets", "--out", str(out)], env).returncode == 0
    assert out.read_text().splitlines()[0].startswith("as_of_date,customer_id,channel")


def test_features_from_absent_tables_are_null_not_zero(orders_only):
    state, _ = orders_only
    with duckdb.connect(str(state / "warehouse.duckdb"), read_only=True) as con:
        nulls = con.execute("SELECT count(*) FILTER (WHERE sessions_30d IS NOT NULL), "
                            "count(*) FILTER (WHERE clicks_90d IS NOT NULL), "
                            "count(*) FILTER (WHERE orders_90d IS NULL) "
                            "FROM marts.customer_features").fetchall()[0]
        quarantined = con.execute("SELECT count(*) FROM raw.quarantine").fetchall()[0][0]
    assert nulls == (0, 0, 0)
    assert quarantined >= 1  # the example holds a guest checkout without a customer id


def test_model_card_names_the_unavailable_features(orders_only):
    state, env = orders_only
    status = json.loads(_ml(["status", "--json"], env).stdout)
    run_id = status["models"]["churn"]["champion"]["run_id"]
    summaries = list((state / "mlartifacts").glob(f"churn/{run_id}/artifacts/backtest_summary.json"))
    assert summaries, f"no back-test summary for run {run_id} under {state / 'mlartifacts'}"
    unavailable = json.loads(summaries[0].read_text())["unavailable"]
    assert {"sessions_30d", "clicks_90d", "region", "items_per_order"} <= set(unavailable)
