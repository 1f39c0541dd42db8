"""Benchmark: the media-mix model against the simulator's truth.

    python bench/mmm.py [--customers 3000 60000] [--seed 42] [--start 2023-01-01] [--end 2025-12-31]
                        [--chains 2 --draws 400 --tune 400]

For each size, the media world of ``ml.sim.media`` (the generator's own baseline profile)
and its daily new customers, drawn the way the generator draws signup days (a multinomial
over the days in proportion to the true rate: the full generator is not needed for the
outcome series), go through the model exactly as the mart feeds it (``ml.mmm.data`` ->
weekly periods -> PyMC-Marketing fit with the spec's sampler). Printed per size:

- ROI per channel: truth (contribution / spend over the fitted weeks) and the model's 90%
  credible interval; how many channels' truth lies inside (target: >= 4 of 5);
- holdout MAPE of weekly new customers over the last 8 weeks (target <= 10%; the model's
  period is a week, daily counts at these sizes are mostly Poisson noise);
- the plan for the current total budget within the default +-30% bounds, evaluated on the
  TRUE response curves: share of the best achievable allocation under the same bounds
  (target >= 95%) and gain over keeping the current split (target > 0);
- fit time (target < 5 minutes), diagnostics.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import isolated_state  # noqa: E402


def media_rows(customers: int, seed: int, start: date, end: date):
    from ml.sim import history, media

    n_days = (end - start).days + 1
    baseline = history._calendar(start, end).signups.weights[:n_days]
    in_window = customers * (1 - history.PRE_START_SHARE)
    world = media.simulate_media(seed, start, end, baseline, in_window)
    y = media.draw_daily_new_customers(world, int(round(in_window)), seed)
    k = len(media.PAID_CHANNELS)
    rows = pd.DataFrame({"date": np.repeat(world.days, k), "channel": np.tile(media.PAID_CHANNELS, n_days),
                         "spend": np.round(world.spend, 2).ravel(), "new_customers": np.repeat(y, k),
                         "promotion": np.repeat(world.promotion, k)})
    return world, rows


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the C compiler): on a shared
    box the wall time measures the neighbours too."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_true_allocation(world, budget: float, days: int, lower, upper) -> np.ndarray:
    from scipy.optimize import minimize

    def value(total):
        return -world.true_daily_outcome(np.asarray(total) / days) * days

    best = None
    for start in (lower + (budget - lower.sum()) * (upper - lower) / (upper - lower).sum(),
                  np.clip(np.full(len(lower), budget / len(lower)), lower, upper)):
        result = minimize(value, start, method="SLSQP", bounds=list(zip(lower, upper, strict=True)),
                          constraints=[{"type": "eq", "fun": lambda z: z.sum() - budget}],
                          options={"ftol": 1e-12, "maxiter": 1000})
        if best is None or result.fun < best.fun:
            best = result
    return best.x


def run_size(customers: int, args) -> dict:
    from ml.mmm import data, model, plan
    from ml.mmm.spec import load_media_spec
    from ml.sim.media import PAID_CHANNELS

    spec = load_media_spec().with_overrides(sampler={k: v for k, v in {
        "chains": args.chains, "draws": args.draws, "tune": args.tune}.items() if v})
    world, rows = media_rows(customers, args.seed, args.start, args.end)
    frame = data.to_periods(rows, spec)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    fit = model.fit(spec, frame)
    total_seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    params = model.posterior_response_params(fit, draws=int(spec.plan["draws"]))
    current_weeks = int(spec.plan["current_weeks"])
    params["current_spend"] = frame.table[frame.channels].iloc[-current_weeks:].mean().tolist()
    roi = model.roi_table(fit, params)

    days = pd.to_datetime(world.days)
    fitted = (days >= fit.train["date"].iloc[0]) & (days < fit.train["date"].iloc[-1] + pd.Timedelta(days=7))
    truth = world.contribution[fitted].sum(axis=0) / world.spend[fitted].sum(axis=0)
    index = [PAID_CHANNELS.index(c) for c in frame.channels]
    covered = 0
    print(f"\n== {customers:,} customers: {fit.train['y'].mean():.1f} new customers a week "
          f"(fit {fit.seconds:.0f} s; with diagnostics and holdout {total_seconds:.0f} s wall, "
          f"{cpu_seconds:.0f} s CPU incl. compiler processes; load average {os.getloadavg()[0]:.1f}) ==")
    print(f"{'channel':<12} {'true ROI':>9} {'model mean':>11} {'90% CI':>21}  inside")
    for c, channel in enumerate(frame.channels):
        r = roi[channel]["roi"]
        inside = r["low"] <= truth[index[c]] <= r["high"]
        covered += inside
        print(f"{channel:<12} {truth[index[c]]:9.4f} {r['mean']:11.4f} "
              f"{r['low']:9.4f} .. {r['high']:.4f}  {'yes' if inside else 'NO'}")
    hold, diag = fit.holdout_metrics, fit.diagnostics
    print(f"ROI truth inside the 90% CI: {covered} of {len(frame.channels)} (target >= 4)")
    print(f"holdout ({hold['periods']} weeks): MAPE {hold['mape']:.3f} (target <= 0.10; naive "
          f"{hold['naive_mape']:.3f}), CRPS {hold['crps']:.2f}, 90% coverage {hold['coverage']:.0%}")
    print(f"diagnostics: max R-hat {diag['max_rhat']:.3f}, min ESS {diag['min_ess_bulk']:.0f}, "
          f"divergences {diag['divergences']}/{diag['draws']}, PPC coverage {diag['ppc_coverage']:.0%}")

    weeks = int(spec.plan["weeks"])
    budget = float(np.sum(params["current_spend"])) * weeks
    made = plan.make_plan(budget, None, weeks, spec, ("bench", params))
    table = made.table.set_index("channel").loc[frame.channels]
    order = [frame.channels.index(c) for c in PAID_CHANNELS]
    planned = table["planned_spend"].to_numpy()[order]
    current = table["current_spend"].to_numpy()[order]
    lower, upper = table["lower"].to_numpy()[order], table["upper"].to_numpy()[order]
    n_days = 7 * weeks
    best = best_true_allocation(world, budget, n_days, lower, upper)

    def true_value(total):
        return world.true_daily_outcome(np.asarray(total) / n_days) * n_days

    v_plan, v_best, v_current = true_value(planned), true_value(best), true_value(current)
    print(f"plan of {budget:,.0f} over {weeks} weeks (bounds +-30%): true media customers "
          f"{v_plan:.2f}; best under the same bounds {v_best:.2f}; current split {v_current:.2f}")
    print(f"plan / best = {v_plan / v_best:.4f} (target >= 0.95); plan - current = "
          f"{v_plan - v_current:+.3f} ({(v_plan / v_current - 1):+.2%}; target > 0)")
    print("planned vs best vs current: " + ", ".join(
        f"{ch} {p:,.0f}/{b:,.0f}/{c:,.0f}" for ch, p, b, c in zip(PAID_CHANNELS, planned, best, current, strict=True)))
    print(f"fit time {fit.seconds:.0f} s wall, fit + diagnostics + holdout {cpu_seconds:.0f} s CPU "
          "(target < 300 s)")
    return {"customers": customers, "covered": covered, "mape": hold["mape"],
            "plan_share_of_best": v_plan / v_best, "plan_gain": v_plan - v_current,
            "fit_seconds": fit.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[3000, 60000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    parser.add_argument("--chains", type=int)
    parser.add_argument("--draws", type=int)
    parser.add_argument("--tune", type=int)
    args = parser.parse_args()
    isolated_state("bench-mmm-")
    os.environ["PYTENSOR_FLAGS"] = f"compiledir={Path(__file__).resolve().parents[1] / '.local' / 'pytensor'}"
    for customers in args.customers:
        run_size(customers, args)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    main()
