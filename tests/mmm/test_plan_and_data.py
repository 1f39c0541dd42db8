"""The budget plan and the media data checks, without a fit: the optimiser on known
response curves (against a brute-force grid), bounds and budget errors that name the
channel and write nothing, and the data refusals that name channel and dates."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ml.mmm import data, model, plan
from ml.mmm.spec import load_media_spec

CHANNELS = ["SEM", "Display", "Social"]


@pytest.fixture
def params() -> dict:
    """Three channels' posterior: 200 draws around known lam and beta."""
    rng = np.random.default_rng(0)
    lam = np.array([2.0, 4.0, 1.0]) * rng.lognormal(0, 0.1, (200, 3))
    beta = np.array([0.3, 0.15, 0.4]) * rng.lognormal(0, 0.1, (200, 3))
    return {"channels": CHANNELS, "lam": lam.tolist(), "beta": beta.tolist(),
            "channel_scale": [100.0, 50.0, 80.0], "target_scale": 40.0,
            "current_spend": [60.0, 40.0, 20.0], "current_window": ["2025-11-03", "2025-12-28"]}


def test_the_plan_spends_the_budget_within_bounds_and_beats_the_current_split(params):
    made = plan.make_plan(480.0, None, 4, version_params=("3", params))
    table = made.table
    assert table["planned_spend"].sum() == pytest.approx(480.0)
    assert (table["planned_spend"] >= table["lower"] - 1e-6).all()
    assert (table["planned_spend"] <= table["upper"] + 1e-6).all()
    np.testing.assert_allclose(table["lower"], np.array([60, 40, 20]) * 4 * 0.7)
    assert made.totals["planned"]["mean"] > made.totals["current_split_at_budget"]["mean"]
    for key in ("planned", "current"):
        t = made.totals[key]
        assert t["low"] < t["mean"] < t["high"]


def test_the_optimum_matches_a_brute_force_grid(params):
    lower, upper = np.array([100.0, 50.0, 20.0]), np.array([400.0, 300.0, 300.0])
    budget, weeks = 500.0, 4
    planned = plan.optimise(params, budget, weeks, lower, upper)

    def value(total):
        return model.response(params, np.asarray(total) / weeks).sum(axis=-1).mean() * weeks

    best = max((value((a, b, budget - a - b)), (a, b))
               for a, b in itertools.product(np.arange(100, 401, 2.0), np.arange(50, 301, 2.0))
               if 20 <= budget - a - b <= 300)
    assert value(planned) >= best[0] - 1e-3
    assert planned.sum() == pytest.approx(budget)


def test_bounds_from_the_command_line_apply_and_bad_ones_fail(params):
    made = plan.make_plan(480.0, plan.parse_bounds(["SEM=300:300"]), 4, version_params=("3", params))
    assert made.table.set_index("channel").loc["SEM", "planned_spend"] == pytest.approx(300.0)
    with pytest.raises(plan.PlanError, match="unknown channel.*TikTok"):
        plan.make_plan(480.0, {"TikTok": (1, 2)}, 4, version_params=("3", params))
    with pytest.raises(plan.PlanError, match="CHANNEL=LOW:HIGH"):
        plan.parse_bounds(["SEM=300"])
    with pytest.raises(plan.PlanError, match="channel SEM needs 0 <= LOW <= HIGH"):
        plan.parse_bounds(["SEM=5:1"])


def test_a_budget_below_the_lower_bounds_names_them_and_writes_nothing(params, tmp_path):
    from ml.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    with pytest.raises(plan.PlanError) as raised:
        made = plan.make_plan(100.0, None, 4, version_params=("3", params))
        plan.write_plan(made, warehouse=wh)
    message = str(raised.value)
    assert "below the sum of the lower bounds 336.00" in message
    assert "SEM 168..312" in message and "2025-11-03..2025-12-28" in message
    assert not wh.table_exists("ml", plan.PLANS_TABLE)


def test_a_written_plan_reads_back_whole(params, tmp_path):
    from ml.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    first = plan.make_plan(480.0, None, 4, version_params=("3", params))
    second = plan.make_plan(500.0, None, 4, version_params=("3", params))
    assert plan.write_plan(first, warehouse=wh) == 3
    plan.write_plan(second, warehouse=wh)
    latest = plan.read_plan(warehouse=wh)
    assert set(latest["plan_id"]) == {second.plan_id}
    assert latest["planned_spend"].sum() == pytest.approx(500.0)
    assert plan.read_plan(first.plan_id, warehouse=wh)["budget"].iloc[0] == 480.0


def _daily(days: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2023-01-02", periods=days, freq="D")
    return pd.DataFrame({
        "date": np.repeat(dates, 2), "channel": np.tile(["SEM", "Display"], days),
        "spend": rng.uniform(0, 10, 2 * days), "new_customers": np.repeat(rng.poisson(3, days), 2),
        "promotion": 0.0, "first_day_revenue": 0.0, "impressions": 0, "clicks": 0})


def test_missing_days_are_refused_naming_the_channel_and_dates():
    frame = _daily()
    gap = (frame["channel"] == "Display") & frame["date"].between("2023-03-01", "2023-03-04")
    with pytest.raises(data.MediaDataError,
                       match=r"channel Display has no row on 4 day\(s\): 2023-03-01\.\.2023-03-04"):
        data.to_periods(frame[~gap], load_media_spec())


def test_a_constant_spend_channel_is_refused_by_name():
    frame = _daily()
    frame.loc[frame["channel"] == "SEM", "spend"] = 25.0
    with pytest.raises(data.MediaDataError, match="channel SEM spends 25 on every day from 2023-01-02"):
        data.to_periods(frame, load_media_spec())


def test_a_short_history_is_refused_and_weeks_are_whole():
    with pytest.raises(data.MediaDataError, match="the model needs at least 60"):
        data.to_periods(_daily(300), load_media_spec())
    frame = data.to_periods(_daily(800), load_media_spec())
    assert (frame.table["date"].dt.dayofweek == 0).all()  # weeks start on Monday
    assert len(frame.table) == 800 // 7
    assert frame.table["y"].sum() == _daily(800).drop_duplicates("date")["new_customers"][: 7 * (800 // 7)].sum()
