"""Benchmark: the same feature build on DuckDB and on BigQuery (bqemulator on 127.0.0.1).

    python bench/warehouse.py [--customers 300] [--years 2]

Generates one synthetic history, builds every dbt model and test on the DuckDB file,
loads the same raw tables into the emulator and builds there, then compares every mart
row by row (sorted by its keys, floats within 1e-9 relative) and prints the dry-run
estimate of bytes scanned per stage: each dbt model's compiled SQL and the Python
layer's queries (training-set read, scoring population, campaign candidates).
bqemulator answers dry runs with 0 bytes: on BigQuery the same script prints the real
estimates (point BQ_* at a project and skip the emulator with --no-emulator).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_state, peak_rss_mib, timed  # noqa: E402


def _dbt_build(results: dict, label: str) -> None:
    from ml.dbt import dbt_command

    with timed(label, results):
        run = dbt_command(["build", "--quiet"], check=False, capture=True)
    if run.returncode != 0:
        sys.exit(f"{label} failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}")


def _compiled_models(target_dir: Path) -> dict[str, str]:
    root = target_dir / "compiled" / "customer_ml" / "models"
    return {path.stem: path.read_text() for path in sorted(root.rglob("*.sql"))
            if path.parent.suffix != ".yml"}  # models only, not the tests defined in YAML


def _python_stages(wh) -> dict[str, str]:
    features = wh.relation("marts", "customer_features")
    return {
        "train: read churn_training_set":
            f"SELECT * FROM {wh.relation('marts', 'churn_training_set')}",
        "score: churn population (1 shard)": (
            f"SELECT * FROM {features} WHERE as_of_date = (SELECT max(as_of_date) FROM "
            f"{features}) AND in_churn_population"),
        "allocate: customer value": f"SELECT customer_id, revenue_365d FROM {features}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--no-emulator", action="store_true",
                        help="use the BigQuery the BQ_* variables point at")
    args = parser.parse_args()
    state = isolated_state("bench-warehouse-")
    from ml.dbt import compile_manifest
    from ml.marts import MART_KEYS
    from ml.ops import emulator
    from ml.settings import get_settings
    from ml.sim.history import generate
    from ml.warehouse import DuckDBWarehouse, get_warehouse
    from tests.support.parity import compare_table

    results: dict[str, float] = {}
    os.environ["WAREHOUSE"] = "duckdb"
    compile_manifest()
    duck = DuckDBWarehouse(get_settings().warehouse_path)
    with timed("generate (DuckDB)", results):
        generate(customers=args.customers, seed=5, start=date(2023, 1, 1),
                 end=date(2023 + args.years - 1, 12, 31))
    _dbt_build(results, "dbt build on DuckDB")

    running = None
    if not args.no_emulator:
        with timed("start bqemulator", results):
            running = emulator.start(Path(state) / "bqemulator")
        os.environ.update(running.environment(dataset_prefix="bench"))
    os.environ["WAREHOUSE"] = "bigquery"
    try:
        bq = get_warehouse()
        raw = {f"raw.{t}": duck.read_arrow(f"SELECT * FROM {duck.relation('raw', t)}")
               for s, t in duck.tables() if s == "raw"}
        with timed("load raw into BigQuery", results):
            bq.replace_tables(raw)
        _dbt_build(results, "dbt build on BigQuery")

        print("\nparity (row by row)")
        all_equal = True
        for mart, keys in MART_KEYS.items():
            parity = compare_table(duck, bq, "marts", mart, keys)
            all_equal &= parity.equal
            verdict = "identical" if parity.equal else "DIFFERENT"
            print(f"  {parity.table:<44} {parity.left_rows:>9,} vs {parity.right_rows:>9,}  "
                  f"{verdict}")
            for line in parity.differences:
                print(f"      {line}")

        print("\ndry-run estimate of bytes scanned per stage")
        stages = {f"dbt: {name}": sql for name, sql in
                  _compiled_models(get_settings().dbt_target_dir).items()}
        stages.update(_python_stages(bq))
        total = 0
        for stage, sql in stages.items():
            estimate = bq.estimate_bytes(sql)
            total += estimate or 0
            shown = f"{estimate:,}" if estimate is not None else "?"
            print(f"  {stage:<52} {shown:>14} bytes")
        print(f"  {'total':<52} {total:>14,} bytes")
        if running:
            print("  (bqemulator reports 0 bytes for every dry run: a gap of the emulator)")
    finally:
        if running:
            running.stop()
    print(f"\nstate dir                          {state}")
    print(f"customers                          {args.customers:,}")
    print(f"peak RSS (this process)            {peak_rss_mib():,.0f} MiB")
    print(f"peak RSS (dbt, children)           {peak_rss_mib(children=True):,.0f} MiB")
    print(f"marts identical                    {'yes' if all_equal else 'NO'}")
    sys.exit(0 if all_equal else 1)


if __name__ == "__main__":
    main()
