"""The media budget plan: the split of a budget across paid channels that maximises the
expected value acquired over the champion's posterior, within per-channel bounds.

Value acquired = new customers x the champion's value per new customer (``ml.mmm.value``,
stored with the fit). That value is one constant per fit (the media effect is on the total
of new customers, not per channel), so the split maximising value is exactly the one
maximising new customers, and the optimiser works on new customers; what the value view
adds is whether the spend pays back (expected value against the budget). A champion
trained before values were stored plans new customers only (value columns null).

``--budget B`` is the total for ``weeks`` periods (spec ``plan.weeks``). Default bounds are
the current spend (mean of the last ``plan.current_weeks`` periods, times ``weeks``)
+-``plan.default_bound``. The objective is the posterior mean of the summed steady-state
response (``ml.mmm.model.response``); it is concave in spend (logistic saturation), so
SciPy's SLSQP with the budget as an equality constraint finds the optimum. The plan
reports, next to the current allocation (as it is, and its split scaled to B), the
expected outcome with 90% credible intervals over the same draws.

Bad input (unknown channel, low above high, a budget outside the bounds' sums) fails
before anything is written; a plan is written to ``ml.media_plans`` in one statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import registry
from ml.mmm import model
from ml.mmm.spec import MediaMixSpec, load_media_spec
from ml.settings import ML_SCHEMA
from ml.warehouse import Warehouse, get_warehouse

PLANS_TABLE = "media_plans"
PLAN_COLUMNS = {
    "plan_id": pa.string(), "created_at": pa.timestamp("us"), "model": pa.string(),
    "model_version": pa.string(), "weeks": pa.int32(), "budget": pa.float64(),
    "channel": pa.string(), "current_spend": pa.float64(), "lower": pa.float64(),
    "upper": pa.float64(), "planned_spend": pa.float64(),
    "expected_planned": pa.float64(), "expected_planned_low": pa.float64(),
    "expected_planned_high": pa.float64(), "expected_current": pa.float64(),
    "expected_current_low": pa.float64(), "expected_current_high": pa.float64(),
    "value_per_new_customer": pa.float64(), "expected_value_planned": pa.float64(),
    "expected_value_planned_low": pa.float64(), "expected_value_planned_high": pa.float64(),
    "expected_value_current": pa.float64(),
}


class PlanError(ValueError):
    """The plan cannot be made; the message names the channel, bounds and dates."""


@dataclass
class MediaPlan:
    plan_id: str
    model_version: str
    weeks: int
    budget: float
    table: pd.DataFrame  # one row per channel
    totals: dict  # planned / current / current split at B: expected outcome with CI
    current_window: list[str]

    def to_json(self) -> dict:
        return {"plan_id": self.plan_id, "model_version": self.model_version,
                "weeks": self.weeks, "budget": self.budget,
                "current_window": self.current_window,
                "channels": self.table.to_dict(orient="records"), "totals": self.totals}


def parse_bounds(texts: list[str]) -> dict[str, tuple[float, float]]:
    """``CHANNEL=LOW:HIGH`` (totals for the plan's weeks) -> {channel: (low, high)}."""
    bounds = {}
    for text in texts:
        try:
            channel, rng = text.split("=", 1)
            low, high = (float(v) for v in rng.split(":", 1))
        except ValueError:
            raise PlanError(f"--bounds {text!r}: expected CHANNEL=LOW:HIGH, e.g. SEM=1000:2500") from None
        if low < 0 or high < low:
            raise PlanError(f"--bounds {text!r}: channel {channel} needs 0 <= LOW <= HIGH")
        bounds[channel.strip()] = (low, high)
    return bounds


def champion_posterior(spec: MediaMixSpec) -> tuple[str, dict]:
    from ml.mmm.train import POSTERIOR_ARTIFACT

    champion = registry.version_by_alias(spec.name, registry.CHAMPION)
    if champion is None:
        raise PlanError(f"{spec.name} has no champion: train it first (`ml run`, or the "
                        "media_mix DAG); a fit that failed its diagnostics is never promoted")
    params = registry.run_json(champion.run_id, POSTERIOR_ARTIFACT)
    if params is None:
        raise PlanError(f"{spec.name} v{champion.version}: run {champion.run_id} has no "
                        f"{POSTERIOR_ARTIFACT}")
    return str(champion.version), params


def optimise(params: dict, budget: float, weeks: int, lower: np.ndarray,
             upper: np.ndarray, feasible: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """Totals per channel (sum = budget, within bounds) maximising the posterior mean;
    never worse than any of the ``feasible`` allocations given (e.g. the current split)."""
    from scipy.optimize import minimize

    def objective(total: np.ndarray) -> float:
        return -float(model.response(params, total / weeks).sum(axis=-1).mean()) * weeks

    span = np.maximum(upper - lower, 1e-12)
    share = (budget - lower.sum()) / span.sum()
    start = lower + share * span
    scale = max(budget, 1e-9)
    result = minimize(lambda z: objective(z * scale) / scale, start / scale, method="SLSQP",
                      bounds=list(zip(lower / scale, upper / scale, strict=True)),
                      constraints=[{"type": "eq", "fun": lambda z: z.sum() - budget / scale}],
                      options={"maxiter": 500, "ftol": 1e-12})
    planned = np.clip(result.x * scale, lower, upper)
    planned *= budget / planned.sum() if planned.sum() > 0 else 1.0
    candidates = [planned] if result.success else []
    candidates += [start, *feasible]  # SLSQP failing must not make the plan worse than these
    return min(candidates, key=objective)


def _outcome(params: dict, totals: np.ndarray, weeks: int) -> tuple[np.ndarray, dict]:
    draws = model.response(params, totals / weeks) * weeks  # (draw, channel)
    return draws, model.interval(draws.sum(axis=-1))


def make_plan(budget: float, bounds: dict[str, tuple[float, float]] | None = None,
              weeks: int | None = None, spec: MediaMixSpec | None = None,
              version_params: tuple[str, dict] | None = None) -> MediaPlan:
    spec = spec or load_media_spec()
    weeks = int(weeks or spec.plan["weeks"])
    version, params = version_params or champion_posterior(spec)
    channels = list(params["channels"])
    current = np.asarray(params["current_spend"], dtype=float) * weeks
    window = params.get("current_window", ["?", "?"])
    unknown = sorted(set(bounds or {}) - set(channels))
    if unknown:
        raise PlanError(f"--bounds names unknown channel(s) {', '.join(unknown)}; the "
                        f"champion v{version} models {', '.join(channels)}")
    if not np.isfinite(budget) or budget <= 0:
        raise PlanError(f"--budget must be a positive amount, got {budget}")
    width = float(spec.plan["default_bound"])
    lower, upper = current * (1 - width), current * (1 + width)
    for c, channel in enumerate(channels):
        if bounds and channel in bounds:
            lower[c], upper[c] = bounds[channel]
    described = "; ".join(f"{ch} {lo:,.0f}..{hi:,.0f}" for ch, lo, hi in zip(channels, lower, upper, strict=True))
    basis = (f"current spend = mean of {window[0]}..{window[1]} x {weeks} periods, "
             f"default bounds +-{width:.0%}")
    if budget < lower.sum() - 1e-6:
        raise PlanError(f"--budget {budget:,.2f} is below the sum of the lower bounds "
                        f"{lower.sum():,.2f} ({described}; {basis}): raise the budget or "
                        "lower a bound with --bounds CHANNEL=LOW:HIGH")
    if budget > upper.sum() + 1e-6:
        raise PlanError(f"--budget {budget:,.2f} is above the sum of the upper bounds "
                        f"{upper.sum():,.2f} ({described}; {basis}): lower the budget or "
                        "widen a bound with --bounds CHANNEL=LOW:HIGH")
    scaled = current * budget / current.sum() if current.sum() > 0 else np.full(len(current), budget / len(current))
    inside = bool(np.all(scaled >= lower - 1e-9) and np.all(scaled <= upper + 1e-9))
    planned = optimise(params, budget, weeks, lower, upper, (scaled,) if inside else ())
    planned_draws, planned_total = _outcome(params, planned, weeks)
    current_draws, current_total = _outcome(params, current, weeks)
    _, scaled_total = _outcome(params, scaled, weeks)
    gain = planned_draws.sum(axis=-1) - _outcome(params, scaled, weeks)[0].sum(axis=-1)
    table = pd.DataFrame({
        "channel": channels, "current_spend": current, "lower": lower, "upper": upper,
        "planned_spend": planned,
        "expected_planned": planned_draws.mean(axis=0),
        "expected_planned_low": np.quantile(planned_draws, 0.05, axis=0),
        "expected_planned_high": np.quantile(planned_draws, 0.95, axis=0),
        "expected_current": current_draws.mean(axis=0),
        "expected_current_low": np.quantile(current_draws, 0.05, axis=0),
        "expected_current_high": np.quantile(current_draws, 0.95, axis=0),
    })
    worth = params.get("value_per_new_customer")
    if worth is None:
        table = table.assign(value_per_new_customer=None, expected_value_planned=None,
                             expected_value_planned_low=None, expected_value_planned_high=None,
                             expected_value_current=None)
    else:
        table = table.assign(
            value_per_new_customer=float(worth),
            expected_value_planned=table["expected_planned"] * worth,
            expected_value_planned_low=table["expected_planned_low"] * worth,
            expected_value_planned_high=table["expected_planned_high"] * worth,
            expected_value_current=table["expected_current"] * worth)
    totals = {"planned": {"spend": float(planned.sum()), **planned_total},
              "current": {"spend": float(current.sum()), **current_total},
              "current_split_at_budget": {"spend": float(scaled.sum()), **scaled_total},
              "gain_over_current_split": model.interval(gain),
              "outcome": "media-driven new customers over the plan's periods",
              "value_per_new_customer": None if worth is None else float(worth)}
    if worth is not None:
        for key in ("planned", "current", "current_split_at_budget"):
            t = totals[key]
            t["value"] = {k: t[k] * worth for k in ("mean", "low", "high")}
            t["value_per_dollar"] = t["value"]["mean"] / t["spend"] if t["spend"] else None
        totals["gain_over_current_split"]["value"] = {
            k: v * worth for k, v in totals["gain_over_current_split"].items()}
    return MediaPlan(plan_id=uuid.uuid4().hex[:12], model_version=version, weeks=weeks,
                     budget=float(budget), table=table, totals=totals, current_window=window)


def write_plan(plan: MediaPlan, spec: MediaMixSpec | None = None,
               warehouse: Warehouse | None = None) -> int:
    """Append the plan's rows to ml.media_plans in one statement (all or nothing)."""
    spec = spec or load_media_spec()
    wh = warehouse or get_warehouse()
    rows = plan.table.assign(plan_id=plan.plan_id, created_at=datetime.now(UTC).replace(tzinfo=None),
                             model=spec.name, model_version=plan.model_version,
                             weeks=plan.weeks, budget=plan.budget)
    table = pa.Table.from_pandas(rows[list(PLAN_COLUMNS)], schema=pa.schema(PLAN_COLUMNS),
                                 preserve_index=False)
    return wh.append(ML_SCHEMA, PLANS_TABLE, table)


def read_plan(plan_id: str | None = None, warehouse: Warehouse | None = None) -> pd.DataFrame:
    """One plan's rows (the latest when ``plan_id`` is None); empty when there is none."""
    wh = warehouse or get_warehouse()
    if not wh.table_exists(ML_SCHEMA, PLANS_TABLE):
        return pd.DataFrame(columns=list(PLAN_COLUMNS))
    relation = wh.relation(ML_SCHEMA, PLANS_TABLE)
    if plan_id is None:
        plan_id = wh.scalar(f"SELECT plan_id FROM {relation} ORDER BY created_at DESC LIMIT 1")
    return wh.query(f"SELECT * FROM {relation} WHERE plan_id = ? ORDER BY channel", [plan_id],
                    stage="media plan").to_pandas()


def plan_current_budget(budget: float | None = None, bounds: dict | None = None,
                        weeks: int | None = None) -> dict:
    """Make and store a plan (``budget`` None = the current spend's total); JSON summary."""
    spec = load_media_spec()
    version_params = champion_posterior(spec)
    if budget is None:
        weeks_ = int(weeks or spec.plan["weeks"])
        budget = float(np.sum(version_params[1]["current_spend"]) * weeks_)
    plan = make_plan(budget, bounds, weeks, spec, version_params)
    write_plan(plan, spec)
    return plan.to_json()


def media_mix_status(spec: MediaMixSpec | None = None) -> dict | None:
    """The champion's diagnostics, holdout and ROI and the latest plan's totals (for
    ``ml run``'s summary); None when there is no champion."""
    from ml.mmm.train import SUMMARY_ARTIFACT

    spec = spec or load_media_spec()
    champion = registry.version_by_alias(spec.name, registry.CHAMPION)
    if champion is None:
        return None
    summary = registry.run_json(champion.run_id, SUMMARY_ARTIFACT) or {}
    latest = read_plan()
    plan = None
    if not latest.empty:
        plan = {"plan_id": str(latest["plan_id"].iloc[0]), "budget": float(latest["budget"].iloc[0]),
                "weeks": int(latest["weeks"].iloc[0]),
                "planned": dict(zip(latest["channel"], latest["planned_spend"].round(2), strict=True)),
                "expected_planned": float(latest["expected_planned"].sum()),
                "expected_current": float(latest["expected_current"].sum()),
                "expected_value_planned": (float(latest["expected_value_planned"].sum())
                                           if "expected_value_planned" in latest
                                           and latest["expected_value_planned"].notna().all()
                                           else None)}
    return {"champion": str(champion.version), "holdout": summary.get("holdout"),
            "diagnostics": summary.get("diagnostics"),
            "roi": {c: r["roi"] for c, r in summary.get("roi", {}).items()},
            "value_per_new_customer": (summary.get("customer_value") or {}).get(
                "value_per_new_customer"), "plan": plan}
