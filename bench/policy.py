"""Benchmark: the closed loop, measured on the synthetic world.

    python bench/policy.py [--seeds 3] [--customers 10000] [--state DIR]
                           [--part all|coverage|targeting] [--budget 1000]

**Readout coverage and CUPED** (``coverage``): for each seed, a history with its past
randomised retention tests (``ml.sim.campaigns``: 10 campaigns over three years), the
real dbt build of ``marts.campaign_outcomes``, and the readout of every campaign
(``ml.experiments.readout.read_out``). Against the true average effect of each campaign
(the mean of ``eval.campaign_effects.effect`` over its customers) it prints how often the
readout's 95% interval covers it, with and without CUPED, and how much CUPED narrows the
interval. Targets: coverage 90-98% over at least 20 campaigns; CUPED cuts the interval's
width by at least 20%.

**Targeting** (``targeting``): for each seed, the platform as ``make demo`` runs it on a
history with past campaigns (dbt, the churn model, the uplift model back-tested and gated,
both scored), then the same budget planned four ways for the customers of the scoring
snapshot: random customers on random channels, churn probability x save rate (today's
rule, ``allocate``), the uplift champion's effects (``allocate_values``) and the true
effects (the oracle). The true effect of contacting each customer through each channel
comes from the simulator itself: ``ml.sim.advance`` plays a plan assigning every candidate
to that channel (all held out, so the world is unchanged) on a copy of the warehouse and
writes each one's true effect to ``eval.campaign_effects``. Each plan is judged by the
true effects of its contacts: realised incremental value = sum of (effect x value -
cost), with a t-interval over seeds. Targets: uplift >= 1.3x churn targeting and >= 70%
of the oracle.
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
from scipy import stats

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


# --- targeting policies: random, churn probability, the uplift champion, the oracle ---------

TARGETING_CHANNELS = ("crm_email", "sem", "display", "direct_mail")


def _platform_models(customers: int, seed: int) -> None:
    """A history with its past campaigns, the real dbt build, the churn model (today's rule)
    and the uplift champion, both scored at the scoring snapshot: what `make demo` does,
    through the same functions the DAGs call."""
    from ml.dbt import dbt_command
    from ml.decisions.scoring import score_model
    from ml.lifecycle.promotion import promote
    from ml.modeling.train import train_model
    from ml.sim.history import generate
    from ml.uplift.serving import score_uplift
    from ml.uplift.train import train_and_gate

    generate(customers=customers, seed=seed, start=date(2023, 1, 1), end=date(2025, 12, 31))
    built = dbt_command(["build"], capture=True, check=False)
    if built.returncode:
        raise SystemExit(f"dbt build failed:\n{built.stdout[-3000:]}")
    churn = train_model("churn", learners=["xgboost"], folds=1)
    promote("churn", churn["version"], "bench", "manual", "today's rule for the comparison")
    score_model("churn")
    trained = train_and_gate(mode="auto")
    if trained["decision"] != "promoted":  # judge the registered model all the same, and say so
        print(f"  uplift v{trained['version']} not promoted ({trained['reason']}); "
              "promoted by hand for the comparison", flush=True)
        promote("uplift", trained["version"], "bench", "manual", "policy comparison")
    print(f"  uplift candidate {trained['candidate']}: back-test Qini "
          + ", ".join(f"{k} {v:+.3f}" for k, v in trained["qini"].items()), flush=True)
    score_uplift()


def _true_effects(candidates: pd.DataFrame, as_of: date, days: int) -> np.ndarray:
    """The simulator's true effect of contacting each candidate through each channel: for
    each channel, a plan that assigns every candidate to it (all held out, so nothing
    changes the world) is played by ``ml.sim.advance`` on a copy of the warehouse, which
    writes each assigned customer's true P(retained | contacted) - P(retained | not) to
    eval.campaign_effects; the copy is then discarded."""
    import shutil

    import pyarrow as pa

    from ml.settings import get_settings
    from ml.sim.advance import advance
    from ml.warehouse import get_warehouse

    path = get_settings().warehouse_path
    backup = path.with_suffix(".before-truth")
    shutil.copyfile(path, backup)
    effects = np.zeros((len(candidates), len(TARGETING_CHANNELS)))
    try:
        for j, channel in enumerate(TARGETING_CHANNELS):
            shutil.copyfile(backup, path)
            wh = get_warehouse()
            plan = pd.DataFrame({"as_of_date": as_of, "customer_id": candidates["customer_id"],
                                 "channel": channel, "group": "control"})
            wh.replace_rows("ml", "campaign_targets", "SELECT * FROM {rows}",
                            key={"as_of_date": as_of},
                            sources={"rows": pa.Table.from_pandas(plan, preserve_index=False)})
            advance(days)
            truth = wh.read_arrow(
                f"SELECT customer_id, effect FROM {wh.relation('eval', 'campaign_effects')} "
                "WHERE campaign = ?", [f"retention-{as_of}"]).to_pandas()
            effects[:, j] = (truth.set_index("customer_id")["effect"]
                             .reindex(candidates["customer_id"]).fillna(0.0).to_numpy())
    finally:
        shutil.copyfile(backup, path)
        backup.unlink()
    return effects


def _random_plan(rng, n: int, channels, budget: float) -> np.ndarray:
    """Random customers, each on a random channel, until the budget is spent."""
    choice = np.full(n, -1)
    spent, load = 0.0, np.zeros(len(channels), dtype=int)
    for i in rng.permutation(n):
        c = int(rng.integers(len(channels)))
        cap = channels[c].capacity
        if spent + channels[c].cost > budget or (cap is not None and load[c] >= cap):
            continue
        choice[i], spent, load[c] = c, spent + channels[c].cost, load[c] + 1
    return choice


def targeting(seeds: int, customers: int, budget: float, margin_rate: float = 0.3,
              days: int = 90) -> dict:
    """Plan the same budget four ways on the same customers and judge each plan by the true
    effects of its contacts: realised incremental value = sum over the contacted of
    (true effect x value - cost). No control group in any plan, so all four contact the
    budget's worth."""
    from ml.decisions.allocation import allocate, allocate_values
    from ml.decisions.campaign import load_candidates, load_channels, measured_save_rates
    from ml.uplift.serving import read_uplift_scores

    rows = []
    for seed in range(1, seeds + 1):
        started = time.perf_counter()
        _platform_models(customers, seed)
        channels, _ = measured_save_rates(load_channels())
        names = [c.name for c in channels]
        assert set(names) == set(TARGETING_CHANNELS), names
        order = [TARGETING_CHANNELS.index(n) for n in names]
        candidates, as_of, _ = load_candidates(None, margin_rate)
        p = candidates["churn_probability"].to_numpy()
        v = candidates["customer_value"].to_numpy()
        costs = np.array([c.cost for c in channels])
        truth = _true_effects(candidates, as_of, days)[:, order]
        scores = read_uplift_scores(as_of).pivot_table(index="customer_id", columns="channel",
                                                       values="uplift")
        uplift = scores.reindex(index=candidates["customer_id"], columns=names).fillna(0.0)
        plans = {
            "random": _random_plan(np.random.default_rng(seed), len(p), channels, budget),
            "churn": allocate(p, v, channels, budget).channel_index,
            "uplift": allocate_values(uplift.to_numpy() * v[:, None] - costs, channels,
                                      budget).channel_index,
            "oracle": allocate_values(truth * v[:, None] - costs, channels,
                                      budget).channel_index,
        }
        for policy, choice in plans.items():
            contacted = np.flatnonzero(choice >= 0)
            value = truth[contacted, choice[contacted]] * v[contacted] - costs[choice[contacted]]
            rows.append({"seed": seed, "policy": policy, "contacted": contacted.size,
                         "spend": float(costs[choice[contacted]].sum()),
                         "incremental_value": float(value.sum()),
                         "customers_retained": float(truth[contacted, choice[contacted]].sum())})
        print(f"seed {seed}: {len(p):,} candidates at {as_of} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="seed", columns="policy", values="incremental_value")
    with pd.option_context("display.width", 160):
        print(frame.round(2).to_string(index=False))

    def interval(values: np.ndarray) -> tuple[float, float, float]:
        mean = float(np.mean(values))
        if values.size < 2:
            return mean, float("nan"), float("nan")
        half = float(stats.t.ppf(0.975, values.size - 1) * np.std(values, ddof=1)
                     / np.sqrt(values.size))
        return mean, mean - half, mean + half

    result = {"seeds": seeds, "customers": customers, "budget": budget}
    print(f"\nRealised incremental value at budget {budget:,.0f} ({seeds} seeds x "
          f"{customers:,} customers; mean and 95% t-interval over seeds):")
    for policy in ("random", "churn", "uplift", "oracle"):
        mean, low, high = interval(wide[policy].to_numpy())
        result[policy] = {"mean": mean, "low": low, "high": high}
        print(f"  {policy:<7} {mean:12,.1f}  ({low:,.1f} .. {high:,.1f})")
    for name, numerator, denominator, target in (
            ("uplift / churn", "uplift", "churn", 1.3),
            ("uplift / oracle", "uplift", "oracle", 0.7)):
        top, bottom = wide[numerator].to_numpy(), wide[denominator].to_numpy()
        ratio = float(top.mean() / bottom.mean()) if bottom.mean() > 0 else float("nan")
        per_seed = top / np.where(bottom > 0, bottom, np.nan)
        _, low, high = (interval(per_seed) if np.isfinite(per_seed).all()
                        else (None, float("nan"), float("nan")))
        result[name] = {"ratio_of_means": ratio, "low": low, "high": high,
                        "per_seed": per_seed.tolist()}
        if not bottom.mean() > 0:
            print(f"  {name:<16} undefined: {denominator} targeting realises "
                  f"{bottom.mean():,.1f} <= 0 (uplift - {denominator} = "
                  f"{top.mean() - bottom.mean():+,.1f}); target >= {target}: not measurable")
            continue
        print(f"  {name:<16} {ratio:6.2f} (ratio of means; per seed "
              f"{', '.join(f'{r:.2f}' for r in per_seed)}; 95% t-interval {low:.2f} .. "
              f"{high:.2f}); target >= {target}: {'met' if ratio >= target else 'NOT met'}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--state", help="state dir to use (default: a fresh temp dir)")
    parser.add_argument("--part", choices=["all", "coverage", "targeting"], default="all")
    parser.add_argument("--budget", type=float, default=1000.0,
                        help="the targeting comparison's budget")
    args = parser.parse_args()
    if args.state:
        os.environ["BENCH_STATE_DIR"] = args.state
    from _common import isolated_state

    isolated_state("bench-policy-")
    from ml.dbt import compile_manifest

    compile_manifest()
    if args.part in ("all", "coverage"):
        coverage(args.seeds, args.customers)
    if args.part in ("all", "targeting"):
        targeting(args.seeds, args.customers, args.budget)


if __name__ == "__main__":
    main()
