"""Run the dbt project against a DuckDB file the way the platform's callers do: a `dbt`
subprocess with WAREHOUSE_PATH, DBT_PROFILES_DIR, DBT_TARGET_PATH and DBT_LOG_PATH set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ml.marts import MART_KEYS

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
# The marts of one row per snapshot or per (customer, snapshot) that these tests check.
MARTS = tuple(name for name, keys in MART_KEYS.items()
              if keys in (["as_of_date"], ["customer_id", "as_of_date"]))


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: list[dict]

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failures(self) -> dict[str, int | None]:
        """Failed or errored nodes by name, with their failing row counts."""
        return {
            r["unique_id"].split(".")[2]: r.get("failures")
            for r in self.results
            if r["status"] in ("fail", "error")
        }

    def statuses(self) -> dict[str, str]:
        return {r["unique_id"].split(".")[2]: r["status"] for r in self.results}


class Warehouse:
    """One DuckDB file plus the dbt target and log folders that go with it."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "warehouse" / "warehouse.duckdb"
        self.pristine = root / "pristine.duckdb"
        self.target_dir = root / "dbt_target"
        self.log_dir = root / "dbt_logs"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def dbt(self, *args: str, dbt_vars: dict | None = None) -> DbtRun:
        env = {
            **os.environ,
            "WAREHOUSE_PATH": str(self.path),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_TARGET": "duckdb",
            "DBT_TARGET_PATH": str(self.target_dir),
            "DBT_LOG_PATH": str(self.log_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
        }
        command = [str(DBT_EXECUTABLE), *args]
        if dbt_vars:
            command += ["--vars", json.dumps(dbt_vars)]
        run_results = self.target_dir / "run_results.json"
        run_results.unlink(missing_ok=True)
        completed = subprocess.run(
            command, cwd=DBT_PROJECT_DIR, env=env, text=True, capture_output=True, timeout=600
        )
        results = json.loads(run_results.read_text())["results"] if run_results.exists() else []
        return DbtRun(completed.returncode, completed.stdout + completed.stderr, results)

    def build(self, *args: str, dbt_vars: dict | None = None, unit_tests: bool = False) -> DbtRun:
        """`dbt build`; unit tests are left out of rebuilds (the session build runs them)."""
        extra = [] if unit_tests else ["--exclude", "test_type:unit"]
        return self.dbt("build", *extra, *args, dbt_vars=dbt_vars)

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql).df()

    def execute(self, *statements: str) -> None:
        with duckdb.connect(str(self.path)) as con:
            for statement in statements:
                con.execute(statement)

    def mart(self, name: str) -> pd.DataFrame:
        return self.query(f"select * from marts.{name} order by {', '.join(MART_KEYS[name])}")

    def mart_fingerprints(self) -> dict[str, tuple[int, int]]:
        """Row count and content hash of every mart (order-independent)."""
        fingerprints = {}
        for name in MARTS:
            frame = self.mart(name)
            hashed = int(pd.util.hash_pandas_object(frame, index=False).sum())
            fingerprints[name] = (len(frame), hashed)
        return fingerprints

    def reset(self) -> None:
        """Back to the warehouse as the session build left it."""
        shutil.copyfile(self.pristine, self.path)
