"""`ml`: the platform's command line.

Every command works on the embedded defaults (DuckDB file, SQLite Airflow and MLflow under
.local/) and honours the environment variables documented in the README.
"""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Customer ML platform: generate or import retail data, build features, "
    "train and promote models, score customers and plan a retention campaign.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=1)


@app.command()
def init() -> None:
    """Prepare local state: Airflow metadata DB, the warehouse pool and the dbt manifest."""
    from ml.dbt import compile_manifest
    from ml.orchestration import ensure_airflow_ready

    started = time.perf_counter()
    manifest = compile_manifest()
    ensure_airflow_ready()
    console.print(f"dbt manifest: {manifest}")
    console.print(f"ready in {time.perf_counter() - started:.1f}s")


@app.command()
def generate(
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 42,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = "2023-01-01",
    end: Annotated[str, typer.Option(help="Last day of the history (YYYY-MM-DD).")] = "2025-12-31",
    keep_existing: Annotated[
        bool, typer.Option(help="Do nothing if the warehouse already holds raw orders.")
    ] = False,
) -> None:
    """Generate a synthetic retail history into the warehouse's raw tables.

    Also writes eval.oracle_labels: each customer's true label probabilities at each
    monthly snapshot (evaluation only; never a feature).
    """
    from ml.generate import generate as run_generator

    if keep_existing and _raw_orders_present():
        console.print("raw.orders already present: keeping it (drop --keep-existing to regenerate)")
        return
    try:
        start_date, end_date = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        _fail(f"dates must be YYYY-MM-DD: {exc}")
    if end_date <= start_date:
        _fail(f"--end ({end}) must be after --start ({start})")
    summary = run_generator(
        customers=customers, seed=seed, start=start_date, end=end_date, progress=True
    )
    table = Table("table", "rows", title=f"Generated in {summary.seconds:.1f}s")
    for name, rows in summary.row_counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _raw_orders_present() -> bool:
    from ml.settings import RAW_SCHEMA, get_settings
    from ml.warehouse import connect, table_exists

    if not get_settings().warehouse_path.exists():
        return False
    with connect(read_only=True) as con:
        return table_exists(con, RAW_SCHEMA, "orders")


@app.command()
def run(
    snapshot_cadence: Annotated[str, typer.Option(help="month or week.")] = "month",
    as_of_end: Annotated[
        str | None, typer.Option(help="Treat the data as ending on this date (YYYY-MM-DD).")
    ] = None,
    full_refresh: Annotated[bool, typer.Option(help="Rebuild incremental models.")] = False,
    churn_horizon_days: Annotated[int, typer.Option(min=7, max=365)] = 90,
    propensity_horizon_days: Annotated[int, typer.Option(min=7, max=365)] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the pipeline in-process through its Airflow DAGs (the scheduler's code path)."""
    from ml.pipeline import PipelineFailed, run_pipeline

    conf = {
        "full_refresh": full_refresh,
        "snapshot_cadence": snapshot_cadence,
        "as_of_end": as_of_end,
        "churn_horizon_days": churn_horizon_days,
        "propensity_horizon_days": propensity_horizon_days,
    }
    try:
        summary = run_pipeline(features_conf=conf)
    except PipelineFailed as exc:
        _fail(str(exc))
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    _print_run_summary(summary)


def _print_run_summary(summary: dict) -> None:
    features = summary["features"]
    console.print(
        f"[bold]Data[/] {features['data_start']} .. {features['data_end']} "
        f"({features['snapshots']} snapshots; scoring as of {features['scoring_as_of']})"
    )
    rows = Table("mart", "rows", title="Feature marts")
    for name, count in features["row_counts"].items():
        rows.add_row(name, f"{count:,}")
    console.print(rows)
    stages = Table("stage", "seconds", title="Time per stage")
    for stage, seconds in summary["stage_seconds"].items():
        stages.add_row(stage, f"{seconds:.1f}")
    console.print(stages)


def main() -> None:  # pragma: no cover - console script entry point
    app()
