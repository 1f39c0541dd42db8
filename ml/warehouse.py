"""Warehouse access for Python code (embedded DuckDB).

DuckDB allows one writer process at a time, so every write opens its own short-lived
connection and commits in one transaction: readers see either the old tables or the new
ones, never a half-written state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from ml.settings import get_settings


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{_quote(schema)}.{_quote(table)}"


@contextmanager
def connect(path: Path | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path or get_settings().warehouse_path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}. Run `ml generate` or `ml import` first "
            "(or set WAREHOUSE_PATH to an existing DuckDB file)."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException as exc:
        if not read_only or "different configuration" not in str(exc):
            raise
        # This process already holds the file read-write (dbt-duckdb run in-process by
        # Cosmos keeps its instance): share that instance instead of a second one.
        con = duckdb.connect(str(path))
    try:
        yield con
    finally:
        con.close()


def replace_tables(tables: Mapping[str, pa.Table], path: Path | None = None) -> None:
    """Create or replace ``{"schema.table": arrow_table}`` atomically, all or nothing."""
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, table in tables.items():
                schema, _, table_name = name.partition(".")
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
                con.register("_incoming", table)
                con.execute(
                    f"CREATE OR REPLACE TABLE {qualified(schema, table_name)} AS "
                    "SELECT * FROM _incoming"
                )
                con.unregister("_incoming")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()  # fetchall: DuckDB 2.0 refuses new work while a result is unfinished
    return bool(rows[0][0])
