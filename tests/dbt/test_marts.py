"""dbt builds the marts from clean raw data, and they agree with an independent pandas
recomputation from the raw tables."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.dbt import reference as ref
from tests.dbt.harness import MARTS
from tests.dbt.raw_data import BOUNDARY_CUSTOMER, NEVER_ORDERED_CUSTOMER, ORPHAN_CUSTOMER

pytestmark = pytest.mark.slow


def test_build_creates_every_mart_with_one_row_per_customer_and_as_of(built_warehouse):
    for mart in MARTS[1:]:
        frame = built_warehouse.mart(mart)
        assert len(frame) > 0, mart
        assert not frame.duplicated(ref.KEYS).any(), mart
    features = built_warehouse.mart("customer_features")
    labels = built_warehouse.mart("customer_labels")
    assert len(features) == len(labels)


def test_snapshot_calendar_is_derived_from_the_order_history(built_warehouse, raw_tables):
    calendar = built_warehouse.mart("snapshot_calendar")
    expected = ref.expected_calendar(raw_tables["orders"])
    pd.testing.assert_frame_equal(
        calendar.astype({c: "datetime64[ns]" for c in ("as_of_date", "data_start", "data_end")}),
        expected.astype({c: "datetime64[ns]" for c in ("as_of_date", "data_start", "data_end")}),
        check_dtype=False,
    )
    assert str(calendar["data_end"].iloc[0].date()) == "2024-12-30"  # day after the last order
    assert calendar["is_scoring_snapshot"].sum() == 1


def test_spine_holds_every_customer_known_before_each_as_of(built_warehouse):
    features = built_warehouse.mart("customer_features")
    assert ORPHAN_CUSTOMER in set(features["customer_id"])  # orders but no customers row
    assert NEVER_ORDERED_CUSTOMER in set(features["customer_id"])  # signed up, never ordered
    never = features[features["customer_id"] == NEVER_ORDERED_CUSTOMER]
    assert never["orders_lifetime"].eq(0).all() and never["days_since_last_order"].isna().all()
    assert not never["in_churn_population"].any()


def test_features_match_a_pandas_recomputation_from_raw(built_warehouse, raw_tables):
    calendar = ref.expected_calendar(raw_tables["orders"])
    expected = ref.expected_features(raw_tables, calendar)
    actual = built_warehouse.mart("customer_features")
    ref.assert_frames_match(actual, expected, [c for c in expected.columns if c not in ref.KEYS])


def test_labels_match_a_pandas_recomputation_from_raw(built_warehouse, raw_tables):
    calendar = ref.expected_calendar(raw_tables["orders"])
    expected = ref.expected_labels(raw_tables, calendar)
    actual = built_warehouse.mart("customer_labels")
    ref.assert_frames_match(actual, expected, ["churn_label", "purchase_label"])
    assert actual["churn_label"].notna().any() and actual["churn_label"].isna().any()


def test_training_sets_hold_matured_labels_of_their_population(built_warehouse):
    features = built_warehouse.mart("customer_features")
    labels = built_warehouse.mart("customer_labels")
    both = features.merge(labels, on=ref.KEYS)
    for mart, population, label, horizon in (
        ("churn_training_set", "in_churn_population", "churn_label", 90),
        ("purchase_propensity_training_set", "in_propensity_population", "purchase_label", 30),
    ):
        training = built_warehouse.mart(mart)
        expected = both[both[population] & both[label].notna()]
        assert len(training) == len(expected), mart
        check = training.merge(expected[ref.KEYS + [label]], on=ref.KEYS)
        assert (check["label"] == check[label]).all(), mart
        matured_on = pd.to_datetime(training["label_matured_on"])
        assert (
            matured_on == pd.to_datetime(training["as_of_date"]) + pd.Timedelta(days=horizon)
        ).all()
        assert set(training["label"].unique()) == {0, 1}
        assert list(training.columns[: len(features.columns)]) == list(features.columns)


def test_events_on_window_boundaries(built_warehouse):
    """The hand-placed events of the boundary customer (see raw_data._boundary_events)."""
    features = built_warehouse.query(
        f"select * from marts.customer_features where customer_id = '{BOUNDARY_CUSTOMER}' "
        "and as_of_date = date '2024-03-01'"
    ).iloc[0]
    # 2024-01-31 00:00 (as_of - 30 days) and 2024-02-29 23:59:59 count; 2024-03-01 00:00 does not
    assert features["orders_30d"] == 2
    assert features["days_since_last_order"] == 1
    assert features["revenue_30d"] == 200.0
    assert features["sessions_30d"] == 1 and features["days_since_last_session"] == 1
    assert features["last_touch_channel"] == "CRM"  # the SEM touch at the as-of midnight is later
    labels = built_warehouse.query(
        f"select * from marts.customer_labels where customer_id = '{BOUNDARY_CUSTOMER}' "
        "order by as_of_date"
    ).set_index("as_of_date")
    assert (
        labels.loc[pd.Timestamp("2024-03-01"), "purchase_label"] == 1
    )  # order at the as-of midnight
    assert labels.loc[pd.Timestamp("2024-04-01"), "purchase_label"] == 0  # order at as_of + 30 days
    assert labels.loc[pd.Timestamp("2024-05-01"), "purchase_label"] == 1


def test_contract_types(built_warehouse):
    types = built_warehouse.query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'customer_features'"
    ).set_index("column_name")["data_type"]
    assert types["as_of_date"] == "DATE"
    assert types["orders_30d"] == "INTEGER"
    assert types["return_rate"] == "DOUBLE"
    assert types["in_churn_population"] == "BOOLEAN"
    assert types["last_touch_channel"] == "VARCHAR"
    assert "bgnbd_T" in types.index
