"""The media-mix mart on a generated history: real `dbt build` of media_mix_daily and its
upstream, outcomes recounted from the raw tables, no event after its day, no ground truth
read, and the sale-day flag equal to the simulator's calendar."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.sim.media import PAID_CHANNELS, promotion_days
from ml.warehouse import replace_tables
from tests.dbt.harness import Warehouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from ml.sim.history import generate_tables

    tables = generate_tables(customers=400, seed=5, start=date(2024, 1, 1), end=date(2024, 12, 31))
    warehouse = Warehouse(tmp_path_factory.mktemp("dbt_media"))
    replace_tables(tables, warehouse.path)
    run = warehouse.build("--select", "+media_mix_daily", "--indirect-selection", "cautious")
    raw = {name.split(".")[1]: t.to_pandas() for name, t in tables.items() if name.startswith("raw.")}
    return warehouse, run, raw


def test_the_mart_has_every_day_and_channel_once_with_raw_spend(built):
    warehouse, run, raw = built
    assert run.ok, run.output
    mart = warehouse.mart("media_mix_daily")
    assert len(mart) == 366 * len(PAID_CHANNELS)
    assert not mart.duplicated(["date", "channel"]).any()
    spend = raw["media_spend"].assign(date=lambda d: pd.to_datetime(d["date"]))
    merged = mart.assign(date=pd.to_datetime(mart["date"])).merge(spend, on=["date", "channel"],
                                                                  suffixes=("", "_raw"))
    assert len(merged) == len(mart)
    np.testing.assert_allclose(merged["spend"], merged["spend_raw"])


def test_new_customers_are_the_signups_of_that_day_only(built):
    warehouse, run, raw = built
    assert run.ok, run.output
    mart = warehouse.mart("media_mix_daily")
    per_day = mart.groupby("date")["new_customers"].agg(["min", "max"])
    assert (per_day["min"] == per_day["max"]).all()  # a day's outcome on every channel row
    signups = pd.to_datetime(raw["customers"]["signed_up_at"]).dt.date.value_counts()
    expected = per_day.index.map(lambda d: signups.get(pd.Timestamp(d).date(), 0))
    assert per_day["max"].tolist() == list(expected)
    assert per_day["max"].sum() > 0


def test_first_day_revenue_counts_only_orders_on_the_signup_day(built):
    warehouse, run, raw = built
    assert run.ok, run.output
    customers = raw["customers"].assign(day=lambda d: pd.to_datetime(d["signed_up_at"]).dt.date)
    orders = raw["orders"].assign(day=lambda d: pd.to_datetime(d["ordered_at"]).dt.date)
    same_day = orders[orders["status"] == "completed"].merge(customers, on=["customer_id", "day"])
    expected = same_day.groupby("day")["revenue"].sum()
    mart = warehouse.mart("media_mix_daily").drop_duplicates("date").set_index("date")
    got = mart["first_day_revenue"]
    got.index = [pd.Timestamp(d).date() for d in got.index]
    aligned = expected.reindex(got.index, fill_value=0.0)
    np.testing.assert_allclose(got.to_numpy(), aligned.to_numpy(), rtol=1e-9)
    # Orders of later days by the same customers do not count (a leak would raise the sum).
    all_orders = orders[orders["status"] == "completed"].merge(
        customers[["customer_id", "day"]].rename(columns={"day": "signup_day"}), on="customer_id")
    assert got.sum() < all_orders["revenue"].sum()


def test_the_sale_day_flag_is_the_simulators_calendar(built):
    warehouse, run, _ = built
    assert run.ok, run.output
    mart = warehouse.mart("media_mix_daily").drop_duplicates("date")
    days = pd.to_datetime(mart["date"]).to_numpy().astype("datetime64[D]")
    assert mart["promotion"].tolist() == promotion_days(days).tolist()
    assert mart["promotion"].sum() == 7 + 6 + 3 + 7  # 24-30 Nov, 26-31 Dec, 1-3 Jan, 1-7 Jul


def test_dbt_reads_no_ground_truth(built):
    warehouse, run, _ = built
    assert run.ok, run.output
    compiled = "\n".join(p.read_text() for p in warehouse.target_dir.rglob("*.sql"))
    assert "media_truth" not in compiled and "eval." not in compiled


def test_spend_on_a_day_past_as_of_end_is_cut(built):
    warehouse, run, _ = built
    assert run.ok, run.output
    rerun = warehouse.build("--select", "+media_mix_daily", "--indirect-selection", "cautious", dbt_vars={"as_of_end": "2024-07-01"})
    assert rerun.ok, rerun.output
    mart = warehouse.mart("media_mix_daily")
    assert pd.to_datetime(mart["date"]).max() == pd.Timestamp("2024-06-30")
    signups_after = warehouse.query(
        "select count(*) as n from marts.media_mix_daily where new_customers > 0 "
        "and date >= date '2024-07-01'")["n"].iloc[0]
    assert signups_after == 0
