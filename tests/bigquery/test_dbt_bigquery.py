"""dbt on BigQuery: the whole project builds on bqemulator from a small generated history,
and its marts equal the DuckDB build of the same raw tables, row by row. Also the profiles
the platform hands to dbt: profiles.yml per environment, and the Cosmos profile mapping
from the Airflow connection google_cloud_default."""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ml.dbt import build, profile_config
from ml.marts import MART_KEYS
from ml.settings import Settings, get_settings
from ml.sim.history import generate_tables
from ml.warehouse import DuckDBWarehouse, Warehouse, get_warehouse
from tests.support.parity import compare_frames, read_table

# contract data_type -> what the BigQuery API reports
BIGQUERY_TYPES = {"string": "STRING", "integer": "INTEGER", "float64": "FLOAT",
                  "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP"}


@pytest.fixture(scope="module")
def raw_tables() -> dict[str, pa.Table]:
    tables = generate_tables(customers=200, seed=7, start=date(2023, 1, 1),
                             end=date(2024, 12, 31))
    return {name: table for name, table in tables.items() if name.startswith("raw.")}


def _duckdb_settings(settings: Settings, tmp_path) -> Settings:
    return dataclasses.replace(settings, warehouse="duckdb", bigquery=None, dbt_target="duckdb",
                               local_dir=tmp_path / "duckdb",
                               warehouse_path=tmp_path / "duckdb" / "warehouse.duckdb")


def _marts(wh: Warehouse) -> dict:
    return {mart: read_table(wh, "marts", mart) for mart in MART_KEYS}


def _assert_marts_equal(expected: dict, actual: dict) -> None:
    for mart, keys in MART_KEYS.items():
        parity = compare_frames(mart, expected[mart], actual[mart], keys)
        assert parity.left_rows > 0, mart
        assert parity.equal, f"{parity.table}: {parity.differences}"


def _assert_contract_types_and_layout(bigquery, settings: Settings) -> None:
    """bqemulator cannot run contract DDL, so contracts are not enforced there
    (dbt_project.yml): check the built types against the contracts instead, and the
    BigQuery layout (partition by as_of_date; clustering is in the DDL dbt sent, as the
    emulator does not report it)."""
    manifest = json.loads((settings.dbt_target_dir / "manifest.json").read_text())
    marts = {node["name"]: node for node in manifest["nodes"].values()
             if node["resource_type"] == "model" and node["config"].get("schema") == "marts"}
    for name in ("customer_features", "customer_labels", "churn_training_set",
                 "purchase_propensity_training_set", "snapshot_calendar"):
        table = bigquery.client.get_table(bigquery.table_id("marts", name))
        built = {field.name: field.field_type for field in table.schema}
        declared = {column: BIGQUERY_TYPES[spec["data_type"].lower()]
                    for column, spec in marts[name]["columns"].items()}
        assert built == declared, name
        if name != "snapshot_calendar":
            assert table.time_partitioning.field == "as_of_date", name
            ddl = (settings.dbt_target_dir / "run" / "customer_ml" / "models" / "marts"
                   / f"{name}.sql").read_text().lower()
            assert "partition by as_of_date" in ddl and "cluster by customer_id" in ddl, name


@pytest.mark.slow
def test_marts_on_bigquery_equal_the_duckdb_build(on_bigquery, raw_tables, tmp_path, monkeypatch):
    bq_settings = dataclasses.replace(get_settings(), local_dir=tmp_path / "bigquery")
    duck_settings = _duckdb_settings(bq_settings, tmp_path)
    bigquery = get_warehouse()
    duckdb = DuckDBWarehouse(duck_settings.warehouse_path)
    bigquery.replace_tables(raw_tables)
    duckdb.replace_tables(raw_tables)

    # both builds at once: dbt on BigQuery mostly waits on the emulator
    with ThreadPoolExecutor(2) as pool:
        on_bq = pool.submit(build, bq_settings)
        on_duckdb = pool.submit(build, duck_settings)
        bq_run, duckdb_run = on_bq.result(), on_duckdb.result()
    assert duckdb_run.returncode == 0, duckdb_run.stdout[-3000:]
    assert bq_run.returncode == 0, bq_run.stdout[-5000:]
    assert "ERROR=0" in bq_run.stdout and "SKIP=0" in bq_run.stdout, bq_run.stdout[-3000:]

    _assert_marts_equal(_marts(duckdb), _marts(bigquery))
    _assert_contract_types_and_layout(bigquery, bq_settings)


def _emulator_runs_insert_overwrite(wh) -> bool:
    """dbt-bigquery's insert_overwrite script collects the partitions to replace with
    ARRAY_AGG(DISTINCT ... IGNORE NULLS), which bqemulator 1.4 cannot parse."""
    try:
        wh.query("SELECT ARRAY_AGG(DISTINCT x IGNORE NULLS) AS partitions "
                 "FROM UNNEST([1, 2, CAST(NULL AS INT64)]) AS x")
    except Exception:  # noqa: BLE001 - any rejection is the gap
        return False
    return True


