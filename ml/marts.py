"""What the dbt feature build reads and makes: checks of the raw tables before it, the list
of marts (with the columns that identify a row) and their summary after it."""

from __future__ import annotations

from ml.schema import RAW_TABLES, REQUIRED_TABLES
from ml.settings import RAW_SCHEMA, get_settings
from ml.warehouse import Warehouse, get_warehouse

MARTS_SCHEMA = "marts"
# Every mart with the columns that identify a row (the one list of marts; parity checks and
# tests sort by these keys).
MART_KEYS: dict[str, list[str]] = {
    "snapshot_calendar": ["as_of_date"],
    "customer_features": ["customer_id", "as_of_date"],
    "customer_labels": ["customer_id", "as_of_date"],
    "churn_training_set": ["customer_id", "as_of_date"],
    "purchase_propensity_training_set": ["customer_id", "as_of_date"],
    "uplift_training_set": ["campaign", "customer_id"],
    "revenue_per_click_training_set": ["touch_id"],
    "revenue_per_click_scoring_population": ["customer_id", "as_of_date", "channel"],
    "recommendation_catalogue": ["as_of_date", "product_id"],
    "recommendation_interactions": ["as_of_date", "customer_id", "product_id"],
    "recommendation_labels": ["as_of_date", "customer_id", "product_id"],
    "campaign_outcomes": ["campaign", "customer_id"],
    "media_mix_daily": ["date", "channel"],
}
MARTS = tuple(MART_KEYS)


class RawDataError(ValueError):
    """The raw tables cannot feed the feature build; the message says what to do."""


def check_raw_data() -> dict[str, int]:
    """Row counts of the raw tables present; fails fast when a required table is missing or empty."""
    wh = get_warehouse()
    counts = _row_counts(wh, RAW_SCHEMA, RAW_TABLES)
    for table in REQUIRED_TABLES:
        if table not in counts:
            raise RawDataError(
                f"Required table {RAW_SCHEMA}.{table} is missing in {wh}. "
                "Load data first: `ml generate` (synthetic) or `ml import --orders FILE`."
            )
        if counts[table] == 0:
            raise RawDataError(
                f"Required table {RAW_SCHEMA}.{table} in {wh} has 0 rows. "
                "Load data first: `ml generate` (synthetic) or `ml import --orders FILE`."
            )
    return counts


def _row_counts(wh: Warehouse, schema: str, tables) -> dict[str, int]:
    return {table: int(wh.scalar(f"SELECT count(*) FROM {wh.relation(schema, table)}",
                                 stage=f"{schema}.{table} rows"))
            for table in tables if wh.table_exists(schema, table)}


def mart_summary() -> dict:
    """Row counts per mart and the data window, as shown by `ml run` and logged by the DAG."""
    wh = get_warehouse()
    counts = _row_counts(wh, MARTS_SCHEMA, MARTS)
    start, end, snapshots, scoring = wh.query(
        f"SELECT min(data_start), max(data_end), count(*), "
        f"max(CASE WHEN is_scoring_snapshot THEN as_of_date END) "
        f"FROM {wh.relation(MARTS_SCHEMA, 'snapshot_calendar')}", stage="snapshot calendar"
    ).to_pylist()[0].values()
    return {
        "row_counts": counts,
        "data_start": str(start),
        "data_end": str(end),
        "snapshots": snapshots,
        "scoring_as_of": str(scoring),
    }


def raw_tables_present() -> set[str]:
    wh = get_warehouse()
    return {t for t in RAW_TABLES if wh.table_exists(RAW_SCHEMA, t)}


def unavailable_features() -> list[str]:
    """Feature columns whose optional source table is absent from raw (dbt makes them NULL,
    never zero). Read from the manifest: each feature's ``meta.requires`` names its table."""
    import json

    manifest = json.loads(get_settings().dbt_manifest_path.read_text())
    node = manifest["nodes"].get("model.customer_ml.customer_features", {})
    present = raw_tables_present()
    return sorted(name for name, column in node.get("columns", {}).items()
                  if (column.get("meta") or {}).get("requires") not in (None, *present))
