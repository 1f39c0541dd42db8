"""The platform's state in one structure: registry per model, last decisions, table sizes.

A model without a champion always says why (its last decision: rejected by the gate,
skipped because the data cannot train it, ...), and so does a campaign that cannot be
planned."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from ml import registry
from ml.decisions.campaign import missing_churn_scores
from ml.lifecycle.ledger import read_ledger
from ml.lifecycle.promotion import champion_check
from ml.modeling.specs import load_specs
from ml.warehouse import get_warehouse


def _version_info(model: str, alias: str) -> dict | None:
    mv = registry.version_by_alias(model, alias)
    if mv is None:
        return None
    card = registry.run_json(mv.run_id, "backtest_summary.json") or {}
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "gate_verdict": mv.tags.get("gate_verdict"),
        "gate_reason": mv.tags.get("gate_reason"),
        "data_window": mv.tags.get("data_window"),
        "candidate": card.get("candidate"),  # the learner registered (candidate: best)
        "backtest": card.get("summary", {}),
        "gains": card.get("gains", {}),
        "gap_closed": card.get("gap_closed"),
    }


def _table_counts() -> dict[str, int]:
    wh = get_warehouse()
    return {f"{s}.{t}": int(wh.scalar(f"SELECT count(*) FROM {wh.relation(s, t)}",
                                      stage=f"{s}.{t} rows"))
            for s, t in wh.tables()}


def _no_champion_reason(last: dict | None) -> str:
    if last is None:
        return "never trained: run its training DAG (`ml run`)"
    return f"last decision: {last['decision']}: {last['reason']}"


def platform_status() -> dict:
    """Stable, JSON-able: {"models": {name: {...}} (the model_specs/ models),
    "capabilities": {name: {...}} (recommendations, uplift, media_mix), "tables":
    {schema.table: rows}, "campaign_blocked_by": reason or None}. A model's ``champion_check`` is None when
    @champion is where the ledger says, else what was repaired (a promotion killed between
    the alias and its ledger row) or what is wrong."""
    known = set(registry.registered_models())
    return {"models": {name: _model_status(name, known) for name in load_specs()},
            "capabilities": {name: _capability_status(name, metric, known)
                             for name, metric in capability_models().items()},
            "tables": _table_counts(), "campaign_blocked_by": missing_churn_scores()}


# The models each capability trains in its own DAG from a spec of its own (not in
# model_specs/), with the same registry, gate, ledger and rollback; and the run metric
# that is each one's primary figure ({candidate} is the learner registered). The media mix
# has one model, judged by its chronological holdout.
CAPABILITY_SPECS = (("ml.recommend", "recommendations.yaml"), ("ml.uplift", "uplift.yaml"),
                    ("ml.mmm", "media_mix.yaml"))
MEDIA_MIX_METRIC = "holdout_mape"


def capability_models() -> dict[str, str]:
    """{model name: primary metric}, read from the spec files (importing the training
    modules would define their MLflow models, which is slow and warns)."""
    models = {}
    for package, spec in CAPABILITY_SPECS:
        path = Path(importlib.import_module(package).__file__).with_name(spec)
        loaded = yaml.safe_load(path.read_text())
        models[loaded["name"]] = loaded.get("primary_metric", MEDIA_MIX_METRIC)
    return models


def _capability_status(name: str, metric: str, known: set[str]) -> dict:
    """As a spec model's status, with the champion's primary metric from its run (the
    back-test mean of the registered learner, or the media mix's holdout figure)."""
    status = _model_status(name, known)
    champion = status["champion"]
    if champion:
        logged, tags = registry.run_data(champion["run_id"])
        candidate = tags.get("candidate")
        key = f"{candidate}.{metric}.mean" if candidate else metric
        champion["primary_metric"] = {"name": metric, "value": logged.get(key)}
    return status


def _model_status(name: str, known: set[str]) -> dict:
    check = champion_check(name) if name in known else None  # may repair the ledger
    ledger = read_ledger(name)
    last = ledger.iloc[-1].to_dict() if len(ledger) else None
    if last:
        last = {k: (None if v != v else v) for k, v in last.items()}  # NaN -> None
        last["decided_at"] = str(last["decided_at"])
    champion = _version_info(name, registry.CHAMPION) if name in known else None
    return {
        "registered": name in known,
        "champion": champion,
        "challenger": _version_info(name, registry.CHALLENGER) if name in known else None,
        "last_decision": last,
        "no_champion_reason": None if champion else _no_champion_reason(last),
        "champion_check": check,
    }
