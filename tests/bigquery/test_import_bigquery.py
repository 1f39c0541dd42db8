"""`ml import` into BigQuery: parsed, checked and quarantined in a scratch DuckDB file, then
loaded into the raw dataset by load jobs; stale tables are dropped; a failure keeps the
previous tables; importing twice gives identical tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ml.warehouse import get_warehouse
from ml.warehouse.importer import ImportFailed, import_files, load_mapping

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop_export"
LOAD_TIME = datetime(2026, 11, 1)  # after the example export ends


def _dump(wh, table: str) -> list[dict]:
    rows = wh.query(f"SELECT * FROM {wh.relation('raw', table)}").to_pylist()
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def test_example_export_lands_in_bigquery_and_reimports_identically(on_bigquery, tmp_path):
    files = {"orders": EXAMPLE / "orders.csv", "customers": EXAMPLE / "customers.csv"}
    mapping = load_mapping(EXAMPLE / "mapping.yml")
    report = import_files(files, mapping=mapping, load_time=LOAD_TIME, max_rejected_share=0.01)
    wh = get_warehouse()
    assert report.committed and report.warehouse == str(wh)
    assert {t for s, t in wh.tables() if s == "raw"} == {
        "orders", "orders_extra", "customers", "quarantine"}
    orders = report.tables["orders"]
    assert wh.scalar(f"SELECT count(*) FROM {wh.relation('raw', 'orders')}") == orders.rows_loaded
    assert wh.scalar(f"SELECT count(*) FROM {wh.relation('raw', 'customers')}") == 800
    assert wh.scalar(f"SELECT count(*) FROM {wh.relation('raw', 'quarantine')}") == (
        orders.rows_quarantined)
    assert [r["status"] for r in wh.query(
        f"SELECT DISTINCT status FROM {wh.relation('raw', 'orders')} ORDER BY 1").to_pylist()] == [
        "cancelled", "completed", "returned"]
    first = {t: _dump(wh, t) for t in ("orders", "orders_extra", "customers")}

    # the same files again: identical tables, nothing appended
    import_files(files, mapping=mapping, load_time=LOAD_TIME, max_rejected_share=0.01)
    assert {t: _dump(wh, t) for t in first} == first

    # a failed import (too many rejects) writes nothing
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,customer_id,ordered_at,revenue\no1,,2024-01-01,1\no2,c,n/a,1\n")
    with pytest.raises(ImportFailed, match="nothing was imported"):
        import_files({"orders": bad}, load_time=LOAD_TIME)
    assert {t: _dump(wh, t) for t in first} == first

    # orders only: the customers tables are dropped, as on DuckDB
    report = import_files({"orders": EXAMPLE / "orders.csv"}, mapping=mapping,
                          load_time=LOAD_TIME, max_rejected_share=0.01)
    assert report.dropped_tables == ["raw.customers"]
    assert not wh.table_exists("raw", "customers") and wh.table_exists("raw", "orders")
