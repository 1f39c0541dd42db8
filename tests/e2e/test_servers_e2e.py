"""End to end through the servers' REST APIs: Airflow's scheduler runs every DAG (manual,
cron-slot and asset-triggered runs), MLflow's registry holds the champions, a promotion is
approved with `ml approve` through the human-in-the-loop API, and the warehouse holds the
scores."""

from __future__ import annotations

import duckdb
import httpx
import pytest

from tests.e2e.conftest import MANUAL_MODEL, MODELS

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(3000)]

LINEAGE_TAGS = {"data_window", "data_fingerprint", "git_sha", "dbt_manifest_hash", "spec_hash",
                "backtest_summary", "gate_verdict"}


def test_every_run_succeeded_and_nothing_ran_twice(servers, platform_run):
    for dag_id, waited_for in platform_run.runs.items():
        runs = servers.client.runs(dag_id)
        assert {r["state"] for r in runs} == {"success"}, (dag_id, runs)
        # No extra run of the cron schedules or the Assets beyond the ones the flow expects.
        assert sorted(r["dag_run_id"] for r in runs) == sorted(waited_for), dag_id
    score_runs = {r["dag_run_id"]: r for r in servers.client.runs("score")}
    assert score_runs[platform_run.runs["score"][1]]["run_type"] == "asset_triggered"
    for dag_id in ("allocate", *[f"train_{m}" for m in MODELS if m != MANUAL_MODEL]):
        assert servers.client.runs(dag_id)[0]["run_type"] == "asset_triggered", dag_id


def test_each_model_has_a_champion_with_backtest_metrics_and_lineage(servers, platform_run):
    for model in MODELS:
        champion = servers.champion(model)
        assert champion is not None, f"{model} has no @champion"
        tags = {t["key"]: t["value"] for t in champion.get("tags", [])}
        assert LINEAGE_TAGS <= set(tags), f"{model}: missing tags {LINEAGE_TAGS - set(tags)}"
        assert tags["gate_verdict"] == "promote"
        run = servers.mlflow("/api/2.0/mlflow/runs/get", run_id=champion["run_id"]).json()["run"]
        metrics = {m["key"] for m in run["data"].get("metrics", [])}
        assert any(k.endswith(".mean") for k in metrics), f"{model}: no back-test metrics"
        files = servers.mlflow("/api/2.0/mlflow/artifacts/list", run_id=champion["run_id"],
                               path="report").json().get("files", [])
        assert {"report/report.html", "report/model_card.md"} <= {f["path"] for f in files}
        report = servers.mlflow("/get-artifact", path="report/report.html",
                                run_uuid=champion["run_id"])
        assert report.status_code == 200 and "<html" in report.text.lower()


def test_ml_approve_refuses_a_wrong_password_and_answers_as_the_signed_in_user(platform_run):
    refused = platform_run.refused_approval
    assert refused.returncode == 1
    assert "refused the credentials of user 'admin' (HTTP 401)" in " ".join(refused.stdout.split())
    assert f"approved by admin: train_{MANUAL_MODEL} {platform_run.manual_run_id}" in \
        " ".join(platform_run.approval_output.split())


def test_manual_promotion_was_approved_through_the_api(servers, platform_run):
    assert platform_run.champion_before_approval is None  # the gate alone promoted nothing
    assert platform_run.approval["chosen_options"] == ["Approve"]
    assert platform_run.approval["responded_by_user"]["name"] == "admin"
    champion = servers.champion(MANUAL_MODEL)
    assert str(champion["version"]) == platform_run.trained_version
    with duckdb.connect(str(servers.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT decision, mode, actor, to_version FROM ml.promotion_ledger "
            "WHERE model = ? ORDER BY decided_at", [MANUAL_MODEL]).fetchall()
    assert rows[-1] == ("promoted", "manual", "admin", platform_run.trained_version)


def test_scores_and_campaign_are_in_the_warehouse(servers, platform_run):
    with duckdb.connect(str(servers.warehouse), read_only=True) as con:
        counts = dict(con.execute("SELECT model_name, count(*) FROM ml.scores "
                                  "GROUP BY model_name").fetchall())
        targets = con.execute("SELECT count(*) FROM ml.campaign_targets").fetchone()[0]
    assert set(counts) == set(MODELS) and min(counts.values()) > 0, counts
    assert targets > 0


def test_unauthenticated_calls_are_refused(servers, platform_run):
    api = f"{servers.airflow_url}/api/v2"
    hitl = (f"{api}/dags/train_{MANUAL_MODEL}/dagRuns/{platform_run.manual_run_id}"
            "/taskInstances/await_approval/-1/hitlDetails")
    with httpx.Client(timeout=30) as http:
        for method, url, body in [("GET", f"{api}/dags", None),
                                  ("POST", f"{api}/dags/features/dagRuns",
                                   {"logical_date": None, "conf": {}}),
                                  ("PATCH", f"{api}/dags/features", {"is_paused": True}),
                                  ("PATCH", hitl, {"chosen_options": ["Reject"]})]:
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                response = http.request(method, url, json=body, headers=headers)
                assert response.status_code in (401, 403), (method, url, headers, response.text)
        wrong = http.post(f"{servers.airflow_url}/auth/token",
                          json={"username": "admin", "password": servers.password + "x"})
        assert wrong.status_code in (401, 403)


def test_training_task_links_to_its_mlflow_run(servers, platform_run):
    dag_id = f"train_{MANUAL_MODEL}"
    run_id = platform_run.manual_run_id
    links = servers.client.request(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/train/links")["extra_links"]
    trained = servers.client.xcom(dag_id, run_id, "train")
    assert links["MLflow run"] == f"{servers.mlflow_url}/#/runs/{trained['run_id']}"
    other = servers.client.request(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/gate/links")["extra_links"]
    assert other.get("MLflow run") is None
