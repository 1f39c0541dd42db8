"""Invoke dbt outside Airflow (manifest compilation, tests) and read its results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ml.settings import GCP_CONNECTION, BigQuerySettings, Settings, dbt_environment, get_settings

PROFILE_NAME = "customer_ml"  # dbt_project.yml `profile:`


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


def build(settings: Settings | None = None, full_refresh: bool = False,
          dbt_vars: dict | None = None, extra_args: tuple[str, ...] = (),
          capture: bool = True) -> subprocess.CompletedProcess:
    """``dbt build`` of the project (outside Airflow: benchmarks, tests). Incremental models
    rebuild only changed snapshots unless ``full_refresh``. Does not raise: check returncode."""
    args = ["build", *extra_args]
    if full_refresh:
        args.append("--full-refresh")
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    return dbt_command(args, settings, check=False, capture=capture)


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


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (dbt in-process reads env_var() from there) for the block
    only: a key-file secret or one run's datasets must not outlive it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def invoke_in_process(args: Sequence[str], settings: Settings | None = None):
    """One dbt command through dbtRunner in this process, as the Cosmos tasks run it, so
    it shares their DuckDB instance instead of competing with it for the file lock. The
    adapters are released afterwards; returns dbt's ``dbtRunnerResult``."""
    from dbt.cli.main import dbtRunner

    s = settings or get_settings()
    with (_environ(dbt_environment(s)), profile_config(s).ensure_profile() as
          (profile_path, profile_env), _environ(profile_env)):
        try:
            return dbtRunner().invoke([*args, "--project-dir", str(s.dbt_project_dir),
                                       "--profiles-dir", str(profile_path.parent),
                                       "--target", s.dbt_target])
        finally:
            release_dbt_adapters()


def load_seeds(settings: Settings | None = None) -> str:
    """``dbt seed``: the CSVs users edit (channel economics) into the warehouse, in-process."""
    s = settings or get_settings()
    clear_failed_nodes(s)
    result = invoke_in_process(["seed"], s)
    if not result.success:
        raise RuntimeError(f"dbt seed failed: {result.exception or result.result}")
    return "seeds loaded"


def release_dbt_adapters() -> None:
    """Close what an in-process dbt run keeps open, as Cosmos does after each of its tasks.

    ``reset_adapters`` alone is not enough for dbt-duckdb: its connection manager only
    forgets its environment (``close_all_connections`` sets it to None), and a handle a
    failed node never returned keeps the DuckDB instance, and the file's lock, alive. So
    the environment is closed first, and what is left unreachable is collected."""
    import gc

    from dbt.adapters.factory import reset_adapters

    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # the BigQuery adapter only
        DuckDBConnectionManager = None  # noqa: N806
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    reset_adapters()
    if env is not None:
        env.close()
    gc.collect()


def profile_config(settings: Settings | None = None):
    """The dbt profile Cosmos runs the features DAG with (and load_seeds uses).

    On BigQuery proper (WAREHOUSE=bigquery, no BQ_API_ENDPOINT) it comes from the Airflow
    connection ``google_cloud_default``: its key file path, its key JSON, or else
    Application Default Credentials, in project BQ_PROJECT (or the connection's), datasets
    ``<prefix>_*``. Otherwise (DuckDB, a local emulator) the repository's profiles.yml,
    which reads the environment. Nothing here touches the connection: it is read when a
    task renders the profile, not when the DAG is parsed."""
    from cosmos import ProfileConfig

    s = settings or get_settings()
    if s.bigquery is not None and not s.bigquery.api_endpoint:
        return ProfileConfig(profile_name=PROFILE_NAME, target_name=s.dbt_target,
                             profile_mapping=google_cloud_profile_mapping(s.bigquery))
    return ProfileConfig(profile_name=PROFILE_NAME, target_name=s.dbt_target,
                         profiles_yml_filepath=s.dbt_profiles_dir / "profiles.yml")


