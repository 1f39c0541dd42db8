"""The interface every warehouse implements (see ml.warehouse)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

# What replace_tables / replace_rows take as data: an Arrow table, or Parquet files.
Data = pa.Table | Sequence[Path]


class Warehouse(ABC):
    kind: str

    @abstractmethod
    def relation(self, schema: str, table: str) -> str:
        """The quoted, fully qualified name to put in SQL."""

    @abstractmethod
    def quote(self, identifier: str) -> str:
        """A column name quoted for SQL."""

    @abstractmethod
    def table_exists(self, schema: str, table: str) -> bool: ...

    @abstractmethod
    def columns(self, schema: str, table: str) -> list[str]:
        """Column names in table order ([] when the table does not exist)."""

    @abstractmethod
    def tables(self) -> list[tuple[str, str]]:
        """Every (logical schema, table) of the platform's schemas."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = (), stage: str = "query") -> pa.Table:
        """A small result, whole (row counts, a ledger, a seed). ``stage`` names the query
        in the dry-run estimate of bytes scanned (BigQuery)."""

    @abstractmethod
    def read_batches(self, sql: str, params: Sequence[Any] = (), batch_rows: int = 100_000,
                     stage: str = "read") -> Iterator[pa.RecordBatch]:
        """A large result as Arrow record batches, with bounded memory whatever its size."""

    def read_arrow(self, sql: str, params: Sequence[Any] = (), stage: str = "read") -> pa.Table:
        """A large result, whole (a training set): streamed, then concatenated."""
        batches = list(self.read_batches(sql, params, stage=stage))
        return pa.Table.from_batches(batches) if batches else self.query(sql, params, stage)

    def scalar(self, sql: str, params: Sequence[Any] = (), stage: str = "query") -> Any:
        result = self.query(sql, params, stage)
        return result.column(0)[0].as_py() if result.num_rows else None

    @abstractmethod
    def replace_tables(self, tables: Mapping[str, Data], drop: Iterable[str] = ()) -> None:
        """Create or replace ``{"schema.table": data}``, and drop ``drop`` (names
        ``schema.table``), only once every new table is staged: a failure leaves the old."""

    @abstractmethod
    def replace_rows(self, schema: str, table: str, select_sql: str,
                     params: Sequence[Any] = (), key: Mapping[str, Any] | None = None,
                     sources: Mapping[str, Data] | None = None,
                     partition_by: str | None = None, cluster_by: Sequence[str] = ()) -> int:
        """Replace the rows of ``schema.table`` matching ``key`` ({column: value}; None or
        {} appends) with the result of ``select_sql``, atomically; create the table from
        the select's columns if needed, and add (nullable) the select's columns an existing
        table lacks, so an output that gained a column still writes to a table an older
        release created. ``select_sql`` may read ``sources`` as ``{name}`` placeholders.
        Returns the rows under the key afterwards (all inserted when appending).
        ``partition_by`` / ``cluster_by`` apply where the engine has them."""

    def append(self, schema: str, table: str, rows: pa.Table) -> int:
        return self.replace_rows(schema, table, "SELECT * FROM {rows}", sources={"rows": rows})

    @abstractmethod
    def shard_predicate(self, column: str, shards: int, shard: int) -> str:
        """SQL true for the rows of one shard out of ``shards`` (a stable hash of column)."""

    def estimate_bytes(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Bytes the query would scan (BigQuery dry run); None where that is not metered."""
        return None


def split_name(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    if not schema or not table:
        raise ValueError(f"expected schema.table, got {name!r}")
    return schema, table
