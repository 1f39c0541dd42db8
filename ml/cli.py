"""`ml`: the platform's command line.

Every command works on the embedded defaults (DuckDB file, SQLite Airflow and MLflow under
.local/) and honours the environment variables documented in the README.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
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


@app.callback()
def _environment() -> None:
    """Put the platform's locations into the environment before any command imports dbt,
    Airflow or XGBoost (they read it at import)."""
    from ml.settings import export_runtime_environment

    export_runtime_environment()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=1)


@app.command()
def init() -> None:
    """Prepare local state: Airflow metadata DB, the warehouse pool and the dbt manifest."""
    from ml.dbt import compile_manifest
    from ml.ops.orchestration import ensure_airflow_ready

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
    from ml.sim.history import generate as run_generator

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
    from ml.settings import RAW_SCHEMA
    from ml.warehouse import get_warehouse

    return get_warehouse().table_exists(RAW_SCHEMA, "orders")


@app.command("import")
def import_(
    orders: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                         help="Orders export (.csv/.tsv/.txt[.gz] or .parquet).")],
    customers: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    order_items: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    sessions: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    marketing_touches: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    media_spend: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Daily spend per paid channel: date, channel, spend[, impressions, clicks].")] = None,
    media_lift_tests: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Lift-test readouts that calibrate the media-mix model: test_id (optional), "
             "channel, start_date, end_date, spend_change, incremental_new_customers, "
             "standard_error.")] = None,
    mapping: Annotated[Path | None, typer.Option(
        exists=True, help="YAML: {table: {their column: our column, values: {...}}}.")] = None,
    max_rejected_share: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Fail if a table's quarantined share is above this.")] = 0.05,
    delimiter: Annotated[str | None, typer.Option(
        help="Default: detected from the header (, ; TAB |); 'tab' accepted.")] = None,
    encoding: Annotated[str | None, typer.Option(help="utf-8 (default) or latin-1.")] = None,
) -> None:
    """Import your own exports into the raw tables (tables not given are dropped).

    Unusable rows go to raw.quarantine with file, line and reason; unknown columns are kept
    in raw.<table>_extra. All or nothing: a failed import leaves the previous data as it was.
    """
    from rich.markup import escape

    from ml.warehouse.importer import ImportFailed, import_files, load_mapping

    files = {name: path for name, path in {
        "orders": orders, "customers": customers, "order_items": order_items,
        "sessions": sessions, "marketing_touches": marketing_touches,
        "media_spend": media_spend, "media_lift_tests": media_lift_tests}.items() if path}
    try:
        report = import_files(files, load_mapping(mapping) if mapping else None,
                              max_rejected_share=max_rejected_share, delimiter=delimiter,
                              encoding=encoding)
    except ImportFailed as exc:
        _fail(escape(str(exc)))
    console.print(escape(report.summary()))


@app.command()
def run(
    snapshot_cadence: Annotated[str, typer.Option(help="month or week.")] = "month",
    as_of_end: Annotated[
        str | None, typer.Option(help="Treat the data as ending on this date (YYYY-MM-DD).")
    ] = None,
    full_refresh: Annotated[bool, typer.Option(help="Rebuild incremental models.")] = False,
    churn_horizon_days: Annotated[int | None, typer.Option(
        min=1, max=730, help="Override the churn spec's horizon_days for this run.")] = None,
    propensity_horizon_days: Annotated[int | None, typer.Option(
        min=1, max=730, help="Override the propensity spec's horizon_days for this run.")] = None,
    promotion_mode: Annotated[str, typer.Option(
        help="auto | manual (waits for `ml approve MODEL` or the Airflow UI) | dry_run.")] = "auto",
    folds: Annotated[int | None, typer.Option(min=1, max=12, help="Back-test folds.")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these models (repeatable).")] = None,
    budget: Annotated[float, typer.Option(help="Retention campaign budget.")] = 5000.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Show Airflow, Cosmos and dbt logs on the terminal.")] = False,
) -> None:
    """Run the pipeline in-process through its Airflow DAGs (the scheduler's code path).

    The terminal shows a progress view and the summary; every log line goes to a file under
    .local/logs/ (printed at the end, and on failure with the failing task's last lines)."""
    from contextlib import nullcontext

    from ml.ops.pipeline import PipelineFailed, run_pipeline
    from ml.ops.runlog import StageProgress, captured_output, log_path

    conf = {
        "full_refresh": full_refresh,
        "snapshot_cadence": snapshot_cadence,
        "as_of_end": as_of_end,
        "churn_horizon_days": churn_horizon_days,
        "propensity_horizon_days": propensity_horizon_days,
    }
    if promotion_mode not in ("auto", "manual", "dry_run"):
        _fail(f"--promotion-mode must be auto, manual or dry_run, got {promotion_mode!r}")
    if not budget > 0:
        _fail(f"--budget must be a positive number, got {budget}")
    train_conf = {"promotion_mode": promotion_mode, "folds": folds, "learners": None,
                  "max_training_rows": None}
    log = log_path("run")
    capture = nullcontext(console) if verbose else captured_output(log)
    failure = None
    with capture as terminal, StageProgress(terminal) as progress:
        try:
            summary = run_pipeline(features_conf=conf, train_conf=train_conf, models=model,
                                   allocate_conf={"budget": budget}, progress=progress)
        except PipelineFailed as exc:
            failure = str(exc)
    if failure:
        _fail(failure if verbose else f"{failure}\nfull log: {log}")
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    _print_run_summary(summary)
    if not verbose:
        console.print(f"full log: {log}")


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
    for name, info in summary.get("models", {}).items():
        _print_model(name, info)
    if summary.get("campaign"):
        _print_campaign(summary["campaign"])
    if summary.get("media_mix"):
        _print_media_mix(summary["media_mix"])
    if summary.get("skipped"):
        skipped = Table("stage", "why", title="Skipped (decisions, not failures)")
        for stage, reason in summary["skipped"].items():
            skipped.add_row(stage, reason)
        console.print(skipped)
    # Each DAG's time was on the progress view; the per-task seconds are in --json.
    total = sum(summary["stage_seconds"].values())
    console.print(f"[bold]Tasks took[/] {total:.0f} s in all (per task: `ml run --json`, "
                  "stage_seconds)")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Registry state per model (champion, challenger, back-test, last decision) and table sizes."""
    from ml.ops.status import platform_status

    state = platform_status()
    if as_json:
        print(json.dumps(state, default=str, indent=2, sort_keys=True))
        return
    table = Table("model", "champion", "challenger", "primary metric (champion)",
                  "last decision (why no champion)")
    for name, info in {**state["models"], **state["capabilities"]}.items():
        champion, challenger = info["champion"] or {}, info["challenger"] or {}
        metric = (_primary_metric_text(name, champion) if name in state["models"]
                  else _logged_metric_text(champion))
        last = info["last_decision"]
        if last is None:
            decision = info["no_champion_reason"] or "-"
        else:
            version = f" v{last['to_version']}" if last["to_version"] else ""
            decision = f"{last['decision']}{version}: {last['reason']}"
        table.add_row(name, champion.get("version", "-"), challenger.get("version", "-"), metric,
                      decision)
    console.print(table)
    for name, info in {**state["models"], **state["capabilities"]}.items():
        if info["champion_check"]:
            console.print(f"{name}: @champion: {info['champion_check']}")
    if state["campaign_blocked_by"]:
        console.print(f"campaign: cannot be planned: {state['campaign_blocked_by']}")
    rows = Table("table", "rows", title="Warehouse")
    for name, count in state["tables"].items():
        rows.add_row(name, f"{count:,}")
    console.print(rows)


def _print_model(name: str, info: dict) -> None:
    from ml.modeling.specs import get_spec

    spec = get_spec(name)
    challenger, champion = info.get("challenger") or {}, info.get("champion") or {}
    if not challenger:
        console.print(f"[bold]{name}[/]: not trained; {info.get('no_champion_reason')}")
        return
    backtest = challenger.get("backtest", {})
    metrics = [spec.primary_metric, *[m for m in ("pr_auc", "log_loss", "ece", "lift_top_decile",
                                                  "rmse", "normalized_gini") if m != spec.primary_metric]]
    metrics = [m for m in metrics if any(m in v for v in backtest.values())]
    table = Table("learner", *metrics, title=f"{name}: back-test of v{challenger.get('version', '?')}")
    for learner, values in backtest.items():
        table.add_row(learner, *[f"{values[m]['mean']:.4f}±{values[m]['std']:.3f}" if m in values
                                 else "-" for m in metrics])
    console.print(table)
    for baseline, gain in challenger.get("gains", {}).items():
        console.print(f"  gain vs {baseline}: {gain['gain']:+.4f} "
                      f"(95% CI {gain['low']:+.4f}..{gain['high']:+.4f})")
    gap = challenger.get("gap_closed")
    if gap:
        console.print(f"  oracle {gap['oracle_value']:.4f}; share of the gap from the best "
                      f"baseline ({gap['best_baseline']}) closed: {gap['share_closed']:.0%}")
    console.print(f"  gate: [bold]{challenger.get('gate_verdict')}[/] - {challenger.get('gate_reason')}")
    console.print(f"  champion v{champion.get('version', '-')}, challenger v{challenger.get('version', '-')}")


def _primary_metric_text(model: str, info: dict) -> str:
    from ml.modeling.specs import get_spec

    spec = get_spec(model)
    learner = info.get("candidate") or spec.candidate
    values = info.get("backtest", {}).get(learner, {}).get(spec.primary_metric)
    return f"{spec.primary_metric} {values['mean']:.4f}" if values else "-"


def _logged_metric_text(info: dict) -> str:
    metric = info.get("primary_metric") or {}
    return f"{metric['name']} {metric['value']:.4f}" if metric.get("value") is not None else "-"


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="Model name (a spec in ml/modeling/model_specs).")],
    version: Annotated[str, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the ledger.")] = "manual promotion",
) -> None:
    """Make VERSION the champion of MODEL (bypasses the gate; recorded in the ledger)."""
    from ml.lifecycle.promotion import current_actor
    from ml.lifecycle.promotion import promote as do_promote

    try:
        moved = do_promote(model, version, actor=current_actor(), mode="manual", reason=reason)
    except Exception as exc:  # noqa: BLE001 - PromotionError or MLflow's own error types
        _fail(str(exc))
    finished = " (a killed run had moved it; its ledger row is now recorded)" \
        if moved.get("repaired") else ""
    console.print(f"{model}: champion v{moved['from_version']} -> v{moved['to_version']}{finished}")


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the ledger.")] = "rollback requested",
) -> None:
    """Restore the champion that MODEL's current champion replaced (from the ledger)."""
    from ml.lifecycle.promotion import PromotionError, current_actor
    from ml.lifecycle.promotion import rollback as do_rollback

    try:
        moved = do_rollback(model, actor=current_actor(), reason=reason)
    except PromotionError as exc:
        _fail(str(exc))
    console.print(f"{model}: champion v{moved['from_version']} -> v{moved['to_version']} (rolled back)")


@app.command()
def approve(
    model: Annotated[str, typer.Argument(help="Model whose pending promotion to answer.")],
    reject: Annotated[bool, typer.Option("--reject", help="Decline instead of approving.")] = False,
) -> None:
    """Answer a manual-mode promotion waiting in train_MODEL through the Airflow API (same as
    the UI's form), signed in as AIRFLOW_USERNAME/AIRFLOW_PASSWORD (default: the `make up`
    admin). That user is the respondent and the ledger's actor."""
    from ml.ops.servers import ServerError, airflow_client

    try:
        client = airflow_client()
        pending = client.pending_approvals(f"train_{model}")
        if not pending:
            _fail(f"no promotion of {model} is waiting for approval at {client.base_url}")
        for item in pending:
            answer = client.respond(item["dag_id"], item["dag_run_id"], item["task_id"],
                                    "Reject" if reject else "Approve", item["map_index"])
            verb = "rejected" if reject else "approved"
            console.print(f"{verb} by {answer['responded_by']['name']}: {item['dag_id']} "
                          f"{item['dag_run_id']}")
    except ServerError as exc:
        _fail(f"{exc}\n(approvals go through the Airflow API server as a signed-in user, who "
              "becomes the ledger's actor; there is no in-process way to approve)")


@app.command()
def score(
    model: Annotated[str, typer.Option(help="Model to score; 'all' = every model with a champion.")] = "all",
    as_of: Annotated[str | None, typer.Option(help="Snapshot date (default: the scoring snapshot).")] = None,
    shards: Annotated[int, typer.Option(min=1, max=64, help="Customer shards.")] = 1,
) -> None:
    """Score customers with each model's champion into ml.scores (idempotent per as-of)."""
    from ml.decisions.scoring import ScoringError, check_skew_for_jobs, plan_scoring, publish_all
    from ml.decisions.scoring import score_shard as run_shard

    try:
        jobs = plan_scoring(model, as_of, shards)
        check_skew_for_jobs(jobs)  # a train/serve skew fails here, before anything is written
        results = [{**job, **run_shard(job["model"], job["as_of"], job["shard"], job["shards"])}
                   for job in jobs]
        published = publish_all(results)
    except ScoringError as exc:
        _fail(str(exc))
    for item in published:
        psi = "n/a" if item["psi"] is None else f"{item['psi']:.3f}"
        console.print(f"{item['model']} v{item['version']}: {item['rows']:,} scores as of "
                      f"{item['as_of']} (PSI vs back-test {psi})")


@app.command()
def allocate(
    budget: Annotated[str, typer.Option(help="Total contact budget (> 0).")],
    control_share: Annotated[float | None, typer.Option(
        min=0, max=0.5, help="Held-out control share (default: sized by the power "
                             "calculation for --min-detectable-effect).")] = None,
    min_detectable_effect: Annotated[float, typer.Option(
        min=0.001, max=0.999, help="Smallest effect on retention (absolute) the control group "
                                   "must detect (alpha 0.05, power 80%).")] = 0.05,
    seed: Annotated[int, typer.Option(help="Kept for scripts; the control group is hashed on "
                                           "(campaign, customer), not seeded.")] = 42,
    margin_rate: Annotated[float, typer.Option(help="Margin share of revenue (customer value).")] = 0.3,
    capacity: Annotated[list[str] | None, typer.Option(
        help="Per-channel cap as CHANNEL=N (repeatable), e.g. --capacity direct_mail=500.")] = None,
) -> None:
    """Plan the retention campaign from the latest churn scores under BUDGET."""
    from ml.decisions.campaign import CampaignError, plan

    try:
        capacities = {k: int(v) for k, v in (item.split("=", 1) for item in capacity or [])}
    except ValueError:
        _fail(f"--capacity takes CHANNEL=N, got {capacity}")
    try:
        summary = plan(budget, control_share=control_share, seed=seed, margin_rate=margin_rate,
                       capacities=capacities, min_detectable_effect=min_detectable_effect)
    except CampaignError as exc:
        _fail(str(exc))
    _print_campaign(summary)
    _print_design(summary.get("design"))


def _print_design(design: dict | None) -> None:
    """The plan as an experiment: its control group's power and where each save rate came
    from (a readout, or the seed's guess as the prior)."""
    if not design:
        return
    console.print(f"campaign {design['campaign']}: control share {design['control_share']:.1%} "
                  f"({design['control_share_source']}): {design['power_reason']}")
    table = Table("channel", "save rate", "source", title="Save rates used by this plan")
    for channel, rate in design["save_rates"].items():
        source = (f"readout of {rate['campaign']} (95% CI {rate['ci'][0]:.1%}..{rate['ci'][1]:.1%}; "
                  f"seed prior {rate['seed_prior']:.1%})" if rate["source"] == "readout"
                  else f"seed prior: {rate['note']}")
        table.add_row(channel, f"{rate['save_rate']:.1%}", source)
    console.print(table)


def _print_campaign(summary: dict) -> None:
    table = Table("rank", "customer", "channel", "churn p", "value", "exp. incremental", "cost",
                  "group", title=f"Retention campaign as of {summary['as_of_date']} (top 10)")
    for row in summary["top"]:
        table.add_row(str(row["rank"]), row["customer_id"], row["channel"],
                      f"{row['churn_probability']:.2f}", f"{row['customer_value']:.0f}",
                      f"{row['expected_incremental_value']:.2f}", f"{row['cost']:.2f}", row["group"])
    console.print(table)
    console.print(
        f"budget {summary['budget']:,.0f}  spend {summary['spend']:,.2f}  expected return "
        f"{summary['expected_return']:,.2f}  expected incremental value "
        f"{summary['expected_incremental_value']:,.2f}  ROI {summary['roi']:.2f}  "
        f"treated {summary['n_treated']:,}  control {summary['n_control']:,}  "
        f"({summary['method']}, gap to LP bound {summary['gap']:.2%})")
    if summary.get("targeting"):
        console.print(f"targeting: {summary['targeting']}")


@app.command()
def benchmark(
    model: Annotated[str, typer.Option(help="The model whose training set and folds to use.")]
    = "churn",
    learners: Annotated[list[str] | None, typer.Option(
        "--learners", help="Learner names (repeat, or comma-separated); default: the spec's "
        "and the benchmark roster's.")] = None,
    customers: Annotated[int | None, typer.Option(
        min=50, help="Benchmark on a random sample of this many customers (all their "
        "snapshots).")] = None,
    reference_customers: Annotated[int | None, typer.Option(
        min=0, help="Customers of the data-rich reference history (synthetic data only); "
        "default 20x the history's (or --customers) customers, 0 skips it.")] = None,
    folds: Annotated[int | None, typer.Option(min=1, help="Back-test folds (default: the "
                                                          "spec's).")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials per search of every "
                                                           "tuned learner.")] = None,
    automl_seconds: Annotated[float | None, typer.Option(
        min=1, help="FLAML's time budget per fit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Every learner on the same rolling out-of-time folds of one model's training set:
    metrics with CIs, lift and profit at capacity, fit/predict time, memory, a ranking with
    the significance of each gap, and the oracle and a data-rich reference on synthetic
    data. The HTML report goes to the MLflow experiment `benchmark`."""
    from rich.markup import escape

    from ml.benchmark.harness import run_benchmark
    from ml.modeling.specs import SpecError
    from ml.modeling.training_data import TrainingDataError

    names = [n.strip() for value in learners or [] for n in value.split(",") if n.strip()]
    try:
        summary = run_benchmark(model, names or None, customers, reference_customers, folds,
                                trials, automl_seconds)
    except (SpecError, TrainingDataError) as exc:
        _fail(escape(str(exc)))
    if as_json:
        print(json.dumps(summary, default=str, indent=1))
        return
    _print_benchmark(summary)


def _print_benchmark(summary: dict) -> None:
    metric = summary["primary_metric"]
    table = Table("learner", f"{metric} (95% CI)", *summary["guardrails"], "lift@10%",
                  "profit@cap", "fit s", "tune s", "pred s/1M", "peak MiB",
                  title=f"Benchmark: {summary['model']} ({summary['data']['rows']:,} rows, "
                        f"{len(summary['data']['folds'])} folds)")

    def cells(entry: dict) -> list[str]:
        def stat(name: str) -> str:
            value = entry["metrics"].get(name)
            if not value:
                return "–"
            ci = value["ci"]
            return f"{value['mean']:.4f}" + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")

        profit = entry.get("profit_at_capacity")
        return [stat(metric), *[stat(g) for g in summary["guardrails"]],
                f"{entry['lift_top_decile']:.2f}" if entry.get("lift_top_decile") else "–",
                f"{profit['profit']:,.0f}" if profit else "–"]

    for row in sorted(summary["learners"], key=lambda r: next(
            (k["rank"] for k in summary["ranking"] if k["learner"] == r["learner"]), 999)):
        if row["error"]:
            table.add_row(row["learner"], f"failed: {row['error'][:60]}")
            continue
        table.add_row(row["learner"] + (" (tuned)" if row["tuned"] else ""), *cells(row),
                      f"{row['fit_seconds']:.1f}", f"{row['tuning_seconds']:.1f}",
                      f"{row['predict_seconds_per_1m_rows']:.1f}", f"{row['peak_rss_mib']:.0f}")
    for name in ("reference", "oracle"):
        entry = summary.get(name) or {}
        if entry.get("metrics"):
            table.add_row(f"[italic]{name}[/]", *cells(entry), "", "", "", "")
    console.print(table)
    for rank in summary["ranking"]:
        gap = rank["gap_to_next"]
        if gap:
            console.print(f"  {rank['rank']}. {rank['learner']} {rank['mean']:.4f}: "
                          f"{gap['gain']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}] over "
                          f"{gap['vs']}{'' if gap['significant'] else ' (not significant)'}")
    limit = summary["limit"]
    values = [(label, limit[key]) for label, key in (("model", "model_value"),
              ("data-rich reference", "reference_value"), ("oracle", "oracle_value"))]
    console.print("the measured limit: " + ", ".join(
        f"{label} {value:.4f}" if value is not None else f"{label} –" for label, value in values)
        + (f"; gap to the oracle closed {limit['share_of_gap_closed']:.0%} (from "
           f"{limit['best_baseline']})" if limit.get("share_of_gap_closed") is not None else ""))
    for note in (summary.get("oracle_note"), (summary.get("reference") or {}).get("note")):
        if note:
            console.print(f"  note: {note}")
    if summary.get("mlflow"):
        console.print(f"report: MLflow experiment `{summary['mlflow']['experiment']}`, run "
                      f"{summary['mlflow']['run_id']} ({summary['mlflow']['report']}); "
                      f"{summary['seconds']:.0f} s")


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
) -> None:
    """Write the platform dashboard (the Airflow navigation's "Dashboard") as one static
    HTML file that renders offline, for people without Airflow access."""
    from ml.ops.dashboard import build_sections, render_page

    sections = build_sections()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(sections), encoding="utf-8")
    empty = [s.key for s in sections if not s.has_data]
    console.print(f"wrote the dashboard to {out} ({len(sections) - len(empty)} of "
                  f"{len(sections)} sections with data" + (f"; no data yet: {', '.join(empty)})"
                                                            if empty else ")"),
                  soft_wrap=True)


server_app = typer.Typer(help="Local Airflow (127.0.0.1:8080) and MLflow (127.0.0.1:5000) servers.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("up")
def server_up() -> None:
    """Start Airflow (standalone) and the MLflow server, wait until both answer, print URLs and login."""
    from ml.ops.servers import ServerError, up

    try:
        up(echo=console.print)
    except ServerError as exc:
        _fail(str(exc))


@server_app.command("down")
def server_down() -> None:
    """Stop exactly the processes `ml server up` started (by PID file)."""
    from ml.ops.servers import down

    down(echo=console.print)


@server_app.command("status")
def server_status() -> None:
    """Whether each server runs, its URL and PID."""
    from ml.ops.servers import status as server_state

    server_state(echo=console.print)


export_app = typer.Typer(help="Export scores or the target list for a CRM or ads tool.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


def _write_export(frame, out: str) -> None:
    from pathlib import Path

    path = Path(out)
    if frame.empty:
        _fail("nothing to export (run `ml run` first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        _fail(f"--out must end in .csv or .parquet, got {path.name}")
    console.print(f"wrote {len(frame):,} rows to {path}")


@export_app.command("scores")
def export_scores(
    model: Annotated[str, typer.Option(help="Model name.")],
    out: Annotated[str, typer.Option(help="Output file (.csv or .parquet).")],
    as_of: Annotated[str | None, typer.Option(help="Snapshot date (default: the latest).")] = None,
) -> None:
    """Scores of MODEL (latest as-of by default)."""
    from ml.decisions.scoring import read_scores

    frame = read_scores(model, date.fromisoformat(as_of) if as_of else None)
    if not frame.empty and as_of is None:
        frame = frame[frame["as_of_date"] == frame["as_of_date"].max()]
    _write_export(frame.sort_values(["segment", "decile", "customer_id"], na_position="first")
                  if not frame.empty else frame, out)


@export_app.command("targets")
def export_targets(
    out: Annotated[str, typer.Option(help="Output file (.csv or .parquet).")],
    as_of: Annotated[str | None, typer.Option(help="Campaign as-of date (default: the latest).")] = None,
    offers: Annotated[int, typer.Option(min=0, help=(
        "Top recommended items per customer as columns offer_1..offer_N (0: none)."))] = 3,
) -> None:
    """The retention campaign's target list (treatment and control), each customer with
    their top offers from the served recommendations."""
    from ml.decisions.campaign import read_targets
    from ml.decisions.offers import targets_with_offers
    from ml.recommend.serving import ServingError

    day = date.fromisoformat(as_of) if as_of else None
    if not offers:
        _write_export(read_targets(day), out)
        return
    try:
        frame = targets_with_offers(day, offers)
    except ServingError as exc:
        console.print(f"[yellow]note:[/] {exc}; the targets are exported without offers")
        frame = read_targets(day)
    _write_export(frame, out)


@export_app.command("recommendations")
def export_recommendations(
    out: Annotated[str, typer.Option(help="Output file (.csv or .parquet).")],
    k: Annotated[int | None, typer.Option(min=1, help="Top k per customer (default: all).")] = None,
) -> None:
    """The newest served recommendation lists (customer, as_of, rank, item, score, version)."""
    from ml.recommend.serving import ServingError, read_recommendations

    try:
        frame = read_recommendations(k)
    except ServingError as exc:
        _fail(str(exc))
    _write_export(frame, out)


@export_app.command("media-plan")
def export_media_plan(
    out: Annotated[str, typer.Option(help="Output file (.csv or .parquet).")],
    plan_id: Annotated[str | None, typer.Option(help="Plan id (default: the latest).")] = None,
) -> None:
    """A media budget plan from ml.media_plans (one row per channel)."""
    from ml.mmm.plan import read_plan

    _write_export(read_plan(plan_id), out)


def _print_media_mix(info: dict) -> None:
    hold, diag = info.get("holdout") or {}, info.get("diagnostics") or {}
    console.print(f"[bold]media_mix[/] champion v{info['champion']}: holdout MAPE "
                  f"{hold.get('mape', float('nan')):.3f}, CRPS {hold.get('crps', float('nan')):.2f}; "
                  f"R-hat {diag.get('max_rhat', float('nan')):.3f}, ESS "
                  f"{diag.get('min_ess_bulk', float('nan')):.0f}, divergences {diag.get('divergences')}")
    for channel, roi in info.get("roi", {}).items():
        console.print(f"  ROI {channel}: {roi['mean']:.4f} new customers per $ "
                      f"(90% CI {roi['low']:.4f}..{roi['high']:.4f})")
    if info.get("plan"):
        plan, per_customer = info["plan"], info.get("value_per_new_customer")
        worth = ""
        if plan.get("expected_value_planned") is not None and per_customer is not None:
            worth = (f", worth {plan['expected_value_planned']:,.0f} in customer value "
                     f"({per_customer:,.2f} per new customer)")
        console.print(f"  plan {plan['plan_id']}: {plan['budget']:,.0f} over {plan['weeks']} weeks -> "
                      f"{plan['expected_planned']:.1f} media-driven new customers{worth} (current "
                      f"split {plan['expected_current']:.1f}); `ml plan-media --budget B` for another")


@app.command("plan-media")
def plan_media(
    budget: Annotated[float, typer.Option(help="Total media budget for the plan's weeks.")],
    bounds: Annotated[list[str] | None, typer.Option(
        help="CHANNEL=LOW:HIGH totals for the plan's weeks (repeatable); default: current "
             "spend +-30%.")] = None,
    weeks: Annotated[int | None, typer.Option(min=1, max=52, help="Periods the budget covers "
                                              "(default: the spec's, 4 weeks).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Split BUDGET across the paid channels to maximise the expected value acquired (new
    customers x the champion's value per new customer) over the media-mix champion's
    posterior; store the plan in ml.media_plans."""
    import pandas as pd
    from rich.markup import escape

    from ml.mmm.plan import PlanError, make_plan, parse_bounds, write_plan

    try:
        plan = make_plan(budget, parse_bounds(bounds or []), weeks)
    except PlanError as exc:
        _fail(escape(str(exc)))
    write_plan(plan)
    if as_json:
        console.print_json(json.dumps(plan.to_json(), default=str))
        return
    table = Table("channel", "current", "bounds", "planned", "expected (planned)",
                  "expected (current)", "value (planned)",
                  title=f"Media plan {plan.plan_id}: {plan.budget:,.0f} over {plan.weeks} weeks "
                        f"(media_mix v{plan.model_version})")
    for row in plan.table.itertuples():
        table.add_row(row.channel, f"{row.current_spend:,.0f}",
                      f"{row.lower:,.0f}..{row.upper:,.0f}", f"{row.planned_spend:,.0f}",
                      f"{row.expected_planned:.1f} ({row.expected_planned_low:.1f}..{row.expected_planned_high:.1f})",
                      f"{row.expected_current:.1f} ({row.expected_current_low:.1f}..{row.expected_current_high:.1f})",
                      "n/a" if pd.isna(row.expected_value_planned) else
                      f"{row.expected_value_planned:,.0f} ({row.expected_value_planned_low:,.0f}.."
                      f"{row.expected_value_planned_high:,.0f})")
    console.print(table)
    totals = plan.totals
    for label, key in (("planned", "planned"), ("current allocation", "current"),
                       ("current split at this budget", "current_split_at_budget")):
        t = totals[key]
        worth = (f", value {t['value']['mean']:,.0f} (90% CI {t['value']['low']:,.0f}.."
                 f"{t['value']['high']:,.0f}; {t['value_per_dollar']:.2f} per $)" if "value" in t
                 else "")
        console.print(f"{label}: spend {t['spend']:,.0f} -> {t['mean']:.1f} new customers "
                      f"(90% CI {t['low']:.1f}..{t['high']:.1f}){worth}")
    gain = totals["gain_over_current_split"]
    console.print(f"gain over the current split: {gain['mean']:+.1f} (90% CI {gain['low']:+.1f}.."
                  f"{gain['high']:+.1f}); stored in ml.media_plans (export: `ml export media-plan`)")
    if totals["value_per_new_customer"] is None:
        console.print(f"value: n/a (media_mix v{plan.model_version} was trained before new "
                      "customers were valued)")
    else:
        console.print(f"value per new customer {totals['value_per_new_customer']:,.2f} (the "
                      "champion's: expected margin over the spec's value horizon); the split is "
                      "the same as for new customers, the value says whether the spend pays back")


recommendations_app = typer.Typer(help="Item recommendations: train (back-test, gate) and serve.",
                                  no_args_is_help=True)
app.add_typer(recommendations_app, name="recommendations")


@recommendations_app.command("train")
def recommendations_train(
    mode: Annotated[str, typer.Option(help="auto, manual or dry_run.")] = "auto",
    folds: Annotated[int | None, typer.Option(min=1, max=12, help="Back-test cutoffs.")] = None,
) -> None:
    """Back-test every recommender, register the best, run the promotion gate."""
    from ml.recommend.train import train_and_gate

    result = train_and_gate(mode=mode, folds=folds)
    for name, value in result["recall_at_10"].items():
        console.print(f"{name:<12} recall@10 {value:.4f}")
    console.print(f"registered v{result['version']} ({result['candidate']}): "
                  f"{result['decision']}: {result['reason']}")


@recommendations_app.command("serve")
def recommendations_serve(
    k: Annotated[int | None, typer.Option(min=1, help="List length (default: the spec's).")] = None,
) -> None:
    """Write the champion's top-k for every customer into ml.recommendations."""
    from ml.recommend.serving import ServingError, serve
    from ml.recommend.train import get_ranking_spec

    try:
        result = serve(get_ranking_spec(), k=k)
    except ServingError as exc:
        _fail(str(exc))
    console.print(f"{result['rows']:,} recommendations for {result['customers']:,} customers "
                  f"as of {result['as_of']} (v{result['version']})")


uplift_app = typer.Typer(help="Uplift: learn whom contact changes from past randomised "
                              "campaigns (back-test, gate), score per channel.",
                         no_args_is_help=True)
app.add_typer(uplift_app, name="uplift")


@uplift_app.command("train")
def uplift_train(
    mode: Annotated[str, typer.Option(help="auto, manual or dry_run.")] = "auto",
    folds: Annotated[int | None, typer.Option(min=1, max=12,
                                              help="Campaigns back-tested.")] = None,
) -> None:
    """Back-test every uplift learner by campaign, register the best, run the gate."""
    from ml.uplift.data import UpliftNotApplicable
    from ml.uplift.train import record_skip, train_and_gate

    try:
        result = train_and_gate(mode=mode, folds=folds)
    except UpliftNotApplicable as exc:
        record_skip(str(exc), mode)
        console.print(f"skipped: {exc}")
        return
    for name, value in result["qini"].items():
        console.print(f"{name:<12} Qini {value:+.4f}")
    console.print(f"registered v{result['version']} ({result['candidate']}) on "
                  f"{result['campaigns']} campaigns: {result['decision']}: {result['reason']}")


@uplift_app.command("score")
def uplift_score() -> None:
    """Write the champion's effect per customer and retention channel into ml.uplift_scores."""
    from ml.uplift.serving import UpliftServingError, score_uplift

    try:
        result = score_uplift()
    except UpliftServingError as exc:
        _fail(str(exc))
    console.print(f"{result['customers']:,} customers x {len(result['per_channel'])} channels "
                  f"as of {result['as_of']} (v{result['version']})")
    for channel, stats in result["per_channel"].items():
        console.print(f"{channel:<12} mean uplift {stats['mean']:+.4f}")


@app.command()
def recommend(customer: Annotated[str, typer.Option(help="Customer id.")]) -> None:
    """A customer's purchase history next to their recommendations, and why."""
    from rich.table import Table

    from ml.recommend.serving import ServingError, explain
    from ml.recommend.train import get_ranking_spec

    try:
        shown = explain(get_ranking_spec(), customer)
    except ServingError as exc:
        _fail(str(exc))
    history = Table(title=f"{customer}: purchases before {shown['as_of']}")
    for column in ("product_id", "orders", "days_since_last"):
        history.add_column(column)
    for item in shown["history"][:20]:
        history.add_row(item["product_id"], str(item["orders"]), str(item["days_since_last"]))
    served = Table(title=f"recommended ({shown['source'] or 'none served'}, "
                         f"v{shown['model_version']})")
    for column in ("rank", "product_id", "score", "why"):
        served.add_column(column)
    for item in shown["recommendations"]:
        served.add_row(str(item["rank"]), item["product_id"], f"{item['score']:.4f}",
                       shown["why"][item["product_id"]])
    console.print(history, served)


@app.command()
def readout(
    campaign: Annotated[str | None, typer.Argument(
        help="Read out (again) this campaign; default: every matured one not read out "
             "yet.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Read out matured retention campaigns as experiments (treated vs control, 95% CIs,
    CUPED, sample-ratio check, per channel and score decile) into ml.experiment_readouts,
    then show them. The same as the readout DAG."""
    from rich.markup import escape

    from ml.experiments.readout import ReadoutError, read_readouts, run_readouts, summarise

    try:
        done = run_readouts([campaign] if campaign else None)
    except ReadoutError as exc:
        _fail(escape(str(exc)))
    rows = read_readouts(campaign)
    shown = ([summarise(part) for _, part in rows.groupby("campaign", sort=False)]
             if len(rows) else [])
    if as_json:
        print(json.dumps({"read_now": [d["campaign"] for d in done], "readouts": shown},
                         default=str, indent=1))
        return
    if not shown:
        console.print("no campaign has matured yet: no readouts")
        return
    console.print(f"read out now: {', '.join(d['campaign'] for d in done) or 'nothing new'}")
    for item in shown if campaign else shown[-5:]:
        _print_readout(item, detail=bool(campaign))


def _print_readout(item: dict, detail: bool) -> None:
    srm = item["srm"]
    planned = ("unknown" if srm["planned_control_share"] is None
               else f"{srm['planned_control_share']:.1%}")
    p_value = "" if srm["p_value"] is None else f", p = {srm['p_value']:.3g}"
    verdict = ("feeds the next plan" if item["feeds_plan"]
               else f"[red]does not feed the next plan[/red]: {item['blocked_reason']}")
    console.print(f"[bold]{item['campaign']}[/bold] (assigned {item['assigned_at'][:10]}, "
                  f"{item['horizon_days']}-day horizon): control "
                  f"{srm['observed_control_share']:.1%} "
                  f"vs planned {planned}, SRM {srm['status']}{p_value}; {verdict}")
    table = Table("segment", "metric", "treated", "control", "effect (95% CI)",
                  "CUPED effect (95% CI)", "var. removed", "save rate")
    for row in item["segments"]:
        if not detail and row["segment_type"] != "all":
            continue
        fmt = ((lambda x: f"{x:+.2%}") if row["metric"] == "retention"
               else (lambda x: f"{x:+.2f}"))

        def interval(effect, low, high, fmt=fmt) -> str:
            return "" if effect is None else f"{fmt(effect)} ({fmt(low)}..{fmt(high)})"

        table.add_row(f"{row['segment_type']} {row['segment']}", row["metric"],
                      f"{row['n_treated']:,}", f"{row['n_control']:,}",
                      interval(row["effect"], row["ci_low"], row["ci_high"]),
                      interval(row["effect_cuped"], row["ci_low_cuped"], row["ci_high_cuped"]),
                      ("" if row["variance_reduction"] is None
                       else f"{row['variance_reduction']:.0%}"),
                      "" if row["save_rate"] is None else f"{row['save_rate']:.1%}")
    console.print(table)


simulate_app = typer.Typer(help="Play the synthetic world forward (synthetic histories only).",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("advance")
def simulate_advance(
    days: Annotated[int, typer.Option(min=1, max=366, help="Days to continue every "
                                                          "customer's life.")] = 90,
) -> None:
    """Continue the generated history by DAYS days: the newest unplayed plan's treated
    customers are contacted (with the world's true, heterogeneous effect), control
    customers are not; new events are appended to the raw tables. Run twice, it continues
    from where it ended and plays a plan only once. Re-run features (`ml run`) afterwards."""
    from rich.markup import escape

    from ml.sim.advance import AdvanceError, advance

    try:
        summary = advance(days)
    except AdvanceError as exc:
        _fail(escape(str(exc)))
    table = Table("table", "rows appended",
                  title=f"Advanced {summary.start} .. {summary.end}")
    for name, rows in summary.row_counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(summary.note)
    console.print("next: `ml run` rebuilds the marts; `ml readout` once a campaign's horizon "
                  "has passed")
