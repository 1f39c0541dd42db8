"""Invoke dbt outside Airflow (manifest compilation, tests) and read its results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ml.settings import Settings, dbt_environment, get_settings


def dbt_command(args: list[str], settings: Settings | None = None, check: bool = True,
                capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``dbt <args>`` in the project directory with the platform's environment."""
    s = settings or get_settings()
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(dbt), *args, "--target", s.dbt_target],
        cwd=s.dbt_project_dir,
        env={**os.environ, **dbt_environment(s)},
        check=check,
        text=True,
        capture_output=capture,
    )


def compile_manifest(settings: Settings | None = None) -> Path:
    """``dbt parse`` writes the manifest that the features DAG renders from (no dbt at parse time)."""
    s = settings or get_settings()
    s.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    result = dbt_command(["parse", "--quiet"], s, check=False, capture=True)
    parsed = s.dbt_target_dir / "manifest.json"
    if result.returncode != 0 or not parsed.exists():
        raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    # dbt rewrites its target dir on every run; the DAGs render from a copy only `parse` writes.
    s.dbt_manifest_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(parsed, s.dbt_manifest_path)
    return s.dbt_manifest_path


def load_seeds(settings: Settings | None = None) -> str:
    """``dbt seed``: the CSVs users edit (channel economics) into the warehouse.

    In-process (dbtRunner) like the Cosmos tasks, so it shares their DuckDB instance
    instead of competing with it for the file lock."""
    from dbt.cli.main import dbtRunner

    s = settings or get_settings()
    os.environ.update(dbt_environment(s))
    result = dbtRunner().invoke(["seed", "--project-dir", str(s.dbt_project_dir),
                                 "--profiles-dir", str(s.dbt_profiles_dir), "--target",
                                 s.dbt_target])
    if not result.success:
        raise RuntimeError(f"dbt seed failed: {result.exception or result.result}")
    return "seeds loaded"


@dataclass(frozen=True)
class FailedNode:
    name: str
    status: str
    failures: int | None
    message: str


def failed_nodes(settings: Settings | None = None) -> list[FailedNode]:
    """Failed or errored nodes of the last dbt invocation (from run_results.json)."""
    path = (settings or get_settings()).dbt_target_dir / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text()).get("results", [])
    return [
        FailedNode(
            name=r["unique_id"].split(".")[-1] if r["unique_id"].startswith("test.")
            else r["unique_id"],
            status=r["status"],
            failures=r.get("failures"),
            message=(r.get("message") or "").strip(),
        )
        for r in results
        if r.get("status") in ("fail", "error")
    ]
