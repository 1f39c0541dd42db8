"""The promotion gate, the promotion ledger, promote and rollback.

The gate compares challenger and champion on the same out-of-time folds: the champion's
recorded recipe (learner, params, features) is re-fitted on each fold's training window,
exactly like the challenger, so neither model has seen the fold it is judged on.
Every decision appends a row to ``ml.promotion_ledger``.
"""

from __future__ import annotations

import fcntl
import getpass
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from ml import registry
from ml.metrics import GREATER_IS_BETTER
from ml.settings import ML_SCHEMA, get_settings
from ml.specs import ModelSpec, get_spec
from ml.warehouse import get_warehouse

LEDGER_TABLE = "promotion_ledger"
LEDGER_COLUMNS = {
    "model": "VARCHAR", "from_version": "VARCHAR", "to_version": "VARCHAR",
    "decision": "VARCHAR", "mode": "VARCHAR", "reason": "VARCHAR", "evidence_run_id": "VARCHAR",
    "actor": "VARCHAR", "decided_at": "TIMESTAMP", "primary_metric": "VARCHAR",
    "challenger_value": "DOUBLE", "champion_value": "DOUBLE", "gain": "DOUBLE",
    "ci_low": "DOUBLE", "ci_high": "DOUBLE",
}
MODES = ("auto", "manual", "dry_run")


class PromotionError(RuntimeError):
    pass


@dataclass
class Verdict:
    promote: bool
    reason: str
    primary_metric: str
    challenger_value: float
    champion_value: float | None = None
    gain: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "promote" if self.promote else "reject"


def _better_by(metric: str, new: float, old: float) -> float:
    """Signed improvement of ``new`` over ``old`` (positive = better)."""
    return new - old if GREATER_IS_BETTER[metric] else old - new


def decide(spec: ModelSpec, challenger: dict[str, float], champion: dict[str, float] | None,
           gain_ci: dict | None, champion_comparable: bool = True) -> Verdict:
    """The gate's rule, as a pure function of back-test means (and the bootstrap CI of the
    challenger's gain over the champion)."""
    metric = spec.primary_metric
    verdict = Verdict(False, "", metric, challenger[metric])
    if champion is None and not champion_comparable:
        verdict.reason = ("the champion's recipe cannot be re-evaluated on the current features; "
                          "compare by hand and use `ml promote` if intended")
        return verdict
    if champion is None:
        for floor_metric, floor in spec.promotion.floors.items():
            value = challenger[floor_metric]
            ok = value >= floor if GREATER_IS_BETTER[floor_metric] else value <= floor
            verdict.checks.append(f"{floor_metric} {value:.4f} {'meets' if ok else 'misses'} "
                                  f"floor {floor}")
            if not ok:
                verdict.reason = f"no champion yet and {verdict.checks[-1]}"
                return verdict
        verdict.promote = True
        verdict.reason = "no champion yet; absolute floors met (" + "; ".join(verdict.checks) + ")"
        return verdict

    verdict.champion_value = champion[metric]
    verdict.gain = _better_by(metric, challenger[metric], champion[metric])
    if gain_ci is not None:
        verdict.ci_low, verdict.ci_high = gain_ci["low"], gain_ci["high"]
    verdict.checks.append(f"{metric} gain {verdict.gain:+.4f} (needs >= "
                          f"{spec.promotion.min_improvement})")
    if verdict.gain < spec.promotion.min_improvement:
        verdict.reason = (f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}: "
                          f"gain {verdict.gain:+.4f} is below the threshold "
                          f"{spec.promotion.min_improvement}")
        return verdict
    if verdict.ci_low is None or not verdict.ci_low > 0:
        verdict.reason = (f"{metric} gain {verdict.gain:+.4f} is not significant: bootstrap 95% CI "
                          f"[{verdict.ci_low}, {verdict.ci_high}] includes zero")
        return verdict
    for guard, tolerance in spec.guardrails.items():
        change = _better_by(guard, challenger[guard], champion[guard])
        verdict.checks.append(f"{guard} {challenger[guard]:.4f} vs {champion[guard]:.4f} "
                              f"(tolerance {tolerance})")
        if change < -tolerance:
            verdict.reason = (f"guardrail {guard} regresses: {challenger[guard]:.4f} vs champion "
                              f"{champion[guard]:.4f}, beyond tolerance {tolerance}")
            return verdict
    verdict.promote = True
    verdict.reason = (f"{metric} improves by {verdict.gain:+.4f} (95% CI {verdict.ci_low:+.4f}.."
                      f"{verdict.ci_high:+.4f}) and no guardrail regresses")
    return verdict


