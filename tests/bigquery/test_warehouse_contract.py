"""The warehouse interface's contract, run against both implementations: the DuckDB file
and BigQuery (bqemulator on 127.0.0.1). Every read and write the platform uses."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.warehouse import Warehouse, get_warehouse

DAY = dt.date(2024, 3, 1)
LATER = dt.date(2024, 4, 1)


@pytest.fixture(params=["duckdb", "bigquery"])
def wh(request, tmp_path, monkeypatch) -> Warehouse:
    if request.param == "bigquery":
        request.getfixturevalue("on_bigquery")
    else:
        monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "contract.duckdb"))
    warehouse = get_warehouse()
    assert warehouse.kind == request.param
    return warehouse


def _orders() -> pa.Table:
    moment = dt.datetime(2024, 2, 1, 9, 30)
    return pa.table({
        "order_id": ["o1", "o2", "o3", "o4"],
        "customer_id": ["a", "b", "a", "c"],
        "ordered_at": [moment, moment, moment + dt.timedelta(days=1), moment],
        "revenue": [10.0, 25.5, None, 7.25],
        "items": pa.array([1, 3, 2, 1], pa.int64()),
        "first_order": [True, True, False, True],
        "order_date": [DAY, DAY, LATER, DAY],
    })


def _scores(rows: dict[str, float]) -> pa.Table:
    return pa.table({"customer_id": list(rows), "score": list(rows.values())})


SCORES_SQL = ("SELECT customer_id, CAST(? AS DATE) AS as_of_date, ? AS model_name, score, "
              "ntile(2) OVER (ORDER BY score DESC, customer_id) AS decile FROM {shards}")


def _sorted(table: pa.Table, *keys: str) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in keys))


def test_tables_round_trip_with_types(wh):
    wh.replace_tables({"raw.orders": _orders()})
    assert wh.table_exists("raw", "orders") and not wh.table_exists("raw", "nope")
    assert wh.columns("raw", "orders") == _orders().column_names
    assert ("raw", "orders") in wh.tables()
    back = wh.read_arrow(f"SELECT * FROM {wh.relation('raw', 'orders')}")
    assert _sorted(back, "order_id") == _sorted(_orders(), "order_id")


def test_query_parameters_of_every_type(wh):
    wh.replace_tables({"raw.orders": _orders()})
    table = wh.relation("raw", "orders")
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE customer_id = ?", ["a"]) == 2
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE revenue > ?", [9.5]) == 2
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE items >= ?", [2]) == 2
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE order_date = CAST(? AS DATE)",
                     [LATER]) == 1
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE first_order = ?", [False]) == 1
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE ordered_at > ?",
                     [dt.datetime(2024, 2, 1, 12)]) == 1
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE customer_id IN UNNEST(?)"
                     if wh.kind == "bigquery" else
                     f"SELECT count(*) FROM {table} WHERE list_contains(?, customer_id)",
                     [["a", "c"]]) == 3
    # a value is never spliced into SQL: a quote in it is just a character
    assert wh.scalar(f"SELECT count(*) FROM {table} WHERE customer_id = ?", ["a' OR '1'='1"]) == 0


def test_read_batches_are_bounded_and_complete(wh):
    n = 2_500
    wh.replace_tables({"marts.population": pa.table({
        "customer_id": [f"c{i:05d}" for i in range(n)], "x": [float(i) for i in range(n)]})})
    batches = list(wh.read_batches(f"SELECT * FROM {wh.relation('marts', 'population')} "
                                   "WHERE x >= ?", [500.0], batch_rows=400))
    assert max(b.num_rows for b in batches) <= 400
    assert sum(b.num_rows for b in batches) == n - 500
    ids = {v for b in batches for v in b.column("customer_id").to_pylist()}
    assert len(ids) == n - 500 and "c00500" in ids and "c00499" not in ids


def test_shards_partition_the_rows(wh):
    n = 1_000
    wh.replace_tables({"marts.population": pa.table({"customer_id": [f"c{i}" for i in range(n)]})})
    seen = []
    for shard in range(4):
        rows = wh.query(f"SELECT customer_id FROM {wh.relation('marts', 'population')} "
                        f"WHERE {wh.shard_predicate('customer_id', 4, shard)}")
        assert 0 < rows.num_rows < n
        seen += rows.column(0).to_pylist()
    assert sorted(seen) == sorted(f"c{i}" for i in range(n))  # disjoint and complete


def test_replace_rows_is_idempotent_and_keeps_other_keys(wh, tmp_path):
    shard = tmp_path / "shard-0.parquet"
    pq.write_table(_scores({"a": 0.9, "b": 0.2, "c": 0.5}), shard)
    args = dict(sources={"shards": [shard]}, partition_by="as_of_date", cluster_by=["customer_id"])
    assert wh.replace_rows("ml", "scores", SCORES_SQL, [DAY, "churn"],
                           key={"model_name": "churn", "as_of_date": DAY}, **args) == 3
    wh.replace_rows("ml", "scores", SCORES_SQL, [DAY, "other"],
                    key={"model_name": "other", "as_of_date": DAY}, **args)
    first = wh.query(f"SELECT * FROM {wh.relation('ml', 'scores')}")
    assert wh.replace_rows("ml", "scores", SCORES_SQL, [DAY, "churn"],
                           key={"model_name": "churn", "as_of_date": DAY}, **args) == 3
    again = wh.query(f"SELECT * FROM {wh.relation('ml', 'scores')}")
    keys = ("model_name", "customer_id")
    assert _sorted(again, *keys) == _sorted(first, *keys)
    assert first.num_rows == 6
    top = [r for r in again.to_pylist() if r["model_name"] == "churn" and r["decile"] == 1]
    assert {r["customer_id"] for r in top} == {"a", "c"}

    # a new population for the key replaces exactly that key's rows
    assert wh.replace_rows("ml", "scores", SCORES_SQL, [DAY, "churn"],
                           key={"model_name": "churn", "as_of_date": DAY},
                           sources={"shards": _scores({"d": 0.1})}) == 1
    counts = {r["model_name"]: r["n"] for r in wh.query(
        f"SELECT model_name, count(*) AS n FROM {wh.relation('ml', 'scores')} "
        "GROUP BY model_name").to_pylist()}
    assert counts == {"churn": 1, "other": 3}


def test_failed_writes_leave_the_previous_rows(wh, tmp_path):
    wh.replace_tables({"raw.orders": _orders()})
    wh.replace_rows("ml", "scores", SCORES_SQL, [DAY, "churn"],
                    key={"model_name": "churn", "as_of_date": DAY},
                    sources={"shards": _scores({"a": 0.9})})
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error
        wh.replace_tables({"raw.orders": _orders().slice(0, 1),
                           "raw.customers": [tmp_path / "missing.parquet"]})
    assert wh.scalar(f"SELECT count(*) FROM {wh.relation('raw', 'orders')}") == 4
    assert not wh.table_exists("raw", "customers")
    with pytest.raises(Exception):  # noqa: B017
        wh.replace_rows("ml", "scores", "SELECT no_such_column FROM {shards}",
                        key={"model_name": "churn", "as_of_date": DAY},
                        sources={"shards": _scores({"b": 0.1})})
    assert wh.query(f"SELECT customer_id FROM {wh.relation('ml', 'scores')}").to_pylist() == [
        {"customer_id": "a"}]


def test_append_and_drop(wh):
    ledger = pa.table({"model": ["churn"], "decided_at": [dt.datetime(2024, 5, 1, 8)],
                       "gain": [0.01]})
    assert wh.append("ml", "ledger", ledger) == 1
    assert wh.append("ml", "ledger", ledger) == 1
    assert wh.scalar(f"SELECT count(*) FROM {wh.relation('ml', 'ledger')}") == 2
    wh.replace_tables({"raw.orders": _orders()})
    wh.replace_tables({}, drop=["raw.orders"])
    assert not wh.table_exists("raw", "orders")
    assert wh.columns("raw", "orders") == []


def test_bigquery_cleans_up_scratch_and_estimates_bytes(on_bigquery):
    wh = get_warehouse()
    wh.replace_tables({"raw.orders": _orders()})
    list(wh.read_batches(f"SELECT * FROM {wh.relation('raw', 'orders')}"))
    wh.append("ml", "ledger", pa.table({"model": ["churn"]}))
    assert not [t for t in wh.client.list_tables(f"{wh.settings.project}."
                                                 f"{wh.settings.dataset('scratch')}")]
    assert wh.estimates and all(stage for stage, _ in wh.estimates)
    # the emulator's dry run reports 0 bytes (a gap of bqemulator); BigQuery reports the scan
    assert isinstance(wh.estimate_bytes(f"SELECT * FROM {wh.relation('raw', 'orders')}"), int)
    prefix = wh.settings.dataset_prefix
    assert wh.table_id("marts", "x") == f"{wh.settings.project}.{prefix}_marts.x"


def test_replace_rows_adds_the_columns_an_output_gained(wh):
    """A table written by an older release lacks a column the output has since gained:
    the write adds it (nullable) instead of failing, and the older rows read NULL there."""
    old = "SELECT customer_id, CAST(? AS DATE) AS as_of_date, ? AS model_name, score FROM {s}"
    wh.replace_rows("ml", "targets", old, [DAY, "churn"], key={"model_name": "churn"},
                    sources={"s": _scores({"a": 0.9})})
    new = old.replace("score FROM", "score, score * 2 AS uplift FROM")
    assert wh.replace_rows("ml", "targets", new, [DAY, "other"], key={"model_name": "other"},
                           sources={"s": _scores({"b": 0.4})}) == 1
    table = wh.query(f"SELECT * FROM {wh.relation('ml', 'targets')}")
    assert table.column_names == ["customer_id", "as_of_date", "model_name", "score", "uplift"]
    rows = table.select(["model_name", "uplift"]).to_pylist()
    assert sorted(rows, key=lambda r: r["model_name"]) == [
        {"model_name": "churn", "uplift": None}, {"model_name": "other", "uplift": 0.8}]
