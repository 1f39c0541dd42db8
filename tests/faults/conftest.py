"""A small good state (300 customers, the dbt build, a trained and promoted churn model, a
second registered version, its scores) built once; each fault test gets a copy of it and
kills a real ``ml`` process in it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.harness import GOOD_STATE, completed, run_python


@pytest.fixture(scope="package")
def good_state(tmp_path_factory) -> Path:
    state = tmp_path_factory.mktemp("good-state")
    completed(run_python(state, GOOD_STATE))
    return state


@pytest.fixture
def state(good_state, tmp_path) -> Path:
    """A copy of the good state for one test to kill things in."""
    copy = tmp_path / "state"
    shutil.copytree(good_state, copy)
    return copy
