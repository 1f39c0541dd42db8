"""The benchmark's report: a markdown summary rendered to one self-contained HTML page with
its plots inline, logged with the JSON to the MLflow experiment ``benchmark``."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml import registry
from ml.modeling.backtest import BacktestResult
from ml.modeling.specs import ModelSpec

EXPERIMENT = "benchmark"


def _number(value, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else f"{value:.{digits}f}"


def _with_ci(stats: dict | None) -> str:
    if not stats:
        return "–"
    ci = stats.get("ci")
    interval = f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else ""
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}{interval}"


def _profit(entry: dict) -> str:
    profit = entry.get("profit_at_capacity")
    return "–" if not profit else f"{profit['profit']:,.0f} ({profit['contacts']:,} contacts)"


def markdown(summary: dict) -> str:
    """The report's text: the table per learner, the ranking, the measured limit."""
    metric, guardrails = summary["primary_metric"], summary["guardrails"]
    head = ["learner", "kind", f"{metric} (mean ± std over folds [95% CI])",
            *guardrails, "top-decile lift", "profit at capacity", "fit s", "tuning s",
            "predict s / 1M rows", "peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in summary["learners"]:
        if row["error"]:
            lines.append(f"| {row['learner']} | {row['kind']} | failed: "
                         f"{html.escape(row['error'][:120])} |" + " |" * (len(head) - 3))
            continue
        lines.append("| " + " | ".join([
            row["learner"], row["kind"] + (" (tuned)" if row["tuned"] else ""),
            _with_ci(row["metrics"].get(metric)),
            *[_with_ci(row["metrics"].get(g)) for g in guardrails],
            _number(row["lift_top_decile"], 3), _profit(row), _number(row["fit_seconds"], 1),
            _number(row["tuning_seconds"], 1), _number(row["predict_seconds_per_1m_rows"], 2),
            _number(row["peak_rss_mib"], 0)]) + " |")
    for name in ("oracle", "reference"):
        entry = summary.get(name) or {}
        if entry.get("metrics"):
            lines.append("| " + " | ".join([
                f"*{name}*", entry.get("learner", "latent state") if name == "reference"
                else "latent state", _with_ci(entry["metrics"].get(metric)),
                *[_with_ci(entry["metrics"].get(g)) for g in guardrails],
                _number(entry["lift_top_decile"], 3), _profit(entry)] + ["–"] * 4) + " |")
    ranking = ["| rank | learner | mean | gap to next (95% CI) | significant |",
               "|---|---|---|---|---|"]
    for r in summary["ranking"]:
        gap = r["gap_to_next"]
        ranking.append(f"| {r['rank']} | {r['learner']} | {r['mean']:.4f} | " + (
            f"{gap['gain']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}] vs {gap['vs']} | "
            f"{'yes' if gap['significant'] else 'no'} |" if gap else "– | – |"))
    limit = summary["limit"]
    data = summary["data"]
    folds = ", ".join(f"{f['as_of']} ({f['test_rows']:,} rows)" for f in data["folds"])
    reference = summary.get("reference") or {}
    share = limit.get("share_of_gap_closed")
    limit_lines = [
        f"- **model** (`{limit['model']}`, what training registers): "
        f"{_number(limit['model_value'])}",
        f"- **data-rich reference** (same learner trained on a history of "
        f"{reference.get('history', {}).get('customers', reference.get('customers', 0)):,} "
        f"customers from the same generator, {reference.get('rows', 0):,} training rows): "
        f"{_number(limit['reference_value'])}"
        + (f" — {reference['note']}" if reference.get("note") else ""),
        f"- **oracle** (latent state): {_number(limit['oracle_value'])}"
        + (f" — {summary['oracle_note']}" if summary.get("oracle_note") else ""),
        f"- best baseline `{limit['best_baseline']}` {_number(limit['best_baseline_value'])}; "
        f"share of the gap to the oracle closed by the model: "
        f"{'–' if share is None else f'{share:.0%}'}"
        + (f", by the reference: {limit['reference_share_of_gap']:.0%}; model minus reference "
           f"{limit['model_to_reference']:+.4f}" if "reference_share_of_gap" in limit else ""),
    ]
    campaign = summary["campaign"]
    campaign_text = (campaign["note"] if "note" in campaign else
                     f"top {campaign['target_share']:.0%} of each fold by score, at most "
                     f"{campaign['capacity'] or 'unlimited'} contacts, through "
                     f"`{campaign['channel']}` (cost {campaign['cost_per_contact']}, save rate "
                     f"{campaign['save_rate']}); a saved churner is worth "
                     f"{campaign['margin_rate']:.0%} of their trailing 12-month revenue")
    return "\n".join([
        f"# Benchmark: {summary['model']}",
        "",
        f"{len(summary['learners'])} learners on the same {len(data['folds'])} rolling "
        f"out-of-time folds of `{summary['training_set']}` ({data['rows']:,} rows, "
        f"{data['customers']:,} customers, {data['features']} features): {folds}. A fold "
        "trains only on rows whose label matured by its date; tuned learners search on each "
        "fold's own past only. CIs (learners and gaps): bootstrap of the mean over folds, rows "
        f"resampled within each fold. Finished in {summary['seconds']:.0f} s.",
        "",
        "## Learners", "", *lines, "",
        f"Profit at capacity: {campaign_text}. Predict time: "
        f"{summary['predict_rows_timed']:,} rows scored by the model fitted on the latest "
        "fold, per 1M. Peak RSS: this process while the learner's back-test ran.",
        "", "## Ranking", "", *ranking, "",
        "## The measured limit", "", *limit_lines, "",
    ])


def _plots(summary: dict, result: BacktestResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary["primary_metric"]
    ok = [r for r in summary["learners"] if not r["error"]]
    paths = []

    def save(fig, name: str) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(7, 0.4 * len(ok) + 1.5))
    ordered = sorted(ok, key=lambda r: r["metrics"][metric]["mean"])
    means = [r["metrics"][metric]["mean"] for r in ordered]
    cis = [r["metrics"][metric]["ci"] or {"low": v, "high": v}
           for r, v in zip(ordered, means, strict=True)]
    ax.errorbar(means, range(len(ordered)), fmt="o", ecolor="grey", label="mean over folds",
                xerr=[[v - c["low"] for v, c in zip(means, cis, strict=True)],
                      [c["high"] - v for v, c in zip(means, cis, strict=True)]])
    ax.set_yticks(range(len(ordered)), [r["learner"] for r in ordered])
    for name, style in (("oracle", "k--"), ("reference", "g:")):
        entry = summary.get(name) or {}
        if entry.get("metrics"):
            ax.axvline(entry["metrics"][metric]["mean"], color=style[0], ls=style[1:],
                       label=name)
    ax.set(xlabel=metric, title=f"{metric} per learner (mean over folds, 95% CI)")
    ax.legend(fontsize=7)
    save(fig, "metric_ci")

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in ok:
        ax.scatter(max(r["fit_seconds"] + r["tuning_seconds"], 1e-3),
                   r["metrics"][metric]["mean"])
        ax.annotate(r["learner"], (max(r["fit_seconds"] + r["tuning_seconds"], 1e-3),
                                   r["metrics"][metric]["mean"]), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="fit + tuning seconds over all folds (log)", ylabel=metric,
           title="Accuracy against training cost")
    save(fig, "metric_vs_cost")

    fig, ax = plt.subplots(figsize=(6, 4))
    per_fold = result.fold_metrics[result.fold_metrics.metric == metric]
    for learner, part in per_fold.groupby("learner"):
        ax.plot(part["as_of"], part["value"], marker="o", label=learner)
    ax.set(xlabel="fold as-of date", ylabel=metric, title="Per fold")
    ax.legend(fontsize=6, ncol=2)
    fig.autofmt_xdate()
    save(fig, "metric_per_fold")

    limit = summary["limit"]
    bars = [(f"best baseline\n{limit['best_baseline']}", limit["best_baseline_value"]),
            (f"model\n{limit['model']}", limit["model_value"]),
            ("data-rich\nreference", limit["reference_value"]),
            ("oracle", limit["oracle_value"])]
    bars = [(label, value) for label, value in bars if value is not None]
    if len(bars) > 1:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color="steelblue")
        low = min(b[1] for b in bars)
        high = max(b[1] for b in bars)
        ax.set_ylim(low - 0.2 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        for i, (_, value) in enumerate(bars):
            ax.annotate(f"{value:.4f}", (i, value), ha="center", va="bottom", fontsize=8)
        ax.set(ylabel=metric, title="The measured limit")
        ax.tick_params(axis="x", labelsize=7)
        save(fig, "limit")
    return paths


def html_page(title: str, text: str, plots: list[Path]) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    images = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption>'
        "</figure>" for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;max-width:1300px;margin:2em auto}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
            "padding:3px 6px}figure{display:inline-block;margin:.5em}img{max-width:620px}"
            f"</style></head><body>{body}{images}</body></html>")


