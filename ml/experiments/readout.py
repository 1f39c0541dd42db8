"""Readouts: what each matured retention campaign did, with honest intervals.

For a campaign whose horizon has matured (every row of ``marts.campaign_outcomes`` has
``is_matured``), treated against the randomised control group, overall, per channel and
per score decile, on two metrics: retention (at least one completed order in the horizon)
and revenue per customer in the horizon.

* **Difference** of the means with a 95% interval from the normal approximation with
  unequal variances (Welch's standard error), and its two-sided p-value.
* **CUPED** (Deng et al., WSDM 2013) with the pre-period as covariates: in the
  horizon-long window before the assignment, whether the customer ordered, how many
  orders and how much revenue (``COVARIATES``), for both metrics. theta is the pooled
  least-squares fit of the outcome on the centred covariates (the multivariate form of
  cov(Y, X) / var(X)); Y - (X - mean X) theta is compared as above. Its interval is the
  one to read; ``variance_reduction`` = 1 - (se_cuped / se)^2. On the simulator
  (``bench/policy.py --part coverage --seeds 3 --customers 10000``, 30 campaigns) the
  three covariates narrow the retention interval by 14.4%, where the metric's own
  pre-period value alone narrowed it by 11.7%.
* **Sample-ratio mismatch**: a chi-square test (``scipy.stats.chisquare``) of the control
  and treated counts against the design's planned control share. p < ``SRM_FAIL_P``
  (0.001) fails: the assignment did not work as designed, so the readout cannot be
  trusted; it is still written, with ``feeds_plan`` false and the reason, and the next
  plan ignores it. p < ``SRM_WARN_P`` (0.01) warns. Without a planned share the check
  cannot run and the readout does not feed the plan either (said so).
* **Save rate** per channel: the share of would-be churners the contact kept,
  CUPED effect on retention / (1 - control retention), with the interval scaled alike
  (control retention taken as known). ``ml.decisions.campaign`` plans the next campaign
  with the latest valid one per channel instead of the seed's guess.

Rows go to ``ml.experiment_readouts``, one atomic replace per campaign through
``ml.warehouse`` (a rerun leaves the same rows; a killed run leaves the previous ones);
an HTML report (tables and a per-decile plot) is logged to the MLflow experiment
``experiment_readouts``. The statistics are a few lines of NumPy/SciPy on purpose: the
libraries that do this (gbstats, Eppo's engine) are not in the stack and their APIs are
built around their own warehouses.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import registry
from ml.settings import ML_SCHEMA
from ml.warehouse import get_warehouse

log = logging.getLogger(__name__)

OUTCOMES_RELATION = ("marts", "campaign_outcomes")
READOUTS_TABLE = "experiment_readouts"
EXPERIMENT = "experiment_readouts"
SRM_FAIL_P = 0.001
SRM_WARN_P = 0.01
Z95 = 1.959963984540054
METRICS = {"retention": "retained", "revenue": "horizon_revenue"}  # metric: outcome column
COVARIATES = ("pre_period_retained", "pre_period_orders", "pre_period_revenue")

READOUT_COLUMNS = {
    "campaign": pa.string(), "assigned_at": pa.timestamp("us"), "horizon_days": pa.int32(),
    "segment_type": pa.string(), "segment": pa.string(), "metric": pa.string(),
    "n_treated": pa.int64(), "n_control": pa.int64(),
    "mean_treated": pa.float64(), "mean_control": pa.float64(),
    "effect": pa.float64(), "ci_low": pa.float64(), "ci_high": pa.float64(),
    "p_value": pa.float64(),
    "effect_cuped": pa.float64(), "ci_low_cuped": pa.float64(), "ci_high_cuped": pa.float64(),
    "variance_reduction": pa.float64(),
    "save_rate": pa.float64(), "save_rate_ci_low": pa.float64(),
    "save_rate_ci_high": pa.float64(),
    "planned_control_share": pa.float64(), "observed_control_share": pa.float64(),
    "srm_p_value": pa.float64(), "srm_status": pa.string(),
    "feeds_plan": pa.bool_(), "blocked_reason": pa.string(),
    "data_end": pa.date32(), "mlflow_run_id": pa.string(), "read_at": pa.timestamp("us"),
}


class ReadoutError(ValueError):
    """A readout cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Estimate:
    n_treated: int
    n_control: int
    mean_treated: float
    mean_control: float
    effect: float
    se: float

    @property
    def ci(self) -> tuple[float, float]:
        return self.effect - Z95 * self.se, self.effect + Z95 * self.se

    @property
    def p_value(self) -> float:
        from scipy.stats import norm

        if not self.se > 0:
            return float("nan")
        return float(2 * norm.sf(abs(self.effect) / self.se))


