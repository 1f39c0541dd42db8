"""Benchmark: the closed loop, measured on the synthetic world.

    python bench/policy.py [--seeds 3] [--customers 10000] [--state DIR]

**Readout coverage and CUPED** (``coverage``): for each seed, a history with its past
randomised retention tests (``ml.sim.campaigns``: 10 campaigns over three years), the
real dbt build of ``marts.campaign_outcomes``, and the readout of every campaign
(``ml.experiments.readout.read_out``). Against the true average effect of each campaign
(the mean of ``eval.campaign_effects.effect`` over its customers) it prints how often the
readout's 95% interval covers it, with and without CUPED, and how much CUPED narrows the
interval. Targets: coverage 90-98% over at least 20 campaigns; CUPED cuts the interval's
width by at least 20%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))


def _history(customers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a history and build its campaign outcomes with dbt: (outcomes, truth)."""
    from ml.dbt import dbt_command
    from ml.sim.history import generate
    from ml.warehouse import get_warehouse

    generate(customers=customers, seed=seed, start=date(2023, 1, 1), end=date(2025, 12, 31))
    built = dbt_command(["build", "--select", "+campaign_outcomes", "retention_channels",
                         "--indirect-selection", "cautious"], capture=True, check=False)
    if built.returncode:
        raise SystemExit(f"dbt build failed:\n{built.stdout[-3000:]}")
    wh = get_warehouse()
    outcomes = wh.read_arrow(f"SELECT * FROM {wh.relation('marts', 'campaign_outcomes')}"
                             ).to_pandas()
    truth = wh.read_arrow(f"SELECT * FROM {wh.relation('eval', 'campaign_effects')}").to_pandas()
    return outcomes, truth


def coverage(seeds: int, customers: int) -> dict:
    from ml.experiments.readout import read_out

    rows = []
    for seed in range(1, seeds + 1):
        started = time.perf_counter()
        outcomes, truth = _history(customers, seed)
        true_effect = truth.groupby("campaign")["effect"].mean()
        for campaign, part in outcomes[outcomes["is_matured"]].groupby("campaign"):
            readout = read_out(part)
            overall = readout[(readout["segment_type"] == "all")].set_index("metric")
            retention = overall.loc["retention"]
            rows.append({
                "seed": seed, "campaign": campaign, "customers": len(part),
                "true_effect": true_effect[campaign],
                "effect": retention["effect"], "low": retention["ci_low"],
                "high": retention["ci_high"], "effect_cuped": retention["effect_cuped"],
                "low_cuped": retention["ci_low_cuped"], "high_cuped": retention["ci_high_cuped"],
                "variance_reduction": retention["variance_reduction"],
                "revenue_variance_reduction": overall.loc["revenue", "variance_reduction"],
                "revenue_width": (overall.loc["revenue", "ci_high"]
                                  - overall.loc["revenue", "ci_low"]),
                "revenue_width_cuped": (overall.loc["revenue", "ci_high_cuped"]
                                        - overall.loc["revenue", "ci_low_cuped"]),
                "srm": retention["srm_status"],
            })
        print(f"seed {seed}: {len(outcomes):,} assignments in "
              f"{outcomes['campaign'].nunique()} campaigns ({time.perf_counter() - started:.0f} s)",
              flush=True)
    frame = pd.DataFrame(rows)
    covered = (frame["low"] <= frame["true_effect"]) & (frame["true_effect"] <= frame["high"])
    covered_cuped = ((frame["low_cuped"] <= frame["true_effect"])
                     & (frame["true_effect"] <= frame["high_cuped"]))
    width = frame["high"] - frame["low"]
    width_cuped = frame["high_cuped"] - frame["low_cuped"]
    n = len(frame)
    result = {
        "campaigns": n,
        "coverage": float(covered.mean()), "coverage_ci": _wilson(int(covered.sum()), n),
        "coverage_cuped": float(covered_cuped.mean()),
        "coverage_cuped_ci": _wilson(int(covered_cuped.sum()), n),
        "mean_width": float(width.mean()), "mean_width_cuped": float(width_cuped.mean()),
        "width_reduction": float(1 - width_cuped.mean() / width.mean()),
        "variance_reduction_median": float(frame["variance_reduction"].median()),
        "revenue_variance_reduction_median": float(frame["revenue_variance_reduction"].median()),
        "revenue_width_reduction": float(1 - frame["revenue_width_cuped"].mean()
                                         / frame["revenue_width"].mean()),
        "srm_failures": int((frame["srm"] == "fail").sum()),
    }
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.drop(columns=["revenue_width", "revenue_width_cuped"]).round(4)
              .to_string(index=False))
    print(f"\nReadout coverage of the true average effect on retention over {n} campaigns "
          f"({seeds} seeds x {customers:,} customers):")
    print(f"  plain 95% CI: {result['coverage']:.1%} covered (95% CI "
          f"{result['coverage_ci'][0]:.1%}..{result['coverage_ci'][1]:.1%}), mean width "
          f"{result['mean_width']:.4f}")
    print(f"  CUPED 95% CI: {result['coverage_cuped']:.1%} covered (95% CI "
          f"{result['coverage_cuped_ci'][0]:.1%}..{result['coverage_cuped_ci'][1]:.1%}), mean "
          f"width {result['mean_width_cuped']:.4f}")
    print(f"  CUPED narrows the retention interval by {result['width_reduction']:.1%} (median "
          f"variance removed {result['variance_reduction_median']:.1%}); target >= 20%: "
          f"{'met' if result['width_reduction'] >= 0.2 else 'NOT met'}")
    print(f"  CUPED narrows the revenue interval by {result['revenue_width_reduction']:.1%} "
          f"(median variance removed {result['revenue_variance_reduction_median']:.1%}); "
          f"target >= 20%: {'met' if result['revenue_width_reduction'] >= 0.2 else 'NOT met'}")
    target = 0.9 <= result["coverage_cuped"] <= 0.98 and n >= 20
    print(f"  coverage target 90-98% over >= 20 campaigns: {'met' if target else 'NOT met'}; "
          f"sample-ratio failures: {result['srm_failures']}")
    return result


def _wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return float(centre - half), float(centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--state", help="state dir to use (default: a fresh temp dir)")
    args = parser.parse_args()
    if args.state:
        os.environ["BENCH_STATE_DIR"] = args.state
    from _common import isolated_state

    isolated_state("bench-policy-")
    from ml.dbt import compile_manifest

    compile_manifest()
    coverage(args.seeds, args.customers)


if __name__ == "__main__":
    main()
