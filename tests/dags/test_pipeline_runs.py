"""The platform's DAGs run for real through dag.test(): dbt on a DuckDB file, MLflow on a
SQLite store, the Airflow metadata DB. One small synthetic history is shared by the
module; the tests run in file order because each step builds on the previous one."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.lifecycle.ledger import read_ledger
from ml.lifecycle.promotion import PromotionError, promote
from ml.ops.orchestration import pending_approvals, respond_to_approval, run_dag
from ml.warehouse import connect

pytestmark = pytest.mark.slow

FAST_TRAIN = {"folds": 2, "learners": None, "max_training_rows": None}


@pytest.fixture(scope="module")
def features_run(demo_warehouse, airflow_db):
    return run_dag("features", {"snapshot_cadence": "month"})


def _train(model: str, mode: str = "auto", respond: bool | None = None, user: str = "alice"):
    """Run a training DAG; when ``respond`` is set, answer its approval from another thread
    (as the UI or `ml approve` would, through Airflow's own response handler)."""
    answered = {}

    def responder():
        deadline = time.time() + 600
        while time.time() < deadline and not answered:
            for item in pending_approvals(f"train_{model}"):
                respond_to_approval(item["dag_id"], item["run_id"], item["task_id"],
                                    approve=respond, user=user)
                answered["run_id"] = item["run_id"]
            time.sleep(1)

    thread = None
    if respond is not None:
        thread = threading.Thread(target=responder, daemon=True)
        thread.start()
    report = run_dag(f"train_{model}", {**FAST_TRAIN, "promotion_mode": mode})
    if thread:
        answered.setdefault("run_id", None)
        thread.join(timeout=5)
        assert answered["run_id"] == report.run_id, "the run never waited for approval"
    return report


def test_features_dag_builds_the_marts(features_run):
    assert features_run.state == "success"
    assert any(t.task_id.startswith("dbt.") for t in features_run.tasks)
    with connect(read_only=True) as con:
        rows, keys = con.execute("SELECT count(*), count(DISTINCT (customer_id, as_of_date)) "
                                 "FROM marts.customer_features").fetchall()[0]
        training = con.execute("SELECT count(*) FROM marts.churn_training_set").fetchall()[0][0]
        oracle = con.execute("SELECT count(*) FROM eval.oracle_labels").fetchall()[0][0]
    assert rows == keys > 0  # one row per (customer, as_of_date)
    assert rows == oracle  # the spine covers exactly the customers the generator knew
    assert training > 0


def test_manual_mode_waits_and_reject_does_not_promote(features_run):
    report = _train("churn", mode="manual", respond=False, user="bob")
    assert report.state == "success"
    assert registry.version_by_alias("churn", registry.CHAMPION) is None
    last = read_ledger("churn").iloc[-1]
    assert last["decision"] == "declined"
    assert last["mode"] == "manual"


def test_manual_mode_promotes_on_approve_and_records_the_approver(features_run):
    report = _train("purchase_propensity", mode="manual", respond=True, user="alice")
    assert report.state == "success"
    champion = registry.version_by_alias("purchase_propensity", registry.CHAMPION)
    assert champion is not None
    last = read_ledger("purchase_propensity").iloc[-1]
    assert (last["decision"], last["actor"], last["to_version"]) == \
        ("promoted", "alice", str(champion.version))


@pytest.fixture(scope="module")
def weak_churn_specs(tmp_path_factory):
    """The shipped specs, but churn's candidate is a 3-tree, depth-1 XGBoost."""
    import yaml

    from ml.modeling.specs import spec_paths

    folder = tmp_path_factory.mktemp("weak_specs")
    for path in spec_paths():
        raw = yaml.safe_load(path.read_text())
        if raw["name"] == "churn":
            raw["candidate"] = "xgboost"
            raw["learners"]["xgboost"]["params"] = {"n_estimators": 3, "max_depth": 1}
        (folder / path.name).write_text(yaml.safe_dump(raw))
    return folder


def test_auto_promotes_first_champion_with_lineage(features_run, weak_churn_specs, monkeypatch):
    monkeypatch.setenv("MODEL_SPECS_DIR", str(weak_churn_specs))
    _train("churn")
    champion = registry.version_by_alias("churn", registry.CHAMPION)
    assert champion is not None
    for tag in ("data_window", "data_fingerprint", "git_sha", "dbt_manifest_hash", "spec_hash",
                "backtest_summary", "gate_verdict"):
        assert champion.tags.get(tag), f"missing version tag {tag}"
    assert champion.tags["gate_verdict"] == "promote"
    assert "model card" in champion.description and "Back-test" in champion.description
    card = registry.run_json(champion.run_id, "backtest_summary.json")
    assert {"xgboost", "logistic_regression", "recency_rule", "bgnbd", "oracle"} <= set(card["summary"])


def test_a_better_challenger_replaces_a_weak_champion_in_auto_mode(features_run):
    weak = registry.version_by_alias("churn", registry.CHAMPION)
    _train("churn")  # the shipped spec: candidate chosen by the back-test
    champion = registry.version_by_alias("churn", registry.CHAMPION)
    assert int(champion.version) > int(weak.version)
    last = read_ledger("churn").iloc[-1]
    assert (last["decision"], last["mode"], last["from_version"], last["to_version"]) == \
        ("promoted", "auto", str(weak.version), str(champion.version))
    assert last["gain"] >= 0.002
    assert 0 < last["ci_low"] <= last["gain"] <= last["ci_high"]
    card = registry.run_json(champion.run_id, "backtest_summary.json")
    assert card["champion"] == {"version": str(weak.version), "comparable": True}
    assert card["gains"]["champion"]["low"] == last["ci_low"]
    assert card["selection"]["winner"] == card["candidate"]
    champion_gain = card["gains"]["champion"]
    assert (f"vs **champion**: {champion_gain['gain']:+.4f} (95% CI {champion_gain['low']:+.4f}"
            in champion.description)
    assert "Chosen by the back-test" in champion.description
    import mlflow

    report = mlflow.artifacts.load_text(f"runs:/{champion.run_id}/report/report.html")
    assert "<strong>Verdict: promote</strong>" in report  # re-rendered once the gate decided


def test_second_run_on_unchanged_data_registers_but_does_not_promote(features_run):
    before = registry.version_by_alias("churn", registry.CHAMPION).version
    _train("churn")
    challenger = registry.version_by_alias("churn", registry.CHALLENGER)
    assert int(challenger.version) > int(before)
    assert registry.version_by_alias("churn", registry.CHAMPION).version == before
    last = read_ledger("churn").iloc[-1]
    assert last["decision"] == "rejected"
    # the same recipe re-fitted on the same folds: exactly no gain, and the reason says so
    assert last["gain"] == pytest.approx(0.0, abs=1e-12)
    assert last["ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert last["ci_high"] == pytest.approx(0.0, abs=1e-12)
    assert "is below the threshold 0.002" in last["reason"]
    assert challenger.tags["gate_verdict"] == "reject"


def test_promote_and_rollback_through_the_ledger(features_run):
    current = registry.version_by_alias("churn", registry.CHAMPION).version
    newest = registry.version_by_alias("churn", registry.CHALLENGER).version
    promote("churn", newest, actor="carol", mode="manual", reason="test")
    assert registry.version_by_alias("churn", registry.CHAMPION).version == newest
    with pytest.raises(PromotionError, match="already the champion"):
        promote("churn", newest, actor="carol", mode="manual", reason="again")
    run_dag("rollback", {"model": "churn", "reason": "bad campaign results"})
    assert registry.version_by_alias("churn", registry.CHAMPION).version == current
    decisions = read_ledger("churn")["decision"].tolist()
    assert decisions[-2:] == ["promoted", "rolled_back"]


def _scores(model):
    with connect(read_only=True) as con:
        return con.execute("SELECT customer_id, as_of_date, model_version, segment, score, decile "
                           "FROM ml.scores WHERE model_name = ? ORDER BY customer_id",
                           [model]).df()


def test_scoring_writes_one_row_per_eligible_customer_and_is_idempotent(features_run):
    run_dag("score", {"model": "all", "as_of": None, "shards": 3})
    first = _scores("churn")
    champion = registry.version_by_alias("churn", registry.CHAMPION)
    with connect(read_only=True) as con:
        eligible = con.execute(
            "SELECT count(*) FROM marts.customer_features WHERE in_churn_population AND "
            "as_of_date = (SELECT max(as_of_date) FROM marts.snapshot_calendar "
            "WHERE is_scoring_snapshot)").fetchall()[0][0]
    assert len(first) == eligible > 0
    assert first["customer_id"].is_unique
    assert set(first["model_version"]) == {str(champion.version)}
    assert sorted(first["decile"].unique()) == list(range(1, 11))
    run_dag("score", {"model": "churn", "as_of": None, "shards": 2})
    pd.testing.assert_frame_equal(first, _scores("churn"))


def test_scores_equal_the_models_own_predictions(features_run):
    import mlflow

    from ml.modeling.training_data import model_frame

    scores = _scores("churn").sample(50, random_state=1)
    champion = registry.version_by_alias("churn", registry.CHAMPION)
    registry.configure()
    uri = f"models:/churn/{champion.version}"
    model = mlflow.sklearn.load_model(uri)
    inputs = mlflow.models.get_model_info(uri).signature.inputs.inputs
    numeric = [c.name for c in inputs if c.type.name == "double"]
    categorical = [c.name for c in inputs if c.name not in numeric]
    with connect(read_only=True) as con:
        rows = con.execute("SELECT * FROM marts.customer_features WHERE as_of_date = ? AND "
                           "customer_id IN (SELECT unnest(?))",
                           [scores["as_of_date"].iloc[0], scores["customer_id"].tolist()]).df()
    rows = rows.set_index("customer_id").loc[scores["customer_id"]]
    expected = model.predict_proba(model_frame(rows, numeric, categorical))[:, 1]
    np.testing.assert_allclose(scores["score"].to_numpy(), expected, rtol=1e-9)


def test_a_failed_publish_leaves_previous_scores_intact(features_run):
    from ml.decisions.scoring import ScoringError, publish, score_shard, staging_dir

    before = _scores("churn")
    as_of = str(before["as_of_date"].iloc[0])[:10]
    results = [score_shard("churn", as_of, k, 2) for k in range(2)]
    # inject a failure mid-write: the second shard file is corrupt, so the INSERT fails
    # after the DELETE inside the transaction
    corrupt = sorted(staging_dir("churn", pd.Timestamp(as_of).date()).glob("shard-*"))[-1]
    corrupt.write_bytes(b"not parquet")
    with pytest.raises(Exception):  # noqa: B017 - DuckDB's own IO error type
        publish("churn", as_of, results)
    pd.testing.assert_frame_equal(before, _scores("churn"))
    with pytest.raises(ScoringError, match="different versions"):
        publish("churn", as_of, [{**results[0], "version": "1"}, {**results[1], "version": "2"}])


def test_scoring_without_a_champion_is_refused(features_run):
    from ml.decisions.scoring import ScoringError, score_model

    with pytest.raises(ScoringError, match="no champion yet"):
        score_model("revenue_per_click")


def test_allocation_respects_the_budget_and_beats_random_targeting(features_run):
    budget = 300.0
    run_dag("allocate", {"budget": budget, "control_share": 0.2, "seed": 7, "margin_rate": 0.3,
                         "capacity_crm_email": None, "capacity_sem": None,
                         "capacity_display": None, "capacity_direct_mail": None})
    with connect(read_only=True) as con:
        targets = con.execute("SELECT * FROM ml.campaign_targets").df()
        summary = con.execute("SELECT * FROM ml.campaign_summary").df().iloc[-1]
        candidates = con.execute(
            "SELECT s.score AS p, coalesce(f.revenue_365d, 0) * 0.3 AS v FROM ml.scores s "
            "JOIN marts.customer_features f USING (customer_id, as_of_date) "
            "WHERE s.model_name = 'churn'").df()
        channels = con.execute("SELECT * FROM seeds.retention_channels").df()
    treated = targets[targets["group"] == "treatment"]
    assert treated["cost"].sum() <= budget + 1e-9
    assert abs(summary["spend"] - treated["cost"].sum()) < 1e-6
    assert (targets["group"] == "control").sum() > 0
    assert targets["customer_id"].is_unique
    # random targeting of the same budget, best single channel, expected incremental value
    rng = np.random.default_rng(0)
    best = channels.assign(x=channels.save_rate / channels.cost_per_contact).sort_values("x").iloc[-1]
    n = int(budget // best.cost_per_contact)
    pick = candidates.iloc[rng.permutation(len(candidates))[:n]]
    random_value = (pick.p * best.save_rate * pick.v - best.cost_per_contact).sum()
    chosen_value = targets["expected_incremental_value"].sum()
    assert chosen_value > random_value


def test_allocation_bad_input_leaves_targets_untouched(features_run):
    from ml.decisions.campaign import CampaignError, plan

    with connect(read_only=True) as con:
        before = con.execute("SELECT * FROM ml.campaign_targets ORDER BY customer_id").df()
    for budget in (0, -5, "lots", float("nan")):
        with pytest.raises(CampaignError, match="budget must be a positive number"):
            plan(budget)
    with connect() as con:
        con.execute("UPDATE seeds.retention_channels SET cost_per_contact = -1 "
                    "WHERE channel = 'sem'")
    try:
        with pytest.raises(CampaignError, match="sem"):
            plan(100)
    finally:
        with connect() as con:
            con.execute("UPDATE seeds.retention_channels SET cost_per_contact = 1.2 "
                        "WHERE channel = 'sem'")
    with connect(read_only=True) as con:
        after = con.execute("SELECT * FROM ml.campaign_targets ORDER BY customer_id").df()
    pd.testing.assert_frame_equal(before, after)


def test_the_spec_horizon_drives_labels_baselines_oracle_and_card(features_run):
    """Last in this module: it rebuilds the marts with a 60-day churn horizon."""
    from ml.modeling.train import train_model
    from ml.modeling.training_data import TrainingDataError

    run_dag("features", {"snapshot_cadence": "month", "churn_horizon_days": 60})
    with connect(read_only=True) as con:
        spans = con.execute("SELECT DISTINCT date_diff('day', as_of_date, label_matured_on) "
                            "FROM marts.churn_training_set").fetchall()
    assert spans == [(60,)]  # the labels mature 60 days after each snapshot
    with pytest.raises(TrainingDataError, match=r"churn_horizon_days=\[60\] but the spec's "
                                                r"horizon_days is 90"):
        train_model("churn", folds=2)  # the spec's 90 days disagree with the build: refused

    trained = train_model("churn", folds=2, horizon_days=60)
    run = registry.client().get_run(trained["run_id"])
    assert run.data.params["horizon_days"] == "60"  # the recency rule and BG/NBD use it too
    card = registry.run_json(trained["run_id"], "backtest_summary.json")
    assert card["horizon_days"] == 60 and card["oracle_note"] is None
    assert "oracle" in card["summary"]  # the oracle's own 60-day column
    version = registry.client().get_model_version("churn", trained["version"])
    assert "(horizon 60 days; only matured labels)" in version.description

    run_dag("features", {"snapshot_cadence": "month", "churn_horizon_days": 75})
    card = registry.run_json(train_model("churn", folds=2, horizon_days=75)["run_id"],
                             "backtest_summary.json")
    assert "oracle" not in card["summary"]
    assert card["oracle_note"] == ("eval.oracle_labels covers horizons [7, 14, 30, 60, 90] days, "
                                   "not 75: no oracle for this horizon")
