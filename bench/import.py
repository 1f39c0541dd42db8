"""Benchmark `ml import`: a 10-million-row orders CSV into a fresh warehouse.

The CSV is written by DuckDB's COPY from a generate_series query into a temporary
directory: ISO timestamps, plain amounts, 1% of amounts as "€12,50" (the slow parsing path)
and 0.05% unusable rows (unparseable timestamp), plus one column the contract does not know
(kept aside in raw.orders_extra). Prints rows per second, CPU seconds (all threads) and
the process's peak resident memory.

    .venv/bin/python bench/import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

from ml.warehouse.importer import import_files

LOAD_TIME = datetime(2026, 1, 1)


def write_orders_csv(path: Path, rows: int) -> float:
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute(f"""
            COPY (
                SELECT
                    'O' || i AS order_id,
                    'C' || (hash(i) % (? // 8)) AS customer_id,
                    CASE WHEN i % 2000 = 7 THEN 'n/a'
                         ELSE strftime(TIMESTAMP '2023-01-01'
                              + to_seconds((hash(i * 7) % (3 * 365 * 86400))::BIGINT),
                              '%Y-%m-%d %H:%M:%S') END AS ordered_at,
                    CASE WHEN i % 100 = 3
                         THEN '€' || replace(printf('%.2f', (hash(i * 13) % 20000) / 100), '.', ',')
                         ELSE printf('%.2f', (hash(i * 13) % 20000) / 100) END AS revenue,
                    printf('%.2f', (hash(i * 17) % 500) / 100) AS discount,
                    ['completed', 'completed', 'completed', 'returned', 'cancelled'][1 + i % 5]
                        AS status,
                    ['web', 'app', 'store'][1 + i % 3] AS order_channel,
                    CASE WHEN i % 10 = 0 THEN 'SPRING' || (i % 7) END AS coupon_code
                FROM generate_series(1, {int(rows)}) AS g(i)
            ) TO '{path}' (HEADER)
        """, [rows])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="write the CSV and warehouse here, keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        csv_path, warehouse = workdir / "orders.csv", workdir / "warehouse.duckdb"
        warehouse.unlink(missing_ok=True)
        write_seconds = write_orders_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 2**20
        print(f"wrote {args.rows:,} rows ({size_mb:,.0f} MiB) in {write_seconds:.1f}s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        cpu_started, started = time.process_time(), time.perf_counter()
        report = import_files({"orders": csv_path}, warehouse_path=warehouse,
                              load_time=LOAD_TIME)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started

        print(report.summary())
        orders = report.tables["orders"]
        print(f"import: {seconds:.1f}s wall, {cpu:.1f}s CPU (all threads), "
              f"{orders.rows_read / seconds:,.0f} rows/s")
        print(f"peak RSS: {report.peak_rss_mb:,.0f} MiB (before the import: {rss_before:,.0f} MiB)")
        print(f"warehouse: {warehouse.stat().st_size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
