"""A history shorter than a model's label horizon cannot train it: no label has matured, so
the training set is empty. That is a skip with the reason (the train DAG skips on
ModelNotApplicable), not a failure."""

from __future__ import annotations

import pytest

from ml.modeling.specs import get_spec
from ml.modeling.training_data import ModelNotApplicable, TrainingDataError, load_training_set
from ml.warehouse import connect


def test_an_empty_matured_population_is_a_skip_naming_the_horizon(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    spec = get_spec("churn")
    with connect() as con:  # what dbt builds from ten weeks of orders: no matured row
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.churn_training_set (customer_id VARCHAR, "
                    "as_of_date DATE, label INTEGER, label_matured_on DATE, orders_90d DOUBLE)")
    with pytest.raises(ModelNotApplicable, match="0 rows with a matured label") as caught:
        load_training_set(spec)
    assert isinstance(caught.value, TrainingDataError)  # still a data error to its callers
    reason = str(caught.value)
    assert f"matures {spec.horizon_days} days (horizon_days) after its snapshot" in reason
