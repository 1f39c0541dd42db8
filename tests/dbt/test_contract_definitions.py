"""The raw-data contract is defined once (``ml/schema.py``): the dbt source and the staging
models' column maps must say the same, table by table and column by column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ml.schema import RAW_TABLES

STAGING = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging"


def _staging_columns(table: str) -> list[str]:
    sql = (STAGING / f"stg_shop__{table}.sql").read_text()
    call = re.search(r"shop_source\(\s*'(\w+)',\s*\{(.*?)\}", sql, flags=re.S)
    assert call and call.group(1) == table, f"stg_shop__{table}.sql reads no shop_source('{table}')"
    return re.findall(r"'(\w+)'\s*:", call.group(2))


def test_the_source_lists_exactly_the_contract_tables():
    sources = yaml.safe_load((STAGING / "_shop__sources.yml").read_text())["sources"]
    shop = next(source for source in sources if source["name"] == "shop")
    assert [t["name"] for t in shop["tables"]] == list(RAW_TABLES)


@pytest.mark.parametrize("table", list(RAW_TABLES))
def test_staging_reads_exactly_the_contract_columns(table):
    assert _staging_columns(table) == list(RAW_TABLES[table])


def test_dbt_horizon_defaults_equal_the_specs():
    """The spec is the one place a horizon is set; dbt's var defaults (for a plain `dbt
    build`) must agree, and the features DAG passes the spec's value either way."""
    from ml.modeling.specs import load_specs

    project = yaml.safe_load((STAGING.parents[1] / "dbt_project.yml").read_text())
    horizons = {s.horizon_var: s.horizon_days for s in load_specs().values() if s.horizon_var}
    assert set(horizons) == {"churn_horizon_days", "propensity_horizon_days",
                             "click_attribution_days"}
    assert {var: project["vars"][var] for var in horizons} == horizons
