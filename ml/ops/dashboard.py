"""The platform dashboard: one self-contained HTML page for the people who decide budgets.

Which models serve and how good their back-tests were across versions, score drift per
scoring run, how past scores did once their labels matured (next to the back-test's
promise), how fresh the data is, the latest campaign plan and, once those capabilities
write their tables, experiment readouts, recommendation coverage and the media plan.

Everything is read from the warehouse and the registry when the page is built. The page
carries plotly.js once, inline (from the plotly wheel, no CDN), so it renders offline: the
Airflow plugin (``plugins/platform_dashboard.py``) serves it behind Airflow's login and
``ml report --out FILE`` writes the same page for people without Airflow access. A section
without data says so plainly instead of showing an empty chart.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from ml import registry
from ml.decisions.monitoring import MONITORING_TABLE
from ml.decisions.scoring import PSI_WARNING, SCORE_RUNS_TABLE
from ml.modeling.specs import load_specs
from ml.settings import ML_SCHEMA
from ml.warehouse import get_warehouse

# Tables of the capabilities still being added: shown as soon as they hold rows.
EXPERIMENT_READOUTS = "experiment_readouts"
RECOMMENDATIONS = "recommendations"
MEDIA_PLANS = "media_plans"
MEDIA_RESPONSE_CURVES = "media_response_curves"
PREVIEW_ROWS = 12


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    has_data: bool
    body: str


def _read(schema: str, table: str, suffix: str = "", params: list | None = None,
          ) -> pd.DataFrame | None:
    """``SELECT * FROM schema.table <suffix>``, or None when the table does not exist yet."""
    wh = get_warehouse()
    if not wh.table_exists(schema, table):
        return None
    return wh.query(f"SELECT * FROM {wh.relation(schema, table)} {suffix}", params or [],
                    stage=f"dashboard {schema}.{table}").to_pandas()


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, datetime | pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _when(value) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d %H:%M} UTC"


def _table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    frame = frame[columns] if columns else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            "</table></div>")


def _figure(fig, div_id: str) -> str:
    fig.update_layout(template="plotly_white", height=360, margin=dict(l=50, r=20, t=40, b=90),
                      legend=dict(orientation="h", y=-0.3))
    return fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _empty(key: str, title: str, message: str) -> Section:
    return Section(key, title, False, f'<p class="empty">{html.escape(message)}</p>')


# ---------------------------------------------------------------- sections
def _model_versions() -> pd.DataFrame:
    """Every registered version of every spec'd model with its back-test primary metric."""
    client = registry.client()
    known = set(registry.registered_models())
    rows = []
    for name, spec in load_specs().items():
        if name not in known:
            continue
        champion = registry.version_by_alias(name, registry.CHAMPION)
        for mv in client.search_model_versions(f"name='{name}'"):
            card = registry.run_json(mv.run_id, "backtest_summary.json") or {}
            metric = card.get("summary", {}).get(card.get("candidate"), {}).get(
                spec.primary_metric, {})
            rows.append({"model": name, "version": int(mv.version),
                         "learner": card.get("candidate"), "metric": spec.primary_metric,
                         "backtest_mean": metric.get("mean"), "backtest_std": metric.get("std"),
                         "champion": champion is not None
                         and str(champion.version) == str(mv.version),
                         "registered": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)
                         .strftime("%Y-%m-%d %H:%M")})
    return pd.DataFrame(rows).sort_values(["model", "version"]) if rows else pd.DataFrame()


def models_section() -> Section:
    import plotly.graph_objects as go

    title = "Models: champions and their back-tests across versions"
    versions = _model_versions()
    if versions.empty:
        return _empty("models", title, "no model is registered yet: run the training DAGs")
    fig = go.Figure()
    for model, rows in versions.groupby("model"):
        fig.add_trace(go.Scatter(
            x=[f"v{v}" for v in rows["version"]], y=rows["backtest_mean"], mode="lines+markers",
            name=f"{model} ({rows['metric'].iloc[0]})",
            error_y=dict(type="data", array=rows["backtest_std"].fillna(0), visible=True),
            marker=dict(size=[16 if c else 8 for c in rows["champion"]],
                        symbol=["star" if c else "circle" for c in rows["champion"]])))
    fig.update_layout(title="Back-test primary metric per version (star = champion)",
                      xaxis_title="version", yaxis_title="back-test mean", xaxis_type="category")
    specs = load_specs()
    serving = []
    for model in specs:
        rows = versions[(versions["model"] == model) & versions["champion"]]
        if len(rows):
            row = rows.iloc[0]
            serving.append({"model": model, "champion": f"v{row['version']}",
                            "learner": row["learner"], "metric": row["metric"],
                            "back-test": row["backtest_mean"], "registered": row["registered"]})
        else:
            serving.append({"model": model, "champion": "none", "learner": None,
                            "metric": specs[model].primary_metric, "back-test": None,
                            "registered": None})
    return Section("models", title, True,
                   _table(pd.DataFrame(serving)) + _figure(fig, "chart-models"))


