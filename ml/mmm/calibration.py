"""Lift-test calibration of the media-mix model.

A lift test (``marts.media_lift_tests``, from the optional ``raw.media_lift_tests``) says:
over the days ``[start_date, end_date]`` the channel's spend changed by ``spend_change``
dollars in total (negative: spend removed, as in a go-dark geo holdout) and that caused
``incremental_new_customers`` (standard error ``standard_error``), stated for the whole
market. PyMC-Marketing's ``MMM.add_lift_test_measurements`` takes each test as a point on
the channel's saturation curve: at the spend ``x`` per model period, a change ``delta_x``
moved the outcome by ``delta_y`` (``sigma``). ``to_model_rows`` converts a readout to those
units: ``x`` is the channel's spend in the media data over the test's days, per period
(``spend / days * period_days``; a constant spend has adstock equal to itself, so the
steady-state curve is the one the test measured), and ``delta_x``, ``delta_y`` and
``sigma`` are the readout's totals per period the same way.

The likelihood is a Normal on the absolute lift (PyMC-Marketing's default Gamma is for
clearly positive measurements; a noisy readout near zero is the common case here). The
saturation curve is increasing, so a readout whose effect has the opposite sign to its spend
change (noise) says "about zero": it enters as 0 with its standard error, and the summary
lists it.

Bad rows fail before any fit, naming the table, the column and the rows (by ``test_id``):
an unknown channel, a period outside the media data, an end before the start, a spend
change of zero or removing more than was spent, a standard error that is not positive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.marts import MARTS_SCHEMA
from ml.mmm.data import MediaDataError
from ml.warehouse import Warehouse, get_warehouse

LIFT_RELATION = "media_lift_tests"
LIFT_COLUMNS = ("test_id", "channel", "start_date", "end_date", "spend_change",
                "incremental_new_customers", "standard_error")


def read_lift_tests(warehouse: Warehouse | None = None) -> pd.DataFrame:
    """The readouts, or an empty frame when the mart is absent or empty (uncalibrated)."""
    wh = warehouse or get_warehouse()
    if not wh.table_exists(MARTS_SCHEMA, LIFT_RELATION):
        return pd.DataFrame(columns=list(LIFT_COLUMNS))
    return wh.query(f"SELECT {', '.join(LIFT_COLUMNS)} FROM "
                    f"{wh.relation(MARTS_SCHEMA, LIFT_RELATION)} ORDER BY start_date, test_id",
                    stage="media lift tests").to_pandas()


def period_days(frequency: str) -> int:
    days = pd.date_range("2024-01-01", periods=2, freq=frequency)
    return int((days[1] - days[0]).days)


def _rows(tests: pd.DataFrame, mask: pd.Series) -> str:
    ids = tests.loc[mask, "test_id"].astype(str).tolist()
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def to_model_rows(tests: pd.DataFrame, daily: pd.DataFrame, frequency: str,
                  table: str = f"{MARTS_SCHEMA}.{LIFT_RELATION}") -> pd.DataFrame:
    """Validate the readouts against the daily media data (``media_mix_daily`` rows: date,
    channel, spend) and return PyMC-Marketing's lift rows (channel, x, delta_x, delta_y,
    sigma per period) next to the readout's test_id, days and whether its sign was noise."""
    if tests.empty:
        return pd.DataFrame(columns=["test_id", "channel", "x", "delta_x", "delta_y", "sigma",
                                     "days", "sign_contradicted"])
    tests = tests.assign(start_date=pd.to_datetime(tests["start_date"]),
                         end_date=pd.to_datetime(tests["end_date"])).reset_index(drop=True)
    daily = daily.assign(date=pd.to_datetime(daily["date"]))
    channels = sorted(map(str, daily["channel"].unique()))
    first, last = daily["date"].min(), daily["date"].max()
    problems = []
    unknown = ~tests["channel"].astype(str).isin(channels)
    if unknown.any():
        names = ", ".join(sorted(set(tests.loc[unknown, "channel"].astype(str))))
        problems.append(f"column channel: unknown channel(s) {names} in rows "
                        f"{_rows(tests, unknown)} (the media spend has {', '.join(channels)})")
    backwards = tests["end_date"] < tests["start_date"]
    if backwards.any():
        problems.append(f"column end_date: before start_date in rows {_rows(tests, backwards)}")
    for column, outside in (("start_date", tests["start_date"] < first),
                            ("end_date", tests["end_date"] > last)):
        if outside.any():
            problems.append(f"column {column}: rows {_rows(tests, outside)} lie outside the "
                            f"media data ({first:%Y-%m-%d}..{last:%Y-%m-%d})")
    bad_se = ~(tests["standard_error"].astype(float) > 0)
    if bad_se.any():
        problems.append(f"column standard_error: not positive in rows {_rows(tests, bad_se)}")
    zero = tests["spend_change"].astype(float) == 0
    if zero.any():
        problems.append(f"column spend_change: zero in rows {_rows(tests, zero)} (a test "
                        "changes the channel's spend)")
    if problems:
        raise MediaDataError(f"{table}: " + "; ".join(problems))

    spend = daily.pivot(index="date", columns="channel", values="spend").sort_index()
    step = period_days(frequency)
    rows = []
    for t in tests.itertuples(index=False):
        window = spend.loc[t.start_date:t.end_date, str(t.channel)]
        days = int((t.end_date - t.start_date).days) + 1
        x = float(window.sum()) / days * step
        delta_x = float(t.spend_change) / days * step
        delta_y = float(t.incremental_new_customers) / days * step
        contradicted = delta_x * delta_y < 0
        rows.append({"test_id": str(t.test_id), "channel": str(t.channel), "days": days,
                     "x": x, "delta_x": delta_x,
                     "delta_y": 0.0 if contradicted else delta_y,
                     "sigma": float(t.standard_error) / days * step,
                     "sign_contradicted": bool(contradicted),
                     "spend_in_window": float(window.sum())})
    out = pd.DataFrame(rows)
    over = out["x"] + out["delta_x"] < -1e-6 * np.maximum(out["x"], 1.0)
    if over.any():
        raise MediaDataError(
            f"{table}: column spend_change: rows {_rows(out, over)} remove more spend than the "
            "channel had over the test's days in media_mix_daily (" + ", ".join(
                f"{r.test_id}: {r.spend_in_window:,.2f}" for r in out[over].itertuples()) + ")")
    out["delta_x"] = np.maximum(out["delta_x"], -out["x"])  # rounding of a go-dark test
    return out.drop(columns="spend_in_window")


def calibration_table(uncalibrated: dict | None, calibrated: dict) -> list[dict]:
    """Per channel: ROI mean and 90% interval without and with the lift tests, the change
    of the mean and the interval's width ratio (calibrated / uncalibrated)."""
    rows = []
    for channel, cal in calibrated.items():
        row = {"channel": channel, "calibrated": cal["roi"]}
        if uncalibrated and channel in uncalibrated:
            unc = uncalibrated[channel]["roi"]
            row["uncalibrated"] = unc
            row["mean_change"] = cal["roi"]["mean"] - unc["mean"]
            width = unc["high"] - unc["low"]
            row["width_ratio"] = ((cal["roi"]["high"] - cal["roi"]["low"]) / width
                                  if width > 0 else float("nan"))
        rows.append(row)
    return rows