def difference(y: np.ndarray, treated: np.ndarray) -> Estimate:
    """Treated minus control mean, Welch's standard error (NaN when an arm has < 2 rows)."""
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated, dtype=bool)
    yt, yc = y[treated], y[~treated]
    if yt.size < 2 or yc.size < 2:
        nan = float("nan")
        return Estimate(int(yt.size), int(yc.size), _mean(yt), _mean(yc), nan, nan)
    se = math.sqrt(yt.var(ddof=1) / yt.size + yc.var(ddof=1) / yc.size)
    return Estimate(int(yt.size), int(yc.size), float(yt.mean()), float(yc.mean()),
                    float(yt.mean() - yc.mean()), se)


def cuped(y: np.ndarray, x: np.ndarray, treated: np.ndarray) -> tuple[Estimate, float]:
    """The CUPED-adjusted difference and the share of its variance removed.

    ``x`` is one pre-period covariate (a vector) or several (columns of a matrix): theta
    is then the pooled least-squares fit of Y on the centred covariates, the multivariate
    form of the same adjustment. Constant covariates are dropped."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(y), -1)
    plain = difference(y, treated)
    x = x[:, x.var(axis=0, ddof=1) > 0] if len(y) > 1 else x[:, :0]
    if not np.isfinite(plain.se) or x.shape[1] == 0:
        return plain, 0.0
    centred = x - x.mean(axis=0)
    theta, *_ = np.linalg.lstsq(centred, y - y.mean(), rcond=None)
    adjusted = difference(y - centred @ theta, treated)
    reduction = 1 - (adjusted.se / plain.se) ** 2 if plain.se > 0 else 0.0
    return adjusted, float(reduction)


def sample_ratio_check(n_control: int, n_treated: int, planned_share: float | None
                       ) -> tuple[float | None, str, str | None]:
    """(p-value, pass|warn|fail|unchecked, why it blocks or None)."""
    from scipy.stats import chisquare

    total = n_control + n_treated
    if planned_share is None or not np.isfinite(planned_share):
        return None, "unchecked", ("no planned control share is recorded for this campaign, so "
                                   "the sample ratio cannot be checked")
    if total == 0 or planned_share <= 0 or planned_share >= 1:
        return None, "unchecked", (f"planned control share {planned_share} leaves no two arms "
                                   "to compare")
    expected = [total * planned_share, total * (1 - planned_share)]
    p_value = float(chisquare([n_control, n_treated], f_exp=expected).pvalue)
    observed = n_control / total
    if p_value < SRM_FAIL_P:
        return p_value, "fail", (
            f"sample ratio mismatch: {n_control:,} of {total:,} customers in control "
            f"({observed:.1%}) against a planned {planned_share:.1%} (chi-square p = "
            f"{p_value:.2g} < {SRM_FAIL_P}): the assignment did not follow the design, so "
            "this readout cannot be trusted and does not feed the next plan")
    return p_value, ("warn" if p_value < SRM_WARN_P else "pass"), None


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def read_out(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The readout rows of one matured campaign's ``campaign_outcomes`` rows (pure)."""
    campaigns = outcomes["campaign"].unique()
    if len(campaigns) != 1:
        raise ReadoutError(f"read_out takes one campaign's rows, got {len(campaigns)}")
    frame = outcomes.copy()
    frame["pre_period_retained"] = (frame["pre_period_orders"] > 0).astype(float)
    treated = frame["treated"].to_numpy(bool)
    n_control, n_treated = int((~treated).sum()), int(treated.sum())
    shares = frame["planned_control_share"].dropna().unique()
    planned = float(shares[0]) if len(shares) == 1 else None
    srm_p, srm_status, blocked = sample_ratio_check(n_control, n_treated, planned)
    if len(shares) > 1:
        blocked = (f"the rows carry {len(shares)} different planned control shares; the "
                   "sample ratio cannot be checked")
    segments = [("all", "all", frame)]
    segments += [("channel", str(c), rows) for c, rows in frame.groupby("channel", sort=True)]
    deciles = frame.dropna(subset=["score_decile"])
    segments += [("score_decile", str(int(d)), rows)
                 for d, rows in deciles.groupby("score_decile", sort=True)]
    rows = []
    for segment_type, segment, part in segments:
        arm = part["treated"].to_numpy(bool)
        covariates = part[list(COVARIATES)].to_numpy(np.float64)
        for metric, outcome in METRICS.items():
            y = part[outcome].to_numpy(np.float64)
            plain = difference(y, arm)
            adjusted, reduction = cuped(y, covariates, arm)
            save = (None, None, None)
            if metric == "retention" and plain.mean_control < 1 and np.isfinite(adjusted.effect):
                churn = 1 - plain.mean_control
                save = (adjusted.effect / churn, adjusted.ci[0] / churn, adjusted.ci[1] / churn)
            rows.append({
                "segment_type": segment_type, "segment": segment, "metric": metric,
                "n_treated": plain.n_treated, "n_control": plain.n_control,
                "mean_treated": _finite(plain.mean_treated),
                "mean_control": _finite(plain.mean_control),
                "effect": _finite(plain.effect), "ci_low": _finite(plain.ci[0]),
                "ci_high": _finite(plain.ci[1]), "p_value": _finite(plain.p_value),
                "effect_cuped": _finite(adjusted.effect),
                "ci_low_cuped": _finite(adjusted.ci[0]), "ci_high_cuped": _finite(adjusted.ci[1]),
                "variance_reduction": _finite(reduction),
                "save_rate": _finite(save[0]), "save_rate_ci_low": _finite(save[1]),
                "save_rate_ci_high": _finite(save[2]),
            })
    result = pd.DataFrame(rows)
    result.insert(0, "campaign", campaigns[0])
    result.insert(1, "assigned_at", pd.Timestamp(frame["assigned_at"].min()))
    result.insert(2, "horizon_days", int(frame["horizon_days"].max()))
    result["planned_control_share"] = planned
    result["observed_control_share"] = n_control / max(n_control + n_treated, 1)
    result["srm_p_value"] = srm_p
    result["srm_status"] = srm_status
    result["feeds_plan"] = blocked is None
    result["blocked_reason"] = blocked
    return result


