"""The platform through its real servers: Airflow (scheduler, dag-processor, triggerer,
api-server) and MLflow, started by ``ml.ops.servers.up()`` on free ports from a clean state
directory, driven only through their REST APIs.

One session-scoped run of the whole platform is shared by the API and browser tests:

1. ``features`` is triggered through the REST API (in the slot of its next @daily run, so
   unpausing it schedules no second run) with custom Params;
2. the asset-triggered ``train_*`` DAGs train and promote automatically, except the model
   in ``MANUAL_MODEL``, which is triggered with ``promotion_mode=manual`` and waits for
   approval;
3. ``score`` is triggered for every champion (again in its cron slot);
4. the promotion is approved with ``ml approve``, which signs in to the REST API (refused
   first with a wrong password); the new champion's Asset triggers ``score`` for that model
   only, whose ``scores`` Asset triggers ``allocate``.

The servers are stopped at the end of the session whatever happened; their logs are copied
to ``test-artifacts/e2e-logs/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ml.modeling.specs import spec_paths
from ml.ops.servers import ADMIN_USER, AirflowClient, ServerError
from ml.settings import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"
MODELS = [p.stem for p in spec_paths()]
MANUAL_MODEL = "churn"
E2E_CUSTOMERS = os.environ.get("E2E_CUSTOMERS", "400")
# Variables that would point the servers at another state directory or server.
_FOREIGN_PREFIXES = ("AIRFLOW", "MLFLOW_", "DBT_", "WAREHOUSE_", "PLATFORM_", "MODEL_SPECS_DIR")


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: starts the Airflow and MLflow servers (minutes)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv: list[str], env: dict[str, str], timeout: float, check: bool = True):
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass
class Servers:
    state_dir: Path
    env: dict[str, str]
    airflow_url: str
    mlflow_url: str
    password: str
    client: AirflowClient

    @property
    def warehouse(self) -> Path:
        return self.state_dir / "warehouse.duckdb"

    def mlflow(self, endpoint: str, **params) -> httpx.Response:
        return httpx.get(f"{self.mlflow_url}{endpoint}", params=params, timeout=30)

    def champion(self, model: str) -> dict | None:
        response = self.mlflow("/api/2.0/mlflow/registered-models/alias", name=model,
                               alias="champion")
        return response.json()["model_version"] if response.status_code == 200 else None


@pytest.fixture(scope="session")
def servers() -> Servers:
    state = Path(tempfile.mkdtemp(prefix="cmp-e2e-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    airflow_port, mlflow_port = _free_port(), _free_port()
    password = secrets.token_urlsafe(12)
    env.update(PLATFORM_LOCAL_DIR=str(state), AIRFLOW_PORT=str(airflow_port),
               MLFLOW_PORT=str(mlflow_port), PLATFORM_ADMIN_PASSWORD=password)
    ml = str(Path(sys.executable).parent / "ml")
    _run([ml, "generate", "--customers", E2E_CUSTOMERS, "--seed", "11",
          "--start", "2023-01-01", "--end", "2024-12-31"], env, timeout=300)
    try:
        _run([sys.executable, "-c", "from ml.ops.servers import up; up()"], env, timeout=600)
        airflow_url = f"http://127.0.0.1:{airflow_port}"
        yield Servers(state, env, airflow_url, f"http://127.0.0.1:{mlflow_port}", password,
                      AirflowClient(airflow_url, ADMIN_USER, password))
    finally:
        _run([sys.executable, "-c", "from ml.ops.servers import down; down()"], env, timeout=120,
             check=False)
        _keep_logs(state)
        if os.environ.get("KEEP_TEST_STATE") != "1":
            shutil.rmtree(state, ignore_errors=True)


def _keep_logs(state: Path) -> None:
    target = ARTIFACTS / "e2e-logs"
    shutil.rmtree(target, ignore_errors=True)
    if (state / "logs").exists():
        shutil.copytree(state / "logs", target)
    if (state / "airflow" / "logs").exists():
        shutil.copytree(state / "airflow" / "logs", target / "tasks", dirs_exist_ok=True)


# ---------------------------------------------------------------- the platform run
@dataclass
class PlatformRun:
    """What happened, for the tests to assert on."""

    runs: dict[str, list[str]] = field(default_factory=dict)  # dag_id -> run ids we waited for
    manual_run_id: str = ""
    champion_before_approval: dict | None = None
    trained_version: str = ""
    refused_approval: subprocess.CompletedProcess | None = None  # `ml approve`, wrong password
    approval_output: str = ""  # `ml approve` with the `make up` credentials
    approval: dict = field(default_factory=dict)  # the HITL detail afterwards
    seconds: dict[str, float] = field(default_factory=dict)


def wait_for_task_state(client: AirflowClient, dag_id: str, run_id: str, task_id: str,
                        states: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tis = {t["task_id"]: t for t in client.task_instances(dag_id, run_id)}
        ti = tis.get(task_id, {})
        if ti.get("state") in states:
            return ti
        if client.run(dag_id, run_id)["state"] in ("success", "failed"):
            states_now = {k: v["state"] for k, v in tis.items()}
            raise ServerError(f"{dag_id} {run_id} finished before {task_id} reached {states}: "
                              f"{states_now}")
        if time.monotonic() > deadline:
            raise ServerError(f"{dag_id}.{task_id} still {ti.get('state')} after {timeout:.0f}s")
        time.sleep(3)


@pytest.fixture(scope="session")
def platform_run(servers: Servers) -> PlatformRun:
    client, record = servers.client, PlatformRun()
    auto = [f"train_{m}" for m in MODELS if m != MANUAL_MODEL]
    manual_dag = f"train_{MANUAL_MODEL}"
    client.wait_for_dags({"features", "score", "allocate", "rollback", manual_dag, *auto})
    for dag_id in auto:
        client.set_paused(dag_id, False)  # the features Asset triggers them

    started = time.monotonic()
    features = client.trigger_in_schedule_slot(
        "features", {"snapshot_cadence": "month", "churn_horizon_days": 90}, "e2e_features")
    client.set_paused("features", False)
    record.manual_run_id = client.trigger(manual_dag, {"promotion_mode": "manual"},
                                          run_id="e2e_manual_promotion")["dag_run_id"]
    # Generous waits: under `make test` the other xdist worker shares the two cores (this
    # whole platform run took 1,100 s there, against about 500 s alone).
    client.wait_for_run("features", features["dag_run_id"], timeout=1800)
    record.runs["features"] = [features["dag_run_id"]]
    record.seconds["features"] = time.monotonic() - started
    # Unpaused only now, so the features Asset event does not queue a second run of it.
    client.set_paused(manual_dag, False)

    for dag_id in auto:
        run_id = client.wait_for_new_run(dag_id, set(), timeout=120)
        client.wait_for_run(dag_id, run_id, timeout=1500)
        record.runs[dag_id] = [run_id]
    record.seconds["auto_champions"] = time.monotonic() - started

    # Score the automatic champions while allocate is still paused (no churn scores yet).
    score_run = client.trigger_in_schedule_slot("score", {"model": "all", "shards": 2},
                                                "e2e_score_all")
    client.set_paused("score", False)
    client.wait_for_run("score", score_run["dag_run_id"], timeout=600)
    record.runs["score"] = [score_run["dag_run_id"]]
    client.set_paused("allocate", False)

    ti = wait_for_task_state(client, manual_dag, record.manual_run_id, "await_approval",
                             {"awaiting_input", "deferred"}, timeout=1500)
    trained = client.xcom(manual_dag, record.manual_run_id, "train")
    record.trained_version = str(trained["version"])
    record.champion_before_approval = servers.champion(MANUAL_MODEL)
    ml = str(Path(sys.executable).parent / "ml")
    record.refused_approval = _run(
        [ml, "approve", MANUAL_MODEL], {**servers.env, "AIRFLOW_USERNAME": ADMIN_USER,
                                        "AIRFLOW_PASSWORD": servers.password + "x"},
        timeout=120, check=False)
    record.approval_output = _run([ml, "approve", MANUAL_MODEL], servers.env, timeout=120).stdout
    record.approval = client.request(
        "GET", f"/dags/{manual_dag}/dagRuns/{record.manual_run_id}/taskInstances/"
               f"{ti['task_id']}/-1/hitlDetails")
    client.wait_for_run(manual_dag, record.manual_run_id, timeout=600)
    record.runs[manual_dag] = [record.manual_run_id]
    record.seconds["manual_champion"] = time.monotonic() - started

    # The new champion's Asset triggers score (that model only), whose Asset triggers allocate.
    score_asset_run = client.wait_for_new_run("score", set(record.runs["score"]), timeout=120)
    client.wait_for_run("score", score_asset_run, timeout=600)
    record.runs["score"].append(score_asset_run)
    record.seconds["scores"] = time.monotonic() - started
    allocate_run = client.wait_for_new_run("allocate", set(), timeout=120)
    client.wait_for_run("allocate", allocate_run, timeout=600)
    record.runs["allocate"] = [allocate_run]
    record.seconds["allocate"] = time.monotonic() - started
    print(f"\ne2e platform run timings (s from the features trigger): {record.seconds}")
    return record
