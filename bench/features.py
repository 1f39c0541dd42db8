"""Benchmark: generate N customers and build the feature marts with dbt.

    python bench/features.py [--customers 100000] [--years 3] [--dag]

Prints generation and dbt wall time, rows per second and peak memory. Target: 100k
customers, ~36 monthly snapshots, marts built in under 2 minutes.

``--dag`` also runs the features DAG in-process (Cosmos, one task per model, the way
`ml run` does) on the same data right after a plain ``dbt seed`` + ``dbt build
--full-refresh``, and prints both and their ratio (target: at most 1.3).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_state, peak_rss_mib, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--dag", action="store_true",
                        help="also time the features DAG against plain dbt (ratio)")
    args = parser.parse_args()
    state = isolated_state("bench-features-")
    from ml.dbt import compile_manifest, dbt_command
    from ml.sim.history import generate
    from ml.warehouse import connect

    results: dict[str, float] = {}
    compile_manifest()
    with timed("generate", results):
        summary = generate(customers=args.customers, seed=1, start=date(2023, 1, 1),
                           end=date(2023 + args.years - 1, 12, 31))
    with timed("dbt build (all models + tests)", results):
        run = dbt_command(["build", "--quiet"], check=False, capture=True)
    if run.returncode != 0:
        sys.exit(f"dbt build failed:\n{run.stdout[-3000:]}")
    with connect(read_only=True) as con:
        features, snapshots = con.execute(
            "SELECT count(*), count(DISTINCT as_of_date) FROM marts.customer_features").fetchall()[0]
    raw_rows = sum(v for k, v in summary.row_counts.items() if k.startswith("raw."))
    print(f"state dir                          {state}")
    print(f"customers                          {args.customers:,}")
    print(f"raw rows                           {raw_rows:,}")
    print(f"snapshots                          {snapshots}")
    print(f"customer_features rows             {features:,}")
    print(f"generation rows/s (raw)            {raw_rows / results['generate']:,.0f}")
    print(f"dbt feature rows/s                 {features / results['dbt build (all models + tests)']:,.0f}")
    print(f"peak RSS generator (this process)  {peak_rss_mib():,.0f} MiB")
    print(f"peak RSS dbt (child)               {peak_rss_mib(children=True):,.0f} MiB")
    if args.dag:
        _dag_against_plain_dbt(dbt_command)


def _dag_against_plain_dbt(dbt_command) -> None:
    """Plain dbt and the features DAG, one after the other on the same data."""
    from ml.ops.orchestration import ensure_airflow_ready, run_dag
    from ml.ops.runlog import captured_output, log_path

    ensure_airflow_ready()
    results: dict[str, float] = {}
    with timed("plain dbt seed + build --full-refresh", results):
        for command in (["seed", "--quiet"], ["build", "--quiet", "--full-refresh"]):
            if dbt_command(command, check=False, capture=True).returncode != 0:
                sys.exit(f"dbt {command[0]} failed")
    log = log_path("bench-features-dag")
    with timed("features DAG (in-process)", results), captured_output(log):
        report = run_dag("features", {"full_refresh": True})
    print(f"features DAG log                   {log}")
    tasks = len(report.tasks)
    ratio = results["features DAG (in-process)"] / results["plain dbt seed + build --full-refresh"]
    print(f"features DAG tasks                 {tasks}")
    print(f"DAG / plain dbt                    {ratio:.2f}x (target <= 1.3)")


if __name__ == "__main__":
    main()
