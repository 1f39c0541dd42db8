"""Realised performance: how past scores did once their labels matured.

A back-test promises a metric; the scores published since are the model at work. For each
model, the scores of every past as-of whose labels have now matured (the rows of the
spec's training set, which holds matured labels only) are joined to those labels, and the
realised metric (ROC-AUC for binary models, normalised Gini for regression) is stored per
(as-of, version) next to the version's back-test mean in ``ml.model_monitoring``. The
model's rows are replaced in one transaction, so a re-run leaves the same table.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from ml import registry
from ml.modeling.metrics import normalized_gini, roc_auc
from ml.modeling.specs import ModelSpec, load_specs
from ml.settings import ML_SCHEMA
from ml.warehouse import get_warehouse, split_name

log = logging.getLogger(__name__)

MONITORING_TABLE = "model_monitoring"
REALISED_METRIC = {"binary": "roc_auc", "regression": "normalized_gini"}
MONITORING_SCHEMA = pa.schema([
    ("model_name", pa.string()), ("as_of_date", pa.date32()), ("model_version", pa.string()),
    ("metric", pa.string()), ("realised", pa.float64()), ("backtest_promise", pa.float64()),
    ("rows", pa.int64()), ("mean_label", pa.float64()), ("computed_at", pa.timestamp("us"))])


def matured_scores(spec: ModelSpec) -> pd.DataFrame:
    """Published scores joined to their matured labels: (as_of_date, model_version, score,
    label). A regression model scored per segment (channel) joins on the segment too."""
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, "scores") or not wh.columns(
            *split_name(spec.training_set)):
        return pd.DataFrame(columns=["as_of_date", "model_version", "score", "label"])
    key = spec.scoring.id_column
    on = [f"s.customer_id = CAST(t.{wh.quote(key)} AS STRING)",
          f"s.as_of_date = t.{wh.quote(spec.columns.as_of)}"]
    if spec.scoring.segment_column:
        on.append(f"s.segment = CAST(t.{wh.quote(spec.scoring.segment_column)} AS STRING)")
    sql = (f"SELECT s.as_of_date, s.model_version, s.score, "
           f"t.{wh.quote(spec.columns.label)} AS label "
           f"FROM {wh.relation(ML_SCHEMA, 'scores')} s "
           f"JOIN {wh.relation(*split_name(spec.training_set))} t ON {' AND '.join(on)} "
           "WHERE s.model_name = ? ORDER BY s.as_of_date, s.customer_id")
    joined = wh.read_arrow(sql, [spec.name], stage=f"{spec.name} matured scores").to_pandas()
    return joined.astype({"label": "float64"})


def backtest_promise(model: str, version: str, metric: str) -> float | None:
    """The version's back-test mean of ``metric`` for the learner it registered."""
    mv = registry.client().get_model_version(model, version)
    card = registry.run_json(mv.run_id, "backtest_summary.json") or {}
    value = card.get("summary", {}).get(card.get("candidate"), {}).get(metric, {}).get("mean")
    return None if value is None else float(value)


def realised_performance(spec: ModelSpec) -> pa.Table:
    """One row per (as-of, version) of past scores with matured labels (see module doc)."""
    metric = REALISED_METRIC[spec.task]
    score_metric = roc_auc if spec.task == "binary" else normalized_gini
    joined = matured_scores(spec)
    computed_at = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for (as_of, version), group in joined.groupby(["as_of_date", "model_version"], sort=True):
        if spec.task == "binary" and group["label"].nunique() < 2:
            log.warning("%s v%s at %s: matured labels are all %s; no AUC", spec.name, version,
                        as_of, group["label"].iloc[0])
            continue
        rows.append({"model_name": spec.name, "as_of_date": as_of, "model_version": version,
                     "metric": metric,
                     "realised": score_metric(group["label"].to_numpy(),
                                              group["score"].to_numpy()),
                     "backtest_promise": backtest_promise(spec.name, version, metric),
                     "rows": len(group), "mean_label": float(group["label"].mean()),
                     "computed_at": computed_at})
    return pa.Table.from_pylist(rows, schema=MONITORING_SCHEMA)


def monitor_models(models: list[str] | None = None) -> list[dict]:
    """Recompute and store the realised performance of each model (default: every spec's),
    replacing that model's rows of ml.model_monitoring atomically. Returns per model the
    number of as-of dates with matured scores."""
    specs = load_specs()
    wh = get_warehouse()
    report = []
    for name in models or list(specs):
        table = realised_performance(specs[name])
        wh.replace_rows(ML_SCHEMA, MONITORING_TABLE, "SELECT * FROM {rows}",
                        key={"model_name": name}, sources={"rows": table})
        latest = table.slice(table.num_rows - 1).to_pylist()[0] if table.num_rows else None
        report.append({"model": name, "matured_as_of_dates": table.num_rows,
                       "latest_realised": latest and latest["realised"],
                       "metric": REALISED_METRIC[specs[name].task]})
    return report


def read_monitoring() -> pd.DataFrame:
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, MONITORING_TABLE):
        return pd.DataFrame(columns=MONITORING_SCHEMA.names)
    return wh.query(f"SELECT * FROM {wh.relation(ML_SCHEMA, MONITORING_TABLE)} "
                    "ORDER BY model_name, as_of_date", stage="model monitoring").to_pandas()
