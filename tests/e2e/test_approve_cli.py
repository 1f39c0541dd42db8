"""`ml approve` answers only through the Airflow API as a signed-in user: without a server or
without credentials it refuses, saying why, and exits non-zero. (Wrong credentials against
a real server, and the ledger's actor after a right ones, are in test_servers_e2e.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ml.settings import REPO_ROOT

ML = str(Path(sys.executable).parent / "ml")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def approve(state: Path, *args: str, **env: str) -> tuple[int, str]:
    """``ml approve churn ARGS`` with its state in ``state`` and nothing listening on its port."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PLATFORM_"))}
    clean.update(PLATFORM_LOCAL_DIR=str(state), AIRFLOW_PORT=str(_free_port()), **env)
    result = subprocess.run([ML, "approve", "churn", *args], env=clean, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def store_admin_password(state: Path) -> None:
    """What `make up` leaves behind: the admin password in SimpleAuthManager's file."""
    path = state / "airflow" / "simple_auth_manager_passwords.json.generated"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"admin": "secret"}))


def test_without_a_server_approval_is_refused_and_says_it_needs_one(tmp_path):
    store_admin_password(tmp_path)
    code, output = approve(tmp_path)
    assert code == 1
    assert "no Airflow API server answers at http://127.0.0.1:" in output
    assert "start one with `make up`, or set AIRFLOW_URL" in output
    assert "there is no in-process way to approve" in output


@pytest.mark.parametrize(("env", "message"), [
    ({}, "no Airflow credentials: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD, or start the "
         "local servers with `make up`"),
    ({"AIRFLOW_USERNAME": "alice"}, "set both AIRFLOW_USERNAME and AIRFLOW_PASSWORD, or neither"),
])
def test_without_credentials_approval_is_refused(tmp_path, env, message):
    code, output = approve(tmp_path, **env)
    assert code == 1
    assert message in output


def test_the_respondent_cannot_be_named_on_the_command_line(tmp_path):
    code, output = approve(tmp_path, "--user", "mallory")
    assert code == 2
    assert "No such option: --user" in output
