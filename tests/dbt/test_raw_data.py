"""Raw data the marts must survive (missing optional tables and columns) and raw data
that must stop the build before any mart is replaced."""

from __future__ import annotations

import pytest

from tests.dbt import reference as ref

pytestmark = pytest.mark.slow

OPTIONAL_TABLES = ("customers", "order_items", "sessions", "marketing_touches")
FEATURES_BY_TABLE = {
    "customers": ["region", "acquisition_channel"],
    "order_items": ["distinct_categories_365d", "items_per_order"],
    "sessions": [
        "sessions_30d",
        "sessions_90d",
        "page_views_30d",
        "page_views_90d",
        "cart_adds_30d",
        "cart_adds_90d",
        "days_since_last_session",
    ],
    "marketing_touches": [
        "touches_90d",
        "clicks_90d",
        "days_since_last_click",
        "last_touch_channel",
    ]
    + [
        f"{kind}_90d_{channel}"
        for kind in ("touches", "clicks")
        for channel in ("sem", "seo", "crm", "display")
    ],
}


def test_missing_optional_tables_mean_null_features_not_a_crash(warehouse, raw_tables):
    before = warehouse.mart("customer_features")
    warehouse.execute(*(f"drop table raw.{table}" for table in OPTIONAL_TABLES))

    run = warehouse.build()
    assert run.ok, run.output

    features = warehouse.mart("customer_features")
    for table, columns in FEATURES_BY_TABLE.items():
        for column in columns:
            assert features[column].isna().all(), f"{column} (from raw.{table}) should be null"
    # without raw.customers a customer is known from their first order on
    orders_only = {"orders": raw_tables["orders"]}
    calendar = ref.expected_calendar(raw_tables["orders"])
    expected = ref.expected_features(orders_only, calendar)
    ref.assert_frames_match(features, expected, [c for c in expected.columns if c not in ref.KEYS])
    # order features of the rows both builds have are unchanged
    order_columns = [
        "days_since_last_order",
        "orders_30d",
        "orders_365d",
        "revenue_365d",
        "orders_lifetime",
        "return_rate",
        "bgnbd_x",
        "bgnbd_t_x",
        "bgnbd_T",
        "purchase_gap_mean_days",
        "in_churn_population",
    ]
    common = features.merge(before[ref.KEYS], on=ref.KEYS)
    assert len(common) > 0.8 * len(features)
    ref.assert_frames_match(common, before.merge(common[ref.KEYS], on=ref.KEYS), order_columns)
    for mart in ("churn_training_set", "purchase_propensity_training_set"):
        assert len(warehouse.mart(mart)) > 0, mart


def test_orders_with_only_the_required_columns(warehouse, raw_tables):
    """orders(order_id, customer_id, ordered_at, revenue) is enough: every order completed,
    no discount."""
    warehouse.execute(
        "create table raw.orders_required as "
        "select order_id, customer_id, ordered_at, revenue from raw.orders",
        "drop table raw.orders",
        "alter table raw.orders_required rename to orders",
    )
    run = warehouse.build()
    assert run.ok, run.output

    tables = {**raw_tables, "orders": raw_tables["orders"].assign(status="completed", discount=0.0)}
    calendar = ref.expected_calendar(tables["orders"])
    features = warehouse.mart("customer_features")
    ref.assert_frames_match(
        features,
        ref.expected_features(tables, calendar),
        ["orders_lifetime", "revenue_365d", "return_rate", "days_since_last_order"],
    )
    assert (features["discount_share"].dropna() == 0).all()
    ref.assert_frames_match(
        warehouse.mart("customer_labels"),
        ref.expected_labels(tables, calendar),
        ["churn_label", "purchase_label"],
    )


BAD_ORDERS = {
    "null customer_id": (
        ["update raw.orders set customer_id = null where order_id in ('o00001', 'o00002')"],
        "raw_orders__customer_id__not_null",
        2,
    ),
    "duplicate order_id": (
        [
            "insert into raw.orders select * from raw.orders "
            "where order_id in ('o00003', 'o00004', 'o00005')"
        ],
        "raw_orders__order_id__unique",
        3,
    ),
    "negative revenue": (
        ["update raw.orders set revenue = -5 where order_id = 'o00006'"],
        "raw_orders__revenue__non_negative",
        1,
    ),
    "order after the load time": (
        [
            "insert into raw.orders values "
            "('o_future', 'c001', timestamp '2100-01-01 10:00:00', 10.0, 0.0, 'completed', 'web')"
        ],
        "raw_orders__ordered_at__not_in_future",
        1,
    ),
}


@pytest.mark.parametrize("case", list(BAD_ORDERS))
def test_bad_orders_stop_the_build_before_any_mart_is_replaced(warehouse, case):
    statements, test_name, failing_rows = BAD_ORDERS[case]
    marts_before = warehouse.mart_fingerprints()
    warehouse.execute(*statements)

    run = warehouse.build()

    assert not run.ok
    assert run.failures() == {test_name: failing_rows}
    plural = "result" if failing_rows == 1 else "results"
    assert f"Failure in test {test_name}" in run.output
    assert f"Got {failing_rows} {plural}, configured to fail if != 0" in run.output
    statuses = run.statuses()
    for mart in ("snapshot_calendar", "customer_features", "customer_labels"):
        assert statuses[mart] == "skipped", mart
    assert warehouse.mart_fingerprints() == marts_before
