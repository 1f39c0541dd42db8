"""The value of a new customer (``ml.mmm.value``) on small synthetic order histories: it
equals the first purchase's margin when nobody repeats, rises with the repeat rate, tracks
what the signups really made, and falls back (saying so) when BG/NBD cannot be used."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.mmm import value

END = date(2024, 12, 31)


def _history(repeat_rate_per_week: float, customers: int = 400, seed: int = 0) -> pd.DataFrame:
    """Signups over two years; a first purchase of 80 on the signup day for 3 in 4; then
    purchase days at a Poisson rate (each worth 50) until a 10% dropout after each."""
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp(END)
    rows = []
    for i in range(customers):
        signup = start + pd.Timedelta(days=int(rng.integers(0, (end - start).days)))
        if rng.random() < 0.25:
            rows.append((f"c{i}", signup, None, None))
            continue
        rows.append((f"c{i}", signup, signup, 80.0))
        day, rate = signup, repeat_rate_per_week * rng.gamma(2.0, 0.5)
        while rate > 0:
            day += pd.Timedelta(days=max(1, int(np.ceil(rng.exponential(7 / rate)))))
            if day > end:
                break
            rows.append((f"c{i}", signup, day, 50.0))
            if rng.random() < 0.1:
                break
    return pd.DataFrame(rows, columns=["customer_id", "signup_date", "day", "revenue"])


def test_without_repeat_purchases_the_value_is_the_first_purchases_margin():
    worth = value.value_per_new_customer(_history(0.0), END, 365, 0.3)
    assert worth.method == "observed" and "without any repeat purchase" in worth.note
    assert worth.expected_repeat_purchases == 0
    assert worth.first_purchase_value == pytest.approx(80.0)
    assert worth.value_per_new_customer == pytest.approx(0.3 * worth.conversion * 80.0)
    assert worth.conversion == pytest.approx(0.75, abs=0.08)


def test_the_value_rises_with_the_repeat_rate_and_tracks_what_signups_made():
    values = [value.value_per_new_customer(_history(rate), END, 365, 0.3) for rate in (0.05, 0.2, 0.5)]
    # The generator's dropout is the same 10% for everyone: BG/NBD may run off to that limit
    # (a, b -> inf) and fall back to the observed repeat purchases, which is fine here.
    assert {v.method for v in values} <= {"bgnbd", "observed"}
    assert any(v.method == "bgnbd" and v.bgnbd_params for v in values)
    per_customer = [v.value_per_new_customer for v in values]
    assert per_customer == sorted(per_customer) and per_customer[0] < per_customer[-1] / 2
    for worth in values:
        assert worth.repeat_purchase_value == pytest.approx(50.0)
        assert worth.value_per_new_customer == pytest.approx(
            0.3 * worth.conversion * (80.0 + worth.expected_repeat_purchases * 50.0))
        assert worth.observed_value == pytest.approx(worth.value_per_new_customer, rel=0.25)


def test_a_degenerate_fit_falls_back_to_the_observed_repeat_purchases():
    """Everyone repeats exactly once, on their second day: BG/NBD's likelihood runs off to a
    limit of the model; the repeat purchases counted in the horizon are used instead."""
    rows = []
    for i, signup in enumerate(pd.date_range("2023-01-01", "2023-12-31", freq="3D")):
        rows += [(f"c{i}", signup, signup, 100.0), (f"c{i}", signup, signup + pd.Timedelta(days=1), 40.0)]
    purchases = pd.DataFrame(rows, columns=["customer_id", "signup_date", "day", "revenue"])
    worth = value.value_per_new_customer(purchases, END, 365, 0.5)
    assert worth.method == "observed" and "BG/NBD not used" in worth.note
    assert worth.expected_repeat_purchases == pytest.approx(1.0)
    assert worth.value_per_new_customer == pytest.approx(0.5 * (100.0 + 40.0))
    assert worth.observed_value == pytest.approx(worth.value_per_new_customer)


def test_signups_before_the_order_history_are_left_out_and_bad_settings_fail():
    purchases = pd.concat([_history(0.2), pd.DataFrame(
        {"customer_id": ["old"], "signup_date": [pd.Timestamp("2020-05-01")],
         "day": [pd.Timestamp("2023-06-01")], "revenue": [999.0]})])
    worth = value.value_per_new_customer(purchases, END, 365, 0.3)
    assert worth.signups == 400
    with pytest.raises(ValueError, match="horizon_days"):
        value.value_per_new_customer(purchases, END, 0, 0.3)
    with pytest.raises(ValueError, match="margin_rate"):
        value.value_per_new_customer(purchases, END, 365, 1.5)


def test_the_run_summary_prints_the_plans_customer_value_next_to_its_new_customers():
    from ml import cli

    info = {"champion": "3", "holdout": {"mape": 0.12, "crps": 1.5},
            "diagnostics": {"max_rhat": 1.004, "min_ess_bulk": 410, "divergences": 0},
            "roi": {"SEM": {"mean": 0.01, "low": 0.008, "high": 0.012}},
            "value_per_new_customer": 155.52,
            "plan": {"plan_id": "p1", "budget": 50000.0, "weeks": 4, "expected_planned": 210.4,
                     "expected_current": 200.1, "expected_value_planned": 32721.4}}
    with cli.console.capture() as captured:
        cli._print_media_mix(info)
    text = " ".join(captured.get().split())
    assert "210.4 media-driven new customers, worth 32,721 in customer value" in text
    assert "(155.52 per new customer)" in text and "current split 200.1" in text
    # A plan written before valuation existed (no value columns) prints the count alone.
    info["plan"]["expected_value_planned"] = None
    with cli.console.capture() as captured:
        cli._print_media_mix(info)
    assert "customer value" not in captured.get()
