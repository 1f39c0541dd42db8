"""Lift-test calibration without a fit: the generator's geo-holdout readouts (derived from
the true curves, honestly noisy), their import with quarantine, their conversion to
PyMC-Marketing's lift rows (units per model period), the refusals that name table, column
and rows, and the report's uncalibrated-vs-calibrated ROI table."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.mmm import calibration
from ml.mmm.data import MediaDataError
from ml.schema import RAW_TABLES
from ml.sim import media
from ml.warehouse.importer import import_files

START, END = date(2023, 1, 1), date(2025, 12, 31)


@pytest.fixture(scope="module")
def world() -> media.MediaWorld:
    n_days = (END - START).days + 1
    return media.simulate_media(seed=1, start=START, end=END,
                                baseline_shape=1 + np.arange(n_days) / n_days,
                                expected_customers=20_000)


def _daily(world: media.MediaWorld) -> pd.DataFrame:
    table = world.spend_table().to_pandas()
    return table.assign(date=pd.to_datetime(table["date"]))


def test_the_generator_reads_out_one_go_dark_geo_test_per_channel(world):
    truth = world.true_lift_effects(seed=1)
    assert [t["channel"] for t in truth] == list(media.PAID_CHANNELS)
    days = pd.to_datetime(world.days)
    spend = _daily(world).pivot(index="date", columns="channel", values="spend")
    for t in truth:
        start, end = pd.Timestamp(t["start_date"]), pd.Timestamp(t["end_date"])
        assert start.dayofweek == 0 and (end - start).days + 1 == media.LIFT_TEST_DAYS
        assert days[media.LIFT_TEST_MARGIN_DAYS] <= start
        assert end < days[-media.LIFT_TEST_HOLDOUT_DAYS]  # not in the model's holdout
        window = spend.loc[start:end, t["channel"]]
        assert (window > 0).all()  # the channel was on: going dark removes all of it
        assert t["spend_change"] == pytest.approx(-window.sum())
        assert t["true_effect"] < 0 < t["standard_error"]
        # The SE is that of the Poisson counts of the window (geo split, mismatch factor).
        expected = world.expected_new_customers[(days >= start) & (days <= end)].sum()
        g = media.LIFT_TEST_GEO_SHARE
        assert t["standard_error"] == pytest.approx(
            media.LIFT_TEST_MISMATCH * np.sqrt(expected * g / (1 - g)) / g)
    # The true effect of going dark is at most the channel's whole contribution there
    # (carry-over from before the test still helps early on).
    sem = truth[0]
    window = (days >= pd.Timestamp(sem["start_date"])) & (days <= pd.Timestamp(sem["end_date"]))
    assert -sem["true_effect"] <= world.contribution[window, 0].sum()


def test_readouts_are_measurements_deterministic_per_seed(world):
    table = world.lift_test_table(seed=1)
    assert table.column_names == list(RAW_TABLES["media_lift_tests"])
    assert "true_effect" not in table.column_names  # the truth stays out of the raw table
    assert table.equals(world.lift_test_table(seed=1))
    assert not table.equals(world.lift_test_table(seed=2))
    # Noise of the stated size: over many seeds, (measured - true) / se is standard normal.
    z = [(t["incremental_new_customers"] - t["true_effect"]) / t["standard_error"]
         for seed in range(40) for t in world.true_lift_effects(seed)]
    assert abs(np.mean(z)) < 0.2 and 0.8 < np.std(z) < 1.2


def test_generated_history_carries_the_lift_tests():
    from ml.sim.history import generate_tables

    tables = generate_tables(customers=300, seed=3, start=date(2024, 1, 1), end=date(2024, 12, 31))
    tests = tables["raw.media_lift_tests"].to_pandas()
    assert len(tests) >= 3 and set(tests["channel"]) <= set(media.PAID_CHANNELS)
    assert (tests["spend_change"] < 0).all() and (tests["standard_error"] > 0).all()


def test_lift_rows_are_per_period_and_a_noise_sign_enters_as_zero(world):
    daily = _daily(world)
    tests = world.lift_test_table(seed=1).to_pandas()
    tests.loc[0, "incremental_new_customers"] = 5.0  # a go-dark "gain": noise
    rows = calibration.to_model_rows(tests, daily, "W-MON")
    assert list(rows["channel"]) == list(tests["channel"])
    first = rows.iloc[0]
    window = daily[(daily["channel"] == "SEM")
                   & daily["date"].between(pd.Timestamp(tests.loc[0, "start_date"]),
                                           pd.Timestamp(tests.loc[0, "end_date"]))]
    assert first["x"] == pytest.approx(window["spend"].sum() / 28 * 7)  # a week's spend
    assert first["x"] + first["delta_x"] == pytest.approx(0.0, abs=1e-9)
    assert first["sign_contradicted"] and first["delta_y"] == 0.0
    assert first["sigma"] == pytest.approx(tests.loc[0, "standard_error"] / 4)
    second = rows.iloc[1]
    assert not second["sign_contradicted"] or second["delta_y"] == 0.0
    if not second["sign_contradicted"]:
        assert second["delta_y"] == pytest.approx(tests.loc[1, "incremental_new_customers"] / 4)
    assert calibration.period_days("W-MON") == 7 and calibration.period_days("D") == 1


def _tests(**changes) -> pd.DataFrame:
    row = {"test_id": "t1", "channel": "SEM", "start_date": "2024-03-04",
           "end_date": "2024-03-31", "spend_change": -100.0,
           "incremental_new_customers": -5.0, "standard_error": 2.0}
    other = {**row, "test_id": "t2", "channel": "Display"}
    return pd.DataFrame([{**row, **changes}, other])


@pytest.mark.parametrize(("changes", "message"), [
    ({"channel": "TikTok"}, r"media_lift_tests: column channel: unknown channel\(s\) TikTok in "
                            r"rows t1 \(the media spend has Affiliate, Display, "),
    ({"end_date": "2026-02-01"}, r"column end_date: rows t1 lie outside the media data "
                                 r"\(2023-01-01\.\.2025-12-31\)"),
    ({"start_date": "2022-12-01"}, r"column start_date: rows t1 lie outside the media data"),
    ({"end_date": "2024-03-01"}, r"column end_date: before start_date in rows t1"),
    ({"standard_error": 0.0}, r"column standard_error: not positive in rows t1"),
    ({"spend_change": 0.0}, r"column spend_change: zero in rows t1"),
    ({"spend_change": -1e9}, r"column spend_change: rows t1 remove more spend than the channel "
                             r"had over the test's days in media_mix_daily \(t1: "),
])
def test_bad_lift_tests_name_table_column_and_rows(world, changes, message):
    with pytest.raises(MediaDataError, match=message):
        calibration.to_model_rows(_tests(**changes), _daily(world), "W-MON")


def test_no_lift_tests_means_no_calibration(world):
    rows = calibration.to_model_rows(pd.DataFrame(columns=list(calibration.LIFT_COLUMNS)),
                                     _daily(world), "W-MON")
    assert rows.empty
    from ml.mmm.train import calibration_section

    assert "uncalibrated" in calibration_section({"lift_tests": 0})


def test_the_report_shows_roi_uncalibrated_and_calibrated_with_intervals():
    from ml.mmm.train import calibration_section

    unc = {"SEM": {"roi": {"mean": 0.02, "low": 0.01, "high": 0.05}}}
    cal = {"SEM": {"roi": {"mean": 0.025, "low": 0.02, "high": 0.035}}}
    table = calibration.calibration_table(unc, cal)
    assert table[0]["mean_change"] == pytest.approx(0.005)
    assert table[0]["width_ratio"] == pytest.approx(0.015 / 0.04)
    tests = [{"test_id": "t1", "channel": "SEM", "days": 28, "x": 250.0, "delta_x": -250.0,
              "delta_y": 0.0, "sigma": 3.0, "sign_contradicted": True}]
    text = calibration_section({"lift_tests": 1, "likelihood": "Normal", "tests": tests,
                                "uncalibrated": {"holdout": {"mape": 0.2}, "fit_seconds": 90.0},
                                "comparison": table})
    assert ("| SEM | 0.0200 (0.0100 .. 0.0500) | 0.0250 (0.0200 .. 0.0350) | +0.0050 | 0.38 |"
            in text)
    assert "entered as 0" in text and "1 lift test(s)" in text


def test_lift_tests_import_with_quarantine_rules(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,customer_id,ordered_at,revenue\no1,c1,2024-01-01 10:00,5\n")
    lift = tmp_path / "lift.csv"
    lift.write_text(
        "test_id,channel,start_date,end_date,spend_change,incremental_new_customers,"
        "standard_error\n"
        "a,SEM,2024-03-04,2024-03-31,-100,-5,2\n"
        "b,Social,2024-03-04,2024-03-31,-100,-5,-2\n"  # negative standard error
        "c,SEM,2024-05-06,2024-06-02,-100,-5,2\n"
        "c,SEM,2024-05-06,2024-06-02,-100,-7,2\n"  # same test, another readout
        "d,Display,2024-12-02,2025-01-12,-100,-5,2\n"  # ends after the load day
        ",Display,2024-06-03,2024-06-30,50,2,1\n"  # no id: synthesised
    )
    report = import_files({"orders": orders, "media_lift_tests": lift},
                          warehouse_path=tmp_path / "w.duckdb", load_time=datetime(2025, 1, 1),
                          max_rejected_share=1.0)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        kept = con.execute("select test_id, channel, spend_change from raw.media_lift_tests "
                           "order by channel").fetchall()
        reasons = con.execute("select line_number, reason from raw.quarantine where "
                              "table_name = 'media_lift_tests' order by all").fetchall()
    assert [(c, s) for _, c, s in kept] == [("Display", 50.0), ("SEM", -100.0)]
    assert kept[0][0].startswith("syn-")
    assert reasons == [(3, "negative_standard_error"), (4, "conflicting_duplicate_test_id"),
                       (5, "conflicting_duplicate_test_id"), (6, "future_timestamp")]
    assert report.tables["media_lift_tests"].rows_loaded == 2
