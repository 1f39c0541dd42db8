"""The promotion ledger: one row per decision about a champion (who, when, why, evidence)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pyarrow as pa

from ml.schema import arrow_schema
from ml.settings import ML_SCHEMA
from ml.warehouse import get_warehouse

LEDGER_TABLE = "promotion_ledger"
LEDGER_COLUMNS = {
    "model": "VARCHAR", "from_version": "VARCHAR", "to_version": "VARCHAR",
    "decision": "VARCHAR", "mode": "VARCHAR", "reason": "VARCHAR", "evidence_run_id": "VARCHAR",
    "actor": "VARCHAR", "decided_at": "TIMESTAMP", "primary_metric": "VARCHAR",
    "challenger_value": "DOUBLE", "champion_value": "DOUBLE", "gain": "DOUBLE",
    "ci_low": "DOUBLE", "ci_high": "DOUBLE",
}


def append_ledger(row: dict) -> None:
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    table = pa.Table.from_pylist([{k: clean.get(k) for k in LEDGER_COLUMNS}],
                                 schema=arrow_schema(LEDGER_COLUMNS))
    get_warehouse().append(ML_SCHEMA, LEDGER_TABLE, table)


def read_ledger(model: str | None = None):
    import pandas as pd

    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, LEDGER_TABLE):
        return pd.DataFrame(columns=list(LEDGER_COLUMNS))
    where, params = ("WHERE model = ?", [model]) if model else ("", [])
    return wh.query(f"SELECT * FROM {wh.relation(ML_SCHEMA, LEDGER_TABLE)} {where} "
                    "ORDER BY decided_at", params, stage="promotion ledger").to_pandas()


def ledger_row(model, from_version, to_version, decision, mode, reason, actor, verdict=None,
               run_id=None) -> dict:
    verdict = verdict or {}
    return {"model": model, "from_version": from_version, "to_version": to_version,
            "decision": decision, "mode": mode, "reason": reason, "evidence_run_id": run_id,
            "actor": actor, "decided_at": datetime.now(UTC).replace(tzinfo=None),
            "primary_metric": verdict.get("primary_metric"),
            "challenger_value": verdict.get("challenger_value"),
            "champion_value": verdict.get("champion_value"), "gain": verdict.get("gain"),
            "ci_low": verdict.get("ci_low"), "ci_high": verdict.get("ci_high")}
