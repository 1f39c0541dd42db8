"""Benchmark: generate N customers and build the feature marts with dbt.

    python bench/features.py [--customers 100000] [--years 3]

Prints generation and dbt wall time, rows per second and peak memory. Target: 100k
customers, ~36 monthly snapshots, marts built in under 2 minutes.
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


if __name__ == "__main__":
    main()
