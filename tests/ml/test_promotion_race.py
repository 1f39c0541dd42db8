"""Racing promotions of one model end with one champion and a ledger that tells the truth.

Threads call ``promote()`` at the same moment against the session's MLflow SQLite store and
DuckDB warehouse; only the warehouse's lock row (``ml.promotion_locks``) serialises them.
Each test registers versions of a tiny scikit-learn model under a model name of its own.

DuckDB 2.0 itself races when threads open and close the last connection to a file at the
same moment (ResourceInUse and catalog errors), so the tests keep one connection open: the
threads share one database instance, as the connections of one process do.
"""

from __future__ import annotations

import threading
import uuid
from itertools import pairwise

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ml import registry
from ml.lifecycle.gate import PromotionError
from ml.lifecycle.ledger import read_ledger
from ml.lifecycle.promotion import LOCK_TABLE, promote, promotion_lock
from ml.settings import ML_SCHEMA
from ml.warehouse import connect, get_warehouse


@pytest.fixture(autouse=True)
def one_duckdb_instance():
    with connect():
        yield


def register_versions(count: int) -> tuple[str, list[str]]:
    """A new model name with ``count`` registered versions of one small fitted model."""
    mlflow = registry.configure()
    model = f"race_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3))
    fitted = LogisticRegression().fit(features, features[:, 0] > 0)
    with mlflow.start_run(experiment_id=registry.experiment_id(model)):
        logged = mlflow.sklearn.log_model(fitted, name="model", pip_requirements=["scikit-learn"])
    versions = [str(mlflow.register_model(logged.model_uri, model).version) for _ in range(count)]
    return model, versions


def race(calls) -> list:
    """Run every call at once, one thread each; each one's result or exception."""
    start = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        start.wait()
        try:
            outcomes[index] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a promotion never finished"
    return outcomes


def champion(model: str) -> str | None:
    found = registry.version_by_alias(model, registry.CHAMPION)
    return str(found.version) if found else None


def ledger_rows(model: str) -> list[tuple]:
    ledger = read_ledger(model).replace({np.nan: None})
    return list(ledger[["decision", "from_version", "to_version"]].itertuples(index=False,
                                                                              name=None))


def test_racing_manual_promotions_take_turns_and_chain_in_the_ledger():
    model, versions = register_versions(3)
    outcomes = race([lambda v=v: promote(model, v, actor=f"user{v}", mode="manual",
                                         reason="race") for v in versions])
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    rows = ledger_rows(model)
    assert [r[0] for r in rows] == ["promoted"] * 3
    assert rows[0][1] is None  # the first had no champion before it
    for earlier, later in pairwise(rows):
        assert later[1] == earlier[2], rows  # each replaced the one before it
    assert sorted(r[2] for r in rows) == sorted(versions)
    assert champion(model) == rows[-1][2]
    assert {(o["from_version"], o["to_version"]) for o in outcomes} == {r[1:] for r in rows}


def test_of_two_runs_gated_against_one_champion_only_the_first_promotes():
    model, versions = register_versions(2)
    outcomes = race([lambda v=v: promote(
        model, v, actor="gate:auto", mode="auto", reason="no champion yet",
        verdict={"champion_version": None, "primary_metric": "roc_auc"}, run_id=f"run{v}")
        for v in versions])
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, PromotionError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    winner, loser = won[0]["to_version"], next(v for v in versions if v != won[0]["to_version"])
    assert f"champion is now v{winner}" in str(lost[0])
    assert champion(model) == winner
    assert ledger_rows(model) == [("promoted", None, winner), ("conflict", winner, loser)]
    assert read_ledger(model).iloc[-1]["evidence_run_id"] == f"run{loser}"


def test_an_alias_moved_outside_the_ledger_is_refused_naming_both():
    model, versions = register_versions(3)
    promote(model, versions[0], actor="alice", mode="manual", reason="first")
    registry.set_alias(model, registry.CHAMPION, versions[1])  # behind the ledger's back
    with pytest.raises(PromotionError, match=rf"@champion is v{versions[1]} but the ledger's "
                                             rf"last move left v{versions[0]}"):
        promote(model, versions[2], actor="bob", mode="manual", reason="second")
    assert champion(model) == versions[1]
    assert ledger_rows(model) == [("promoted", None, versions[0]),
                                  ("conflict", versions[1], versions[2])]


def test_a_held_lock_makes_others_wait_and_a_lapsed_one_is_taken_over():
    model, versions = register_versions(1)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with promotion_lock(model):
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(60)
        with pytest.raises(PromotionError, match="still held after 1s"), \
                promotion_lock(model, wait=1):
            pass
    finally:
        release.set()
        holder.join(60)
    table = get_warehouse().relation(ML_SCHEMA, LOCK_TABLE)
    with connect() as con:  # a worker that died holding the lock long ago
        con.execute(f"UPDATE {table} SET holder = 'dead-worker', "
                    "expires_at = TIMESTAMP '2000-01-01' WHERE model = ?", [model])
    promote(model, versions[0], actor="alice", mode="manual", reason="after a crash")
    assert champion(model) == versions[0]
