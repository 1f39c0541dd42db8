"""marts.campaign_outcomes: a recount from the raw tables, the window boundaries, and no
leakage (the pre-period covariate never sees an order at or after the assignment; the
outcome never sees one at or after the horizon's end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.schema import RAW_TABLES
from tests.dbt.raw_data import BOUNDARY_CUSTOMER

pytestmark = pytest.mark.slow

ASSIGNED_AT = pd.Timestamp("2024-03-01")
LATE = pd.Timestamp("2024-12-15")  # its 30-day horizon ends after the data: not matured


def _assignments(raw_tables) -> pd.DataFrame:
    customers = sorted(set(raw_tables["orders"]["customer_id"]) - {BOUNDARY_CUSTOMER})
    rng = np.random.default_rng(3)
    rows = [("spring", BOUNDARY_CUSTOMER, ASSIGNED_AT, "crm_email", True, 10, 30, 0.5)]
    for i, customer in enumerate(customers):
        rows.append(("spring", customer, ASSIGNED_AT, ["crm_email", "sem"][i % 2],
                     bool(rng.random() < 0.5), int(rng.integers(1, 11)), 30, 0.5))
        if i % 3 == 0:
            rows.append(("autumn", customer, LATE, "direct_mail", bool(i % 2), None, 30, None))
    return pd.DataFrame(rows, columns=list(RAW_TABLES["campaign_assignments"]))


def _load(warehouse, assignments: pd.DataFrame) -> None:
    columns = RAW_TABLES["campaign_assignments"]
    ddl = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    values = ", ".join(
        "(" + ", ".join([f"'{r.campaign}'", f"'{r.customer_id}'", f"timestamp '{r.assigned_at}'",
                         f"'{r.channel}'", str(r.treated).lower(),
                         "null" if pd.isna(r.score_decile) else str(int(r.score_decile)),
                         str(r.horizon_days),
                         "null" if pd.isna(r.planned_control_share)
                         else str(r.planned_control_share)]) + ")"
        for r in assignments.itertuples())
    warehouse.execute(f"create or replace table raw.campaign_assignments ({ddl})",
                      f"insert into raw.campaign_assignments values {values}")


def _recount(raw_tables, assignments: pd.DataFrame, data_end: pd.Timestamp) -> pd.DataFrame:
    orders = raw_tables["orders"]
    completed = orders[orders["status"] == "completed"]
    rows = []
    for a in assignments.itertuples():
        mine = completed[completed["customer_id"] == a.customer_id]
        horizon = pd.Timedelta(days=a.horizon_days)
        pre = mine[(mine["ordered_at"] >= a.assigned_at - horizon)
                   & (mine["ordered_at"] < a.assigned_at)]
        post = mine[(mine["ordered_at"] >= a.assigned_at)
                    & (mine["ordered_at"] < a.assigned_at + horizon)]
        matured = a.assigned_at + horizon <= data_end
        rows.append((a.campaign, a.customer_id, round(pre["revenue"].sum(), 6), len(pre), matured,
                     (int(len(post) > 0) if matured else None), (len(post) if matured else None),
                     (round(post["revenue"].sum(), 6) if matured else None)))
    return pd.DataFrame(rows, columns=["campaign", "customer_id", "pre_period_revenue",
                                       "pre_period_orders", "is_matured", "retained",
                                       "horizon_orders", "horizon_revenue"])


@pytest.fixture
def with_campaigns(warehouse, raw_tables):
    assignments = _assignments(raw_tables)
    _load(warehouse, assignments)
    run = warehouse.build("--select", "stg_shop__campaign_assignments+")
    assert run.ok, run.output
    return warehouse, assignments


def test_outcomes_match_a_recount_from_raw(with_campaigns, raw_tables):
    warehouse, assignments = with_campaigns
    mart = warehouse.mart("campaign_outcomes")
    data_end = pd.Timestamp(warehouse.query(
        "select max(data_end) as d from marts.snapshot_calendar")["d"].iloc[0])
    expected = _recount(raw_tables, assignments, data_end)
    got = mart[expected.columns].copy()
    got["pre_period_revenue"] = got["pre_period_revenue"].round(6)
    got["horizon_revenue"] = got["horizon_revenue"].astype(float).round(6)
    expected = expected.sort_values(["campaign", "customer_id"]).reset_index(drop=True)
    for column in ("retained", "horizon_orders", "horizon_revenue"):
        assert got[column].isna().tolist() == expected[column].isna().tolist(), column
        pd.testing.assert_series_equal(got[column].dropna().astype(float).reset_index(drop=True),
                                       expected[column].dropna().astype(float)
                                       .reset_index(drop=True), check_names=False)
    for column in ("pre_period_revenue", "pre_period_orders", "is_matured"):
        assert got[column].tolist() == expected[column].tolist(), column
    assert set(mart.loc[mart["campaign"] == "autumn", "is_matured"]) == {False}
    assert mart.loc[mart["campaign"] == "autumn", "retained"].isna().all()
    assert len(mart) == len(assignments)
    assert (mart["as_of_date"] == mart["assigned_at"].dt.normalize()).all()


def test_window_boundaries_of_the_boundary_customer(with_campaigns):
    """Orders at 2024-01-31 00:00 (exactly 30 days before) and 2024-02-29 23:59:59 are the
    pre-period; the order exactly at the assignment is the outcome's, never the
    pre-period's; the one at 2024-05-01 lies beyond the 30-day horizon."""
    warehouse, _ = with_campaigns
    row = warehouse.query("select * from marts.campaign_outcomes where campaign = 'spring' "
                          f"and customer_id = '{BOUNDARY_CUSTOMER}'").iloc[0]
    assert (row["pre_period_orders"], row["pre_period_revenue"]) == (2, 200.0)
    assert (row["retained"], row["horizon_orders"], row["horizon_revenue"]) == (1, 1, 100.0)


