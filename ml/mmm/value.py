"""What a new customer is worth: expected margin over a horizon after signup, from the
platform's BG/NBD model (``ml.modeling.bgnbd``) fitted on the warehouse's order history.

The media-mix model counts new customers at signup (``marts.media_mix_daily``), and its
effect is on the total, not per channel, so one value per fit turns "new customers per
dollar" into "value per dollar". For the signups of the order history's window (a signup
before the first order in the data has a cut-off history and is left out), as of the data
end:

- ``conversion``: the share of signups whose first purchase (a day with a completed order)
  falls within ``horizon_days`` of signup, measured on the signups old enough to have had
  the whole horizon (all of them, noted, when the history is shorter than the horizon);
- ``first_purchase_value``: the mean revenue of that first purchase day;
- ``expected_repeat_purchases``: BG/NBD's expected purchases of a customer whose first
  purchase is now (x = t_x = T = 0: FHL 2005 eq. 10 reduces to eq. 9, E[X(t)]) over what is
  left of the horizon after each converted signup's observed wait for the first purchase;
  the model is fitted by maximum likelihood on the same signups' purchase days (x repeat
  purchase days, t_x first to last, T first to the data end; weeks, as the feature mart's
  BG/NBD columns are used);
- ``repeat_purchase_value``: the mean revenue of a repeat purchase day.

value per new customer = margin_rate x conversion x (first_purchase_value +
expected_repeat_purchases x repeat_purchase_value).

When BG/NBD cannot be fitted (nobody repeats, the optimiser fails, or the likelihood runs off
to a limiting case of the model), the expected repeat purchases are those the signups with a
whole horizon actually made in it (none: 0, the first purchase's value only), and
``method`` and ``note`` say which and why. Alongside, ``observed_value`` is what the signups
with a whole horizon really made in it, times the margin: a check of the model on history.
The value is a point estimate: its uncertainty is not in the ROI intervals it scales.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml.modeling import bgnbd
from ml.warehouse import Warehouse, get_warehouse

STAGING_SCHEMA = "staging"
TIME_UNIT_DAYS = 7.0  # BG/NBD time unit, as the feature mart's BG/NBD learner uses


@dataclass(frozen=True)
class CustomerValue:
    value_per_new_customer: float
    horizon_days: int
    margin_rate: float
    as_of: str  # the data end the histories run to (inclusive)
    signups: int  # signups of the order history's window
    cohort_signups: int  # those the conversion and the horizon's wait are measured on
    matured: bool  # the cohort had the whole horizon (else: the history is shorter)
    conversion: float
    first_purchase_value: float
    expected_repeat_purchases: float
    repeat_purchase_value: float
    method: str  # "bgnbd", "observed" (fallback) or "first purchase only" (fallback)
    note: str
    bgnbd_params: dict | None
    observed_value: float | None  # margin on the cohort's real revenue in the horizon

    def to_dict(self) -> dict:
        return asdict(self)


def read_purchase_days(data_end: date, warehouse: Warehouse | None = None) -> pd.DataFrame:
    """Every signup up to ``data_end`` with its purchase days (completed orders) from signup
    to ``data_end``: customer_id, signup_date, day, revenue (day and revenue null without
    a purchase). Days compared as dates, so DuckDB and BigQuery read alike."""
    wh = warehouse or get_warehouse()
    orders = wh.relation(STAGING_SCHEMA, "stg_shop__orders")
    customers = wh.relation(STAGING_SCHEMA, "stg_shop__customers")
    end = data_end + timedelta(days=1)
    return wh.read_arrow(
        "WITH purchase_days AS ("
        " SELECT customer_id, cast(ordered_at AS date) AS day, sum(revenue) AS revenue"
        f" FROM {orders} WHERE status = 'completed' AND cast(ordered_at AS date) < ?"
        " GROUP BY customer_id, cast(ordered_at AS date)),"
        " signups AS ("
        " SELECT customer_id, cast(signed_up_at AS date) AS signup_date"
        f" FROM {customers} WHERE signed_up_at IS NOT NULL AND cast(signed_up_at AS date) < ?)"
        " SELECT s.customer_id, s.signup_date, p.day, p.revenue FROM signups AS s"
        " LEFT JOIN purchase_days AS p"
        " ON p.customer_id = s.customer_id AND p.day >= s.signup_date",
        [end, end], stage="customer value: purchase days").to_pandas()


def _histories(purchases: pd.DataFrame,
               data_end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per signup of the order history's window (wait for the first purchase, the
    BG/NBD summary in days, the first purchase day's revenue), and their purchase days."""
    frame = purchases.assign(signup_date=pd.to_datetime(purchases["signup_date"]),
                             day=pd.to_datetime(purchases["day"]))
    history_start = frame["day"].min()
    if pd.isna(history_start):
        history_start = data_end + pd.Timedelta(days=1)
    frame = frame[frame["signup_date"] >= history_start]
    bought = frame.dropna(subset=["day"]).sort_values(["customer_id", "day"])
    per = bought.groupby("customer_id").agg(first=("day", "min"), last=("day", "max"),
                                            purchase_days=("day", "size"))
    per["first_revenue"] = bought.groupby("customer_id")["revenue"].first()
    signups = frame.drop_duplicates("customer_id").set_index("customer_id")[["signup_date"]]
    out = signups.join(per)
    out["observed_days"] = (data_end - out["signup_date"]).dt.days + 1
    out["wait_days"] = (out["first"] - out["signup_date"]).dt.days
    return out, bought


