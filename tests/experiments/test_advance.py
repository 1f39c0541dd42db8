"""`ml simulate advance`: the world continues after the data's end, the newest plan is
played once (treated contacted, control not), and the same inputs give the same data."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from ml.sim.advance import AdvanceError, advance
from ml.sim.history import generate
from ml.warehouse import get_warehouse

TABLES = ("raw.orders", "raw.order_items", "raw.sessions", "raw.marketing_touches",
          "raw.campaign_assignments", "eval.campaign_effects", "eval.oracle_labels")
PLAN_AS_OF = date(2025, 1, 1)

pytestmark = pytest.mark.slow


def _history_with_a_plan(path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PATH", str(path))
    generate(customers=600, seed=5, start=date(2024, 1, 1), end=date(2024, 12, 31))
    ids = [f"C{i:07d}" for i in range(0, 600, 3)]
    targets = pd.DataFrame({"as_of_date": PLAN_AS_OF, "customer_id": ids,
                            "channel": ["direct_mail", "crm_email"] * (len(ids) // 2),
                            "group": ["treatment"] * 150 + ["control"] * (len(ids) - 150)})
    get_warehouse().replace_tables({
        "ml.campaign_targets": pa.Table.from_pandas(targets, preserve_index=False),
        "ml.campaign_designs": pa.table({"as_of_date": [PLAN_AS_OF], "control_share": [0.25],
                                         "horizon_days": [60]})})


def _snapshot(path) -> dict[str, list]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.sql(f"select * from {t} order by all").fetchall() for t in TABLES}


@pytest.fixture(scope="module")
def advanced(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("advance") / "warehouse.duckdb"
    _history_with_a_plan(path, monkeypatch)
    before = _snapshot(path)
    first = advance(60)
    second = advance(30)
    yield path, before, first, second
    monkeypatch.undo()


def test_the_plan_is_played_once_and_the_world_moves_on(advanced):
    path, before, first, second = advanced
    assert first.campaign == "retention-2025-01-01"
    assert (first.contacted, first.control) == (150, 50)
    assert second.campaign is None and (second.start, second.end) == (date(2025, 3, 2),
                                                                       date(2025, 3, 31))
    with duckdb.connect(str(path), read_only=True) as con:
        plan = con.sql("select * from raw.campaign_assignments where campaign = "
                       "'retention-2025-01-01'").df()
        orders = con.sql("select * from raw.orders").df()
        effects = con.sql("select * from eval.campaign_effects where campaign = "
                          "'retention-2025-01-01'").df()
    assert len(plan) == 200 and plan["treated"].sum() == 150
    assert (plan["assigned_at"] == pd.Timestamp("2025-01-01")).all()
    assert (plan["horizon_days"] == 60).all() and (plan["planned_control_share"] == 0.25).all()
    assert len(effects) == 200 and effects["effect"].between(-1, 1).all()
    assert orders["order_id"].is_unique
    assert orders["ordered_at"].max() < pd.Timestamp("2025-04-01")
    new = orders[orders["ordered_at"] >= pd.Timestamp("2025-01-01")]
    assert len(new) == first.row_counts["raw.orders"] + second.row_counts["raw.orders"]


def test_the_history_before_the_end_is_untouched(advanced):
    path, before, _, _ = advanced
    after = _snapshot(path)
    for table, rows in before.items():
        assert set(rows) <= set(after[table]), table


def test_same_inputs_same_continuation(advanced, tmp_path, monkeypatch):
    path, _, _, _ = advanced
    other = tmp_path / "again.duckdb"
    _history_with_a_plan(other, monkeypatch)
    advance(60)
    advance(30)
    assert _snapshot(other) == _snapshot(path)


def test_data_not_made_by_the_generator_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "imported.duckdb"))
    with pytest.raises(AdvanceError, match="only a history made by `ml generate`"):
        advance(30)


def test_imported_data_over_a_generated_history_is_refused(advanced):
    path, _, _, _ = advanced
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM raw.customers WHERE customer_id = 'C0000000'")
    with pytest.raises(AdvanceError, match="was other data imported"):
        advance(10)