# --- the warehouse ----------------------------------------------------------------------


def _outcomes(campaign: str | None = None) -> pd.DataFrame:
    wh = get_warehouse()
    schema, table = OUTCOMES_RELATION
    if not wh.table_exists(schema, table):
        raise ReadoutError(f"{schema}.{table} is missing: run the features DAG (`ml run`) to "
                           "build it from raw.campaign_assignments")
    where, params = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
    return wh.read_arrow(f"SELECT * FROM {wh.relation(schema, table)} {where}", params,
                         stage="campaign outcomes").to_pandas()


def _data_end():
    wh = get_warehouse()
    return wh.scalar(f"SELECT max(data_end) FROM {wh.relation('marts', 'snapshot_calendar')}",
                     stage="data end")


def campaign_status() -> pd.DataFrame:
    """Per campaign: rows, matured or not, horizon end, and whether a readout exists."""
    wh = get_warehouse()
    schema, table = OUTCOMES_RELATION
    if not wh.table_exists(schema, table):
        return pd.DataFrame(columns=["campaign", "n_rows", "matured", "horizon_ends", "read_out"])
    status = wh.query(
        f"SELECT campaign, count(*) AS n_rows, "
        f"min(CASE WHEN is_matured THEN 1 ELSE 0 END) = 1 AS matured, "  # both engines
        f"max(assigned_at) AS assigned_at, max(horizon_days) AS horizon_days "
        f"FROM {wh.relation(schema, table)} GROUP BY campaign ORDER BY campaign",
        stage="campaign status").to_pandas()
    status["horizon_ends"] = (pd.to_datetime(status["assigned_at"])
                              + pd.to_timedelta(status["horizon_days"], unit="D")).dt.date
    read = set(read_readouts()["campaign"]) if wh.table_exists(ML_SCHEMA, READOUTS_TABLE) else set()
    status["read_out"] = status["campaign"].isin(read)
    return status