def value_per_new_customer(purchases: pd.DataFrame, data_end: date, horizon_days: int,
                           margin_rate: float) -> CustomerValue:
    """The value of a new customer from the purchase days of ``read_purchase_days``."""
    if not horizon_days > 0:
        raise ValueError(f"value.horizon_days must be positive, got {horizon_days!r}")
    if not 0 < margin_rate <= 1:
        raise ValueError(f"value.margin_rate must be in (0, 1], got {margin_rate!r}")
    end = pd.Timestamp(data_end)
    customers, bought = _histories(purchases, end)
    matured = customers["observed_days"] >= horizon_days
    cohort = customers[matured] if matured.any() else customers
    window = np.minimum(cohort["observed_days"], horizon_days)
    converted = cohort[cohort["wait_days"].notna() & (cohort["wait_days"] < window)]
    conversion = len(converted) / len(cohort) if len(cohort) else 0.0
    first_value = float(converted["first_revenue"].mean()) if len(converted) else 0.0

    first_day = bought["customer_id"].map(customers["first"])
    repeats = bought[bought["day"] > first_day]
    repeat_value = float(repeats["revenue"].mean()) if len(repeats) else 0.0
    cohort_days = bought[bought["customer_id"].isin(cohort.index)
                         & ((bought["day"] - bought["signup_date"]).dt.days < horizon_days)]
    observed_repeats = (int(cohort_days.index.isin(repeats.index).sum()) / len(converted)
                        if len(converted) else 0.0)

    remaining = (window[converted.index] - converted["wait_days"]).to_numpy(float) / TIME_UNIT_DAYS
    params, method, note = _fit(customers.dropna(subset=["first"]), end)
    if params is not None and len(converted):
        zeros = np.zeros_like(remaining)
        expected = float(np.mean(bgnbd.expected_purchases(params, remaining, zeros, zeros, zeros)))
    elif params is not None:
        expected = 0.0
    elif matured.any():
        expected, method = observed_repeats, "observed"
        note += ("; expected repeat purchases = those the signups with the whole horizon made "
                 "in it")
    else:
        expected, method = 0.0, "first purchase only"
        note += ("; no signup has the whole horizon yet to count repeat purchases on: the "
                 "value is the first purchase's only (a lower bound)")
    if not matured.any():
        note = (note + "; " if note else "") + (
            f"the history is shorter than the {horizon_days}-day horizon: conversion and the "
            "wait for a first purchase are measured on all signups, up to the data end")
    value = margin_rate * conversion * (first_value + expected * repeat_value)
    observed = None
    if matured.any():
        observed = margin_rate * float(cohort_days["revenue"].sum()) / len(cohort)
    return CustomerValue(
        value_per_new_customer=float(value), horizon_days=int(horizon_days),
        margin_rate=float(margin_rate), as_of=str(end.date()), signups=len(customers),
        cohort_signups=len(cohort), matured=bool(matured.any()), conversion=float(conversion),
        first_purchase_value=first_value, expected_repeat_purchases=expected,
        repeat_purchase_value=repeat_value, method=method, note=note,
        bgnbd_params=None if params is None else asdict(params), observed_value=observed)


def _fit(buyers: pd.DataFrame, data_end: pd.Timestamp) -> tuple[bgnbd.BGNBDParams | None, str, str]:
    """BG/NBD on the buyers' purchase days, or None with the reason it cannot be used."""
    x = (buyers["purchase_days"] - 1).to_numpy(float)
    t_x = (buyers["last"] - buyers["first"]).dt.days.to_numpy(float) / TIME_UNIT_DAYS
    T = (data_end + pd.Timedelta(days=1) - buyers["first"]).dt.days.to_numpy(float) / TIME_UNIT_DAYS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", bgnbd.BGNBDDegenerateFitWarning)
            params = bgnbd.fit(x, t_x, T)
    except (ValueError, bgnbd.BGNBDFitError, bgnbd.BGNBDDegenerateFitWarning) as error:
        return None, "", f"BG/NBD not used: {error}"
    return params, "bgnbd", (f"BG/NBD fitted on {len(buyers):,} buyers' purchase days "
                             f"(r {params.r:.3g}, alpha {params.alpha:.3g} weeks, "
                             f"a {params.a:.3g}, b {params.b:.3g})")


def new_customer_value(config: dict, data_end: date,
                       warehouse: Warehouse | None = None) -> CustomerValue:
    """The value per new customer as of ``data_end`` with the spec's ``value`` settings."""
    return value_per_new_customer(read_purchase_days(data_end, warehouse), data_end,
                                  int(config["horizon_days"]), float(config["margin_rate"]))
