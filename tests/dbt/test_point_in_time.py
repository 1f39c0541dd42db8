"""Leakage is tested, not assumed: events at or after an as-of date change nothing at or
before it (only later features and the labels), and var as_of_end really ends the data."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.dbt import reference as ref
from tests.dbt.raw_data import BOUNDARY_CUSTOMER

pytestmark = pytest.mark.slow

AS_OF = pd.Timestamp("2024-06-01")


def _leaky_customers(raw_tables) -> list[str]:
    customers = raw_tables["customers"]
    early = customers[customers["signed_up_at"] < "2024-01-01"]["customer_id"]
    return sorted(early)[:3] + [BOUNDARY_CUSTOMER]


def _add_future_events(warehouse, customers: list[str]) -> None:
    """Orders, order lines, sessions and touches at exactly AS_OF (midnight) and later."""
    statements = []
    for i, customer in enumerate(customers):
        for suffix, offset, status in (
            ("at", "0 days", "completed"),
            ("later", "10 days", "completed"),
            ("returned", "1 day", "returned"),
        ):
            order_id = f"leak_{i}_{suffix}"
            at = f"timestamp '{AS_OF.date()}' + interval {offset}"
            statements += [
                f"insert into raw.orders values ('{order_id}', '{customer}', {at}, 999.0, 50.0, "
                f"'{status}', 'web')",
                f"insert into raw.order_items values ('{order_id}', 1, 'p_leak', 'leak_category', "
                "9, 111.0)",
            ]
        statements += [
            f"insert into raw.sessions values ('leak_s_{i}', '{customer}', "
            f"timestamp '{AS_OF.date()}', 'direct', 50, 9)",
            f"insert into raw.sessions values ('leak_s2_{i}', '{customer}', "
            f"timestamp '{AS_OF.date()}' + interval 5 days, 'direct', 50, 9)",
            f"insert into raw.marketing_touches values ('leak_t_{i}', '{customer}', "
            f"timestamp '{AS_OF.date()}', 'Display', 'leak', 1.0, true)",
            f"insert into raw.marketing_touches values ('leak_t2_{i}', '{customer}', "
            f"timestamp '{AS_OF.date()}' + interval 3 days, 'SEO', 'leak', 1.0, true)",
        ]
    warehouse.execute(*statements)


def test_events_at_or_after_an_as_of_date_change_no_feature_up_to_it(warehouse, raw_tables):
    before = {
        name: warehouse.mart(name)
        for name in ("snapshot_calendar", "customer_features", "customer_labels")
    }
    customers = _leaky_customers(raw_tables)
    _add_future_events(warehouse, customers)

    run = warehouse.build()
    assert run.ok, run.output

    after = {
        name: warehouse.mart(name)
        for name in ("snapshot_calendar", "customer_features", "customer_labels")
    }
    pd.testing.assert_frame_equal(after["snapshot_calendar"], before["snapshot_calendar"])

    features_before, features_after = before["customer_features"], after["customer_features"]
    up_to = features_after["as_of_date"] <= AS_OF
    pd.testing.assert_frame_equal(
        features_after[up_to].reset_index(drop=True),
        features_before[features_before["as_of_date"] <= AS_OF].reset_index(drop=True),
    )
    # the same events do show up in the next snapshot's features
    next_snapshot = features_after[
        (features_after["as_of_date"] == pd.Timestamp("2024-07-01"))
        & features_after["customer_id"].isin(customers)
    ].set_index("customer_id")
    previous = features_before[
        (features_before["as_of_date"] == pd.Timestamp("2024-07-01"))
        & features_before["customer_id"].isin(customers)
    ].set_index("customer_id")
    assert (next_snapshot["orders_lifetime"] == previous["orders_lifetime"] + 2).all()
    assert (next_snapshot["sessions_30d"] == previous["sessions_30d"] + 2).all()
    assert (next_snapshot["days_since_last_click"] <= 27).all()  # the click on 2024-06-04

    labels = after["customer_labels"].merge(
        before["customer_labels"], on=ref.KEYS, suffixes=("", "_before")
    )
    leaky = labels["customer_id"].isin(customers)
    at_as_of = labels["as_of_date"] == AS_OF
    # a completed order at the as-of midnight is a purchase within every horizon
    assert (labels.loc[leaky & at_as_of, "purchase_label"] == 1).all()
    assert (labels.loc[leaky & at_as_of, "churn_label"] == 0).all()
    # a month earlier the order is inside the 90-day churn window, outside the 30-day one
    month_before = labels["as_of_date"] == pd.Timestamp("2024-05-01")
    assert (labels.loc[leaky & month_before, "churn_label"] == 0).all()
    assert (
        labels.loc[leaky & month_before, "purchase_label"]
        == labels.loc[leaky & month_before, "purchase_label_before"]
    ).all()
    # nobody else's labels move
    others = labels[~leaky]
    assert others["churn_label"].equals(others["churn_label_before"])
    assert others["purchase_label"].equals(others["purchase_label_before"])


def test_as_of_end_and_weekly_cadence(warehouse, raw_tables):
    """var as_of_end drops later events everywhere; weekly snapshots fall on Mondays."""
    as_of_end = "2024-06-01"
    run = warehouse.build(dbt_vars={"snapshot_cadence": "week", "as_of_end": as_of_end})
    assert run.ok, run.output

    calendar = ref.expected_calendar(raw_tables["orders"], cadence="week", as_of_end=as_of_end)
    actual_calendar = warehouse.mart("snapshot_calendar")
    assert list(pd.to_datetime(actual_calendar["as_of_date"])) == list(calendar["as_of_date"])
    assert str(actual_calendar["data_end"].max().date()) == as_of_end
    assert (pd.to_datetime(actual_calendar["as_of_date"]).dt.dayofweek[:-1] == 0).all()

    cutoff = pd.Timestamp(as_of_end)
    time_columns = {
        "customers": None,
        "orders": "ordered_at",
        "order_items": None,
        "sessions": "started_at",
        "marketing_touches": "touched_at",
    }
    truncated = {
        name: (frame if time_columns[name] is None else frame[frame[time_columns[name]] < cutoff])
        for name, frame in raw_tables.items()
    }
    expected = ref.expected_features(truncated, calendar)
    ref.assert_frames_match(
        warehouse.mart("customer_features"),
        expected,
        [
            "orders_lifetime",
            "orders_30d",
            "revenue_365d",
            "days_since_last_order",
            "sessions_30d",
            "touches_90d",
            "distinct_categories_365d",
            "bgnbd_T",
        ],
    )
    ref.assert_frames_match(
        warehouse.mart("customer_labels"),
        ref.expected_labels(truncated, calendar),
        ["churn_label", "purchase_label"],
    )
