"""Shared by the benchmarks: an isolated state dir, timing and peak memory."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from contextlib import contextmanager


def isolated_state(prefix: str) -> str:
    """Point all platform state at a fresh temp dir (unless BENCH_STATE_DIR is set)."""
    state = os.environ.get("BENCH_STATE_DIR") or tempfile.mkdtemp(prefix=prefix)
    os.environ["PLATFORM_LOCAL_DIR"] = state
    for var in ("WAREHOUSE_PATH", "AIRFLOW_HOME", "MLFLOW_TRACKING_URI", "DBT_MANIFEST_PATH"):
        os.environ.pop(var, None)
    from ml.settings import export_runtime_environment

    export_runtime_environment()
    return state


def peak_rss_mib(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


@contextmanager
def timed(label: str, results: dict):
    started = time.perf_counter()
    yield
    results[label] = time.perf_counter() - started
    print(f"{label:<34} {results[label]:8.1f} s", flush=True)
