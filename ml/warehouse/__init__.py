"""The warehouse as Python code sees it: one small interface, two implementations.

``get_warehouse()`` returns the DuckDB file (``WAREHOUSE=duckdb``, the embedded default)
or BigQuery (``WAREHOUSE=bigquery``); training, scoring, allocation, import and the
promotion ledger use only this interface, so switching is configuration.

SQL passed in is the common subset of both dialects: relations come from
``relation(schema, table)``, values are ``?`` parameters (never string-built), casts are
``CAST(? AS DATE)``. Schemas are logical (raw, marts, ml, ...): on BigQuery they map to
datasets ``<BQ_DATASET_PREFIX>_<schema>``.

Writes are idempotent and atomic per table: ``replace_tables`` swaps whole tables only
after every new one is staged, ``replace_rows`` deletes a key's rows and inserts the new
ones in one transaction (DuckDB) or one MERGE (BigQuery). A failure leaves the old rows.

``importer.py`` brings a retailer's own files into the raw tables through this interface.
May import: ``ml.settings`` and ``ml.schema`` only.
"""

from __future__ import annotations

from ml.warehouse.base import Data, Warehouse, split_name
from ml.warehouse.embedded import DuckDBWarehouse, connect, qualified, replace_tables, table_exists


def get_warehouse() -> Warehouse:
    """The configured warehouse (reads the environment now, not at import)."""
    from ml.settings import get_settings

    settings = get_settings()
    if settings.warehouse == "bigquery":
        from ml.warehouse.bigquery import BigQueryWarehouse  # google-cloud only when asked

        return BigQueryWarehouse(settings.bigquery)
    return DuckDBWarehouse(settings.warehouse_path)


__all__ = ["Data", "DuckDBWarehouse", "Warehouse", "connect", "get_warehouse", "qualified",
           "replace_tables", "split_name", "table_exists"]
