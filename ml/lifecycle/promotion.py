"""Promote and roll back: move ``@champion`` and record the decision in the ledger.

Promotions start anywhere: ``finalize`` on any Celery, Kubernetes or Composer worker, the
``rollback`` DAG, ``ml promote``/``ml rollback`` on a laptop. MLflow has no compare-and-set
on aliases, so each model has a lock row in ``ml.promotion_locks``, in the warehouse every
one of them writes the ledger to. A promoter claims it with one conditional UPDATE and reads
it back: DuckDB fails the second of two concurrent writers of a row (the primary key stops
two first claims from adding two rows), BigQuery serialises mutating DML on a table. A claim
lapses after ``LOCK_TTL`` so a dead holder cannot block the model for good.

Under the lock every move is checked against the ledger: the alias must be where the
ledger's last promotion or rollback left it (else it was moved outside the ledger and the
move is refused, naming both); a gate verdict must have compared the challenger with the
current champion (else the later of two racing runs would replace a champion it was never
judged against); the alias is read back after the move. A refusal is a ledger row too
(decision ``conflict``).
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from ml import registry
from ml.lifecycle.gate import PromotionError
from ml.lifecycle.ledger import append_ledger, ledger_row, read_ledger
from ml.schema import arrow_schema
from ml.settings import ML_SCHEMA
from ml.warehouse import Warehouse, connect, get_warehouse

log = logging.getLogger(__name__)

LOCK_TABLE = "promotion_locks"
LOCK_COLUMNS = {"model": "VARCHAR", "holder": "VARCHAR", "expires_at": "TIMESTAMP"}
LOCK_TTL = timedelta(minutes=10)  # a promotion takes seconds; a dead holder's claim lapses
LOCK_WAIT_SECONDS = 300.0
ALIAS_MOVES = ("promoted", "rolled_back")  # the ledger decisions that move @champion


class _LostRace(Exception):
    """Another writer won this round (a write-write conflict, or the DuckDB file is open
    elsewhere with other settings): try again."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _run_statements(wh: Warehouse, statements: list[tuple[str, list]]) -> list[tuple]:
    """Run SQL statements in order; the last one's rows. The warehouse interface has no
    conditional write, and the lock needs exactly one."""
    if wh.kind == "bigquery":
        from google.api_core.exceptions import BadRequest
        from google.cloud import bigquery

        from ml.warehouse.bigquery import query_parameter

        rows: list[tuple] = []
        for sql, params in statements:
            config = bigquery.QueryJobConfig(query_parameters=[query_parameter(v) for v in params])
            try:
                rows = [tuple(r.values()) for r in wh.client.query(sql, job_config=config).result()]
            except BadRequest as exc:
                if "concurrent update" not in str(exc):
                    raise
                raise _LostRace(str(exc)) from exc
        return rows
    try:
        with connect(wh.path) as con:
            for sql, params in statements:
                rows = con.execute(sql, params).fetchall()
            return rows
    except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
        raise _LostRace(str(exc)) from exc
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        if "lock" not in str(exc) and "different configuration" not in str(exc):
            raise
        raise _LostRace(str(exc)) from exc


def _claim(model: str, holder: str) -> bool:
    """One attempt at the model's lock row: True when ``holder`` now holds it."""
    wh = get_warehouse()
    table = wh.relation(ML_SCHEMA, LOCK_TABLE)
    now = _now()
    if wh.kind == "duckdb":
        seed = [(f"CREATE SCHEMA IF NOT EXISTS {wh.quote(ML_SCHEMA)}", []),
                (f"CREATE TABLE IF NOT EXISTS {table} (model VARCHAR PRIMARY KEY, "
                 "holder VARCHAR, expires_at TIMESTAMP)", []),
                (f"INSERT INTO {table} VALUES (?, NULL, NULL) ON CONFLICT DO NOTHING", [model])]
    else:  # BigQuery has no keys: a duplicate row is harmless, a claim needs every row free
        seed = []
        if not wh.table_exists(ML_SCHEMA, LOCK_TABLE) or not wh.scalar(
                f"SELECT count(*) FROM {table} WHERE model = ?", [model], stage="promotion lock"):
            wh.append(ML_SCHEMA, LOCK_TABLE, pa.Table.from_pylist(
                [{"model": model, "holder": None, "expires_at": None}],
                schema=arrow_schema(LOCK_COLUMNS)))
    claim = (f"UPDATE {table} SET holder = ?, expires_at = ? WHERE model = ? AND NOT EXISTS ("
             f"SELECT 1 FROM {table} AS held WHERE held.model = ? "
             "AND held.holder IS NOT NULL AND held.expires_at > ?)",
             [holder, now + LOCK_TTL, model, model, now])
    read_back = (f"SELECT count(*) FROM {table} WHERE model = ? AND holder = ?", [model, holder])
    try:
        return _run_statements(wh, [*seed, claim, read_back])[0][0] > 0
    except _LostRace:
        return False


def _release(model: str, holder: str) -> None:
    wh = get_warehouse()
    table = wh.relation(ML_SCHEMA, LOCK_TABLE)
    deadline = time.monotonic() + 30
    while True:
        try:
            _run_statements(wh, [(f"UPDATE {table} SET holder = NULL, expires_at = NULL "
                              "WHERE model = ? AND holder = ?", [model, holder])])
            return
        except _LostRace:
            if time.monotonic() > deadline:
                log.warning("could not release the promotion lock of %s; it lapses in %s",
                            model, LOCK_TTL)
                return
            time.sleep(0.1)