def drift_section() -> Section:
    import plotly.graph_objects as go

    title = "Score drift (PSI against the back-test) per scoring run"
    runs = _read(ML_SCHEMA, SCORE_RUNS_TABLE, "ORDER BY model_name, scored_at")
    if runs is None or runs.empty:
        return _empty("drift", title, "no scoring run recorded yet: run the score DAG")
    fig = go.Figure()
    for model, rows in runs.groupby("model_name"):
        fig.add_trace(go.Scatter(x=rows["scored_at"], y=rows["psi"], mode="lines+markers",
                                 name=model, text=[f"as of {d}, v{v}" for d, v in
                                                   zip(rows["as_of_date"], rows["model_version"],
                                                       strict=True)]))
    fig.add_hline(y=PSI_WARNING, line_dash="dash", line_color="firebrick",
                  annotation_text=f"warning {PSI_WARNING}")
    fig.update_layout(title="PSI of each published slice", xaxis_title="scored at",
                      yaxis_title="PSI")
    latest = runs.sort_values("scored_at").groupby("model_name").tail(1)
    return Section("drift", title, True, _table(
        latest, ["model_name", "as_of_date", "model_version", "rows", "psi", "scored_at"])
        + _figure(fig, "chart-drift"))


def realised_section() -> Section:
    import plotly.graph_objects as go

    title = "Realised performance of past scores (matured labels) vs the back-test promise"
    monitored = _read(ML_SCHEMA, MONITORING_TABLE, "ORDER BY model_name, as_of_date")
    if monitored is None or monitored.empty:
        return _empty("realised", title, "no scores with matured labels yet: past scores are "
                      "judged once their horizon has passed (the score DAG's monitor task)")
    fig = go.Figure()
    for model, rows in monitored.groupby("model_name"):
        as_of = rows["as_of_date"].astype(str)
        fig.add_trace(go.Scatter(x=as_of, y=rows["realised"], mode="lines+markers",
                                 name=f"{model} realised {rows['metric'].iloc[0]}"))
        fig.add_trace(go.Scatter(x=as_of, y=rows["backtest_promise"], mode="lines+markers",
                                 line=dict(dash="dot"), marker=dict(symbol="diamond-open"),
                                 name=f"{model} back-test promise"))
    fig.update_layout(title="Realised metric per scored as-of date", xaxis_title="as of",
                      yaxis_title="metric", xaxis_type="category")
    return Section("realised", title, True, _table(
        monitored, ["model_name", "as_of_date", "model_version", "metric", "realised",
                    "backtest_promise", "rows", "mean_label"]) + _figure(fig, "chart-realised"))


def freshness_section() -> Section:
    title = "Data freshness"
    facts = []
    calendar = _read("marts", "snapshot_calendar", "ORDER BY as_of_date DESC LIMIT 1")
    if calendar is not None and len(calendar):
        facts += [("data window", f"{calendar['data_start'].iloc[0]} to "
                                  f"{calendar['data_end'].iloc[0]}"),
                  ("latest snapshot", calendar["as_of_date"].iloc[0])]
    runs = _read(ML_SCHEMA, SCORE_RUNS_TABLE)
    if runs is not None:
        for model, rows in runs.groupby("model_name"):
            last = rows.sort_values("scored_at").iloc[-1]
            facts.append((f"{model} last scored",
                          f"{_when(last['scored_at'])} (as of {last['as_of_date']})"))
    plan = _read(ML_SCHEMA, "campaign_summary", "ORDER BY planned_at DESC LIMIT 1")
    if plan is not None and len(plan):
        facts.append(("campaign planned", _when(plan["planned_at"].iloc[0])))
    ledger = _read(ML_SCHEMA, "promotion_ledger", "ORDER BY decided_at DESC LIMIT 1")
    if ledger is not None and len(ledger):
        facts.append(("last promotion decision",
                      f"{_when(ledger['decided_at'].iloc[0])} "
                      f"({ledger['model'].iloc[0]}: {ledger['decision'].iloc[0]})"))
    if not facts:
        return _empty("freshness", title, "no data yet: run `ml generate` or `ml import`, "
                      "then the pipeline")
    return Section("freshness", title, True,
                   _table(pd.DataFrame(facts, columns=["what", "when"])))


