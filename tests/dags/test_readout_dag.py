"""The readout DAG through the in-process harness: it reads out the matured campaigns, skips
with the reason when none has matured since, and a campaign whose control share is far
from the plan is written but flagged and kept out of the next plan."""

from __future__ import annotations

import pytest

from ml.experiments.readout import latest_save_rates, read_readouts
from ml.ops.orchestration import run_dag
from tests.experiments.test_readout_warehouse import warehouse  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def test_readout_dag_reads_out_then_skips(warehouse, airflow_db):  # noqa: F811
    report = run_dag("readout", {})
    assert report.state == "success"
    assert {t.task_id: t.state for t in report.tasks} == {"find_matured": "success",
                                                           "read_out": "success"}
    rows = read_readouts()
    by_campaign = rows.groupby("campaign")[["feeds_plan", "srm_status"]].first()
    assert by_campaign.loc["spring"].tolist() == [True, "pass"]
    assert by_campaign.loc["summer"].tolist() == [False, "fail"]
    assert latest_save_rates(["crm_email"])["crm_email"]["campaign"] == "spring"

    again = run_dag("readout", {})
    assert again.state == "success"
    assert [t.state for t in again.tasks if t.task_id == "find_matured"] == ["skipped"]
