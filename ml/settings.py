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

    @property
    def dbt_target_dir(self) -> Path:
        return self.dbt_manifest_path.parent


def get_settings() -> Settings:
    """Read the environment now (not at import), so tests can point it elsewhere."""
    local_dir = _path("PLATFORM_LOCAL_DIR", REPO_ROOT / ".local")
    artifacts = _path("MLFLOW_ARTIFACTS_DIR", local_dir / "mlartifacts")
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
        dbt_target=os.environ.get("DBT_TARGET", "duckdb"),
        dbt_manifest_path=_path("DBT_MANIFEST_PATH", local_dir / "dbt_target" / "manifest.json"),
    )
