"""BigQuery tests run against bqemulator on 127.0.0.1, started here (ml/ops/emulator.py).

The emulator stands in for Google's service, which this machine cannot reach; everything
of ours (dbt-bigquery, google-cloud-bigquery, the Storage Read API client) is real.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ml.ops import emulator as bqemulator


@pytest.fixture(scope="session")
def emulator(state_dir) -> Iterator[bqemulator.Emulator]:
    if not bqemulator.executable().exists():
        pytest.fail("bqemulator is not installed: run `make setup` (CI does)")
    running = bqemulator.start(state_dir / "bqemulator")
    yield running
    running.stop()


@pytest.fixture
def on_bigquery(emulator, monkeypatch, request) -> bqemulator.Emulator:
    """Point the platform at the emulator for one test, in datasets of its own."""
    prefix = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:40]
    # Entry points export the dbt environment into os.environ (setdefault): make sure no
    # earlier test's datasets are seen, and that this test's go away with it.
    for key in ("BQ_RAW_PROJECT", "BQ_RAW_DATASET", "BQ_KEYFILE"):
        monkeypatch.setenv(key, "")  # records the value to restore, even "unset"
        monkeypatch.delenv(key)
    for key, value in emulator.environment(dataset_prefix=prefix).items():
        monkeypatch.setenv(key, value)
    return emulator