def campaign_section() -> Section:
    import plotly.graph_objects as go

    title = "Latest retention campaign plan"
    plan = _read(ML_SCHEMA, "campaign_summary", "ORDER BY as_of_date DESC, planned_at DESC "
                 "LIMIT 1")
    if plan is None or plan.empty:
        return _empty("campaign", title, "no campaign plan yet: run the allocate DAG")
    summary = plan.iloc[0]
    cards = "".join(
        f'<div class="card"><div class="label">{label}</div>'
        f'<div class="value">{html.escape(_text(value))}</div></div>'
        for label, value in (("budget", summary["budget"]), ("spend", summary["spend"]),
                             ("expected return", summary["expected_return"]),
                             ("ROI", summary["roi"]), ("treated", int(summary["n_treated"])),
                             ("control", int(summary["n_control"]))))
    body = (f'<p>As of {summary["as_of_date"]}, churn model v{summary["churn_model_version"]}, '
            f'{html.escape(str(summary["method"]))} allocation.</p><div class="cards">{cards}'
            "</div>")
    targets = _read(ML_SCHEMA, "campaign_targets", "WHERE as_of_date = ?",
                    [summary["as_of_date"]])
    if targets is not None and len(targets):
        by_channel = targets.groupby(["channel", "group"]).agg(
            customers=("customer_id", "count"), cost=("cost", "sum")).reset_index()
        fig = go.Figure([go.Bar(x=rows["channel"], y=rows["customers"], name=group)
                         for group, rows in by_channel.groupby("group")])
        fig.update_layout(title="Customers per channel, treated and control", barmode="group",
                          yaxis_title="customers")
        body += _figure(fig, "chart-campaign")
    return Section("campaign", title, True, body)


def _latest_rows(table: str, order: str) -> pd.DataFrame | None:
    frame = _read(ML_SCHEMA, table)
    if frame is None or frame.empty:
        return None
    ordered = [c for c in order.split(",") if c in frame.columns]
    return frame.sort_values(ordered, ascending=False).head(PREVIEW_ROWS) if ordered \
        else frame.head(PREVIEW_ROWS)


def experiments_section() -> Section:
    title = "Experiment readouts"
    readouts = _latest_rows(EXPERIMENT_READOUTS, "read_at,as_of_date")
    if readouts is None:
        return _empty("experiments", title, "no experiment readouts yet")
    return Section("experiments", title, True, _table(readouts))


def recommendations_section() -> Section:
    title = "Recommendation coverage"
    recs = _read(ML_SCHEMA, RECOMMENDATIONS)
    if recs is None or recs.empty:
        return _empty("recommendations", title, "no recommendations yet")
    item = next((c for c in ("item_id", "product_id") if c in recs.columns), None)
    facts = [("rows", len(recs)), ("customers with recommendations", recs["customer_id"].nunique())]
    if item:
        facts.append(("distinct items recommended", recs[item].nunique()))
    for column in ("model_version", "as_of_date"):
        if column in recs.columns:
            facts.append((column, ", ".join(map(str, sorted(recs[column].unique())[-3:]))))
    return Section("recommendations", title, True,
                   _table(pd.DataFrame(facts, columns=["what", "value"])))


def media_section() -> Section:
    import plotly.graph_objects as go

    title = "Media plan and response curves"
    plan = _latest_rows(MEDIA_PLANS, "planned_at,as_of_date")
    if plan is None:
        return _empty("media", title, "no media plan yet")
    body = _table(plan)
    curves = _read(ML_SCHEMA, MEDIA_RESPONSE_CURVES)
    if curves is not None and {"channel", "spend", "response"} <= set(curves.columns):
        fig = go.Figure([go.Scatter(x=rows["spend"], y=rows["response"], name=channel,
                                    mode="lines") for channel, rows in curves.groupby("channel")])
        fig.update_layout(title="Response curves", xaxis_title="spend", yaxis_title="response")
        body += _figure(fig, "chart-media")
    return Section("media", title, True, body)


SECTIONS = (models_section, drift_section, realised_section, freshness_section,
            campaign_section, experiments_section, recommendations_section, media_section)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
header{background:#017cee;color:#fff;padding:16px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{padding:16px 32px;display:grid;gap:16px;
grid-template-columns:repeat(auto-fit,minmax(560px,1fr))}
section{min-width:0;background:#fff;border-radius:8px;padding:12px 20px;
box-shadow:0 1px 3px rgba(0,0,0,.1)}
h2{font-size:17px;margin:4px 0 10px}table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left}th{background:#f0f4f8}
.scroll{overflow-x:auto}.empty{color:#7b8794;font-style:italic}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#f0f4f8;border-radius:6px;padding:8px 14px;min-width:110px}
.card .label{font-size:12px;color:#52606d}.card .value{font-size:20px;font-weight:600}
"""


def build_sections() -> list[Section]:
    return [build() for build in SECTIONS]


def render_page(sections: list[Section]) -> str:
    """One HTML document: plotly.js inlined once, every figure a div."""
    from plotly.offline import get_plotlyjs

    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(
        f'<section id="{s.key}" data-has-data="{str(s.has_data).lower()}">'
        f"<h2>{html.escape(s.title)}</h2>{s.body}</section>" for s in sections)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Customer ML platform dashboard</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            "<header><h1>Customer ML platform</h1>"
            f"<p>Models, scores, campaigns and media, from the warehouse and the model "
            f"registry. Built {built}.</p></header><main>{body}</main></body></html>")


def build_dashboard() -> str:
    """The whole page, read now from the warehouse and the registry."""
    return render_page(build_sections())