# ---------------------------------------------------------------- evaluation of a trained version
def evaluate_version(model: str, version: str) -> dict:
    """Run the gate on a registered version's back-test evidence; tag the version and put
    the verdict in its model card. Returns a JSON-able verdict with an evidence table."""
    from ml.report import model_card

    spec = get_spec(model)
    mv = registry.client().get_model_version(model, str(version))
    card = registry.run_json(mv.run_id, "backtest_summary.json")
    if card is None:
        raise PromotionError(f"{model} v{version}: its run {mv.run_id} has no back-test evidence")
    summary = card["summary"]
    champion_info = card.get("champion")
    champion_metrics = summary.get("champion") if champion_info else None
    verdict = decide(spec, {k: v["mean"] for k, v in summary[spec.candidate].items()},
                     {k: v["mean"] for k, v in champion_metrics.items()} if champion_metrics else None,
                     card["gains"].get("champion"),
                     champion_comparable=not champion_info or champion_info["comparable"])
    registry.tag_version(model, version, {"gate_verdict": verdict.decision,
                                          "gate_reason": verdict.reason})
    registry.describe_version(model, version,
                              model_card(spec, card, {"decision": verdict.decision,
                                                      "reason": verdict.reason}))
    rows = {name: summary[name] for name in (spec.candidate, "champion") if name in summary}
    table = "\n".join(
        [f"| metric | {' | '.join(rows)} |", "|---" * (len(rows) + 1) + "|"]
        + [f"| {m} | " + " | ".join(f"{rows[r][m]['mean']:.4f}" for r in rows) + " |"
           for m in card["metrics"]])
    return {**asdict(verdict), "decision": verdict.decision, "model": model, "version": str(version),
            "run_id": mv.run_id, "champion_version": champion_info["version"] if champion_info else None,
            "evidence_markdown": table}


# ---------------------------------------------------------------- ledger
def _ledger_schema() -> pa.Schema:
    types = {"VARCHAR": pa.string(), "TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64()}
    return pa.schema([(k, types[v]) for k, v in LEDGER_COLUMNS.items()])


def append_ledger(row: dict) -> None:
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    table = pa.Table.from_pylist([{k: clean.get(k) for k in LEDGER_COLUMNS}], schema=_ledger_schema())
    get_warehouse().append(ML_SCHEMA, LEDGER_TABLE, table)


def read_ledger(model: str | None = None):
    import pandas as pd

    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, LEDGER_TABLE):
        return pd.DataFrame(columns=list(LEDGER_COLUMNS))
    where, params = ("WHERE model = ?", [model]) if model else ("", [])
    return wh.query(f"SELECT * FROM {wh.relation(ML_SCHEMA, LEDGER_TABLE)} {where} "
                    "ORDER BY decided_at", params, stage="promotion ledger").to_pandas()


@contextmanager
def promotion_lock(model: str) -> Iterator[None]:
    """One promotion of a model at a time on this machine (Airflow adds max_active_runs=1)."""
    path = get_settings().local_dir / "locks" / f"promotion-{model}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _ledger_row(model, from_version, to_version, decision, mode, reason, actor, verdict=None,
                run_id=None) -> dict:
    verdict = verdict or {}
    return {"model": model, "from_version": from_version, "to_version": to_version,
            "decision": decision, "mode": mode, "reason": reason, "evidence_run_id": run_id,
            "actor": actor, "decided_at": datetime.now(UTC).replace(tzinfo=None),
            "primary_metric": verdict.get("primary_metric"),
            "challenger_value": verdict.get("challenger_value"),
            "champion_value": verdict.get("champion_value"), "gain": verdict.get("gain"),
            "ci_low": verdict.get("ci_low"), "ci_high": verdict.get("ci_high")}


def promote(model: str, version: str, actor: str, mode: str, reason: str,
            verdict: dict | None = None, run_id: str | None = None) -> dict:
    """Move @champion to ``version`` and record it. Serialised per model; read back."""
    with promotion_lock(model):
        previous = registry.version_by_alias(model, registry.CHAMPION)
        from_version = str(previous.version) if previous else None
        if from_version == str(version):
            raise PromotionError(f"{model} v{version} is already the champion")
        registry.client().get_model_version(model, str(version))  # exists, or MLflow raises
        registry.set_alias(model, registry.CHAMPION, str(version))
        registry.tag_version(model, version, {"promoted_by": actor, "promotion_mode": mode})
        append_ledger(_ledger_row(model, from_version, str(version), "promoted", mode, reason,
                                  actor, verdict, run_id))
    return {"model": model, "from_version": from_version, "to_version": str(version)}


def record_decision(model: str, version: str, decision: str, mode: str, reason: str, actor: str,
                    verdict: dict | None = None, run_id: str | None = None) -> None:
    """A decision that leaves @champion where it is (rejected, dry run, declined by approver)."""
    champion = registry.version_by_alias(model, registry.CHAMPION)
    append_ledger(_ledger_row(model, str(champion.version) if champion else None, str(version),
                              decision, mode, reason, actor, verdict, run_id))


def rollback(model: str, actor: str, reason: str = "rollback requested") -> dict:
    """Restore the champion that the current one replaced (from the ledger), in one action."""
    with promotion_lock(model):
        current = registry.version_by_alias(model, registry.CHAMPION)
        if current is None:
            raise PromotionError(f"{model} has no champion to roll back")
        ledger = read_ledger(model)
        promoted = ledger[(ledger.decision == "promoted")
                          & (ledger.to_version == str(current.version))]
        if promoted.empty or promoted.iloc[-1]["from_version"] in (None, "") or \
                (isinstance(promoted.iloc[-1]["from_version"], float)):
            raise PromotionError(f"{model} v{current.version} has no previous champion in the "
                                 "ledger to roll back to")
        target = str(promoted.iloc[-1]["from_version"])
        registry.set_alias(model, registry.CHAMPION, target)
        registry.tag_version(model, current.version, {"rolled_back_by": actor})
        append_ledger(_ledger_row(model, str(current.version), target, "rolled_back", "manual",
                                  reason, actor))
    return {"model": model, "from_version": str(current.version), "to_version": target}
