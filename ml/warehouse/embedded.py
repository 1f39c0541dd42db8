"""The embedded warehouse: one DuckDB file.

DuckDB allows one writer process at a time, so every write opens its own short-lived
connection and commits in one transaction: readers see either the old tables or the new
ones, never a half-written state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ml.settings import get_settings
from ml.warehouse.base import Data, Warehouse


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{_quote(schema)}.{_quote(table)}"


@contextmanager
def connect(path: Path | None = None,
            read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
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


def replace_tables(tables: Mapping[str, Data], path: Path | None = None,
                   drop: Iterable[str] = ()) -> None:
    """Create or replace ``{"schema.table": data}`` and drop ``drop``, all or nothing."""
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, data in tables.items():
                schema, _, table_name = name.partition(".")
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
                with _sources(con, {"incoming": data}) as names:
                    con.execute(f"CREATE OR REPLACE TABLE {qualified(schema, table_name)} AS "
                                f"SELECT * FROM {names['incoming']}")
            for name in drop:
                schema, _, table_name = name.partition(".")
                con.execute(f"DROP TABLE IF EXISTS {qualified(schema, table_name)}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


@contextmanager
def _sources(con: duckdb.DuckDBPyConnection, sources: Mapping[str, Data]) -> Iterator[dict]:
    """``{name: data}`` as relations SQL can read: Arrow tables registered as views,
    Parquet files through read_parquet."""
    names = {}
    with ExitStack() as stack:
        for name, data in sources.items():
            if isinstance(data, pa.Table):
                view = f"_src_{name}"
                con.register(view, data)
                stack.callback(con.unregister, view)
                names[name] = view
            else:
                files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in data)
                names[name] = f"read_parquet([{files}])"
        yield names


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()  # fetchall: DuckDB 2.0 refuses new work while a result is unfinished
    return bool(rows[0][0])


def _add_missing_columns(con: duckdb.DuckDBPyConnection, target: str, select: str,
                         params: Sequence[Any]) -> None:
    """Additive schema evolution: the select's columns ``target`` lacks (an output that
    gained a column since the table was created) are added, nullable, in the caller's
    transaction; rows written before read NULL there."""
    have = {row[0] for row in con.execute(f"DESCRIBE {target}").fetchall()}
    shape = con.execute(f"DESCRIBE SELECT * FROM ({select}) LIMIT 0", list(params)).fetchall()
    for name, column_type, *_ in shape:
        if name not in have:
            con.execute(f"ALTER TABLE {target} ADD COLUMN {_quote(name)} {column_type}")


class DuckDBWarehouse(Warehouse):
    """The warehouse interface on the DuckDB file."""

    kind = "duckdb"

    def __init__(self, path: Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return f"DuckDB warehouse {self.path}"

    def relation(self, schema: str, table: str) -> str:
        return qualified(schema, table)

    def quote(self, identifier: str) -> str:
        return _quote(identifier)

    def table_exists(self, schema: str, table: str) -> bool:
        if not self.path.exists():
            return False
        with connect(self.path, read_only=True) as con:
            return table_exists(con, schema, table)

    def columns(self, schema: str, table: str) -> list[str]:
        if not self.path.exists():
            return []
        with connect(self.path, read_only=True) as con:
            rows = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
        return [r[0] for r in rows]

    def tables(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        with connect(self.path, read_only=True) as con:
            return [tuple(r) for r in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2").fetchall()]

    def query(self, sql: str, params: Sequence[Any] = (), stage: str = "query") -> pa.Table:
        with connect(self.path, read_only=True) as con:
            return con.sql(sql, params=list(params) or None).to_arrow_table()

    def read_batches(self, sql: str, params: Sequence[Any] = (), batch_rows: int = 100_000,
                     stage: str = "read") -> Iterator[pa.RecordBatch]:
        with connect(self.path, read_only=True) as con:
            yield from con.sql(sql, params=list(params) or None).to_arrow_reader(batch_rows)

    def replace_tables(self, tables: Mapping[str, Data], drop: Iterable[str] = ()) -> None:
        replace_tables(tables, self.path, drop)

    def replace_rows(self, schema: str, table: str, select_sql: str,
                     params: Sequence[Any] = (), key: Mapping[str, Any] | None = None,
                     sources: Mapping[str, Data] | None = None,
                     partition_by: str | None = None, cluster_by: Sequence[str] = ()) -> int:
        target = qualified(schema, table)
        key = dict(key or {})
        where = " AND ".join(f"{_quote(c)} = ?" for c in key) or "TRUE"
        with connect(self.path) as con, _sources(con, sources or {}) as names:
            select = select_sql.format(**names)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
            con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS "
                        f"SELECT * FROM ({select}) LIMIT 0", list(params))
            con.execute("BEGIN TRANSACTION")
            try:
                _add_missing_columns(con, target, select, params)
                if key:
                    con.execute(f"DELETE FROM {target} WHERE {where}", list(key.values()))
                inserted = con.execute(f"INSERT INTO {target} BY NAME {select}",
                                       list(params)).fetchall()[0][0]
                rows = (con.execute(f"SELECT count(*) FROM {target} WHERE {where}",
                                    list(key.values())).fetchall()[0][0] if key else inserted)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return rows

    def shard_predicate(self, column: str, shards: int, shard: int) -> str:
        return f"hash({_quote(column)}) % {int(shards)} = {int(shard)}"
