"""Speed run: each GBM library raw and inside our pipeline, on the churn training set's shape.

    python bench/learners.py [--rows 100000,1000000] [--libraries xgboost,lightgbm,...]
                             [--state DIR] [--customers 3000] [--repeat 1]

GBM-perf's fixed configuration (szilard/GBM-perf: 100 trees, depth 10, learning rate 0.1;
LightGBM and HistGradientBoosting capped at 512 leaves) on rows drawn with replacement from
a real churn training set (built in an isolated state dir, or reused with --state), so
columns, types, nulls and categories are the marts' own. "raw" fits the library's
estimator (the pipeline's own last step, built the same way: the very same settings) on
data already in the form it takes natively, prepared outside the timer; "pipeline" fits
``build_pipeline``'s whole pipeline on the feature frame, preprocessing included. The
ratio pipeline / raw is our overhead, measured in the same run; target <= 1.3. Wall and
CPU seconds are printed; the target is judged on CPU time, which a machine shared with
other jobs disturbs far less (it leaves out the time the process waited for a core).

Threads: ML_N_JOBS for both (default 1). ML_DEVICE=cuda trains XGBoost and LightGBM on the
GPU (LightGBM needs a CUDA build); the rest stay on the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

FIXED = {  # GBM-perf: 100 trees, depth 10, learning rate 0.1
    "xgboost": {"n_estimators": 100, "max_depth": 10, "learning_rate": 0.1},
    "lightgbm": {"n_estimators": 100, "max_depth": 10, "num_leaves": 512, "learning_rate": 0.1},
    "catboost": {"iterations": 100, "depth": 10, "learning_rate": 0.1},
    "hist_gradient_boosting": {"max_iter": 100, "max_depth": 10, "max_leaf_nodes": 512,
                               "learning_rate": 0.1, "early_stopping": False},
}
TARGET_RATIO = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--libraries", default=",".join(FIXED))
    parser.add_argument("--state", help="existing state dir with a built churn training set")
    parser.add_argument("--customers", type=int, default=3000,
                        help="history to generate when no --state is given")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fits per variant, alternating; the fastest counts")
    args = parser.parse_args()
    if args.state:
        os.environ["BENCH_STATE_DIR"] = args.state
    from _common import isolated_state, peak_rss_mib

    state = isolated_state("bench-learners-")
    import numpy as np

    from ml.dbt import compile_manifest, dbt_command
    from ml.modeling.learners import build_pipeline, training_device, training_threads
    from ml.modeling.specs import Learner, get_spec
    from ml.modeling.training_data import load_training_set
    from ml.warehouse import get_warehouse

    spec = get_spec("churn")
    if not get_warehouse().table_exists("marts", "churn_training_set"):
        from ml.sim.history import generate

        compile_manifest()
        generate(customers=args.customers, seed=42, start=date(2023, 1, 1),
                 end=date(2025, 12, 31))
        dbt_command(["run", "--quiet", "--select", "+churn_training_set"], capture=True)
    data = load_training_set(spec)
    source = data.frame[data.features]
    labels = data.frame[spec.columns.label].to_numpy(dtype=float)
    print(f"state dir {state}; churn training set {len(source):,} rows x "
          f"{len(data.numeric)} numeric + {len(data.categorical)} categorical features; "
          f"threads {training_threads()}, device {training_device()}")
    print(f"{'library':<24} {'rows':>10} {'raw s':>8} {'pipeline s':>11} {'ratio':>6} "
          f"{'raw cpu s':>10} {'pipeline cpu s':>15} {'cpu ratio':>10}")

    def fit_seconds(estimator, X, y) -> tuple[float, float]:
        """Wall and CPU seconds of one fit. CPU time is the steadier figure on a machine
        shared with other jobs: it does not count the time the process waited for a core."""
        wall, cpu = time.perf_counter(), time.process_time()
        estimator.fit(X, y)
        return time.perf_counter() - wall, time.process_time() - cpu

    worst = 0.0
    for rows in [int(r) for r in args.rows.split(",")]:
        pick = np.random.default_rng(0).integers(0, len(source), rows)
        X = source.iloc[pick].reset_index(drop=True)
        y = labels[pick]
        for library in args.libraries.split(","):
            def make(library=library):
                return build_pipeline(Learner(kind=library, params=FIXED[library]), spec.task,
                                      data.numeric, data.categorical, spec.horizon_days)

            native = make().steps[0][1].fit_transform(X)  # outside the timer
            raw, inside = [], []
            for _ in range(args.repeat):  # alternate, so a busy spell hits both alike
                raw.append(fit_seconds(make().steps[-1][1], native, y))
                inside.append(fit_seconds(make(), X, y))
            (raw_wall, raw_cpu), (in_wall, in_cpu) = min(raw), min(inside)
            ratio = in_cpu / raw_cpu
            worst = max(worst, ratio)
            print(f"{library:<24} {rows:>10,} {raw_wall:>8.1f} {in_wall:>11.1f} "
                  f"{in_wall / raw_wall:>6.2f} {raw_cpu:>10.1f} {in_cpu:>15.1f} {ratio:>10.2f}",
                  flush=True)
    print(f"worst pipeline/raw CPU-time ratio {worst:.2f} (target <= {TARGET_RATIO}); "
          f"peak RSS {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
