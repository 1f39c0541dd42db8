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

The registry and the warehouse share no transaction, so a move is two writes: the alias
first, carrying the ledger row it owes as a tag on the version it moves to, then that row.
A promoter killed between them leaves the alias ahead of the ledger, with the row that says
why; ``repair_alias_move`` (run by the next promote or rollback, and by ``ml status``)
records it. The lock of a holder killed on this machine is taken over at once rather than
after ``LOCK_TTL``.
"""

from __future__ import annotations

import getpass
import json
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
from ml.faults import checkpoint
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
PENDING_MOVE_TAG = "pending_ledger_row"  # on the version @champion moves to, until recorded


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


def _holder_is_dead(holder: str) -> bool:
    """True for a holder on this machine whose process is gone (killed mid-promotion)."""
    host, _, pid = holder.rpartition(":")[0].rpartition(":")  # host:pid:nonce
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process, or another id: only LOCK_TTL can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def _release_dead_holders(model: str) -> None:
    """Free the lock of a promoter killed on this machine, so a rerun need not wait out
    LOCK_TTL. A reused pid only makes a dead holder look alive: then the claim lapses."""
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, LOCK_TABLE):
        return
    holders = wh.query(f"SELECT holder FROM {wh.relation(ML_SCHEMA, LOCK_TABLE)} "
                       "WHERE model = ? AND holder IS NOT NULL", [model],
                       stage="promotion lock").column("holder").to_pylist()
    for holder in filter(_holder_is_dead, holders):
        log.warning("%s: the promotion lock holder %s died; releasing its claim", model, holder)
        _release(model, holder)


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
    _release_dead_holders(model)
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


def _clear_pending(model: str, version: str) -> None:
    registry.client().delete_model_version_tag(model, version, PENDING_MOVE_TAG)


def _move_alias(model: str, row: dict) -> None:
    """Move @champion to ``row``'s version, then append ``row`` to the ledger (call under
    the lock).

    Alias first, because of what a kill between the two leaves: an alias ahead of the
    ledger is true (the version is champion, scoring may already use it) and lacks only its
    record, which the pending tag holds. The other order could leave a ledger row naming a
    champion that never served, which an append-only ledger cannot take back."""
    version = row["to_version"]
    registry.tag_version(model, version, {PENDING_MOVE_TAG: json.dumps(row, default=str)})
    try:
        registry.set_alias(model, registry.CHAMPION, version)  # raises unless it reads back
        checkpoint("promotion.alias_moved")
        append_ledger(row)
    except BaseException:
        _restore_alias(model, row["from_version"])  # the alias stays where the ledger says
        _clear_pending(model, version)
        raise
    checkpoint("promotion.ledger_written")
    _clear_pending(model, version)


def repair_alias_move(model: str) -> dict | None:
    """Finish a move whose process died after the alias moved and before its ledger row
    (call under the lock): append the row the pending tag holds and clear the tag. Returns
    the recorded row, or None when there was nothing to finish.

    It records the move rather than moving the alias back because the record is what is
    missing, not the decision: the move was checked under the lock before the alias moved,
    and from then on the version was champion (scores may carry it), so putting the alias
    back would make the ledger deny what happened. A tag whose ``from_version`` is not the
    ledger's last move is not finished: the alias moved again outside the ledger, a conflict
    for a person. A kill after the ledger row leaves only the tag, which is cleared."""
    alias = registry.version_by_alias(model, registry.CHAMPION)
    if alias is None or PENDING_MOVE_TAG not in alias.tags:
        return None
    version, recorded = str(alias.version), _ledger_champion(model)
    if recorded == version:
        _clear_pending(model, version)
        return None
    row = json.loads(alias.tags[PENDING_MOVE_TAG])
    if row["to_version"] != version or row["from_version"] != recorded:
        return None
    row["decided_at"] = datetime.fromisoformat(row["decided_at"])
    row["reason"] = (f"{row['reason']} [recorded by repair: the {row['decision']} run died "
                     "after moving @champion, before this row]")
    append_ledger(row)
    _clear_pending(model, version)
    log.warning("%s: @champion was moved to v%s but its ledger row was missing (the run died "
                "in between); recorded it from the registry", model, version)
    return row


def champion_check(model: str, wait: float = 10.0) -> str | None:
    """For ``ml status``: None when @champion is where the ledger's last move left it;
    else what was repaired (a half-done move, see ``repair_alias_move``) or what is wrong.
    Takes the lock only when something looks off, so a status stays a read."""
    alias = registry.version_by_alias(model, registry.CHAMPION)
    if (str(alias.version) if alias else None) == _ledger_champion(model) and (
            alias is None or PENDING_MOVE_TAG not in alias.tags):
        return None
    try:
        with promotion_lock(model, wait):
            repaired = repair_alias_move(model)
            alias = registry.version_by_alias(model, registry.CHAMPION)
            current, recorded = (str(alias.version) if alias else None), _ledger_champion(model)
    except PromotionError as exc:  # the lock is held: a promotion is under way
        return f"not checked: {exc}"
    if repaired:
        return (f"repaired: the {repaired['decision']} to v{repaired['to_version']} died after "
                "moving @champion; its ledger row is now recorded")
    if current != recorded:
        return (f"@champion is {_named(current)} but the ledger's last move left "
                f"{_named(recorded)}: moved outside promote/rollback")
    return None


def promote(model: str, version: str, actor: str, mode: str, reason: str,
            verdict: dict | None = None, run_id: str | None = None) -> dict:
    """Move @champion to ``version`` and record it, holding the model's lock.

    Refused (PromotionError, and a ``conflict`` row) when the alias is not where the ledger
    left it, or when ``verdict`` judged ``version`` against another champion than the
    current one: of two racing runs gated against one champion, only the first promotes."""
    version = str(version)
    with promotion_lock(model):
        repaired = repair_alias_move(model)
        if repaired and repaired["to_version"] == version and repaired["decision"] == "promoted":
            return {"model": model, "from_version": repaired["from_version"],
                    "to_version": version, "repaired": True}  # a rerun of the killed promotion
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
        _move_alias(model, ledger_row(model, from_version, version, "promoted", mode, reason,
                                      actor, verdict, run_id))
        registry.tag_version(model, version, {"promoted_by": actor, "promotion_mode": mode})
    return {"model": model, "from_version": from_version, "to_version": version}


def record_decision(model: str, version: str, decision: str, mode: str, reason: str, actor: str,
                    verdict: dict | None = None, run_id: str | None = None) -> None:
    """A decision that leaves @champion where it is (rejected, dry run, declined by approver)."""
    champion = registry.version_by_alias(model, registry.CHAMPION)
    append_ledger(ledger_row(model, str(champion.version) if champion else None, str(version),
                             decision, mode, reason, actor, verdict, run_id))


def apply_verdict(model: str, version: str, run_id: str, verdict: dict,
                  mode: str) -> tuple[str, dict | None]:
    """A training job's new version, acted on as the gate said: ``auto`` promotes a passing
    challenger, ``manual`` leaves it for ``ml promote`` / the approval step, ``dry_run``
    only records the decision. Returns the decision and the promotion (None unless moved)."""
    actor = current_actor()
    if verdict["promote"] and mode == "auto":
        return "promoted", promote(model, version, actor, mode, verdict["reason"],
                                   verdict=verdict, run_id=run_id)
    decision = (verdict["decision"] if mode == "auto" or not verdict["promote"]
                else f"{mode}: awaiting approval" if mode == "manual" else "dry_run")
    record_decision(model, version, verdict["decision"] if mode == "auto" else mode, mode,
                    verdict["reason"], actor, verdict, run_id)
    return decision, None


def rollback(model: str, actor: str, reason: str = "rollback requested") -> dict:
    """Restore the champion that the current one replaced (from the ledger), in one action."""
    with promotion_lock(model):
        repair_alias_move(model)
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
        _move_alias(model, ledger_row(model, current, target, "rolled_back", "manual", reason,
                                      actor))
        registry.tag_version(model, current, {"rolled_back_by": actor})
    return {"model": model, "from_version": current, "to_version": target}