def log_benchmark(spec: ModelSpec, summary: dict, result: BacktestResult) -> dict:
    """Render the report and log it, the JSON and the plots to the experiment ``benchmark``;
    one run per benchmark, with every learner's numbers as metrics."""
    mlflow = registry.configure()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        text = markdown(summary)
        plots = _plots(summary, result, out)
        (out / "report.html").write_text(html_page(f"{spec.name} benchmark", text, plots))
        (out / "report.md").write_text(text)
        (out / "benchmark.json").write_text(json.dumps(summary, indent=1, default=str))
        result.predictions.to_parquet(out / "predictions.parquet", index=False)
        started = datetime.now(UTC)
        with mlflow.start_run(experiment_id=registry.experiment_id(EXPERIMENT),
                              run_name=f"{spec.name}-{started:%Y%m%dT%H%M%S}") as run:
            mlflow.set_tags({"model": spec.name, "primary_metric": spec.primary_metric,
                             "winner": summary["ranking"][0]["learner"]})
            mlflow.log_params({
                "model": spec.name, "learners": ",".join(r["learner"] for r in summary["learners"]),
                "rows": summary["data"]["rows"], "customers": summary["data"]["customers"],
                "folds": len(summary["data"]["folds"]),
                "reference_customers": (summary.get("reference") or {}).get("customers", 0)})
            numbers = {}
            for row in summary["learners"]:
                if row["error"]:
                    continue
                for metric, stats in row["metrics"].items():
                    numbers[f"{row['learner']}.{metric}"] = stats["mean"]
                for key in ("fit_seconds", "tuning_seconds", "predict_seconds_per_1m_rows",
                            "peak_rss_mib", "lift_top_decile"):
                    if row[key] is not None:
                        numbers[f"{row['learner']}.{key}"] = row[key]
                if row["profit_at_capacity"]:
                    numbers[f"{row['learner']}.profit_at_capacity"] = \
                        row["profit_at_capacity"]["profit"]
            numbers.update({f"limit.{k}": v for k, v in summary["limit"].items()
                            if isinstance(v, float) and not pd.isna(v)})
            mlflow.log_metrics(numbers)
            mlflow.log_artifact(str(out / "report.html"), artifact_path="report")
            mlflow.log_artifact(str(out / "report.md"), artifact_path="report")
            for path in plots:
                mlflow.log_artifact(str(path), artifact_path="plots")
            mlflow.log_artifact(str(out / "benchmark.json"))
            mlflow.log_artifact(str(out / "predictions.parquet"))
    return {"experiment": EXPERIMENT, "run_id": run.info.run_id,
            "report": "report/report.html"}