def pending_campaigns() -> list[str]:
    """Matured campaigns without a readout yet (what the readout DAG reads out)."""
    status = campaign_status()
    return status.loc[status["matured"] & ~status["read_out"], "campaign"].tolist()


def run_readouts(campaigns: list[str] | None = None, log_report: bool = True) -> list[dict]:
    """Read out the given campaigns (default: the matured ones not read out yet), each
    written atomically to ml.experiment_readouts. A campaign whose horizon has not
    matured is refused with its end date."""
    status = campaign_status().set_index("campaign")
    if campaigns is None:
        campaigns = pending_campaigns()
    unknown = sorted(set(campaigns) - set(status.index))
    if unknown:
        raise ReadoutError(f"no campaign {unknown} in marts.campaign_outcomes; campaigns: "
                           f"{sorted(status.index)}")
    data_end = _data_end()
    results = []
    for campaign in campaigns:
        if not status.loc[campaign, "matured"]:
            raise ReadoutError(
                f"campaign {campaign}: its {status.loc[campaign, 'horizon_days']}-day horizon "
                f"ends on {status.loc[campaign, 'horizon_ends']} but the data ends on "
                f"{data_end}: advance the data past it (`ml simulate advance` on synthetic "
                "data) and re-run features")
        rows = read_out(_outcomes(campaign))
        rows["data_end"] = data_end
        rows["read_at"] = datetime.now(UTC).replace(tzinfo=None)
        rows["mlflow_run_id"] = _log_report(campaign, rows) if log_report else None
        _write(campaign, rows)
        results.append(summarise(rows))
        if not rows["feeds_plan"].iloc[0]:
            log.warning("campaign %s: %s", campaign, rows["blocked_reason"].iloc[0])
    return results


def _write(campaign: str, rows: pd.DataFrame) -> None:
    schema = pa.schema(list(READOUT_COLUMNS.items()))
    table = pa.Table.from_pandas(rows[list(READOUT_COLUMNS)], schema=schema, preserve_index=False)
    get_warehouse().replace_rows(ML_SCHEMA, READOUTS_TABLE, "SELECT * FROM {rows}",
                                 key={"campaign": campaign}, sources={"rows": table})


def read_readouts(campaign: str | None = None) -> pd.DataFrame:
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, READOUTS_TABLE):
        return pd.DataFrame(columns=list(READOUT_COLUMNS))
    where, params = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
    return wh.query(f"SELECT * FROM {wh.relation(ML_SCHEMA, READOUTS_TABLE)} {where} "
                    "ORDER BY assigned_at, campaign, segment_type, segment, metric", params,
                    stage="experiment readouts").to_pandas()


