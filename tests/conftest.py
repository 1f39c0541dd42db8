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


# `make test` runs on two pytest-xdist workers, each with its own state directory (above).
# A test file is one unit of work (its module fixtures and its order are kept); the files
# that share an expensive session fixture form one unit, so it is built once. The longest
# units start first. (xdist's own `--dist loadgroup` cannot do this under pytest 9: it
# renames items through an attribute pytest no longer reads.)
SHARED_SESSION_UNITS = {
    "e2e-servers": ("tests/e2e/test_approve_cli.py", "tests/e2e/test_browser.py",
                    "tests/e2e/test_dashboard.py", "tests/e2e/test_servers_e2e.py"),
    "bigquery-emulator": ("tests/bigquery/",),
    "dbt-warehouse": ("tests/dbt/",),
}
SHARED_FIXTURE_UNITS = {"servers": "e2e-servers", "platform_run": "e2e-servers",
                        "emulator": "bigquery-emulator", "built_warehouse": "dbt-warehouse"}
LONGEST_UNITS = ("e2e-servers", "tests/dags/test_pipeline_runs.py")


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((unit for unit, prefixes in SHARED_SESSION_UNITS.items()
                 if path.startswith(prefixes)), path)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # the collection order below, not the test count
    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in set(item.fixturenames) & set(SHARED_FIXTURE_UNITS):
            if work_unit(item.nodeid) != SHARED_FIXTURE_UNITS[name]:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the session fixture {name!r}: add its file to "
                    f"SHARED_SESSION_UNITS[{SHARED_FIXTURE_UNITS[name]!r}] in tests/conftest.py")
    rank = {unit: i for i, unit in enumerate(LONGEST_UNITS)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


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
