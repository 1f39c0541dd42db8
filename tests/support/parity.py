"""Row-by-row comparison of the same tables in two warehouses (DuckDB vs BigQuery parity)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from ml.warehouse.base import Warehouse

FLOAT_TOLERANCE = 1e-9  # relative; the engines may sum floats in different orders


@dataclass
class TableParity:
    table: str
    left_rows: int
    right_rows: int
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def _normalised(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Timestamps compared as naive UTC (BigQuery's TIMESTAMP carries UTC, DuckDB's none)."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype("datetime64[us]")
    return out.sort_values(list(keys), kind="stable").reset_index(drop=True)


def _same(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (
            isinstance(b, float) and math.isnan(b)):
        return (a is None or a != a) and (b is None or b != b)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def read_table(wh: Warehouse, schema: str, table: str) -> pd.DataFrame:
    """A whole table, column names lower-cased: BigQuery's are case-insensitive (and
    bqemulator lower-cases some aliases, bgnbd_T in revenue_per_click_training_set, where
    BigQuery keeps them)."""
    return (wh.read_arrow(f"SELECT * FROM {wh.relation(schema, table)}").to_pandas()
            .rename(columns=str.lower))


def compare_table(left: Warehouse, right: Warehouse, schema: str, table: str,
                  keys: Sequence[str], max_reported: int = 5) -> TableParity:
    return compare_frames(f"{schema}.{table}", read_table(left, schema, table),
                          read_table(right, schema, table), keys, max_reported)


def compare_frames(name: str, a: pd.DataFrame, b: pd.DataFrame, keys: Sequence[str],
                   max_reported: int = 5) -> TableParity:
    """Same columns, same rows (sorted by ``keys``), same values (floats within a
    relative 1e-9); differences are listed, at most ``max_reported`` per kind."""
    keys = [k.lower() for k in keys]
    result = TableParity(name, len(a), len(b))
    if list(a.columns) != list(b.columns):
        result.differences.append(f"columns differ: {list(a.columns)} vs {list(b.columns)}")
        return result
    if len(a) != len(b):
        result.differences.append(f"row counts differ: {len(a):,} vs {len(b):,}")
        return result
    a, b = _normalised(a, keys), _normalised(b, keys)
    for column in a.columns:
        pairs = zip(a[column].tolist(), b[column].tolist(), strict=True)
        bad = [i for i, (x, y) in enumerate(pairs)
               if not _same(x if not pd.isna(x) else None, y if not pd.isna(y) else None)]
        for i in bad[:max_reported]:
            key = ", ".join(f"{k}={a.at[i, k]}" for k in keys)
            result.differences.append(f"{column} at ({key}): {a.at[i, column]!r} vs "
                                      f"{b.at[i, column]!r}")
        if len(bad) > max_reported:
            result.differences.append(f"{column}: {len(bad) - max_reported} more rows differ")
    return result
