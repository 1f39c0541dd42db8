"""Test session isolation: every test run gets its own .local state in a temp directory,
so tests never touch a developer's warehouse, Airflow DB or MLflow store."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_STATE = Path(tempfile.mkdtemp(prefix="cmp-test-"))
for _var in ("WAREHOUSE_PATH", "AIRFLOW_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACTS_DIR",
             "DBT_MANIFEST_PATH", "DBT_TARGET_PATH", "DBT_PROFILES_DIR", "DBT_TARGET",
             "WAREHOUSE", "BQ_PROJECT", "BQ_DATASET_PREFIX", "BQ_LOCATION", "BQ_KEYFILE",
             "BQ_RAW_PROJECT", "BQ_RAW_DATASET", "BQ_API_ENDPOINT", "BQ_STORAGE_ENDPOINT"):
    os.environ.pop(_var, None)  # tests run on the embedded default unless they say otherwise
os.environ["PLATFORM_LOCAL_DIR"] = str(_STATE)

from ml.settings import export_runtime_environment  # noqa: E402  (after the env is set)

export_runtime_environment()


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("KEEP_TEST_STATE") != "1":
        shutil.rmtree(_STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return _STATE


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    from ml.dbt import compile_manifest

    return compile_manifest()


@pytest.fixture(scope="session")
def airflow_db(dbt_manifest):
    from ml.ops.orchestration import ensure_airflow_ready

    ensure_airflow_ready()


@pytest.fixture(scope="session")
def demo_warehouse(state_dir) -> Path:
    """A small synthetic history in the session warehouse (generated once)."""
    from datetime import date

    from ml.settings import get_settings
    from ml.sim.history import generate

    generate(customers=800, seed=7, start=date(2023, 1, 1), end=date(2024, 12, 31))
    return get_settings().warehouse_path
