"""A quiet terminal for long in-process runs: everything the libraries print goes to a log file.

Airflow, Cosmos and dbt write their log records to the process's stdout and stderr (file
descriptors 1 and 2, from Python and from native code alike). ``captured_output`` points
both descriptors at ``.local/logs/<name>-<time>.log`` for the duration of the run and hands
back a Rich console on the original terminal, so the caller shows only a progress view and
the summary. Per-task logs stay where Airflow writes them (``$AIRFLOW_HOME/logs``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table


def log_path(name: str) -> Path:
    from ml.settings import get_settings

    folder = get_settings().local_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"


@contextmanager
def captured_output(path: Path) -> Iterator[Console]:
    """Send fds 1 and 2 (and Python warnings) to ``path``; yield a console on the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with path.open("a", buffering=1) as log, warnings.catch_warnings():
        warnings.simplefilter("default")  # recorded in the log, never on the terminal
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield Console(file=terminal, force_terminal=terminal.isatty())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


class StageProgress:
    """A live table of DAG runs (stage, state, elapsed): the ``progress`` callback of
    ``ml.ops.pipeline.run_pipeline``. Without a terminal it prints one line per finished
    stage instead of redrawing."""

    def __init__(self, console: Console):
        self.console = console
        self.rows: dict[str, list] = {}  # stage -> [state, started, seconds]
        self.live = Live(self._table(), console=console, refresh_per_second=2,
                         transient=False) if console.is_terminal else None

    def __enter__(self) -> StageProgress:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def _table(self) -> Table:
        table = Table("stage", "state", "seconds", title="ml run", title_justify="left")
        for stage, (state, started, seconds) in self.rows.items():
            elapsed = seconds if seconds is not None else time.monotonic() - started
            table.add_row(stage, state, f"{elapsed:.0f}")
        return table

    def __call__(self, stage: str, state: str, seconds: float | None = None) -> None:
        if state == "running":
            self.rows[stage] = ["running", time.monotonic(), None]
        else:
            started = self.rows.get(stage, [None, time.monotonic()])[1]
            self.rows[stage] = [state, started, time.monotonic() - started]
            if not self.live:
                self.console.print(f"{stage}: {state} in {self.rows[stage][2]:.0f} s")
        if self.live:
            self.live.update(self._table())