def summarise(rows: pd.DataFrame) -> dict:
    """One campaign's readout as plain data (what `ml readout --json` prints)."""
    first = rows.iloc[0]

    def clean(value):
        if isinstance(value, (pd.Timestamp, datetime)):
            return str(value)
        if isinstance(value, (float, np.floating)):
            return None if not np.isfinite(value) else float(value)
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (np.bool_,)):
            return bool(value)
        return None if value is pd.NA or (value is not None and pd.isna(value)) else value

    segment_columns = [c for c in READOUT_COLUMNS if c not in {
        "campaign", "assigned_at", "horizon_days", "planned_control_share",
        "observed_control_share", "srm_p_value", "srm_status", "feeds_plan", "blocked_reason",
        "data_end", "mlflow_run_id", "read_at"}]
    return {
        "campaign": first["campaign"], "assigned_at": clean(first["assigned_at"]),
        "horizon_days": clean(first["horizon_days"]),
        "srm": {"planned_control_share": clean(first["planned_control_share"]),
                "observed_control_share": clean(first["observed_control_share"]),
                "p_value": clean(first["srm_p_value"]), "status": first["srm_status"]},
        "feeds_plan": bool(first["feeds_plan"]),
        "blocked_reason": clean(first["blocked_reason"]),
        "data_end": clean(first.get("data_end")),
        "mlflow_run_id": clean(first.get("mlflow_run_id")),
        "segments": [{k: clean(v) for k, v in r.items()}
                     for r in _in_order(rows)[segment_columns].to_dict(orient="records")],
    }


