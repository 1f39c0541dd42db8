"""A promotion killed between its two writes (the @champion alias in MLflow, the ledger row
in the warehouse) is finished from what it left: the alias moves first and carries the row
it owes as a version tag, so `ml status` or the rerun records that row; a kill after the
row leaves a consistent state. The dead promoter's lock is taken over at once."""

from __future__ import annotations

import json
import sqlite3

from tests.faults.harness import (
    MODEL,
    champion,
    completed,
    killed,
    ledger_moves,
    run_ml,
    run_python,
    warehouse_rows,
)

PROMOTE_V2 = ("from ml.lifecycle.promotion import promote\n"
              f"print(promote({MODEL!r}, '2', 'fault-tests', 'manual', 'second champion'))")
GOOD_MOVES = [("promoted", None, "1")]


def _lock_holder(state) -> str | None:
    return warehouse_rows(state, "SELECT holder FROM ml.promotion_locks "
                                 f"WHERE model = '{MODEL}'")[0][0]


def _pending_tags(state) -> list[str]:
    with sqlite3.connect(state / "mlflow.db") as con:
        return [str(v) for (v,) in con.execute("SELECT version FROM model_version_tags WHERE "
                                          "name = ? AND key = 'pending_ledger_row'", [MODEL])]


def _status(state) -> dict:
    return json.loads(completed(run_ml(state, ["status", "--json"])).stdout)["models"][MODEL]


def test_kill_after_the_alias_moves_is_repaired_by_status(state):
    assert (champion(state), ledger_moves(state)) == ("1", GOOD_MOVES)
    killed(run_python(state, PROMOTE_V2, kill_at="promotion.alias_moved"))
    # the alias moved (v2 serves from here on), its ledger row is missing, the lock is held
    assert (champion(state), ledger_moves(state)) == ("2", GOOD_MOVES)
    assert _pending_tags(state) == ["2"] and _lock_holder(state) is not None

    status = _status(state)
    assert status["champion_check"] == ("repaired: the promoted to v2 died after moving "
                                        "@champion; its ledger row is now recorded")
    assert status["last_decision"]["decision"] == "promoted"
    assert "recorded by repair" in status["last_decision"]["reason"]
    assert status["last_decision"]["actor"] == "fault-tests"
    assert (champion(state), ledger_moves(state)) == ("2", [*GOOD_MOVES, ("promoted", "1", "2")])
    assert _pending_tags(state) == [] and _lock_holder(state) is None


def test_kill_after_the_alias_moves_is_finished_by_the_rerun(state):
    killed(run_python(state, PROMOTE_V2, kill_at="promotion.alias_moved"))
    rerun = completed(run_ml(state, ["promote", MODEL, "2", "--reason", "second champion"]))
    assert " ".join(rerun.stdout.split()) == ("churn: champion v1 -> v2 (a killed run had "
                                              "moved it; its ledger row is now recorded)")
    assert (champion(state), ledger_moves(state)) == ("2", [*GOOD_MOVES, ("promoted", "1", "2")])
    assert _pending_tags(state) == [] and _lock_holder(state) is None


def test_kill_after_the_ledger_row_leaves_a_consistent_champion(state):
    killed(run_python(state, PROMOTE_V2, kill_at="promotion.ledger_written"))
    assert (champion(state), ledger_moves(state)) == ("2", [*GOOD_MOVES, ("promoted", "1", "2")])
    assert _pending_tags(state) == ["2"]  # recorded, only the tag is left
    # the next move starts at once, not after the dead holder's lock lapses, and adds no
    # row for the stale tag
    completed(run_ml(state, ["rollback", MODEL, "--reason", "after the kill"]))
    assert (champion(state), ledger_moves(state)) == (
        "1", [*GOOD_MOVES, ("promoted", "1", "2"), ("rolled_back", "2", "1")])
    assert _pending_tags(state) == [] and _lock_holder(state) is None
