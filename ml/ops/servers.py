"""Local servers for the three doors: the Airflow UI/API and scheduler, and the MLflow UI.

``up()`` starts Airflow 3's components (scheduler, dag-processor, triggerer, api-server) and an
MLflow tracking server, all bound to 127.0.0.1 with their state under ``.local/``, and waits
until both answer their health checks. ``down()`` stops exactly the processes ``up()``
started (PID files under ``.local/run/``; each component runs in its own process group).
``status()`` reports what is running.

Airflow's tasks get ``MLFLOW_TRACKING_URI`` pointing at the MLflow server; in-process runs
(``ml run``) keep using the SQLite file directly. Both see one registry because the server
serves the same SQLite file, and experiments keep file:// artifact locations under
``MLFLOW_ARTIFACTS_DIR`` (``--default-artifact-root``) that both can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ml.settings import REPO_ROOT, Settings, airflow_environment, dbt_environment, get_settings

HOST = "127.0.0.1"
ADMIN_USER = "admin"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
# SQLite metadata DB: wait up to a minute for a competing writer instead of failing after
# SQLite's default five seconds ("database is locked"). Airflow imports this dict by name.
SQLITE_CONNECT_ARGS = {"timeout": 60}
# Stopped first to last: the scheduler stops handing out work before the API its tasks report to.
AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")


class ServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Layout:
    """Where the servers live: ports, URLs and the files ``up``/``down`` share."""

    settings: Settings
    airflow_port: int
    mlflow_port: int

    @property
    def airflow_url(self) -> str:
        return f"http://{HOST}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def run_dir(self) -> Path:
        return self.settings.local_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.settings.local_dir / "logs"

    @property
    def password_file(self) -> Path:
        return self.settings.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def external_mlflow(self) -> bool:
        """MLFLOW_TRACKING_URI already names a server: use it instead of starting one."""
        return self.settings.mlflow_tracking_uri.startswith(("http://", "https://"))

    @property
    def tracking_uri_for_airflow(self) -> str:
        return self.settings.mlflow_tracking_uri if self.external_mlflow else self.mlflow_url

    def components(self) -> list[str]:
        return [*AIRFLOW_COMPONENTS, *([] if self.external_mlflow else ["mlflow"])]


def layout() -> Layout:
    return Layout(get_settings(), _port("AIRFLOW_PORT", 8080), _port("MLFLOW_PORT", 5000))


def _port(var: str, default: int) -> int:
    value = os.environ.get(var, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ServerError(f"{var} must be a TCP port number, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- environment and commands
def server_environment(lay: Layout) -> dict[str, str]:
    """The environment every component runs with: the platform's Airflow and dbt settings,
    Airflow bound to 127.0.0.1:<port> with SimpleAuthManager, tasks logging to the MLflow server."""
    s = lay.settings
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **airflow_environment(s),
        **dbt_environment(s),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PLATFORM_LOCAL_DIR": str(s.local_dir),
        "MLFLOW_ARTIFACTS_DIR": str(s.mlflow_artifacts_dir),
        "MLFLOW_TRACKING_URI": lay.tracking_uri_for_airflow,
        "MLFLOW_UI_URL": os.environ.get("MLFLOW_UI_URL", lay.tracking_uri_for_airflow),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(lay.airflow_port),
        "AIRFLOW__API__BASE_URL": lay.airflow_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{lay.airflow_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(lay.password_file),
        # The scheduler's health server would bind 0.0.0.0:8974; the API's health endpoint
        # reports the scheduler's heartbeat instead.
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PYTHONUNBUFFERED": "1",
        # MLflow's GenAI job runner (seven huey consumers) is not used by this platform.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for secret_or_override in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
                               "PLATFORM_ADMIN_PASSWORD", "AIRFLOW_PASSWORD"):
        env.pop(secret_or_override, None)
    if _airflow_sqlite_path(lay) is not None:
        for key in ("SQL_ALCHEMY_CONNECT_ARGS", "SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
            env.setdefault(f"AIRFLOW__DATABASE__{key}", f"{__name__}.SQLITE_CONNECT_ARGS")
    return env


def _airflow_sqlite_path(lay: Layout) -> Path | None:
    """The Airflow metadata DB file when it is SQLite (the local default), else None."""
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                          f"sqlite:///{lay.settings.airflow_home / 'airflow.db'}")
    return Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None


def _use_wal(db: Path) -> None:
    """Write-ahead logging (persistent in the file): readers stop blocking the writer, so the
    scheduler, dag-processor, triggerer and API server share one SQLite file without stalls."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        con.execute("PRAGMA journal_mode=WAL")


