"""Benchmark: back-test and final fit of one model (default churn) on N customers.

    python bench/train.py [--customers 100000] [--model churn] [--state DIR]

Reuses a state dir from bench/features.py (--state) or builds one. Prints wall time per
stage, rows per second, peak memory, and XGBoost's fit time alone (our overhead).
Targets: the whole training job under 5 minutes; log and register under 10 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--model", default="churn")
    parser.add_argument("--state", help="existing state dir with built marts")
    args = parser.parse_args()
    if args.state:
        os.environ["BENCH_STATE_DIR"] = args.state
    from _common import isolated_state, peak_rss_mib

    isolated_state("bench-train-")
    from ml.dbt import compile_manifest, dbt_command
    from ml.warehouse import connect, table_exists

    with connect() as con:
        built = table_exists(con, "marts", "churn_training_set")
    if not built:
        from ml.sim.history import generate

        compile_manifest()
        generate(customers=args.customers, seed=1, start=date(2023, 1, 1), end=date(2025, 12, 31))
        dbt_command(["build", "--quiet"], capture=True)

    from ml.modeling.learners import build_pipeline
    from ml.modeling.specs import get_spec
    from ml.modeling.train import train_model
    from ml.modeling.training_data import load_training_set

    started = time.perf_counter()
    result = train_model(args.model)
    total = time.perf_counter() - started
    for stage, seconds in result["stage_seconds"].items():
        print(f"{stage:<20} {seconds:8.1f} s")
    print(f"{'total':<20} {total:8.1f} s")
    rows = result["rows"]["used"]
    print(f"training rows        {rows:,} (source {result['rows']['source']:,}, "
          f"sampled={result['rows']['sampled']})")
    print(f"final fit rows/s     {rows / result['stage_seconds']['final_fit']:,.0f}")

    spec = get_spec(args.model)
    data = load_training_set(spec)
    model = build_pipeline(spec.learners[spec.candidate], spec.task, data.numeric,
                           data.categorical, spec.horizon_days)
    X = model.named_steps["prep"].fit_transform(data.frame[data.features])
    y = data.frame[spec.columns.label].to_numpy(dtype=float)
    started = time.perf_counter()
    model.named_steps["model"].fit(X, y)
    xgb_alone = time.perf_counter() - started
    print(f"XGBoost fit alone    {xgb_alone:8.1f} s (final fit incl. preprocessing: "
          f"{result['stage_seconds']['final_fit']:.1f} s)")
    print(f"peak RSS             {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
