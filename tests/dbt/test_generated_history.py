"""The project on the platform's own synthetic history (ml.sim.history, 1,000 customers):
the build passes, the marts agree with the pandas recomputation, and dbt never reads the
generator's ground truth (schema eval)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from ml.warehouse import replace_tables
from tests.dbt import reference as ref
from tests.dbt.harness import Warehouse

pytestmark = pytest.mark.slow
generate = pytest.importorskip("ml.sim.history")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tables = generate.generate_tables(
        customers=1000, seed=11, start=date(2023, 1, 1), end=date(2024, 12, 31)
    )
    warehouse = Warehouse(tmp_path_factory.mktemp("dbt_generated"))
    replace_tables(tables, warehouse.path)
    run = warehouse.build()
    raw = {
        name.split(".")[1]: table.to_pandas()
        for name, table in tables.items()
        if name.startswith("raw.")
    }
    return warehouse, run, raw


def test_build_passes_on_a_generated_history(generated):
    warehouse, run, _ = generated
    assert run.ok, run.output
    for mart in ("churn_training_set", "purchase_propensity_training_set"):
        labels = warehouse.mart(mart)["label"]
        assert set(labels.unique()) == {0, 1}, mart


def test_generated_marts_match_the_pandas_recomputation(generated):
    warehouse, run, raw = generated
    assert run.ok, run.output
    sample = sorted(raw["customers"]["customer_id"])[::10]
    orders = raw["orders"]
    sampled = {
        "customers": raw["customers"][raw["customers"]["customer_id"].isin(sample)],
        "orders": orders[orders["customer_id"].isin(sample)],
        "order_items": raw["order_items"][
            raw["order_items"]["order_id"].isin(
                orders.loc[orders["customer_id"].isin(sample), "order_id"]
            )
        ],
        "sessions": raw["sessions"][raw["sessions"]["customer_id"].isin(sample)],
        "marketing_touches": raw["marketing_touches"][
            raw["marketing_touches"]["customer_id"].isin(sample)
        ],
    }
    calendar = ref.expected_calendar(orders)  # the calendar comes from every customer's orders
    where = "customer_id in ({})".format(", ".join(f"'{c}'" for c in sample))
    features = warehouse.query(f"select * from marts.customer_features where {where}")
    expected = ref.expected_features(sampled, calendar)
    ref.assert_frames_match(features, expected, [c for c in expected.columns if c not in ref.KEYS])
    labels = warehouse.query(f"select * from marts.customer_labels where {where}")
    ref.assert_frames_match(
        labels, ref.expected_labels(sampled, calendar), ["churn_label", "purchase_label"]
    )


def test_dbt_never_reads_the_ground_truth(generated):
    warehouse, run, _ = generated
    assert run.ok, run.output
    manifest = json.loads((warehouse.target_dir / "manifest.json").read_text())
    assert {source["schema"] for source in manifest["sources"].values()} == {"raw"}
    for path in (warehouse.target_dir / "compiled").rglob("*.sql"):
        sql = path.read_text().lower()
        assert '"eval"' not in sql and "eval." not in sql and "oracle" not in sql, path
