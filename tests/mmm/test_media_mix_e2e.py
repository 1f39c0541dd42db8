"""The media-mix model end to end on a generated history (800 customers, two years), with
a deliberately tiny fit (one chain, few draws) so the test stays within its time budget:
real dbt mart, real PyMC-Marketing fit, real MLflow registry and promotion ledger.

The fit judged by strict diagnostics is not promoted (ledger row, no champion); the same
fit judged by loose ones is promoted (the gate's rule is the spec's), and the plan made with it spends the budget
within bounds and is stored."""

from __future__ import annotations

import numpy as np
import pytest

from ml.mmm.spec import load_media_spec

pytestmark = pytest.mark.slow

TINY = {"chains": 1, "tune": 60, "draws": 60, "target_accept": 0.9, "random_seed": 3}


def _spec(**gate):
    """The spec with the tiny sampler; calibrated by the generator's lift tests, but not
    compared with an uncalibrated fit (that would be a second fit: bench/mmm.py does it)."""
    spec = load_media_spec().with_overrides(sampler=TINY)
    raw = {**spec.raw, "calibration": {**spec.raw["calibration"], "compare_uncalibrated": False}}
    return type(spec)(**{**spec.__dict__, "gate": {**spec.gate, **gate},
                         "plan": {**spec.plan, "draws": 60}, "raw": raw})


@pytest.fixture(scope="module")
def media_mart(demo_warehouse):
    from ml.dbt import invoke_in_process

    # In-process, as the features DAG's Cosmos tasks run dbt: a subprocess would compete
    # with this test process's DuckDB instance for the warehouse file's lock.
    run = invoke_in_process(["build", "--select", "+media_mix_daily", "+media_lift_tests",
                             "--indirect-selection", "cautious"])
    assert run.success, run.exception or run.result
    return demo_warehouse


@pytest.fixture(scope="module")
def trained(media_mart):
    """One tiny fit, logged and registered (the gate then judges it twice)."""
    from ml.mmm.train import train_media_mix

    return train_media_mix(_spec())


@pytest.fixture(scope="module")
def rejected(trained):
    from ml.mmm.train import act_on_verdict

    return act_on_verdict(_spec(min_ess_bulk=1e9), trained)


@pytest.fixture(scope="module")
def promoted(trained, rejected):
    from ml.mmm.train import act_on_verdict

    return act_on_verdict(_spec(min_ess_bulk=1, max_divergence_share=1.0, ppc_coverage_min=0.0,
                                max_holdout_mape=10.0, beat_naive=False), trained)


def test_a_fit_failing_its_diagnostics_is_not_promoted(rejected):
    from ml import registry
    from ml.lifecycle.ledger import read_ledger

    assert rejected["decision"] == "reject"
    assert registry.version_by_alias("media_mix", registry.CHAMPION) is None
    assert "min bulk ESS" in rejected["reason"] and "not promoted" in rejected["reason"]
    assert registry.version_by_alias("media_mix", registry.CHALLENGER).version == int(rejected["version"])
    row = read_ledger("media_mix").iloc[-1]
    assert row["decision"] == "reject" and row["to_version"] == rejected["version"]


def test_a_passing_fit_is_promoted_with_diagnostics_holdout_and_roi(promoted):
    from ml import registry
    from ml.mmm.train import SUMMARY_ARTIFACT

    assert promoted["decision"] == "promoted", promoted["reason"]
    champion = registry.version_by_alias("media_mix", registry.CHAMPION)
    assert str(champion.version) == promoted["version"]
    summary = registry.run_json(champion.run_id, SUMMARY_ARTIFACT)
    diag, hold = summary["diagnostics"], summary["holdout"]
    assert diag["draws"] == 60 and diag["min_ess_bulk"] > 0 and 0 <= diag["ppc_coverage"] <= 1
    assert hold["periods"] == 8 and hold["mape"] > 0 and hold["crps"] > 0
    assert set(summary["roi"]) == {"SEM", "Display", "Social", "Affiliate", "Prospecting"}
    for values in summary["roi"].values():
        roi = values["roi"]
        assert 0 <= roi["low"] <= roi["mean"] <= roi["high"]
    assert "Promotion gate" in champion.description and "ROI per channel" in champion.description
    worth = summary["customer_value"]
    v = worth["value_per_new_customer"]
    assert v > 0 and worth["horizon_days"] == 365 and worth["margin_rate"] == 0.3
    assert v == pytest.approx(worth["margin_rate"] * worth["conversion"] * (
        worth["first_purchase_value"]
        + worth["expected_repeat_purchases"] * worth["repeat_purchase_value"]))
    for values in summary["roi"].values():
        for key in ("mean", "low", "high"):
            assert values["value_roi"][key] == pytest.approx(values["roi"][key] * v)
    assert "Value of a new customer" in champion.description
    assert registry.run_json(champion.run_id, "media_mix_posterior.json")[
        "value_per_new_customer"] == pytest.approx(v)
    import mlflow
    metrics = mlflow.MlflowClient().get_run(champion.run_id).data.metrics
    assert metrics["value_per_new_customer"] == pytest.approx(v)
    assert {"value.conversion", "value.expected_repeat_purchases"} <= set(metrics)
    print(f"value per new customer: {v:.2f} ({worth['method']}; observed "
          f"{worth['observed_value']}): {worth['note']}")