def _in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Overall first, then channels, then score deciles 1..10 (numerically)."""
    kind = rows["segment_type"].map({"all": 0, "channel": 1, "score_decile": 2})
    number = pd.to_numeric(rows["segment"].where(rows["segment_type"] == "score_decile"),
                           errors="coerce")
    key = pd.DataFrame({"kind": kind, "number": number, "segment": rows["segment"],
                        "metric": rows["metric"]})
    return rows.loc[key.sort_values(["kind", "number", "segment", "metric"]).index]


def latest_save_rates(channels: list[str]) -> dict[str, dict]:
    """Per channel, the save rate of the latest readout that may feed a plan (SRM passed):
    {channel: {save_rate (clipped to [0, 1]), ci, campaign, n}}; channels without one are
    absent (the plan then keeps the seed's guess as a prior and says so)."""
    readouts = read_readouts()
    if readouts.empty:
        return {}
    usable = readouts[(readouts["segment_type"] == "channel") & (readouts["metric"] == "retention")
                      & readouts["feeds_plan"].astype(bool) & readouts["save_rate"].notna()
                      & readouts["segment"].isin(channels)]
    latest = usable.sort_values(["assigned_at", "campaign"]).groupby("segment").tail(1)
    return {row.segment: {"save_rate": float(np.clip(row.save_rate, 0.0, 1.0)),
                          "measured": float(row.save_rate),
                          "ci": [float(row.save_rate_ci_low), float(row.save_rate_ci_high)],
                          "campaign": row.campaign, "n": int(row.n_treated + row.n_control)}
            for row in latest.itertuples()}


# --- the report -------------------------------------------------------------------------


def _decile_plot(rows: pd.DataFrame) -> str | None:
    deciles = rows[(rows["segment_type"] == "score_decile") & (rows["metric"] == "retention")
                   & rows["effect_cuped"].notna()]
    if deciles.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = deciles["segment"].astype(int).to_numpy()
    y = deciles["effect_cuped"].to_numpy()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.errorbar(x, y, yerr=[y - deciles["ci_low_cuped"], deciles["ci_high_cuped"] - y], fmt="o",
                capsize=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="score decile (1 = highest score)", ylabel="effect on retention (CUPED, 95% CI)",
           title="Effect by score decile")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def report_html(rows: pd.DataFrame) -> str:
    from markdown_it import MarkdownIt

    first = rows.iloc[0]
    render = MarkdownIt("commonmark", {"html": False}).enable("table").render

    def pct(value) -> str:
        return "" if value is None or pd.isna(value) else f"{value:+.2%}"

    def money(value) -> str:
        return "" if value is None or pd.isna(value) else f"{value:+.2f}"

    lines = [f"# Readout: {first['campaign']}", "",
             f"Assigned {first['assigned_at']:%Y-%m-%d}, horizon {first['horizon_days']} days. "
             f"Sample ratio: {first['observed_control_share']:.1%} control observed, planned "
             + ("unknown" if pd.isna(first["planned_control_share"])
                else f"{first['planned_control_share']:.1%}")
             + f", status **{first['srm_status']}**"
             + ("" if pd.isna(first["srm_p_value"]) else f" (p = {first['srm_p_value']:.3g})")
             + ".", ""]
    lines += (["**Does not feed the next plan:** " + str(first["blocked_reason"]), ""]
              if not first["feeds_plan"] else ["Feeds the next plan's save rates.", ""])
    for metric, fmt in (("retention", pct), ("revenue", money)):
        part = rows[rows["metric"] == metric]
        lines += [f"## {metric.capitalize()}", "",
                  "| segment | treated | control | mean treated | mean control | effect | 95% CI "
                  "| CUPED effect | CUPED 95% CI | variance removed |"
                  + (" save rate |" if metric == "retention" else ""),
                  "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if metric == "retention"
                                                               else "")]
        for r in part.itertuples():
            means = (f"{r.mean_treated:.3f}" if r.mean_treated is not None
                     and not pd.isna(r.mean_treated) else "",
                     f"{r.mean_control:.3f}" if r.mean_control is not None
                     and not pd.isna(r.mean_control) else "")
            line = (f"| {r.segment_type} {r.segment} | {r.n_treated:,} | {r.n_control:,} | "
                    f"{means[0]} | {means[1]} | {fmt(r.effect)} | {fmt(r.ci_low)} .. "
                    f"{fmt(r.ci_high)} | {fmt(r.effect_cuped)} | {fmt(r.ci_low_cuped)} .. "
                    f"{fmt(r.ci_high_cuped)} | "
                    + ("" if pd.isna(r.variance_reduction) else f"{r.variance_reduction:.0%}")
                    + " |")
            if metric == "retention":
                line += ("" if pd.isna(r.save_rate) else f" {r.save_rate:.1%}") + " |"
            lines.append(line)
        lines.append("")
    plot = _decile_plot(rows)
    image = (f'<img alt="effect by decile" src="data:image/png;base64,{plot}">' if plot else
             "<p>No score deciles in this campaign.</p>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(str(first['campaign']))} readout</title><style>body{{font-family:"
            "sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
            "td:first-child{text-align:left}</style></head><body>"
            f"{render(chr(10).join(lines))}{image}</body></html>")


def _log_report(campaign: str, rows: pd.DataFrame) -> str:
    mlflow = registry.configure()
    overall = rows[(rows["segment_type"] == "all")].set_index("metric")
    with mlflow.start_run(experiment_id=registry.experiment_id(EXPERIMENT),
                          run_name=f"readout-{campaign}") as run:
        first = rows.iloc[0]
        mlflow.set_tags({"campaign": campaign, "srm_status": first["srm_status"],
                         "feeds_plan": str(bool(first["feeds_plan"]))})
        metrics = {}
        for metric in METRICS:
            for column in ("effect", "ci_low", "ci_high", "effect_cuped", "ci_low_cuped",
                           "ci_high_cuped", "variance_reduction"):
                value = overall.loc[metric, column] if metric in overall.index else None
                if value is not None and not pd.isna(value):
                    metrics[f"{metric}_{column}"] = float(value)
        if not pd.isna(first["srm_p_value"]):
            metrics["srm_p_value"] = float(first["srm_p_value"])
        mlflow.log_metrics(metrics)
        mlflow.log_text(report_html(rows), "report/readout.html")
        mlflow.log_text(rows.to_csv(index=False), "readout.csv")
        return run.info.run_id