@pytest.mark.slow
def test_incremental_build_on_bigquery_equals_a_full_one(on_bigquery, raw_tables, tmp_path):
    bigquery = get_warehouse()
    if not _emulator_runs_insert_overwrite(bigquery):
        pytest.skip("bqemulator gap: cannot parse ARRAY_AGG(DISTINCT ... IGNORE NULLS) in "
                    "dbt-bigquery's insert_overwrite script, so incremental runs fail there; "
                    "the incremental snapshot models are exercised on DuckDB (tests/dbt)")
    settings = dataclasses.replace(get_settings(), local_dir=tmp_path / "bigquery")
    bigquery.replace_tables(raw_tables)
    assert build(settings).returncode == 0
    # a month more of orders: a new monthly snapshot and a new scoring snapshot
    orders = raw_tables["raw.orders"]
    month_later = pa.table({
        **{name: orders[name] for name in orders.column_names},
        "order_id": pc.binary_join_element_wise("later_", orders["order_id"], ""),
        "ordered_at": pc.add(orders["ordered_at"], pa.scalar(timedelta(days=31))),
    }).filter(pc.greater_equal(orders["ordered_at"], pa.scalar(datetime(2024, 12, 1))))
    bigquery.replace_tables({"raw.orders": pa.concat_tables([orders, month_later])})

    rebuild = ("--exclude", "test_type:unit")
    incremental = build(settings, extra_args=rebuild)
    assert incremental.returncode == 0, incremental.stdout[-3000:]
    after_incremental = _marts(bigquery)
    full = build(settings, full_refresh=True, extra_args=rebuild)
    assert full.returncode == 0, full.stdout[-3000:]
    _assert_marts_equal(_marts(bigquery), after_incremental)


def test_profiles_yml_bigquery_output_follows_the_environment(monkeypatch):
    """One output serves the emulator, a service-account key file and ADC."""
    from argparse import Namespace

    from dbt.adapters.factory import load_plugin
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    set_from_args(Namespace(), None)
    load_plugin("bigquery")
    profiles = read_profile(str(get_settings().dbt_profiles_dir))

    def credentials(**env):
        for key in ("BQ_API_ENDPOINT", "BQ_KEYFILE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in {"BQ_PROJECT": "shop-prod", "BQ_DATASET_PREFIX": "cmp", **env}.items():
            monkeypatch.setenv(key, value)
        set_invocation_context(os.environ)
        return Profile.from_raw_profiles(profiles, "customer_ml", ProfileRenderer({}),
                                         target_override="bigquery").credentials

    emulator = credentials(BQ_API_ENDPOINT="http://127.0.0.1:9050")
    assert (emulator.method, emulator.api_endpoint) == ("oauth-secrets", "http://127.0.0.1:9050")
    assert emulator.token
    keyfile = credentials(BQ_KEYFILE="/secrets/dbt.json")
    assert (keyfile.method, keyfile.keyfile, keyfile.api_endpoint) == (
        "service-account", "/secrets/dbt.json", "")
    adc = credentials()
    assert (adc.method, adc.api_endpoint, adc.database, adc.schema, adc.location) == (
        "oauth", "", "shop-prod", "cmp", "US")


@pytest.mark.parametrize("extra, method, field", [
    ({"key_path": "/secrets/dbt.json"}, "service-account", "keyfile"),
    ({"keyfile_dict": json.dumps({"type": "service_account", "private_key_id": "k1",
                                  "private_key": "not-a-key", "client_email": "dbt@x"})},
     "service-account-json", "keyfile_json"),
    ({}, "oauth", None),
])
def test_features_dag_profile_comes_from_the_airflow_connection(monkeypatch, extra, method,
                                                                field):
    """WAREHOUSE=bigquery without an emulator: Cosmos maps google_cloud_default (key file,
    key JSON or Application Default Credentials) to the profile, datasets <prefix>_*."""
    for key in ("BQ_API_ENDPOINT", "BQ_STORAGE_ENDPOINT", "BQ_KEYFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WAREHOUSE", "bigquery")
    monkeypatch.setenv("BQ_PROJECT", "shop-prod")
    monkeypatch.setenv("BQ_DATASET_PREFIX", "cmp")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"project": "other", **extra}}))
    config = profile_config(get_settings())
    assert config.profiles_yml_filepath is None
    profile = config.profile_mapping.profile
    assert (profile["type"], profile["method"], profile["project"], profile["dataset"]) == (
        "bigquery", method, "shop-prod", "cmp")
    if field:
        assert profile[field]
    assert "not-a-key" not in json.dumps(profile)  # the key JSON's secrets travel as env vars


def test_emulator_and_duckdb_use_the_repository_profiles_yml(monkeypatch):
    settings = get_settings()
    assert profile_config(settings).profiles_yml_filepath == (
        settings.dbt_profiles_dir / "profiles.yml")
    monkeypatch.setenv("WAREHOUSE", "bigquery")
    monkeypatch.setenv("BQ_PROJECT", "cmp-local")
    monkeypatch.setenv("BQ_API_ENDPOINT", "http://127.0.0.1:9050")
    assert profile_config(get_settings()).profile_mapping is None
