"""Readouts through the warehouse and MLflow: rows in ml.experiment_readouts, a report in
MLflow, and only readouts whose sample ratio held feed the next plan's save rates."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml import registry
from ml.decisions.allocation import Channel
from ml.decisions.campaign import measured_save_rates
from ml.experiments import readout
from ml.warehouse import get_warehouse
from tests.experiments.test_readout import _campaign

pytestmark = pytest.mark.slow

DATA_END = date(2025, 9, 1)


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    rng = np.random.default_rng(9)
    spring = _campaign(rng, n=3_000, name="spring", effect=0.06).assign(
        assigned_at=pd.Timestamp("2025-03-01"), channel="crm_email")
    # the summer test planned 10% control but its CRM export put half the list in control
    summer = _campaign(rng, n=3_000, name="summer", planned=0.1, effect=0.01).assign(
        assigned_at=pd.Timestamp("2025-05-01"), channel="crm_email")
    autumn = _campaign(rng, n=500, name="autumn").assign(
        assigned_at=pd.Timestamp("2025-08-01"), is_matured=False, retained=None,
        horizon_revenue=None)
    outcomes = pd.concat([spring, summer, autumn], ignore_index=True)
    outcomes["as_of_date"] = outcomes["assigned_at"].dt.date
    wh = get_warehouse()
    wh.replace_tables({
        "marts.campaign_outcomes": pa.Table.from_pandas(outcomes, preserve_index=False),
        "marts.snapshot_calendar": pa.table({"as_of_date": [DATA_END], "data_end": [DATA_END]}),
    })
    return wh


def test_matured_campaigns_are_read_out_once_and_a_broken_one_is_blocked(warehouse):
    assert readout.pending_campaigns() == ["spring", "summer"]
    done = {r["campaign"]: r for r in readout.run_readouts()}
    assert set(done) == {"spring", "summer"} and readout.pending_campaigns() == []
    assert done["spring"]["feeds_plan"] and done["spring"]["srm"]["status"] == "pass"
    assert not done["summer"]["feeds_plan"] and done["summer"]["srm"]["status"] == "fail"
    assert "sample ratio mismatch" in done["summer"]["blocked_reason"]

    rows = readout.read_readouts()
    assert set(rows["campaign"]) == {"spring", "summer"}
    assert rows.groupby("campaign")["feeds_plan"].nunique().eq(1).all()
    run = registry.client().get_run(done["spring"]["mlflow_run_id"])
    assert run.data.tags["campaign"] == "spring"
    artifacts = [a.path for a in registry.client().list_artifacts(run.info.run_id, "report")]
    assert artifacts == ["report/readout.html"]

    again = readout.run_readouts(["spring"], log_report=False)  # a rerun replaces its rows
    after = readout.read_readouts()
    assert len(after) == len(rows) and again[0]["segments"] == done["spring"]["segments"]


def test_an_immature_campaign_is_refused_with_its_horizon(warehouse):
    with pytest.raises(readout.ReadoutError, match="autumn: its 90-day horizon ends on 2025-10-30"):
        readout.run_readouts(["autumn"], log_report=False)


def test_the_next_plan_uses_only_valid_readouts_and_says_where_each_rate_came_from(warehouse):
    readout.run_readouts(log_report=False)
    seed = [Channel("crm_email", 0.05, 0.03), Channel("sem", 1.2, 0.05)]
    channels, sources = measured_save_rates(seed)
    spring = readout.read_readouts("spring")
    measured = spring[(spring["segment_type"] == "channel") & (spring["metric"] == "retention")]
    # summer is later but failed its sample-ratio check, so spring's rate is used
    assert sources["crm_email"]["source"] == "readout"
    assert sources["crm_email"]["campaign"] == "spring"
    assert channels[0].save_rate == pytest.approx(float(np.clip(measured["save_rate"].iloc[0],
                                                                0, 1)))
    assert channels[0].save_rate != seed[0].save_rate
    assert sources["sem"]["source"] == "seed prior" and channels[1] == seed[1]