def test_the_fit_is_calibrated_by_the_generators_lift_tests(trained, promoted):
    """One geo holdout per channel reaches the model as PyMC-Marketing's lift likelihood
    (go-dark tests: x + delta_x = 0), and the summary and model card say so."""
    from ml import registry
    from ml.mmm.model import LIFT_LIKELIHOOD
    from ml.mmm.train import SUMMARY_ARTIFACT

    model = trained["fit"].mmm.model
    assert LIFT_LIKELIHOOD in model.named_vars
    assert model[LIFT_LIKELIHOOD] in model.observed_RVs
    summary = registry.run_json(promoted["run_id"], SUMMARY_ARTIFACT)
    cal = summary["calibration"]
    assert cal["lift_tests"] == len(cal["tests"]) == 5
    assert {t["channel"] for t in cal["tests"]} == set(summary["roi"])
    for test in cal["tests"]:
        assert test["x"] > 0 and test["x"] + test["delta_x"] == pytest.approx(0, abs=1e-6)
        assert test["sigma"] > 0 and test["delta_y"] <= 0
    assert cal["uncalibrated"] is None  # compare_uncalibrated off here: one fit
    description = registry.version_by_alias("media_mix", registry.CHAMPION).description
    assert "Calibration with lift tests" in description and "5 lift test(s)" in description


def test_the_report_and_the_response_model_are_logged(promoted):
    import mlflow
    import pandas as pd

    from ml import registry

    registry.configure()
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(promoted["run_id"], "report")}
    assert artifacts == {"report/report.html", "report/model_card.md"}
    loaded = mlflow.pyfunc.load_model(f"models:/media_mix/{promoted['version']}")
    spend = pd.DataFrame({c: [0.0, 50.0] for c in ("SEM", "Display", "Social", "Affiliate",
                                                    "Prospecting")})
    out = loaded.predict(spend)
    assert out["expected"].iloc[0] == 0.0 and out["expected"].iloc[1] > 0
    assert (out["low"] <= out["expected"]).all() and (out["expected"] <= out["high"]).all()


def test_plan_media_on_the_champion_spends_the_budget_and_is_stored(promoted):
    from typer.testing import CliRunner

    from ml.cli import app
    from ml.mmm.plan import read_plan

    champion_params = __import__("ml.mmm.plan", fromlist=["champion_posterior"]).champion_posterior(
        load_media_spec())[1]
    budget = round(float(np.sum(champion_params["current_spend"])) * 4, 2)
    result = CliRunner().invoke(app, ["plan-media", "--budget", str(budget), "--json"])
    assert result.exit_code == 0, result.output
    stored = read_plan()
    assert stored["planned_spend"].sum() == pytest.approx(budget, rel=1e-6)
    assert (stored["planned_spend"] >= stored["lower"] - 1e-6).all()
    assert (stored["planned_spend"] <= stored["upper"] + 1e-6).all()
    worth = champion_params["value_per_new_customer"]
    assert stored["value_per_new_customer"].to_numpy() == pytest.approx(worth)
    np.testing.assert_allclose(stored["expected_value_planned"], stored["expected_planned"] * worth)
    np.testing.assert_allclose(stored["expected_value_current"], stored["expected_current"] * worth)
    too_low = CliRunner().invoke(app, ["plan-media", "--budget", str(budget * 0.5)])
    assert too_low.exit_code != 0 and "below the sum of the lower bounds" in too_low.output
    assert set(read_plan()["plan_id"]) == set(stored["plan_id"])  # nothing new written
    printed = CliRunner().invoke(app, ["plan-media", "--budget", str(budget)])
    assert printed.exit_code == 0 and "value per new customer" in printed.output, printed.output


def test_the_dag_plan_keeps_the_current_total_and_ml_run_reports_the_champion(promoted):
    from ml.mmm.plan import media_mix_status, plan_current_budget, read_plan

    made = plan_current_budget()
    current = sum(row["current_spend"] for row in made["channels"])
    assert made["budget"] == pytest.approx(current)
    assert made["totals"]["planned"]["spend"] == pytest.approx(current)
    assert made["totals"]["planned"]["mean"] >= made["totals"]["current"]["mean"] - 1e-9
    status = media_mix_status()
    assert status["champion"] == promoted["version"]
    assert status["plan"]["plan_id"] == made["plan_id"] == read_plan()["plan_id"].iloc[0]
    assert set(status["roi"]) == {"SEM", "Display", "Social", "Affiliate", "Prospecting"}
