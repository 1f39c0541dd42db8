"""The warehouse switch: environment first, then the Airflow connection google_cloud_default."""

from __future__ import annotations

import json

import pytest

from ml.settings import dbt_environment, get_settings


def test_duckdb_is_the_default(monkeypatch):
    monkeypatch.delenv("WAREHOUSE", raising=False)
    settings = get_settings()
    assert settings.warehouse == "duckdb" and settings.bigquery is None
    assert settings.dbt_target == "duckdb"


def test_unknown_warehouse_is_refused(monkeypatch):
    monkeypatch.setenv("WAREHOUSE", "snowflake")
    with pytest.raises(ValueError, match="choose one of duckdb, bigquery"):
        get_settings()


def test_bigquery_from_the_environment(monkeypatch):
    monkeypatch.setenv("WAREHOUSE", "bigquery")
    monkeypatch.setenv("BQ_PROJECT", "retail-prod")
    monkeypatch.setenv("BQ_RAW_PROJECT", "retail-lake")
    monkeypatch.setenv("BQ_RAW_DATASET", "shop")
    settings = get_settings()
    bq = settings.bigquery
    assert settings.dbt_target == "bigquery"
    assert (bq.dataset("marts"), bq.project_of("marts")) == ("cmp_marts", "retail-prod")
    assert (bq.dataset("raw"), bq.project_of("raw")) == ("shop", "retail-lake")
    env = dbt_environment(settings)
    assert env["BQ_RAW_DATASET"] == "shop" and env["BQ_RAW_PROJECT"] == "retail-lake"
    assert "BQ_KEYFILE" not in env  # Application Default Credentials


def test_bigquery_from_the_airflow_connection(monkeypatch):
    monkeypatch.setenv("WAREHOUSE", "bigquery")
    monkeypatch.delenv("BQ_PROJECT", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps({
        "conn_type": "google_cloud_platform",
        "extra": {"project": "from-conn", "key_path": "/secrets/sa.json", "location": "EU"}}))
    bq = get_settings().bigquery
    assert (bq.project, bq.keyfile, bq.location, bq.dataset_prefix) == (
        "from-conn", "/secrets/sa.json", "EU", "cmp")


def test_bigquery_without_a_project_says_what_to_set(monkeypatch):
    monkeypatch.setenv("WAREHOUSE", "bigquery")
    monkeypatch.delenv("BQ_PROJECT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    with pytest.raises(ValueError, match="needs BQ_PROJECT"):
        get_settings()