def _command(lay: Layout, name: str) -> list[str]:
    if name == "mlflow":
        s = lay.settings
        return [sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", s.mlflow_tracking_uri,
                "--default-artifact-root", s.mlflow_artifacts_dir.as_uri(),
                "--artifacts-destination", str(s.mlflow_artifacts_dir),
                "--host", HOST, "--port", str(lay.mlflow_port), "--workers", "1"]
    airflow = [sys.executable, "-m", "airflow"]
    if name == "api-server":
        return [*airflow, "api-server", "--host", HOST, "--port", str(lay.airflow_port)]
    if name in ("scheduler", "triggerer"):
        # Task logs are files under AIRFLOW_HOME that the api-server reads directly; the log
        # server these would start binds every interface.
        return [*airflow, name, "--skip-serve-logs"]
    return [*airflow, name]


# ---------------------------------------------------------------- PID files
def _pid_file(lay: Layout, name: str) -> Path:
    return lay.run_dir / f"{name}.pid"


def _process(lay: Layout, name: str):
    """The live process a PID file names, or None (no file, dead, or the PID was reused)."""
    import psutil

    path = _pid_file(lay, name)
    try:
        record = json.loads(path.read_text())
        proc = psutil.Process(record["pid"])
        if abs(proc.create_time() - record["create_time"]) > 1 or \
                proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def _write_pid_file(lay: Layout, name: str, pid: int, argv: list[str], log: Path) -> None:
    import psutil

    record = {"pid": pid, "create_time": psutil.Process(pid).create_time(), "argv": argv,
              "log": str(log)}
    path = _pid_file(lay, name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def _clear_stale_airflow_pid_files(lay: Layout) -> None:
    """PID files left by daemonised Airflow commands (``airflow scheduler -D``) after a crash."""
    import psutil

    for path in lay.settings.airflow_home.glob("airflow-*.pid"):
        try:
            alive = psutil.pid_exists(int(path.read_text().strip()))
        except (OSError, ValueError):
            alive = False
        if not alive:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- credentials
def _stored_admin_password(lay: Layout) -> str | None:
    try:
        return json.loads(lay.password_file.read_text()).get(ADMIN_USER)
    except (OSError, ValueError, AttributeError):
        return None


def admin_password(lay: Layout) -> str:
    """PLATFORM_ADMIN_PASSWORD if set, else the one generated on the first ``up`` (kept in the
    passwords file SimpleAuthManager reads, mode 0600, under .local/)."""
    path = lay.password_file
    wanted = os.environ.get("PLATFORM_ADMIN_PASSWORD")
    stored = _stored_admin_password(lay)
    password = wanted or stored or secrets.token_urlsafe(12)
    if password != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({ADMIN_USER: password}, handle)
        tmp.replace(path)
    path.chmod(0o600)
    return password


def airflow_credentials(lay: Layout) -> tuple[str, str]:
    """AIRFLOW_USERNAME and AIRFLOW_PASSWORD when set, else the admin user ``make up`` made
    and the password it stored (read, never generated here)."""
    username, password = os.environ.get("AIRFLOW_USERNAME"), os.environ.get("AIRFLOW_PASSWORD")
    if username or password:
        if not (username and password):
            raise ServerError("set both AIRFLOW_USERNAME and AIRFLOW_PASSWORD, or neither")
        return username, password
    stored = _stored_admin_password(lay)
    if stored is None:
        raise ServerError(f"no Airflow credentials: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD, "
                          f"or start the local servers with `make up` (which stores the "
                          f"{ADMIN_USER} password in {lay.password_file})")
    return ADMIN_USER, stored


# ---------------------------------------------------------------- health
def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return 0, b""


def airflow_health(lay: Layout) -> dict[str, str]:
    """Status per Airflow component from ``/api/v2/monitor/health`` (empty when unreachable)."""
    code, body = _get(f"{lay.airflow_url}/api/v2/monitor/health")
    if code != 200:
        return {}
    try:
        return {k: (v or {}).get("status") or "unknown" for k, v in json.loads(body).items()}
    except (ValueError, AttributeError):
        return {}


def mlflow_healthy(lay: Layout) -> bool:
    if lay.external_mlflow:
        return True
    return _get(f"{lay.mlflow_url}/health")[0] == 200


def _airflow_healthy(lay: Layout) -> bool:
    health = airflow_health(lay)
    return bool(health) and all(health.get(k) == "healthy" for k in
                                ("metadatabase", "scheduler", "triggerer", "dag_processor"))


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- up / down / status
def _prepare(lay: Layout) -> None:
    """The metadata DB, the warehouse pool and the dbt manifest the DAGs render from."""
    from ml.ops.orchestration import ensure_airflow_ready

    if not lay.settings.dbt_manifest_path.exists():
        from ml.dbt import compile_manifest

        compile_manifest()
    ensure_airflow_ready()
    if (db := _airflow_sqlite_path(lay)) is not None and db.exists():
        _use_wal(db)


def _start(lay: Layout, name: str, env: dict[str, str]) -> None:
    argv = _command(lay, name)
    log = lay.log_dir / f"{name}.log"
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _write_pid_file(lay, name, proc.pid, argv, log)


def up(timeout: float = 240.0, echo=print) -> dict:
    """Start whatever is not running yet and wait until Airflow and MLflow answer."""
    lay = layout()
    for path in (lay.run_dir, lay.log_dir, lay.settings.mlflow_artifacts_dir):
        path.mkdir(parents=True, exist_ok=True)
    dead = [name for name in lay.components() if _process(lay, name) is None]
    for name in dead:
        _pid_file(lay, name).unlink(missing_ok=True)
    ports = {"api-server": lay.airflow_port, "mlflow": lay.mlflow_port}
    busy = [f"{name} port {ports[name]}" for name in dead
            if name in ports and _port_in_use(ports[name])]
    if busy:
        raise ServerError(f"in use by another program: {', '.join(busy)} (set AIRFLOW_PORT / "
                          "MLFLOW_PORT to pick others, or stop it)")
    password = admin_password(lay)
    if dead:
        echo(f"preparing local state under {lay.settings.local_dir} ...")
        _prepare(lay)
        _clear_stale_airflow_pid_files(lay)
        env = server_environment(lay)
        for name in dead:
            _start(lay, name, env)
        echo(f"started {', '.join(dead)}; waiting for the health checks ...")
    try:
        _wait_healthy(lay, timeout)
    except ServerError as exc:
        down(echo=None)  # leave nothing half-started behind
        raise ServerError(f"{exc}\n(the servers were stopped again)") from None
    info = status(echo=None)
    echo(login_text(lay, password))
    return {**info, "password": password}


def _wait_healthy(lay: Layout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name in lay.components():
            if _process(lay, name) is None:
                log = lay.log_dir / f"{name}.log"
                raise ServerError(f"{name} exited during start-up; last lines of {log}:\n"
                                  f"{_log_tail(log)}")
        if _airflow_healthy(lay) and mlflow_healthy(lay):
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"not healthy after {timeout:.0f}s: Airflow {airflow_health(lay) or 'down'}, "
                f"MLflow {'up' if mlflow_healthy(lay) else 'unreachable'}; logs in {lay.log_dir}")
        time.sleep(1.0)


def login_text(lay: Layout, password: str) -> str:
    return "\n".join([
        f"Airflow  {lay.airflow_url}  (user {ADMIN_USER}, password {password})",
        f"MLflow   {lay.tracking_uri_for_airflow}  "
        f"(registered models: {lay.tracking_uri_for_airflow}/#/models)",
        f"password file: {lay.password_file} (set PLATFORM_ADMIN_PASSWORD to choose it)",
        f"logs: {lay.log_dir}    stop with: make down",
    ])


def down(timeout: float = 30.0, echo=print) -> list[str]:
    """Stop the processes ``up`` started: SIGTERM to each process group (and any descendant
    that left it), SIGKILL whatever is still alive after ``timeout`` seconds."""
    import psutil

    lay = layout()
    stopped, victims = [], []
    for name in lay.components():
        proc = _process(lay, name)
        if proc is not None:
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                tree = [proc]
            victims.append((name, proc.pid, tree))
            stopped.append(name)
    for _, pgid, tree in victims:
        _signal(pgid, tree, signal.SIGTERM)
    alive = [p for _, _, tree in victims for p in tree]
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    if alive:
        for _, pgid, tree in victims:
            _signal(pgid, [p for p in tree if p in alive], signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
    for name in lay.components():
        _pid_file(lay, name).unlink(missing_ok=True)
    if echo:
        echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return stopped


def _signal(pgid: int, procs, sig: int) -> None:
    import psutil

    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def status(echo=print) -> dict:
    """Running/stopped per component with PIDs, health and URLs."""
    lay = layout()
    components = {}
    for name in lay.components():
        proc = _process(lay, name)
        components[name] = {"running": proc is not None, "pid": proc.pid if proc else None}
    health = airflow_health(lay)
    info = {
        "airflow_url": lay.airflow_url,
        "mlflow_url": lay.tracking_uri_for_airflow,
        "components": components,
        "airflow_health": health,
        "mlflow_healthy": mlflow_healthy(lay),
        "running": all(c["running"] for c in components.values()),
    }
    if echo:
        for name, comp in components.items():
            state = f"running (pid {comp['pid']})" if comp["running"] else "stopped"
            echo(f"{name:14} {state}")
        echo(f"Airflow  {lay.airflow_url}  health: "
             + (", ".join(f"{k} {v}" for k, v in health.items()) or "unreachable"))
        echo(f"MLflow   {lay.tracking_uri_for_airflow}  "
             + ("healthy" if info["mlflow_healthy"] else "unreachable"))
        echo(f"login: user {ADMIN_USER}, password in {lay.password_file}")
    return info


# ---------------------------------------------------------------- REST client
class AirflowClient:
    """Airflow's REST API v2 with token authentication (what ``ml approve``, the e2e test and
    the benchmark drive the scheduler through)."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        import httpx

        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def token(self) -> str:
        """A bearer token for the user; ServerError when no server answers or it refuses."""
        import httpx

        try:
            response = self._http.post("/auth/token", json=self._credentials)
        except httpx.TransportError as exc:
            raise ServerError(f"no Airflow API server answers at {self.base_url} ({exc}); start "
                              "one with `make up`, or set AIRFLOW_URL") from None
        if response.status_code in (401, 403):
            raise ServerError(f"Airflow at {self.base_url} refused the credentials of user "
                              f"{self._credentials['username']!r} (HTTP {response.status_code})")
        if response.is_error:
            raise ServerError(f"POST /auth/token: HTTP {response.status_code} "
                              f"{response.text[:500]}")
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs):
        """An authenticated call to ``/api/v2{path}``; raises on an error status."""
        if self._token is None:
            self._token = self.token()
        headers = {"Authorization": f"Bearer {self._token}"}
        response = self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
        if response.status_code == 401:  # the token expired: get a new one once
            self._token = self.token()
            headers["Authorization"] = f"Bearer {self._token}"
            response = self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
        if response.is_error:
            raise ServerError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.request("GET", "/dags", params={"limit": 1000})["dags"]}

    def wait_for_dags(self, dag_ids, timeout: float = 300.0) -> None:
        """Until the dag-processor has registered every DAG in ``dag_ids``."""
        deadline = time.monotonic() + timeout
        while missing := set(dag_ids) - self.dag_ids():
            errors = self.request("GET", "/importErrors")["import_errors"]
            if errors:
                raise ServerError(f"DAG import errors: {errors}")
            if time.monotonic() > deadline:
                raise ServerError(f"DAGs not registered after {timeout:.0f}s: {sorted(missing)}")
            time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None,
                run_after: str | None = None) -> dict:
        body: dict = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        if run_after:
            body["run_after"] = run_after
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def trigger_in_schedule_slot(self, dag_id: str, conf: dict | None = None,
                                 run_id: str | None = None) -> dict:
        """Trigger ``dag_id`` now, in the slot of its next scheduled run (its logical date), so
        that unpausing it does not schedule the same work a second time."""
        slot = self.request("GET", f"/dags/{dag_id}")["next_dagrun_logical_date"]
        body = {"logical_date": slot, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns",
                            params={"limit": 100, "order_by": "run_after"})["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 1000})["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        value = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                    f"/xcomEntries/{key}")["value"]
        if isinstance(value, str):  # stored as serialised JSON text
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def pending_approvals(self, dag_id: str) -> list[dict]:
        """The human-in-the-loop tasks of ``dag_id`` that wait for an answer."""
        details = self.request("GET", f"/dags/{dag_id}/dagRuns/~/hitlDetails",
                               params={"response_received": False, "limit": 100,
                                       "state": ["awaiting_input", "deferred"]})
        return [{key: detail["task_instance"][key]
                 for key in ("dag_id", "dag_run_id", "task_id", "map_index")}
                for detail in details["hitl_details"]]

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str = "Approve",
                map_index: int = -1) -> dict:
        """Answer a human-in-the-loop task (ApprovalOperator: "Approve" or "Reject") as the
        signed-in user, whom Airflow records as the respondent."""
        return self.request("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                     f"/{map_index}/hitlDetails",
                            json={"chosen_options": [option]})

    def wait_for_new_run(self, dag_id: str, known=(), timeout: float = 120.0) -> str:
        """The id of the first run of ``dag_id`` not in ``known`` (e.g. asset-triggered)."""
        deadline = time.monotonic() + timeout
        while not (new := [r["dag_run_id"] for r in self.runs(dag_id)
                           if r["dag_run_id"] not in set(known)]):
            if time.monotonic() > deadline:
                raise ServerError(f"no new {dag_id} run within {timeout:.0f}s")
            time.sleep(2)
        return new[0]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900.0,
                     poll: float = 3.0) -> dict:
        """Until the run finishes; raises with the failed tasks when it did not succeed."""
        deadline = time.monotonic() + timeout
        while (run := self.run(dag_id, run_id))["state"] not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise ServerError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)
        if run["state"] != "success":
            failed = [t["task_id"] for t in self.task_instances(dag_id, run_id)
                      if t["state"] in ("failed", "upstream_failed")]
            raise ServerError(f"{dag_id} {run_id} ended {run['state']}; failed tasks: {failed}")
        return run


def airflow_client() -> AirflowClient:
    """The Airflow API at AIRFLOW_URL (default: the ``make up`` server), signed in with
    ``airflow_credentials``: whatever it does is done by that user."""
    lay = layout()
    return AirflowClient(os.environ.get("AIRFLOW_URL") or lay.airflow_url,
                         *airflow_credentials(lay))
