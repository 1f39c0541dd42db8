"""End to end on a tiny history: generate -> dbt -> train -> gate -> promote -> serve ->
export; a rerun of serving leaves identical rows; retraining the same recipe is rejected."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

STATE_VARS = ("WAREHOUSE_PATH", "AIRFLOW_HOME", "MLFLOW_TRACKING_URI", "DBT_MANIFEST_PATH",
              "DBT_TARGET_PATH", "DBT_LOG_PATH")


@pytest.fixture
def isolated_platform(tmp_path, monkeypatch):
    for var in STATE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_recommendations_train_promote_serve_export_and_rerun(isolated_platform):
    from typer.testing import CliRunner

    from ml.cli import app
    from ml.dbt import dbt_command
    from ml.recommend.serving import explain, read_recommendations, serve
    from ml.recommend.train import get_ranking_spec, train_and_gate
    from ml.sim.history import generate

    generate(customers=1200, seed=5, start=date(2023, 1, 1), end=date(2024, 6, 30))
    run = dbt_command(["build", "--select", "+recommendation_labels", "+recommendation_catalogue",
                       "--indirect-selection", "cautious"], check=False, capture=True)
    assert run.returncode == 0, run.stdout[-3000:]

    first = train_and_gate(mode="auto", folds=2)
    assert first["decision"] == "promoted", first["reason"]
    assert first["oracle"] and first["oracle"]["recall_at_10"] > max(
        v for n, v in first["recall_at_10"].items() if n != "oracle")

    spec = get_ranking_spec()
    served = serve(spec)
    rows = read_recommendations()
    assert served["rows"] == len(rows) > 0
    assert rows.groupby("customer_id")["rank"].max().eq(spec.recommend.k).all()
    assert set(rows["source"]) >= {"model", "holdout"}
    assert (rows["model_version"] == first["version"]).all()

    again = serve(spec)
    rerun = read_recommendations()
    assert again["rows"] == served["rows"]
    pd.testing.assert_frame_equal(rows, rerun)

    personal = rows[rows["source"] == "model"]["customer_id"].iloc[0]
    shown = explain(spec, personal)
    assert shown["history"] and len(shown["recommendations"]) == spec.recommend.k
    assert set(shown["why"]) == {r["product_id"] for r in shown["recommendations"]}
    assert all(shown["why"].values())

    out = isolated_platform / "export.csv"
    exported = CliRunner().invoke(app, ["export", "recommendations", "--out", str(out), "--k", "3"])
    assert exported.exit_code == 0, exported.output
    frame = pd.read_csv(out)
    assert len(frame) == rows["customer_id"].nunique() * 3 and frame["rank"].max() == 3
    assert (frame["model_version"].astype(str) == str(first["version"])).all()

    second = train_and_gate(mode="auto", folds=2)
    assert second["decision"] == "reject"
    assert "champion" in second["reason"] or "below the threshold" in second["reason"]