def google_cloud_profile_mapping(bq: BigQuerySettings, conn_id: str = GCP_CONNECTION):
    """A Cosmos profile mapping that, when first asked for the profile, takes the first of
    Cosmos's BigQuery mappings that can claim the connection: service-account key file
    (extra ``key_path``, or BQ_KEYFILE), key JSON (extra ``keyfile_dict``), or OAuth through
    Application Default Credentials."""
    from functools import cached_property

    from cosmos.exceptions import CosmosValueError
    from cosmos.profiles import (
        BaseProfileMapping,
        GoogleCloudOauthProfileMapping,
        GoogleCloudServiceAccountDictProfileMapping,
        GoogleCloudServiceAccountFileProfileMapping,
    )

    candidates = (GoogleCloudServiceAccountFileProfileMapping,
                  GoogleCloudServiceAccountDictProfileMapping, GoogleCloudOauthProfileMapping)

    class GoogleCloudConnectionProfileMapping(BaseProfileMapping):
        airflow_connection_type = "google_cloud_platform"
        dbt_profile_type = "bigquery"

        @cached_property
        def chosen(self) -> BaseProfileMapping:
            for mapping in candidates:
                candidate = mapping(self.conn_id, self.profile_args)
                if candidate.can_claim_connection():
                    return candidate
            raise CosmosValueError(f"Airflow connection {self.conn_id} is not a usable "
                                   "google_cloud_platform connection for dbt")

        @property
        def profile(self) -> dict:
            return self.chosen.profile

        @property
        def mock_profile(self) -> dict:
            return GoogleCloudOauthProfileMapping(self.conn_id, self.profile_args).mock_profile

        @property
        def env_vars(self) -> dict[str, str]:
            return self.chosen.env_vars

    profile_args = {"project": bq.project, "dataset": bq.dataset_prefix,
                    "location": bq.location}
    if bq.keyfile:
        profile_args["keyfile"] = bq.keyfile
    return GoogleCloudConnectionProfileMapping(conn_id, profile_args=profile_args)


@dataclass(frozen=True)
class FailedNode:
    name: str
    status: str
    failures: int | None
    message: str


# The features DAG's dbt tasks run with --no-write-json: writing manifest.json twice and
# run_results.json was half of each per-model invocation (bench/features.py --dag). Their
# failing nodes are recorded here instead, by the dbtRunner callback below.
FAILED_NODES_FILE = "failed_nodes.jsonl"
_RESULT_EVENTS = ("LogTestResult", "LogModelResult", "LogSeedResult", "LogSnapshotResult")


def failed_nodes_file(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).dbt_target_dir / FAILED_NODES_FILE


def record_failed_node(event) -> None:
    """dbtRunner callback (Cosmos ``dbt_runner_callbacks``): append each node that failed
    or errored to ``failed_nodes.jsonl`` in dbt's target dir, for ``failed_nodes``."""
    if event.info.name not in _RESULT_EVENTS or event.data.status not in ("fail", "error"):
        return
    node = event.data.node_info
    record = {"unique_id": node.unique_id or node.node_name, "status": event.data.status,
              "failures": getattr(event.data, "num_failures", None), "message": event.info.msg}
    path = failed_nodes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


def clear_failed_nodes(settings: Settings | None = None) -> None:
    """Forget the previous features run's failures (its first dbt task calls this)."""
    failed_nodes_file(settings).unlink(missing_ok=True)


def failed_nodes(settings: Settings | None = None) -> list[FailedNode]:
    """Failed or errored nodes of the last features DAG run (recorded by its callback), or
    else of the last plain dbt invocation (from run_results.json)."""
    recorded = failed_nodes_file(settings)
    if recorded.exists():
        return [_failed_node(json.loads(line)) for line in recorded.read_text().splitlines()
                if line.strip()]
    path = (settings or get_settings()).dbt_target_dir / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text()).get("results", [])
    return [_failed_node(r) for r in results if r.get("status") in ("fail", "error")]


def _failed_node(r: dict) -> FailedNode:
    parts = r["unique_id"].split(".")  # test.<project>.<name>[.<hash>]
    return FailedNode(
        name=parts[2] if parts[0] == "test" and len(parts) > 2 else r["unique_id"],
        status=r["status"],
        failures=r.get("failures"),
        message=(r.get("message") or "").strip(),
    )
