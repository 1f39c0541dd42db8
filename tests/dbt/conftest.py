"""A DuckDB warehouse with small hand-made raw tables, built once per session with the
real `dbt build`.

Tests that change raw data start from a copy of the built warehouse at the same path, so
dbt's partial parsing stays valid and each rebuild costs only the models it runs.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.dbt.harness import Warehouse
from tests.dbt.raw_data import make_raw_tables, write_raw_tables


@pytest.fixture(scope="session")
def raw_tables() -> dict[str, pd.DataFrame]:
    return make_raw_tables()


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory, raw_tables) -> Warehouse:
    """The hand-made raw tables, built once with `dbt build` (unit tests included)."""
    warehouse = Warehouse(tmp_path_factory.mktemp("dbt"))
    write_raw_tables(warehouse.path, raw_tables)
    run = warehouse.build(unit_tests=True)
    assert run.ok, run.output
    shutil.copyfile(warehouse.path, warehouse.pristine)
    return warehouse


@pytest.fixture
def warehouse(built_warehouse) -> Warehouse:
    """The built warehouse, restored to its session state for a test that changes it."""
    built_warehouse.reset()
    yield built_warehouse
    built_warehouse.reset()
