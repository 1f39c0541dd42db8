"""marts.uplift_training_set: the matured campaign rows with the features of the snapshot
on or before the assignment, and no leakage (orders at or after the assignment change the
outcome, never a feature)."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.schema import RAW_TABLES
from tests.dbt.raw_data import BOUNDARY_CUSTOMER

pytestmark = pytest.mark.slow

ON_SNAPSHOT = pd.Timestamp("2024-03-01")  # a monthly snapshot date
MID_MONTH = pd.Timestamp("2024-05-14 09:30")  # features from the 2024-05-01 snapshot
LATE = pd.Timestamp("2024-12-10")  # its 60-day horizon ends after the data: not matured
KEYS = ["campaign", "customer_id"]


def _assignments(raw_tables) -> pd.DataFrame:
    customers = sorted(set(raw_tables["orders"]["customer_id"]) - {BOUNDARY_CUSTOMER})
    rows = []
    for i, customer in enumerate(customers):
        rows.append(("march", customer, ON_SNAPSHOT, ["crm_email", "sem"][i % 2], i % 2 == 0,
                     None, 60))
        if i % 2:
            rows.append(("may", customer, MID_MONTH, "direct_mail", i % 4 == 1, 3, 60))
        if i % 3 == 0:
            rows.append(("december", customer, LATE, "display", True, None, 60))
    frame = pd.DataFrame(rows, columns=["campaign", "customer_id", "assigned_at", "channel",
                                        "treated", "score_decile", "horizon_days"])
    return frame.reindex(columns=list(RAW_TABLES["campaign_assignments"]))  # others null


def _sql_value(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, pd.Timestamp):
        return f"timestamp '{value}'"
    return f"'{value}'" if isinstance(value, str) else str(value)


def _load(warehouse, assignments: pd.DataFrame) -> None:
    columns = RAW_TABLES["campaign_assignments"]
    ddl = ", ".join(f"{n} {t}" for n, t in columns.items())
    values = ", ".join("(" + ", ".join(_sql_value(v) for v in row) + ")"
                       for row in assignments[list(columns)].itertuples(index=False))
    warehouse.execute(f"create or replace table raw.campaign_assignments ({ddl})",
                      f"insert into raw.campaign_assignments values {values}")


@pytest.fixture
def with_campaigns(warehouse, raw_tables):
    assignments = _assignments(raw_tables)
    _load(warehouse, assignments)
    run = warehouse.build("--select", "stg_shop__campaign_assignments+")
    assert run.ok, run.output
    return warehouse, assignments


def test_matured_rows_with_the_features_of_the_snapshot_before_the_assignment(with_campaigns):
    warehouse, assignments = with_campaigns
    mart = warehouse.mart("uplift_training_set")
    features = warehouse.mart("customer_features")
    snapshot = {"march": pd.Timestamp("2024-03-01"), "may": pd.Timestamp("2024-05-01")}
    # matured campaigns only; a customer unknown at the snapshot (no history yet) has no
    # features and no row, a pre-treatment rule that keeps the arms comparable
    matured = assignments[assignments["campaign"] != "december"].assign(
        as_of_date=lambda a: a["campaign"].map(snapshot))
    known = matured.merge(features[["customer_id", "as_of_date"]])
    assert 0 < len(matured) - len(known) < len(matured) / 2
    assert sorted(map(tuple, mart[KEYS].to_numpy())) == sorted(
        map(tuple, known[KEYS].to_numpy()))
    assert (mart["as_of_date"] == mart["campaign"].map(snapshot)).all()
    assert (mart["label_matured_on"]
            == (mart["assigned_at"].dt.normalize() + pd.Timedelta(days=60))).all()

    columns = [c for c in features.columns
               if c not in ("customer_id", "as_of_date", "in_churn_population",
                            "in_propensity_population")]
    joined = mart.merge(features, on=["customer_id", "as_of_date"], suffixes=("", "_expected"))
    assert len(joined) == len(mart)
    for column in columns:
        pd.testing.assert_series_equal(joined[column], joined[f"{column}_expected"],
                                       check_names=False)
    outcomes = warehouse.mart("campaign_outcomes").set_index(KEYS)
    got = mart.set_index(KEYS)
    assert (got["retained"] == outcomes.loc[got.index, "retained"]).all()
    assert (got["treated"] == outcomes.loc[got.index, "treated"]).all()


def test_orders_at_or_after_the_assignment_change_the_outcome_never_a_feature(with_campaigns):
    warehouse, _ = with_campaigns
    before = warehouse.mart("uplift_training_set").set_index(KEYS)
    # customers of the latest campaign without an order in its horizon (their earlier
    # assignments all came before it)
    quiet = before.loc["may"].index[before.loc["may", "retained"] == 0][:3].tolist()
    assert quiet, "the hand-made history needs a customer with no order in a horizon"
    statements = []
    for customer in quiet:  # orders exactly at the assignment, and one a day later
        for n, offset in enumerate(("0 seconds", "1 day")):
            statements.append(
                f"insert into raw.orders values ('leak_{customer}_{n}', '{customer}', "
                f"timestamp '{MID_MONTH}' + interval {offset}, 120.0, 0.0, 'completed', 'web')")
    warehouse.execute(*statements)
    run = warehouse.build("--select", "stg_shop__orders+,+uplift_training_set")
    assert run.ok, run.output
    after = warehouse.mart("uplift_training_set").set_index(KEYS).sort_index()
    before = before.sort_index()
    outcome = ["retained", "revenue_in_horizon"]
    pd.testing.assert_frame_equal(after.drop(columns=outcome), before.drop(columns=outcome))
    touched = [("may", customer) for customer in quiet]
    assert (after.loc[touched, "retained"] == 1).all()
    assert (after.loc[touched, "revenue_in_horizon"]
            == before.loc[touched, "revenue_in_horizon"] + 240.0).all()
    rest = after.index.difference(touched)
    pd.testing.assert_frame_equal(after.loc[rest, outcome], before.loc[rest, outcome])
