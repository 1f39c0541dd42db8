"""How the fault tests run and read the platform: the good state's recipe, processes with
the state's environment, and readers of its warehouse and MLflow store.

The steps run in subprocesses with the copy's PLATFORM_LOCAL_DIR, as ``ml`` and the Airflow
workers do; ``ML_KILL_AT`` names the ``ml.faults.checkpoint`` they die at. The test process
reads the copy's files itself (DuckDB read-only, the MLflow SQLite store) so that what it
sees is what any reader would see."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb

from ml.faults import KILL_AT_VARIABLE
from ml.settings import REPO_ROOT

MODEL = "churn"
RUNTIME = "from ml.settings import export_runtime_environment; export_runtime_environment()\n"
GOOD_STATE = f"""
from datetime import date
from ml import registry
from ml.decisions.scoring import score_model
from ml.dbt import build, compile_manifest
from ml.lifecycle.promotion import promote
from ml.modeling.train import train_model
from ml.sim.history import generate

generate(customers=300, seed=11, start=date(2023, 1, 1), end=date(2024, 12, 31))
compile_manifest()
built = build()
assert built.returncode == 0, built.stdout[-3000:]
trained = train_model({MODEL!r}, learners=["logistic_regression"], folds=2)
promote({MODEL!r}, trained["version"], "fault-tests", "manual", "the good state's champion")
source = registry.client().get_model_version({MODEL!r}, trained["version"]).source
registry.client().create_model_version({MODEL!r}, source, run_id=trained["run_id"])
score_model({MODEL!r})
"""


def environment(state: Path, kill_at: str | None = None) -> dict[str, str]:
    """The environment of a process of the platform whose state is ``state``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "DBT_", "MLFLOW", "WAREHOUSE", KILL_AT_VARIABLE))}
    env["PLATFORM_LOCAL_DIR"] = str(state)
    if kill_at:
        env[KILL_AT_VARIABLE] = kill_at
    return env


def run_python(state: Path, code: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUNTIME + code], env=environment(state, kill_at),
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


def run_ml(state: Path, args: list[str], kill_at: str | None = None) -> subprocess.CompletedProcess:
    ml = Path(sys.executable).with_name("ml")
    return subprocess.run([str(ml), *args], env=environment(state, kill_at), capture_output=True,
                          text=True, timeout=600, cwd=REPO_ROOT)


def completed(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -signal.SIGKILL, (
        f"expected a SIGKILL, got {result.returncode}:\n{result.stderr[-3000:]}")


def warehouse_rows(state: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(state / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def relation_fingerprints(state: Path, schemas: tuple[str, ...]) -> dict[str, tuple]:
    """Every table and view of ``schemas``: its row count and an order-free hash of its rows."""
    with duckdb.connect(str(state / "warehouse.duckdb"), read_only=True) as con:
        names = [f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            f"WHERE table_schema IN ({', '.join('?' for _ in schemas)})", list(schemas)
        ).fetchall()]
        return {name: con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {name} AS t")
                .fetchone() for name in sorted(names)}


def champion(state: Path) -> str | None:
    with sqlite3.connect(state / "mlflow.db") as con:
        found = con.execute("SELECT version FROM registered_model_aliases "
                            "WHERE name = ? AND alias = 'champion'", [MODEL]).fetchone()
    return str(found[0]) if found else None


def ledger_moves(state: Path) -> list[tuple]:
    """The ledger's moves of @champion: (decision, from_version, to_version), oldest first."""
    return warehouse_rows(state, "SELECT decision, from_version, to_version FROM "
                                 f"ml.promotion_ledger WHERE model = '{MODEL}' AND decision IN "
                                 "('promoted', 'rolled_back') ORDER BY decided_at")
