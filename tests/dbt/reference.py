"""An independent recomputation of the marts in pandas, straight from the raw tables.

Written from the contract, not from the SQL: timestamps are compared with the as-of
midnight directly (a feature sees events with ts < as_of; a label sees completed orders
with as_of <= ts < as_of + horizon).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
CHANNELS = ("SEM", "SEO", "CRM", "Display")
KEYS = ["customer_id", "as_of_date"]


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    """Same (customer_id, as_of_date) rows, and equal values (nulls equal) in ``columns``."""
    merged = actual.merge(
        expected, on=KEYS, how="outer", suffixes=("", "_expected"), indicator=True
    )
    unmatched = merged[merged["_merge"] != "both"]
    assert unmatched.empty, f"rows in only one frame:\n{unmatched[KEYS + ['_merge']].head(10)}"
    for column in columns:
        got, want = merged[column], merged[f"{column}_expected"]
        if pd.api.types.is_numeric_dtype(want) or pd.api.types.is_bool_dtype(want):
            got = pd.to_numeric(got.astype("Float64"), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            want = pd.to_numeric(want.astype("Float64"), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            same = np.isclose(got, want, rtol=1e-9, atol=1e-9) | (np.isnan(got) & np.isnan(want))
        else:
            same = (
                got.astype("object").fillna("<null>") == want.astype("object").fillna("<null>")
            ).to_numpy()
        assert same.all(), (
            f"{column}: {int((~same).sum())} rows differ, e.g.\n"
            f"{merged.loc[~same, KEYS + [column, column + '_expected']].head()}"
        )


def expected_calendar(
    orders: pd.DataFrame,
    cadence: str = "month",
    churn_horizon: int = 90,
    propensity_horizon: int = 30,
    as_of_end: str | None = None,
) -> pd.DataFrame:
    if as_of_end:
        orders = orders[orders["ordered_at"] < pd.Timestamp(as_of_end)]
    data_start = orders["ordered_at"].min().normalize()
    data_end = (
        pd.Timestamp(as_of_end) if as_of_end else orders["ordered_at"].max().normalize() + DAY
    )
    days = pd.date_range(data_start + DAY, data_end - DAY, freq="D")
    starts = days[days.day == 1] if cadence == "month" else days[days.dayofweek == 0]
    as_of = list(starts) + [data_end]
    calendar = pd.DataFrame({"as_of_date": as_of})
    calendar["data_start"] = data_start
    calendar["data_end"] = data_end
    calendar["is_scoring_snapshot"] = calendar["as_of_date"] == data_end
    calendar["churn_label_matured"] = calendar["as_of_date"] + churn_horizon * DAY <= data_end
    calendar["propensity_label_matured"] = (
        calendar["as_of_date"] + propensity_horizon * DAY <= data_end
    )
    calendar["churn_horizon_days"] = churn_horizon
    calendar["propensity_horizon_days"] = propensity_horizon
    calendar["click_attribution_days"] = 7
    return calendar


def _known_since(tables: dict[str, pd.DataFrame]) -> pd.Series:
    first_order = tables["orders"].groupby("customer_id")["ordered_at"].min()
    if "customers" in tables:
        signup = tables["customers"].set_index("customer_id")["signed_up_at"]
        both = pd.concat([first_order, signup], axis=1)
        return both.min(axis=1)
    return first_order


def _count(
    frame: pd.DataFrame,
    index: pd.Index,
    since: pd.Timestamp | None = None,
    column: str | None = None,
    time_column: str = "ordered_at",
) -> pd.Series:
    if since is not None:
        frame = frame[frame[time_column] >= since]
    grouped = frame.groupby("customer_id")
    values = grouped[column].sum() if column else grouped.size()
    return values.reindex(index).fillna(0)


def _days_since(
    frame: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp, time_column: str
) -> pd.Series:
    last = frame.groupby("customer_id")[time_column].max().reindex(index)
    return (as_of - last.dt.normalize()).dt.days


def expected_features(
    tables: dict[str, pd.DataFrame], calendar: pd.DataFrame, active_window: int = 365
) -> pd.DataFrame:
    known_since = _known_since(tables)
    orders = tables["orders"]
    frames = []
    for as_of in calendar["as_of_date"]:
        index = pd.Index(sorted(known_since[known_since < as_of].index), name="customer_id")
        f = pd.DataFrame(index=index)
        f["as_of_date"] = as_of
        before = orders[orders["ordered_at"] < as_of]
        completed = before[before["status"] == "completed"]
        last_year = as_of - 365 * DAY
        f["tenure_days"] = (as_of - known_since.reindex(index).dt.normalize()).dt.days
        f["days_since_last_order"] = _days_since(completed, index, as_of, "ordered_at")
        for days in (30, 90, 180, 365):
            f[f"orders_{days}d"] = _count(completed, index, as_of - days * DAY)
        f["revenue_30d"] = _count(completed, index, as_of - 30 * DAY, "revenue")
        f["revenue_365d"] = _count(completed, index, last_year, "revenue")
        f["orders_lifetime"] = _count(completed, index)
        f["revenue_lifetime"] = _count(completed, index, column="revenue")
        f["in_churn_population"] = _count(completed, index, as_of - active_window * DAY) > 0
        year = before[before["ordered_at"] >= last_year]
        all_orders = _count(year, index)
        f["return_rate"] = (_count(year[year["status"] == "returned"], index) / all_orders).where(
            all_orders > 0
        )
        f["cancel_rate"] = (_count(year[year["status"] == "cancelled"], index) / all_orders).where(
            all_orders > 0
        )
        purchase_days = (
            completed.assign(day=completed["ordered_at"].dt.normalize())
            .drop_duplicates(["customer_id", "day"])
            .sort_values("day")
        )
        first_day = purchase_days.groupby("customer_id")["day"].min().reindex(index)
        last_day = purchase_days.groupby("customer_id")["day"].max().reindex(index)
        n_days = purchase_days.groupby("customer_id").size().reindex(index)
        f["bgnbd_x"] = n_days - 1
        f["bgnbd_t_x"] = (last_day - first_day).dt.days
        f["bgnbd_T"] = (as_of - first_day).dt.days
        gaps = purchase_days.groupby("customer_id")["day"].diff().dt.days
        gap_frame = purchase_days.assign(gap=gaps).dropna(subset=["gap"])
        f["purchase_gap_mean_days"] = gap_frame.groupby("customer_id")["gap"].mean().reindex(index)
        f["purchase_gap_std_days"] = (
            gap_frame.groupby("customer_id")["gap"].std(ddof=1).reindex(index)
        )
        f["purchase_gap_last_days"] = gap_frame.groupby("customer_id")["gap"].last().reindex(index)

        if "order_items" in tables:
            lines = tables["order_items"].merge(
                completed[completed["ordered_at"] >= last_year][["order_id", "customer_id"]],
                on="order_id",
            )
            f["distinct_categories_365d"] = (
                lines.groupby("customer_id")["category"].nunique().reindex(index).fillna(0)
            )
            orders_365 = f["orders_365d"]
            f["items_per_order"] = (_count(lines, index, column="quantity") / orders_365).where(
                orders_365 > 0
            )
        else:
            f["distinct_categories_365d"] = np.nan
            f["items_per_order"] = np.nan

        if "sessions" in tables:
            sessions = tables["sessions"]
            sessions = sessions[sessions["started_at"] < as_of]
            f["sessions_30d"] = _count(sessions, index, as_of - 30 * DAY, time_column="started_at")
            f["page_views_30d"] = _count(
                sessions, index, as_of - 30 * DAY, "page_views", "started_at"
            )
            f["cart_adds_90d"] = _count(
                sessions, index, as_of - 90 * DAY, "cart_adds", "started_at"
            )
            f["days_since_last_session"] = _days_since(sessions, index, as_of, "started_at")
        else:
            for column in (
                "sessions_30d",
                "page_views_30d",
                "cart_adds_90d",
                "days_since_last_session",
            ):
                f[column] = np.nan

        if "marketing_touches" in tables:
            touches = tables["marketing_touches"]
            touches = touches[touches["touched_at"] < as_of]
            recent = touches[touches["touched_at"] >= as_of - 90 * DAY]
            f["touches_90d"] = _count(recent, index, time_column="touched_at")
            f["clicks_90d"] = _count(recent[recent["clicked"]], index, time_column="touched_at")
            for channel in CHANNELS:
                of_channel = recent[recent["channel"].str.lower() == channel.lower()]
                f[f"touches_90d_{channel.lower()}"] = _count(
                    of_channel, index, time_column="touched_at"
                )
                f[f"clicks_90d_{channel.lower()}"] = _count(
                    of_channel[of_channel["clicked"]], index, time_column="touched_at"
                )
            f["days_since_last_click"] = _days_since(
                touches[touches["clicked"]], index, as_of, "touched_at"
            )
            latest = touches.sort_values(["touched_at", "channel"]).groupby("customer_id").tail(1)
            f["last_touch_channel"] = latest.set_index("customer_id")["channel"].reindex(index)
        else:
            f["touches_90d"] = f["clicks_90d"] = f["days_since_last_click"] = np.nan
            for channel in CHANNELS:
                f[f"touches_90d_{channel.lower()}"] = f[f"clicks_90d_{channel.lower()}"] = np.nan
            f["last_touch_channel"] = None
        frames.append(f.reset_index())
    return pd.concat(frames, ignore_index=True)


def expected_labels(
    tables: dict[str, pd.DataFrame],
    calendar: pd.DataFrame,
    churn_horizon: int = 90,
    propensity_horizon: int = 30,
) -> pd.DataFrame:
    known_since = _known_since(tables)
    orders = tables["orders"]
    completed = orders[orders["status"] == "completed"]
    frames = []
    for row in calendar.itertuples():
        as_of = row.as_of_date
        index = pd.Index(sorted(known_since[known_since < as_of].index), name="customer_id")
        after = completed[completed["ordered_at"] >= as_of]
        churn_window = _count(after[after["ordered_at"] < as_of + churn_horizon * DAY], index)
        propensity_window = _count(
            after[after["ordered_at"] < as_of + propensity_horizon * DAY], index
        )
        f = pd.DataFrame(index=index)
        f["as_of_date"] = as_of
        f["churn_label"] = (churn_window == 0).astype(float) if row.churn_label_matured else np.nan
        f["purchase_label"] = (
            (propensity_window > 0).astype(float) if row.propensity_label_matured else np.nan
        )
        frames.append(f.reset_index())
    return pd.concat(frames, ignore_index=True)
