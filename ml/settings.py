"""Every location and switch the platform reads, in one place.

All local state lives under ``.local/`` at the repository root unless an environment
variable says otherwise. Nothing here touches the disk at import time; callers ask for
paths and create them when they write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

RAW_SCHEMA = "raw"
EVAL_SCHEMA = "eval"  # generator ground truth: evaluation only, never read by dbt
ML_SCHEMA = "ml"  # tables written by Python: scores, targets, promotion ledger


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


WAREHOUSES = ("duckdb", "bigquery")


@dataclass(frozen=True)
class BigQuerySettings:
    """Where the platform's datasets live on BigQuery. Credentials are never settings:
    Application Default Credentials, or a service-account key file named by BQ_KEYFILE
    (or GOOGLE_APPLICATION_CREDENTIALS), outside the repository."""

    project: str
    dataset_prefix: str  # logical schema `marts` -> dataset `<prefix>_marts`
    location: str
    keyfile: str | None
    raw_project: str | None  # existing raw tables elsewhere (dbt var raw_database)
    raw_dataset: str | None  # (dbt var raw_schema); default <prefix>_raw
    api_endpoint: str | None  # a local emulator's REST endpoint; None = Google's
    storage_endpoint: str | None  # the emulator's gRPC host:port for Storage API reads

    def dataset(self, schema: str) -> str:
        if schema == RAW_SCHEMA and self.raw_dataset:
            return self.raw_dataset
        return f"{self.dataset_prefix}_{schema}"

    def project_of(self, schema: str) -> str:
        return self.raw_project if schema == RAW_SCHEMA and self.raw_project else self.project


GCP_CONNECTION = "google_cloud_default"


def _connection_extras() -> dict:
    """Extras of the Airflow connection ``google_cloud_default`` (project, key_path,
    location, dataset_prefix), or {} when there is none. Only asked when BQ_PROJECT is
    unset, so the CLI and tests never wait on Airflow."""
    try:
        from airflow.sdk import BaseHook

        extras = BaseHook.get_connection(GCP_CONNECTION).extra_dejson
    except Exception:  # noqa: BLE001 - no Airflow, no connection: the environment decides
        return {}
    prefix = "extra__google_cloud_platform__"  # older connections prefix their extras
    return {key.removeprefix(prefix): value for key, value in extras.items() if value}


def _bigquery_settings() -> BigQuerySettings:
    conn = {} if os.environ.get("BQ_PROJECT") else _connection_extras()
    project = os.environ.get("BQ_PROJECT") or conn.get("project", "")
    if not project:
        raise ValueError("WAREHOUSE=bigquery needs BQ_PROJECT (the GCP project that holds the "
                         f"platform's datasets) or an Airflow connection {GCP_CONNECTION} with "
                         "a project; see docs/deployment-gcp.md")
    return BigQuerySettings(
        project=project,
        dataset_prefix=os.environ.get("BQ_DATASET_PREFIX") or conn.get("dataset_prefix", "cmp"),
        location=os.environ.get("BQ_LOCATION") or conn.get("location", "US"),
        keyfile=os.environ.get("BQ_KEYFILE") or conn.get("key_path") or None,
        raw_project=os.environ.get("BQ_RAW_PROJECT") or None,
        raw_dataset=os.environ.get("BQ_RAW_DATASET") or None,
        api_endpoint=os.environ.get("BQ_API_ENDPOINT") or None,
        storage_endpoint=os.environ.get("BQ_STORAGE_ENDPOINT") or None,
    )


@dataclass(frozen=True)
class Settings:
    local_dir: Path
    warehouse_path: Path
    airflow_home: Path
    mlflow_tracking_uri: str
    mlflow_artifacts_dir: Path
    dbt_project_dir: Path
    dbt_profiles_dir: Path
    dbt_target: str
    dbt_manifest_path: Path
    warehouse: str = "duckdb"  # WAREHOUSE: duckdb (embedded default) or bigquery
    bigquery: BigQuerySettings | None = None

    @property
    def dbt_target_dir(self) -> Path:
        """dbt's own target dir (run results, partial parse); the DAGs' manifest is a copy."""
        return self.local_dir / "dbt_target"


def get_settings() -> Settings:
    """Read the environment now (not at import), so tests can point it elsewhere."""
    local_dir = _path("PLATFORM_LOCAL_DIR", REPO_ROOT / ".local")
    artifacts = _path("MLFLOW_ARTIFACTS_DIR", local_dir / "mlartifacts")
    warehouse = os.environ.get("WAREHOUSE", "duckdb").strip().lower() or "duckdb"
    if warehouse not in WAREHOUSES:
        raise ValueError(f"WAREHOUSE={warehouse!r}: choose one of {', '.join(WAREHOUSES)}")
    dbt_project = _path("DBT_PROJECT_DIR", REPO_ROOT / "dbt_project")
    return Settings(
        local_dir=local_dir,
        warehouse_path=_path("WAREHOUSE_PATH", local_dir / "warehouse.duckdb"),
        airflow_home=_path("AIRFLOW_HOME", local_dir / "airflow"),
        mlflow_tracking_uri=os.environ.get(
            "MLFLOW_TRACKING_URI", f"sqlite:///{local_dir / 'mlflow.db'}"
        ),
        mlflow_artifacts_dir=artifacts,
        dbt_project_dir=dbt_project,
        dbt_profiles_dir=_path("DBT_PROFILES_DIR", dbt_project),
        dbt_target=warehouse,  # the profile's output is named after the warehouse
        dbt_manifest_path=_path("DBT_MANIFEST_PATH", local_dir / "dbt_manifest" / "manifest.json"),
        warehouse=warehouse,
        bigquery=_bigquery_settings() if warehouse == "bigquery" else None,
    )


def dbt_environment(settings: Settings | None = None) -> dict[str, str]:
    """Environment every dbt invocation gets, whoever starts it (CLI, Cosmos, tests)."""
    s = settings or get_settings()
    return {
        "WAREHOUSE_PATH": str(s.warehouse_path),
        "DBT_PROFILES_DIR": str(s.dbt_profiles_dir),
        "DBT_TARGET": s.dbt_target,
        "DBT_TARGET_PATH": str(s.dbt_target_dir),
        "DBT_LOG_PATH": str(s.local_dir / "dbt_logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(_dbt_bigquery_environment(s.bigquery) if s.bigquery else {}),
    }


def _dbt_bigquery_environment(bq: BigQuerySettings) -> dict[str, str]:
    """The BigQuery profile's inputs (dbt_project/profiles.yml reads them)."""
    env = {
        "BQ_PROJECT": bq.project,
        "BQ_DATASET_PREFIX": bq.dataset_prefix,
        "BQ_LOCATION": bq.location,
        "BQ_RAW_PROJECT": bq.raw_project or bq.project,
        "BQ_RAW_DATASET": bq.dataset(RAW_SCHEMA),
    }
    if bq.keyfile:
        env["BQ_KEYFILE"] = bq.keyfile
    if bq.api_endpoint:
        env["BQ_API_ENDPOINT"] = bq.api_endpoint
    return env


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """Airflow configuration for local runs, as AIRFLOW__* variables (no airflow.cfg edits).

    Values already set in the environment win, so production configuration is untouched.
    """
    s = settings or get_settings()
    defaults = {
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # SQLite metadata: keep concurrency low so the scheduler never sees "database is locked".
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        "AIRFLOW__COSMOS__CACHE_DIR": str(s.local_dir / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",  # no network here; and no phoning home
    }
    return {key: os.environ.get(key, value) for key, value in defaults.items()}


def export_runtime_environment(settings: Settings | None = None) -> Settings:
    """Put the platform's locations into os.environ, for code that reads them itself
    (dbt, Airflow, Cosmos). Call from entry points only, before importing Airflow."""
    s = settings or get_settings()
    for key, value in {**airflow_environment(s), **dbt_environment(s)}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_TRACKING_URI", s.mlflow_tracking_uri)
    # OpenMP threads (XGBoost) sleep instead of spinning when they wait: no thrashing on a
    # small, shared machine. Only effective before the OpenMP runtime loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # MLflow draws a progress bar per downloaded artifact (ml status reads one per version)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return s