def _lock_holder(model: str) -> str:
    wh = get_warehouse()
    rows = wh.query(f"SELECT holder, expires_at FROM {wh.relation(ML_SCHEMA, LOCK_TABLE)} "
                    "WHERE model = ? AND holder IS NOT NULL", [model],
                    stage="promotion lock").to_pylist()
    return ", ".join(f"{r['holder']} until {r['expires_at']} UTC" for r in rows) or "nobody now"


@contextmanager
def promotion_lock(model: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[str]:
    """One promotion or rollback of ``model`` at a time, on every machine that writes this
    warehouse. Yields the holder's id (host:pid:nonce)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    while not _claim(model, holder):
        if time.monotonic() > deadline:
            raise PromotionError(f"{model}: the promotion lock is still held after {wait:.0f}s "
                                 f"(by {_lock_holder(model)})")
        time.sleep(random.uniform(0.05, 0.3))
    try:
        yield holder
    finally:
        _release(model, holder)


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _named(version: str | None) -> str:
    return f"v{version}" if version else "no champion"


def _ledger_champion(model: str) -> str | None:
    """The champion the ledger's last promotion or rollback left."""
    ledger = read_ledger(model)
    moves = ledger[ledger["decision"].isin(ALIAS_MOVES)]
    return None if moves.empty else str(moves.iloc[-1]["to_version"])


def _refuse(model: str, from_version: str | None, to_version: str | None, mode: str,
            actor: str, reason: str, verdict: dict | None = None,
            run_id: str | None = None) -> None:
    append_ledger(ledger_row(model, from_version, to_version, "conflict", mode, reason, actor,
                             verdict, run_id))
    raise PromotionError(f"{model}: {reason}")


def _checked_champion(model: str, to_version: str | None, mode: str, actor: str,
                      run_id: str | None = None) -> str | None:
    """The champion's version, once it is known to be where the ledger says it is."""
    alias = registry.version_by_alias(model, registry.CHAMPION)
    current = str(alias.version) if alias else None
    recorded = _ledger_champion(model)
    if current != recorded:
        _refuse(model, current, to_version, mode, actor,
                f"@champion is {_named(current)} but the ledger's last move left "
                f"{_named(recorded)}: it was moved outside promote/rollback; put it back in "
                f"MLflow ({f'set @champion to v{recorded}' if recorded else 'delete @champion'})"
                ", then retry", run_id=run_id)
    return current


def _restore_alias(model: str, version: str | None) -> None:
    if version:
        registry.set_alias(model, registry.CHAMPION, version)
    else:
        registry.client().delete_registered_model_alias(model, registry.CHAMPION)


def promote(model: str, version: str, actor: str, mode: str, reason: str,
            verdict: dict | None = None, run_id: str | None = None) -> dict:
    """Move @champion to ``version`` and record it, holding the model's lock.

    Refused (PromotionError, and a ``conflict`` row) when the alias is not where the ledger
    left it, or when ``verdict`` judged ``version`` against another champion than the
    current one: of two racing runs gated against one champion, only the first promotes."""
    version = str(version)
    with promotion_lock(model):
        from_version = _checked_champion(model, version, mode, actor, run_id)
        if from_version == version:
            raise PromotionError(f"{model} v{version} is already the champion")
        if verdict is not None and "champion_version" in verdict:
            judged = verdict["champion_version"]
            judged = str(judged) if judged is not None else None
            if judged != from_version:
                _refuse(model, from_version, version, mode, actor,
                        f"the gate judged v{version} against {_named(judged)}, but the "
                        f"champion is now {_named(from_version)}: retrain to compare with it",
                        verdict, run_id)
        registry.client().get_model_version(model, version)  # exists, or MLflow raises
        registry.set_alias(model, registry.CHAMPION, version)  # raises unless it reads back
        try:
            append_ledger(ledger_row(model, from_version, version, "promoted", mode, reason,
                                     actor, verdict, run_id))
        except BaseException:
            _restore_alias(model, from_version)  # the alias stays where the ledger says
            raise
        registry.tag_version(model, version, {"promoted_by": actor, "promotion_mode": mode})
    return {"model": model, "from_version": from_version, "to_version": version}


def record_decision(model: str, version: str, decision: str, mode: str, reason: str, actor: str,
                    verdict: dict | None = None, run_id: str | None = None) -> None:
    """A decision that leaves @champion where it is (rejected, dry run, declined by approver)."""
    champion = registry.version_by_alias(model, registry.CHAMPION)
    append_ledger(ledger_row(model, str(champion.version) if champion else None, str(version),
                             decision, mode, reason, actor, verdict, run_id))


def rollback(model: str, actor: str, reason: str = "rollback requested") -> dict:
    """Restore the champion that the current one replaced (from the ledger), in one action."""
    with promotion_lock(model):
        current = _checked_champion(model, None, "manual", actor)
        if current is None:
            raise PromotionError(f"{model} has no champion to roll back")
        ledger = read_ledger(model)
        promoted = ledger[(ledger.decision == "promoted") & (ledger.to_version == current)]
        if promoted.empty or pd.isna(promoted.iloc[-1]["from_version"]) or \
                promoted.iloc[-1]["from_version"] == "":
            raise PromotionError(f"{model} v{current} has no previous champion in the "
                                 "ledger to roll back to")
        target = str(promoted.iloc[-1]["from_version"])
        registry.set_alias(model, registry.CHAMPION, target)
        try:
            append_ledger(ledger_row(model, current, target, "rolled_back", "manual", reason,
                                     actor))
        except BaseException:
            _restore_alias(model, current)
            raise
        registry.tag_version(model, current, {"rolled_back_by": actor})
    return {"model": model, "from_version": current, "to_version": target}
