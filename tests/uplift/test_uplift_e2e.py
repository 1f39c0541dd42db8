"""End to end on a small simulated history with past randomised campaigns: generate ->
dbt -> back-test by campaign -> register -> gate -> promote -> score per channel -> the
retention plan built on the uplift champion; retraining the same recipe is rejected; a
rollback restores the previous champion; without campaigns, training is a recorded skip."""

from __future__ import annotations

from datetime import date

import numpy as np
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


def test_uplift_train_gate_score_plan_rollback_and_skip(isolated_platform):
    from ml import registry
    from ml.dbt import compile_manifest, dbt_command
    from ml.decisions.campaign import plan, read_targets
    from ml.decisions.scoring import score_model
    from ml.lifecycle.ledger import read_ledger
    from ml.lifecycle.promotion import promote, rollback
    from ml.modeling.train import train_model
    from ml.sim.history import generate
    from ml.uplift.data import UpliftNotApplicable, load_uplift_set
    from ml.uplift.serving import read_uplift_scores, score_uplift, scoring_snapshot
    from ml.uplift.train import get_uplift_spec, train_and_gate, train_uplift
    from ml.warehouse import connect

    generate(customers=2500, seed=11, start=date(2023, 1, 1), end=date(2024, 12, 31))
    compile_manifest()  # what `ml init` leaves: training reads which features exist from it
    run = dbt_command(["build"], check=False, capture=True)
    assert run.returncode == 0, run.stdout[-3000:]

    # back-test by campaign, registered, gated: dry run leaves no champion
    first = train_and_gate(mode="dry_run", folds=2)
    assert first["decision"] == "dry_run" and first["campaigns"] == 2
    assert registry.version_by_alias("uplift", registry.CHAMPION) is None
    assert read_ledger("uplift").iloc[-1]["decision"] == "dry_run"
    version = registry.client().get_model_version("uplift", first["version"])
    card = registry.run_json(version.run_id, "backtest_summary.json")
    assert {"x_learner", "t_learner", "churn_rank", "random", "oracle"} <= set(card["summary"])
    assert "uplift: model card" in version.description and "randomised campaigns" in \
        version.description
    # each evaluated campaign learned only from campaigns whose outcome was known before it
    spec = get_uplift_spec()
    data = load_uplift_set(spec).frame
    for fold in card["campaigns"]:
        known = data.loc[data["label_matured_on"] <= pd.Timestamp(fold["as_of"]), "campaign"]
        assert fold["train_campaigns"] == known.nunique() >= 1
        assert fold["campaign"] not in set(known)
    # the oracle (ranking by the true effects) is measured on the same customers, and the
    # card says how much of the gap from the best baseline to it the model closes
    assert card["gap_closed"]["oracle_value"] == card["summary"]["oracle"]["qini"]["mean"]
    assert card["gap_closed"]["best_baseline"] in ("churn_rank", "random")

    promote("uplift", first["version"], "tester", "manual", "first champion, by hand")
    # `ml status` shows the champion's primary metric: its registered learner's back-test
    from ml.ops.status import platform_status

    shown = platform_status()["capabilities"]["uplift"]["champion"]["primary_metric"]
    assert shown["name"] == "qini"
    assert shown["value"] == pytest.approx(card["summary"][card["candidate"]]["qini"]["mean"])
    scored = score_uplift()
    scores = read_uplift_scores(scoring_snapshot())
    assert set(scores["channel"]) == {"crm_email", "sem", "display", "direct_mail"}
    assert len(scores) == 4 * scored["customers"] > 0
    assert scores["uplift"].between(-1, 1).all() and (scores["model_version"] == "1").all()
    score_uplift()  # a rerun replaces the as-of with the same rows
    pd.testing.assert_frame_equal(read_uplift_scores(scoring_snapshot()), scores)

    # the plan on the uplift champion: churn scores give the population and the prior
    churn = train_model("churn", learners=["recency_rule"], folds=1)
    promote("churn", churn["version"], "tester", "manual", "to plan from")
    score_model("churn")
    planned = plan(300.0, control_share=0.2, seed=1)
    assert planned["targeting"].startswith("uplift v1")
    targets = read_targets()
    wide = scores.pivot(index="customer_id", columns="channel", values="uplift")
    uplift = wide.to_numpy()[wide.index.get_indexer(targets["customer_id"]),
                             wide.columns.get_indexer(targets["channel"])]
    np.testing.assert_allclose(targets["uplift"], uplift)
    assert (targets["uplift"] > 0).all()
    np.testing.assert_allclose(targets["expected_incremental_value"],
                               uplift * targets["customer_value"] - targets["cost"])

    # the same recipe on the same campaigns is no better than the champion: rejected
    second = train_and_gate(mode="auto", folds=2)
    assert second["decision"] == "reject" and "below the threshold" in second["reason"]
    assert str(registry.version_by_alias("uplift", registry.CHAMPION).version) == \
        first["version"]
    promote("uplift", second["version"], "tester", "manual", "to roll back")
    rolled = rollback("uplift", "tester")
    assert rolled["to_version"] == first["version"]
    assert read_ledger("uplift").iloc[-1]["decision"] == "rolled_back"

    # without past campaigns (imported data), nothing to learn from: a skip naming the table
    with connect() as con:
        con.execute("DROP TABLE raw.campaign_assignments")
    with pytest.raises(UpliftNotApplicable, match="campaign_assignments"):
        train_uplift(spec)
