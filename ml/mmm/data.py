"""The media-mix mart as the model's table: one row per period (``spec.frequency``), a
spend column per channel, the controls (sale days, trend) and the outcome.

Refuses, with the channel and dates named, data it cannot model: a channel with missing
days, a channel whose spend never changes (its effect is not identifiable from the
intercept), a history shorter than ``min_periods`` plus the holdout, no new customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.marts import MARTS_SCHEMA
from ml.warehouse import Warehouse, get_warehouse


class MediaDataError(ValueError):
    """The media data cannot be modelled; the message names table, channel and dates."""


class NoMediaData(MediaDataError):
    """No media spend at all (raw.media_spend absent or empty): a skip, not a failure."""


@dataclass(frozen=True)
class MediaFrame:
    table: pd.DataFrame  # date, <channels...>, promotion, trend, y
    channels: list[str]
    controls: list[str]
    first_day: pd.Timestamp
    last_day: pd.Timestamp

    @property
    def X(self) -> pd.DataFrame:
        return self.table[["date", *self.channels, *self.controls]]

    @property
    def y(self) -> pd.Series:
        return self.table["y"]


def read_mart(spec, warehouse: Warehouse | None = None) -> pd.DataFrame:
    wh = warehouse or get_warehouse()
    relation = spec.relation
    if not wh.table_exists(MARTS_SCHEMA, relation):
        raise NoMediaData(f"{MARTS_SCHEMA}.{relation} does not exist: run the features DAG "
                          "(`ml run`) after loading raw.media_spend")
    frame = wh.query(f"SELECT * FROM {wh.relation(MARTS_SCHEMA, relation)} ORDER BY date, channel",
                     stage="media mix mart").to_pandas()
    if frame.empty:
        raise NoMediaData(f"{MARTS_SCHEMA}.{relation} has 0 rows: raw.media_spend is absent or "
                          "empty; load it with `ml import --media-spend FILE`")
    return frame


def _ranges(days: pd.DatetimeIndex) -> str:
    """'2024-03-01..2024-03-04, 2024-05-02' for a sorted set of days (first five runs)."""
    runs, start, prev = [], days[0], days[0]
    for day in days[1:]:
        if (day - prev).days > 1:
            runs.append((start, prev))
            start = day
        prev = day
    runs.append((start, prev))
    text = ", ".join(f"{a:%Y-%m-%d}" if a == b else f"{a:%Y-%m-%d}..{b:%Y-%m-%d}" for a, b in runs[:5])
    return text + (f" and {len(runs) - 5} more gaps" if len(runs) > 5 else "")


def validate_daily(frame: pd.DataFrame, relation: str = "media_mix_daily") -> None:
    """Every channel on every day of the window, spend that varies, some new customers."""
    frame = frame.assign(date=pd.to_datetime(frame["date"]))
    window = pd.date_range(frame["date"].min(), frame["date"].max(), freq="D")
    problems = []
    for channel, rows in frame.groupby("channel", sort=True):
        missing = window.difference(pd.DatetimeIndex(rows["date"]))
        if len(missing):
            problems.append(f"channel {channel} has no row on {len(missing)} day(s): "
                            f"{_ranges(missing)}")
    if problems:
        raise MediaDataError(
            f"{relation}: missing days between {window[0]:%Y-%m-%d} and {window[-1]:%Y-%m-%d} ("
            + "; ".join(problems) + "). Add rows with spend 0 for days without spend "
            "and re-import (`ml import --media-spend FILE`).")
    for channel, rows in frame.groupby("channel", sort=True):
        if rows["spend"].nunique() <= 1:
            raise MediaDataError(
                f"{relation}: channel {channel} spends {rows['spend'].iloc[0]:g} on every day "
                f"from {window[0]:%Y-%m-%d} to {window[-1]:%Y-%m-%d} ({len(rows)} rows): a "
                "constant spend cannot be told apart from the baseline. Drop the channel from "
                "the export or add the periods where its spend changed.")
    if frame.drop_duplicates("date")["new_customers"].sum() == 0:
        raise MediaDataError(f"{relation}: no new customers between {window[0]:%Y-%m-%d} and "
                             f"{window[-1]:%Y-%m-%d}: load raw.customers with signup dates")


def to_periods(frame: pd.DataFrame, spec) -> MediaFrame:
    """Daily (date, channel) rows -> one row per full period; a partial first or last
    period is dropped (its sum would look like a drop in spend and customers)."""
    validate_daily(frame, spec.relation)
    frame = frame.assign(date=pd.to_datetime(frame["date"]))
    spend = frame.pivot(index="date", columns="channel", values="spend").sort_index()
    channels = [str(c) for c in spend.columns]
    days = frame.drop_duplicates("date").set_index("date").sort_index()
    daily = spend.assign(promotion=days["promotion"], y=days[spec.outcome].astype(float))
    periods = daily.resample(spec.frequency, label="left", closed="left")
    table = periods.sum()
    counts = periods.size()
    full = counts == counts.max()
    table = table[full.to_numpy()].reset_index().rename(columns={"index": "date"})
    table.columns = [str(c) for c in table.columns]
    table["trend"] = np.arange(len(table)) / max(len(table) - 1, 1)
    needed = spec.min_periods + spec.holdout_periods
    if len(table) < needed:
        raise MediaDataError(
            f"{spec.relation}: {len(table)} full {spec.frequency} periods from "
            f"{daily.index[0]:%Y-%m-%d} to {daily.index[-1]:%Y-%m-%d}; the model needs at "
            f"least {needed} ({spec.min_periods} to fit + {spec.holdout_periods} held out)")
    for channel in channels:
        if table[channel].nunique() <= 1:
            raise MediaDataError(f"{spec.relation}: channel {channel} has the same spend in every "
                                 f"period from {table['date'].iloc[0]:%Y-%m-%d}: not identifiable")
    return MediaFrame(table=table, channels=channels, controls=["promotion", "trend"],
                      first_day=daily.index[0], last_day=daily.index[-1])
