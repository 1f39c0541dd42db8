"""Scoring, import and the dbt build killed mid-write leave the previous good state for
readers, and a rerun completes: each publishes in one warehouse transaction (scores: shard
files first, then one replace; import: a scratch stage, then one swap; dbt: one transaction
per model), so a kill before the commit leaves nothing half-written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ml.settings import REPO_ROOT
from tests.faults.harness import (
    MODEL,
    RUNTIME,
    completed,
    environment,
    killed,
    relation_fingerprints,
    run_ml,
    run_python,
    warehouse_rows,
)

SHARDS = 3
SCORE = f"from ml.decisions.scoring import score_model\nscore_model({MODEL!r}, shards={SHARDS})"
EXAMPLE = REPO_ROOT / "examples" / "shop_export"
IMPORT_ORDERS = ["import", "--orders", str(EXAMPLE / "orders.csv"),
                 "--mapping", str(EXAMPLE / "mapping.yml")]
DBT_SCHEMAS = ("staging", "intermediate", "marts")
MODEL_BUILT = re.compile(r"OK created sql (table|incremental) model")
MODELS_BEFORE_KILL = 4  # some models rebuilt, the next one under way


def _scores(state) -> list[tuple]:
    return warehouse_rows(state, "SELECT as_of_date, model_version, scored_at, customer_id, "
                                 f"score FROM ml.scores WHERE model_name = '{MODEL}' "
                                 "ORDER BY customer_id")


def _shard_files(state) -> list[str]:
    return sorted(p.name for p in (state / "scoring" / MODEL).rglob("*.parquet"))


def test_scoring_killed_between_shard_writes_and_publish(state):
    before = _scores(state)
    assert before
    killed(run_python(state, SCORE, kill_at="scoring.shards_written"))
    assert _shard_files(state) == [f"shard-{k:04d}-of-{SHARDS:04d}.parquet" for k in range(SHARDS)]
    assert _scores(state) == before  # every shard written, none published

    completed(run_python(state, SCORE))
    after = _scores(state)
    assert [(r[0], r[1], r[3], round(r[4], 12)) for r in after] == \
        [(r[0], r[1], r[3], round(r[4], 12)) for r in before]
    assert {r[2] for r in after} != {r[2] for r in before}  # published anew, same scores
    assert _shard_files(state) == []


def test_import_killed_before_its_commit(state):
    before = relation_fingerprints(state, ("raw", "eval"))
    assert {"raw.customers", "raw.orders", "eval.oracle_labels"} <= set(before)
    killed(run_ml(state, IMPORT_ORDERS, kill_at="import.tables_written"))
    assert relation_fingerprints(state, ("raw", "eval")) == before

    completed(run_ml(state, IMPORT_ORDERS))
    after = relation_fingerprints(state, ("raw", "eval"))
    assert after["raw.orders"] != before["raw.orders"]  # the shop's orders replaced ours
    assert "raw.customers" not in after and "eval.oracle_labels" not in after


def _build_killed_after(state, models: int) -> int:
    """Start ``dbt build`` through ml.dbt.build and SIGKILL it (dbt and the Python process
    that runs it) once ``models`` models have been rebuilt; how many had been."""
    code = RUNTIME + "from ml.dbt import build\nraise SystemExit(build(capture=False).returncode)"
    process = subprocess.Popen([sys.executable, "-c", code], env=environment(state),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=REPO_ROOT, start_new_session=True)
    built = 0
    for line in process.stdout:
        built += bool(MODEL_BUILT.search(line))
        if built == models:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.stdout.close()
    assert process.wait(timeout=60) == -signal.SIGKILL, "the build ended before the kill"
    _wait_until_gone(process.pid)
    _wait_for_the_file_lock(state / "warehouse.duckdb")
    return built


def _wait_for_the_file_lock(path: Path) -> None:
    """The kernel drops a killed process's DuckDB file lock once its last descriptor closes,
    which can lag its exit on a loaded machine: wait for it (at most a minute)."""
    import duckdb

    deadline = time.monotonic() + 60
    while True:
        try:
            duckdb.connect(str(path), read_only=True).close()
            return
        except duckdb.IOException:
            assert time.monotonic() < deadline, f"{path} still locked a minute after the kill"
            time.sleep(0.2)


def _wait_until_gone(group: int) -> None:
    """Until no live process of ``group`` is left: dbt, killed with its parent, holds the
    warehouse's file lock until it has exited."""
    deadline = time.monotonic() + 60
    while any(_live_member(stat, group) for stat in Path("/proc").glob("[0-9]*/stat")):
        assert time.monotonic() < deadline, f"process group {group} still alive after the kill"
        time.sleep(0.1)


def _live_member(stat: Path, group: int) -> bool:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:  # exited meanwhile
        return False
    return int(fields[2]) == group and fields[0] != "Z"


def test_dbt_build_killed_midway(state):
    before = relation_fingerprints(state, DBT_SCHEMAS)
    assert _build_killed_after(state, MODELS_BEFORE_KILL) == MODELS_BEFORE_KILL
    # same inputs: every model, rebuilt or not, reads as before; none missing or half-swapped
    assert relation_fingerprints(state, DBT_SCHEMAS) == before

    rerun = run_python(state, "from ml.dbt import build\n"
                              "result = build()\nprint(result.stdout[-3000:])\n"
                              "raise SystemExit(result.returncode)")
    completed(rerun)
    assert relation_fingerprints(state, DBT_SCHEMAS) == before
