"""The recommendation marts: a recount from the raw tables, and no leakage across a cutoff
(a product first sold at an as-of date is neither in that snapshot's catalogue nor in its
histories, but is in its labels)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

AS_OF = pd.Timestamp("2024-09-01")
MARTS = ("recommendation_catalogue", "recommendation_interactions", "recommendation_labels")


def _completed_lines(raw_tables) -> pd.DataFrame:
    orders = raw_tables["orders"]
    lines = raw_tables["order_items"].merge(orders[orders["status"] == "completed"], on="order_id")
    return lines[lines["product_id"].notna()]


def test_interactions_and_labels_match_a_recount_from_raw(built_warehouse, raw_tables):
    lines = _completed_lines(raw_tables)
    interactions = built_warehouse.mart("recommendation_interactions")
    labels = built_warehouse.mart("recommendation_labels")
    snapshots = sorted(interactions["as_of_date"].unique())
    assert len(snapshots) == 6  # 5 matured (the var's default) + the scoring snapshot
    assert sorted(labels["as_of_date"].unique()) == snapshots[:-1]
    for as_of in snapshots:
        before = lines[lines["ordered_at"] < as_of]
        expected = (before.groupby(["customer_id", "product_id"])["order_id"].nunique()
                    .rename("orders").reset_index().sort_values(["customer_id", "product_id"]))
        got = interactions[interactions["as_of_date"] == as_of]
        assert got[["customer_id", "product_id", "orders"]].reset_index(drop=True).equals(
            expected.reset_index(drop=True).astype(got[["orders"]].dtypes.to_dict()))
    for as_of in snapshots[:-1]:
        window = lines[(lines["ordered_at"] >= as_of)
                       & (lines["ordered_at"] < as_of + pd.Timedelta(days=30))]
        expected = set(zip(window["customer_id"], window["product_id"], strict=True))
        got = labels[labels["as_of_date"] == as_of]
        assert set(zip(got["customer_id"], got["product_id"], strict=True)) == expected


def test_a_product_first_sold_at_the_cutoff_is_only_in_the_labels(warehouse, raw_tables):
    before = {name: warehouse.mart(name) for name in MARTS}
    customer = sorted(raw_tables["orders"]["customer_id"])[0]
    warehouse.execute(
        f"insert into raw.orders values ('o_new', '{customer}', timestamp '{AS_OF.date()}', "
        "20.0, 0.0, 'completed', 'web')",
        "insert into raw.order_items values ('o_new', 1, 'p_new', 'New', 1, 10.0)",
        "insert into raw.order_items values ('o_new', 2, null, 'New', 1, 10.0)",
    )
    run = warehouse.build()
    assert run.ok, run.output
    after = {name: warehouse.mart(name) for name in MARTS}

    catalogue = after["recommendation_catalogue"]
    assert "p_new" not in set(catalogue[catalogue["as_of_date"] <= AS_OF]["product_id"])
    assert "p_new" in set(catalogue[catalogue["as_of_date"] > AS_OF]["product_id"])
    for name in ("recommendation_catalogue", "recommendation_interactions"):
        up_to = after[name][after[name]["as_of_date"] <= AS_OF].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            up_to, before[name][before[name]["as_of_date"] <= AS_OF].reset_index(drop=True))
    labels = after["recommendation_labels"]
    new = labels[(labels["product_id"] == "p_new") & (labels["as_of_date"] == AS_OF)]
    assert new["customer_id"].tolist() == [customer] and not new["is_repeat"].any()
    for frame in after.values():
        assert frame["product_id"].notna().all()
