"""The synthetic media world (ml.sim.media) and its hook in the generator: identifiable
spend (flights, pauses, shifts), known response, deterministic per seed, the rest of the
generated world unchanged, and spend exports that `ml import --media-spend` quarantines
like orders (negative spend, conflicting duplicate day and channel, future dates)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import pytest

from ml.sim import media
from ml.sim.history import generate_tables
from ml.warehouse.importer import import_files

START, END = date(2023, 1, 1), date(2025, 12, 31)


@pytest.fixture(scope="module")
def world() -> media.MediaWorld:
    n_days = (END - START).days + 1
    shape = 1 + np.arange(n_days) / n_days
    return media.simulate_media(seed=1, start=START, end=END, baseline_shape=shape,
                                expected_customers=20_000)


def test_flighted_channels_pause_and_always_on_channels_shift(world):
    spend = world.spend
    for c, name in enumerate(media.PAID_CHANNELS):
        if name in media.ALWAYS_ON:
            assert (spend[:, c] > 0).all(), name
            quarterly = spend[:, c][: 13 * 7 * 12].reshape(12, -1).mean(axis=1)
            assert quarterly.max() / quarterly.min() > 1.2, name  # budget shifts
        else:
            off = spend[:, c] == 0
            assert 0.15 < off.mean() < 0.6, name  # pauses, but mostly on
            starts = np.flatnonzero(np.diff(off.astype(int)) == -1)
            assert len(starts) >= 8, name  # many flights


def test_the_response_adds_up_and_saturates(world):
    assert world.contribution.sum() == pytest.approx(media.MEDIA_SHARE * 20_000, rel=1e-9)
    assert world.expected_new_customers.sum() == pytest.approx(20_000, rel=1e-9)
    assert (world.baseline[world.promotion == 1].mean()
            > world.baseline[world.promotion == 0].mean())
    current = world.spend.mean(axis=0)
    # Diminishing returns: the second half of a budget buys less than the first.
    first, double = world.true_daily_outcome(current), world.true_daily_outcome(2 * current)
    assert first < double < 2 * first
    assert world.true_daily_outcome(np.zeros(5)) == 0.0


def test_geometric_adstock_carries_over_and_keeps_the_total():
    spend = np.zeros(40)
    spend[0] = 10.0
    carried = media.geometric_adstock(spend, 0.5, max_lag=30)
    assert carried[0] == pytest.approx(5.0, rel=1e-6) and carried[1] == pytest.approx(2.5, rel=1e-6)
    assert carried.sum() == pytest.approx(10.0)


def test_same_seed_same_media_other_seed_other_media(world):
    n_days = (END - START).days + 1
    again = media.simulate_media(1, START, END, 1 + np.arange(n_days) / n_days, 20_000)
    other = media.simulate_media(2, START, END, 1 + np.arange(n_days) / n_days, 20_000)
    assert np.array_equal(again.spend, world.spend)
    assert not np.array_equal(other.spend, world.spend)


def test_generated_signups_follow_the_media_rate():
    tables = generate_tables(customers=3000, seed=3, start=date(2024, 1, 1), end=date(2024, 12, 31))
    spend = tables["raw.media_spend"].to_pandas()
    truth = tables["eval.media_truth"].to_pandas()
    assert len(spend) == len(truth) == 366 * len(media.PAID_CHANNELS)
    customers = tables["raw.customers"].to_pandas()
    inside = customers[customers["signed_up_at"] >= "2024-01-01"]
    daily = inside["signed_up_at"].dt.floor("D").value_counts().sort_index()
    rate = truth.drop_duplicates("date").set_index("date")
    rate = rate["baseline"] + truth.groupby("date")["contribution"].sum()
    # Days in the top and bottom fifth of the expected rate: signups differ accordingly.
    counts = daily.reindex(rate.index.astype("datetime64[us]"), fill_value=0).to_numpy()
    high, low = rate.to_numpy() >= rate.quantile(0.8), rate.to_numpy() <= rate.quantile(0.2)
    assert counts[high].mean() > 1.3 * counts[low].mean()


def test_media_spend_imports_with_quarantine_rules(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,customer_id,ordered_at,revenue\no1,c1,2024-01-01 10:00,5\n")
    spend = tmp_path / "spend.csv"
    spend.write_text(
        "date,channel,spend,impressions,clicks\n"
        "2024-01-01,SEM,10.5,1000,20\n"
        "2024-01-01,Display,-3,100,1\n"  # negative spend
        "2024-01-02,SEM,4,10,1\n"
        "2024-01-02,SEM,5,10,1\n"  # same day and channel, another value
        "2024-01-03,Social,2,10,0\n"
        "2024-01-03,Social,2,10,0\n"  # exact duplicate: kept once
        "2099-01-01,SEM,1,1,0\n"  # future
    )
    report = import_files({"orders": orders, "media_spend": spend},
                          warehouse_path=tmp_path / "w.duckdb", load_time=datetime(2025, 1, 1),
                          max_rejected_share=1.0)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        kept = con.execute("select date::varchar, channel, spend from raw.media_spend "
                           "order by all").fetchall()
        reasons = con.execute("select line_number, reason from raw.quarantine "
                              "where table_name = 'media_spend' order by all").fetchall()
    assert kept == [("2024-01-01", "SEM", 10.5), ("2024-01-03", "Social", 2.0)]
    assert reasons == [(3, "negative_spend"), (4, "conflicting_duplicate_date_channel"),
                       (5, "conflicting_duplicate_date_channel"), (8, "future_timestamp")]
    assert report.tables["media_spend"].quarantined["negative_spend"] == 1
