"""A local BigQuery emulator (bqemulator) on 127.0.0.1, for tests and benchmarks.

It runs from its own virtualenv (``.venv-bqemulator``, made by ``make setup``) because it
pins DuckDB 1.5.5 while the platform uses DuckDB 2.x. DuckDB cannot download extensions
on this machine, so the extensions bqemulator loads are installed from PyPI wheels into a
private HOME under that virtualenv. Nothing here runs at import time.

Gaps of the emulator that the platform works around (in ``ml.warehouse.bigquery``), so
the same code runs on real BigQuery:
- loads go to an existing table (created from the Arrow schema first) through resumable
  uploads; multipart uploads are rejected;
- a query job's explicit destination table stays empty, and anonymous result tables are
  not readable through the Storage API: large reads materialise with CREATE TABLE AS and
  read that table through the Storage API;
- MERGE's ``INSERT ROW`` is not parsed: inserts name their columns;
- dry runs report 0 bytes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ml.settings import REPO_ROOT

VENV = REPO_ROOT / ".venv-bqemulator"
REQUIREMENTS = REPO_ROOT / "requirements-bqemulator.txt"
EXTENSIONS = ("spatial", "avro", "json", "icu")
DEFAULT_PROJECT = "cmp-local"


class EmulatorUnavailable(RuntimeError):
    pass


def _home() -> Path:
    return VENV / "home"  # DuckDB keeps extensions under $HOME/.duckdb


def executable() -> Path:
    return VENV / "bin" / "bqemulator"


def install(uv: Path | None = None) -> Path:
    """Create the emulator's virtualenv and its DuckDB extensions (idempotent)."""
    uv = uv or REPO_ROOT / ".venv" / "bin" / "uv"
    if not (VENV / "bin" / "python").exists():
        subprocess.run([str(uv), "venv", "--quiet", "--python", "3.11", str(VENV)], check=True)
    subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(VENV / "bin" / "python"),
                    "-r", str(REQUIREMENTS)], check=True)
    _home().mkdir(parents=True, exist_ok=True)
    script = ("from duckdb_extensions import import_extension\n"
              f"for name in {EXTENSIONS!r}:\n    import_extension(name)\n")
    subprocess.run([str(VENV / "bin" / "python"), "-c", script], check=True,
                   env={**os.environ, "HOME": str(_home())})
    return executable()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Emulator:
    rest_port: int
    grpc_port: int
    project: str
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def api_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def storage_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def environment(self, dataset_prefix: str = "cmp") -> dict[str, str]:
        """What points the platform at this emulator (WAREHOUSE=bigquery and its settings)."""
        return {
            "WAREHOUSE": "bigquery",
            "BQ_PROJECT": self.project,
            "BQ_DATASET_PREFIX": dataset_prefix,
            "BQ_LOCATION": "US",
            "BQ_API_ENDPOINT": self.api_endpoint,
            "BQ_STORAGE_ENDPOINT": self.storage_endpoint,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(log_dir: Path, project: str = DEFAULT_PROJECT, timeout: float = 60.0) -> Emulator:
    """Start an ephemeral emulator on free 127.0.0.1 ports; return when it answers."""
    if not executable().exists():
        raise EmulatorUnavailable(f"{executable()} is missing: run `make setup` "
                                  "(it installs the emulator into .venv-bqemulator)")
    rest, grpc = _free_port(), _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"bqemulator-{rest}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(executable()), "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
             "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--ephemeral",
             "--project", project, "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(_home())}, start_new_session=True)
    emulator = Emulator(rest, grpc, project, process, log_path)
    deadline = time.monotonic() + timeout
    url = f"{emulator.api_endpoint}/bigquery/v2/projects/{project}/datasets"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorUnavailable(f"bqemulator exited with {process.returncode}: "
                                      f"{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return emulator
        except OSError:
            time.sleep(0.3)
    emulator.stop()
    raise EmulatorUnavailable(f"bqemulator did not answer on {url} within {timeout:.0f}s; "
                              f"log: {log_path}")