def test_no_leakage_across_either_boundary(with_campaigns):
    """An order exactly at assigned_at + horizon, or a second before the pre-period,
    changes nothing; one exactly at assigned_at moves only the outcome."""
    warehouse, _ = with_campaigns
    before = warehouse.mart("campaign_outcomes")
    customer = before.loc[(before["campaign"] == "spring") & (before["retained"] == 0),
                          "customer_id"].iloc[0]
    end = ASSIGNED_AT + pd.Timedelta(days=30)
    early = ASSIGNED_AT - pd.Timedelta(days=30) - pd.Timedelta(seconds=1)
    warehouse.execute(
        f"insert into raw.orders values ('o_at_end', '{customer}', timestamp '{end}', 40.0, 0.0, "
        "'completed', 'web')",
        f"insert into raw.orders values ('o_early', '{customer}', timestamp '{early}', 40.0, 0.0, "
        "'completed', 'web')")
    run = warehouse.build("--select", "campaign_outcomes")
    assert run.ok, run.output
    pd.testing.assert_frame_equal(warehouse.mart("campaign_outcomes"), before)

    warehouse.execute(
        f"insert into raw.orders values ('o_at_start', '{customer}', timestamp '{ASSIGNED_AT}', "
        "25.0, 0.0, 'completed', 'web')")
    run = warehouse.build("--select", "campaign_outcomes")
    assert run.ok, run.output
    after = warehouse.mart("campaign_outcomes")
    changed = (after != before) & ~(after.isna() & before.isna())
    moved = after[changed.any(axis=1)]
    assert moved[["campaign", "customer_id"]].values.tolist() == [["spring", customer]]
    row = moved.iloc[0]
    old = before[(before["campaign"] == "spring") & (before["customer_id"] == customer)].iloc[0]
    assert (row["retained"], row["horizon_revenue"]) == (1, old["horizon_revenue"] + 25.0)
    assert (row["pre_period_revenue"], row["pre_period_orders"]) == (
        old["pre_period_revenue"], old["pre_period_orders"])


def test_an_unknown_channel_fails_the_staging_test(warehouse, raw_tables):
    assignments = _assignments(raw_tables).head(3).assign(channel=["crm_email", "fax", "sem"])
    _load(warehouse, assignments)
    run = warehouse.build("--select", "stg_shop__campaign_assignments+")
    assert not run.ok
    assert run.failures() == {"raw_campaign_assignments__channel__in_retention_channels": 1}
