"""Small hand-made raw tables for the dbt tests, with exactly the columns of ml/schema.py.

A seeded random history (about 60 customers over two years) plus hand-placed events on
the boundaries the point-in-time logic must get right: an order exactly at an as-of
midnight, one a second before, one exactly at as_of + horizon.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml.schema import RAW_TABLES

START = datetime(2023, 1, 1)
END = datetime(2024, 12, 31)
CATEGORIES = ["shoes", "shirts", "bags", "hats", "socks", "coats"]
CHANNELS = ["SEM", "SEO", "CRM", "Display", "Affiliate"]
REGIONS = ["north", "south", "east", "west"]
ACQUISITION = ["SEM", "SEO", "CRM", "Display", "Direct", "Referral"]

# Customers whose hand-placed events sit on window boundaries (see _boundary_events).
BOUNDARY_CUSTOMER = "c_boundary"
ORPHAN_CUSTOMER = "c_orphan"  # orders but no raw.customers row
NEVER_ORDERED_CUSTOMER = "c_never"  # raw.customers row but no orders


def _random_instant(rng: np.random.Generator, start: datetime, end: datetime) -> datetime:
    seconds = int((end - start).total_seconds())
    return start + timedelta(seconds=int(rng.integers(0, seconds)))


def make_raw_tables(seed: int = 7, customers: int = 60) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    customer_rows, order_rows, item_rows, session_rows, touch_rows = [], [], [], [], []
    for i in range(customers):
        customer_id = f"c{i:03d}"
        signed_up_at = _random_instant(rng, START, datetime(2024, 9, 1))
        customer_rows.append((customer_id, signed_up_at, REGIONS[i % 4], ACQUISITION[i % 6]))
        rate_per_day = rng.uniform(0.005, 0.05)  # 2 to 18 orders a year
        t = signed_up_at
        while True:
            t += timedelta(days=float(rng.exponential(1 / rate_per_day)))
            if t >= END:
                break
            status = rng.choice(["completed", "returned", "cancelled"], p=[0.8, 0.12, 0.08])
            order_rows.append(
                (
                    f"o{len(order_rows):05d}",
                    customer_id,
                    t.replace(microsecond=0),
                    round(float(rng.uniform(10, 200)), 2),
                    round(float(rng.choice([0.0, 0.0, 5.0, 12.5])), 2),
                    str(status),
                    str(rng.choice(["web", "app", "store"])),
                )
            )
        for _ in range(int(rng.integers(0, 40))):
            session_rows.append(
                (
                    f"s{len(session_rows):05d}",
                    customer_id,
                    _random_instant(rng, signed_up_at, END),
                    str(rng.choice(["direct", "search", "email"])),
                    int(rng.integers(1, 20)),
                    int(rng.integers(0, 4)),
                )
            )
        for _ in range(int(rng.integers(0, 30))):
            touch_rows.append(
                (
                    f"t{len(touch_rows):05d}",
                    customer_id,
                    _random_instant(rng, signed_up_at, END),
                    str(rng.choice(CHANNELS)),
                    f"camp{int(rng.integers(1, 5))}",
                    round(float(rng.uniform(0.1, 3)), 2),
                    bool(rng.random() < 0.3),
                )
            )
    customer_rows.append((NEVER_ORDERED_CUSTOMER, datetime(2023, 5, 5, 12), "north", "SEO"))
    for days in (40, 41, 300):
        order_rows.append(
            (
                f"o_orphan_{days}",
                ORPHAN_CUSTOMER,
                START + timedelta(days=days, hours=9),
                50.0,
                0.0,
                "completed",
                "web",
            )
        )
    order_rows += _boundary_events()
    customer_rows.append((BOUNDARY_CUSTOMER, datetime(2023, 6, 1), "west", "CRM"))
    orders = pd.DataFrame(order_rows, columns=list(RAW_TABLES["orders"]))
    for order_id in orders["order_id"]:
        for line in range(int(rng.integers(1, 4))):
            item_rows.append(
                (
                    order_id,
                    line + 1,
                    f"p{int(rng.integers(0, 50))}",
                    str(rng.choice(CATEGORIES)),
                    int(rng.integers(1, 4)),
                    round(float(rng.uniform(5, 80)), 2),
                )
            )
    session_rows.append(("s_boundary_at", BOUNDARY_CUSTOMER, datetime(2024, 3, 1), "direct", 3, 1))
    session_rows.append(
        ("s_boundary_before", BOUNDARY_CUSTOMER, datetime(2024, 2, 29, 23, 59, 59), "direct", 5, 2)
    )
    touch_rows.append(
        ("t_boundary_at", BOUNDARY_CUSTOMER, datetime(2024, 3, 1), "SEM", "b", 1.0, True)
    )
    touch_rows.append(
        (
            "t_boundary_before",
            BOUNDARY_CUSTOMER,
            datetime(2024, 2, 29, 23, 59, 59),
            "CRM",
            "b",
            1.0,
            True,
        )
    )
    return {
        "customers": pd.DataFrame(customer_rows, columns=list(RAW_TABLES["customers"])),
        "orders": orders,
        "order_items": pd.DataFrame(item_rows, columns=list(RAW_TABLES["order_items"])),
        "sessions": pd.DataFrame(session_rows, columns=list(RAW_TABLES["sessions"])),
        "marketing_touches": pd.DataFrame(
            touch_rows, columns=list(RAW_TABLES["marketing_touches"])
        ),
    }


def _boundary_events() -> list[tuple]:
    """Completed orders of BOUNDARY_CUSTOMER around the as-of date 2024-03-01."""

    def order(suffix: str, at: datetime, revenue: float = 100.0) -> tuple:
        return (f"o_boundary_{suffix}", BOUNDARY_CUSTOMER, at, revenue, 0.0, "completed", "web")

    return [
        order("early", datetime(2023, 7, 10, 8)),
        # exactly 30 days before 2024-03-01 (midnight): inside the 30-day window
        order("window_start", datetime(2024, 1, 31)),
        # a second before the as-of midnight: counts as a feature at 2024-03-01
        order("second_before", datetime(2024, 2, 29, 23, 59, 59)),
        # exactly at the as-of midnight: a label event at 2024-03-01, never a feature there
        order("at_as_of", datetime(2024, 3, 1)),
        # exactly at 2024-04-01 + 30 days: outside that snapshot's propensity window
        order("at_horizon", datetime(2024, 5, 1), revenue=70.0),
    ]


def write_raw_tables(path: Path, tables: dict[str, pd.DataFrame], schema: str = "raw") -> None:
    """Create the raw tables with the contract's column types and load the frames."""
    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, frame in tables.items():
            columns = RAW_TABLES[name]
            ddl = ", ".join(f"{column} {data_type}" for column, data_type in columns.items())
            con.execute(f"CREATE OR REPLACE TABLE {schema}.{name} ({ddl})")
            con.register("incoming", frame)
            con.execute(f"INSERT INTO {schema}.{name} SELECT {', '.join(columns)} FROM incoming")
            con.unregister("incoming")
    finally:
        con.close()
