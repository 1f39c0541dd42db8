"""Benchmark: the media-mix model against the simulator's truth.

    python bench/mmm.py [--customers 3000 60000] [--seed 42] [--start 2023-01-01] [--end 2025-12-31]
                        [--chains 2 --draws 400 --tune 400 --cores 2] [--no-calibration]

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
- fit time (target < 5 minutes), diagnostics;
- calibration (16.6): the generator's lift tests (one 4-week go-dark geo holdout per
  channel, honestly noisy: ``ml.sim.media``) enter a second fit through PyMC-Marketing's
  lift likelihood; printed per channel: true ROI, the uncalibrated and the calibrated 90%
  CI, and for each fit the number of channels whose truth is inside and the ROI error
  (|posterior mean - truth| / truth: mean and median over channels). The plan figures are
  printed for both fits. ``--no-calibration`` skips the second fit.
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


def _fit_and_score(spec, frame, world, lift, label: str, args) -> dict:
    from ml.mmm import model, plan
    from ml.sim.media import PAID_CHANNELS

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    fit = model.fit(spec, frame, lift)
    total_seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    params = model.posterior_response_params(fit, draws=int(spec.plan["draws"]))
    current_weeks = int(spec.plan["current_weeks"])
    params["current_spend"] = frame.table[frame.channels].iloc[-current_weeks:].mean().tolist()
    roi = model.roi_table(fit, params)

    days = pd.to_datetime(world.days)
    fitted = (days >= fit.train["date"].iloc[0]) & (days < fit.train["date"].iloc[-1] + pd.Timedelta(days=7))
    truth_all = world.contribution[fitted].sum(axis=0) / world.spend[fitted].sum(axis=0)
    truth = {c: float(truth_all[PAID_CHANNELS.index(c)]) for c in frame.channels}
    covered = sum(roi[c]["roi"]["low"] <= truth[c] <= roi[c]["roi"]["high"] for c in frame.channels)
    errors = [abs(roi[c]["roi"]["mean"] - truth[c]) / truth[c] for c in frame.channels]
    error, median_error = float(np.mean(errors)), float(np.median(errors))
    hold, diag = fit.holdout_metrics, fit.diagnostics
    print(f"\n-- {label}: fit {fit.seconds:.0f} s (with diagnostics and holdout {total_seconds:.0f} s "
          f"wall, {cpu_seconds:.0f} s CPU incl. compiler processes; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"ROI truth inside the 90% CI: {covered} of {len(frame.channels)} (target >= 4); "
          f"ROI error |mean - truth| / truth: mean {error:.3f}, median {median_error:.3f}")
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
    return {"roi": roi, "truth": truth, "covered": covered, "roi_error": error,
            "roi_error_median": median_error,
            "mape": hold["mape"], "plan_share_of_best": v_plan / v_best,
            "plan_gain": v_plan - v_current, "fit_seconds": fit.seconds}


def run_size(customers: int, args) -> dict:
    from ml.mmm import calibration, data
    from ml.mmm.spec import load_media_spec

    spec = load_media_spec().with_overrides(sampler={k: v for k, v in {
        "chains": args.chains, "draws": args.draws, "tune": args.tune,
        "cores": args.cores}.items() if v})
    world, rows = media_rows(customers, args.seed, args.start, args.end)
    frame = data.to_periods(rows, spec)
    print(f"\n== {customers:,} customers: {frame.table['y'].iloc[:-spec.holdout_periods].mean():.1f} "
          "new customers a week ==")
    results = {"uncalibrated": _fit_and_score(spec, frame, world, None, "uncalibrated", args)}
    if not args.no_calibration:
        truth = world.true_lift_effects(args.seed)
        tests = world.lift_test_table(args.seed).to_pandas()
        lift = calibration.to_model_rows(tests, rows, spec.frequency)
        print("\nlift tests (4-week go-dark geo holdouts; totals over the test):")
        for t, r in zip(truth, lift.itertuples(), strict=True):
            print(f"  {t['channel']:<12} {t['start_date']}..{t['end_date']} spend {t['spend_change']:9,.0f}"
                  f"  true effect {t['true_effect']:8.1f}  measured {t['incremental_new_customers']:8.1f}"
                  f" +- {t['standard_error']:.1f}" + ("  (sign is noise: enters as 0)"
                                                      if r.sign_contradicted else ""))
        results["calibrated"] = _fit_and_score(spec, frame, world, lift, "calibrated", args)
    print(f"\n{'channel':<12} {'true ROI':>9}  {'uncalibrated mean (90% CI)':>32}"
          + (f"  {'calibrated mean (90% CI)':>32}" if "calibrated" in results else ""))
    for channel in frame.channels:
        line = f"{channel:<12} {results['uncalibrated']['truth'][channel]:9.4f}"
        for key in ("uncalibrated", "calibrated"):
            if key in results:
                r = results[key]["roi"][channel]["roi"]
                inside = "in " if r["low"] <= results[key]["truth"][channel] <= r["high"] else "OUT"
                line += f"  {r['mean']:.4f} ({r['low']:.4f} .. {r['high']:.4f}) {inside}"
        print(line)
    for key, r in results.items():
        print(f"{key:>12}: truth in 90% CI {r['covered']} of {len(frame.channels)}, ROI error "
              f"mean {r['roi_error']:.3f} / median {r['roi_error_median']:.3f}, holdout MAPE {r['mape']:.3f}, plan/best "
              f"{r['plan_share_of_best']:.4f}, plan - current {r['plan_gain']:+.3f}, "
              f"fit {r['fit_seconds']:.0f} s")
    return {"customers": customers, **{k: {m: v for m, v in r.items() if m not in ("roi", "truth")}
                                       for k, r in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[3000, 60000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    parser.add_argument("--chains", type=int)
    parser.add_argument("--cores", type=int, help="chains sampled in parallel (processes)")
    parser.add_argument("--draws", type=int)
    parser.add_argument("--tune", type=int)
    parser.add_argument("--no-calibration", action="store_true",
                        help="Skip the calibrated fit (lift tests).")
    args = parser.parse_args()
    isolated_state("bench-mmm-")
    os.environ["PYTENSOR_FLAGS"] = f"compiledir={Path(__file__).resolve().parents[1] / '.local' / 'pytensor'}"
    for customers in args.customers:
        run_size(customers, args)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    main()
