"""The retention campaign: churn scores + customer value + channel economics -> a target
list under a budget, with a control group by design, logged to MLflow.

Customer value is the trailing 12-month margin: revenue in the 365 days before the
as-of date times ``margin_rate`` (the share of revenue that is margin).

With an uplift champion (``ml.uplift``) and its scores for the as-of date, the plan spends
on expected incremental value instead, uplift(customer, channel) x value - cost
(``uplift_for``); the summary's ``targeting`` says which rule built it, and why.

Every plan is an experiment (``ml.experiments``): the campaign ``retention-<as_of>``
holds out a control group hashed on (campaign, customer) within each churn-score decile,
its share sized by a power calculation for a stated minimum detectable effect (or set by
hand, and then the plan says what it can detect). Each channel's save rate is the one
measured by the latest readout that passed its sample-ratio check
(``ml.experiments.readout.latest_save_rates``); the seed's guess is kept only as the prior
for a channel no valid readout has measured, and ``ml.campaign_designs`` says which.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import registry
from ml.decisions.allocation import Channel, frontier, plan_campaign, validate_channels
from ml.lifecycle.ledger import read_ledger
from ml.settings import ML_SCHEMA
from ml.warehouse import get_warehouse

log = logging.getLogger(__name__)

CHANNELS_RELATION = ("seeds", "retention_channels")
TARGETS_TABLE = "campaign_targets"
SUMMARY_TABLE = "campaign_summary"
DESIGNS_TABLE = "campaign_designs"
EXPERIMENT = "retention_campaign"
CHURN_MODEL = "churn"


class CampaignError(ValueError):
    """The campaign cannot be planned; previous targets are untouched."""


class CampaignNotApplicable(CampaignError):
    """Nothing to plan from yet (churn has no champion, or no churn scores): a decision the
    allocate DAG records as a skip with this reason, not a failure."""


def _finite_positive(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CampaignError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise CampaignError(f"{name} must be a positive number, got {value!r}")
    return number


def load_channels(capacities: dict[str, int] | None = None) -> list[Channel]:
    """Channel economics from the dbt seed ``retention_channels`` (edit the CSV, re-run)."""
    schema, table = CHANNELS_RELATION
    wh = get_warehouse()
    if not wh.table_exists(schema, table):
        raise CampaignError(f"{schema}.{table} is missing: run the features DAG (dbt seeds "
                            "it from dbt_project/seeds/retention_channels.csv)")
    rows = wh.query(f"SELECT * FROM {wh.relation(schema, table)}",
                    stage="retention channels").to_pandas()
    for column in ("channel", "cost_per_contact", "save_rate"):
        if column not in rows:
            raise CampaignError(f"{schema}.{table} has no column {column!r}; expected channel, "
                                "cost_per_contact, save_rate[, capacity]")
    bad = rows[rows["channel"].isna() | (rows["channel"].astype(str).str.strip() == "")]
    if len(bad):
        raise CampaignError(f"{schema}.{table}: {len(bad)} row(s) with a missing channel name; "
                            "fix dbt_project/seeds/retention_channels.csv")
    capacities = capacities or {}
    unknown = sorted(set(capacities) - set(rows["channel"]))
    if unknown:
        raise CampaignError(f"capacity given for unknown channel(s) {unknown}; channels are "
                            f"{sorted(rows['channel'])}")
    channels = []
    for row in rows.itertuples():
        seed_capacity = getattr(row, "capacity", None)
        capacity = capacities.get(row.channel, None if pd.isna(seed_capacity) else seed_capacity)
        channels.append(Channel(name=str(row.channel), cost=float(row.cost_per_contact),
                                save_rate=float(row.save_rate),
                                capacity=None if capacity is None else int(capacity)))
    try:
        validate_channels(channels)
    except ValueError as exc:
        raise CampaignError(f"{schema}.{table}: {exc} (fix dbt_project/seeds/"
                            "retention_channels.csv)") from None
    return channels


def missing_churn_scores() -> str | None:
    """Why no campaign can be planned now (churn has no champion, or its scores are not
    published yet), or None when there is something to plan from."""
    if registry.version_by_alias(CHURN_MODEL, registry.CHAMPION) is None:
        ledger = read_ledger(CHURN_MODEL)
        last = (f"last decision: {ledger.iloc[-1]['decision']}: {ledger.iloc[-1]['reason']}"
                if len(ledger) else f"never trained: run train_{CHURN_MODEL}")
        return f"{CHURN_MODEL} has no champion ({last}); the campaign needs its scores"
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, "scores") or not wh.scalar(
            f"SELECT count(*) FROM {wh.relation(ML_SCHEMA, 'scores')} WHERE model_name = ?",
            [CHURN_MODEL], stage="churn scores present"):
        return "no churn scores yet: run the score DAG (or `ml run`) first"
    return None


def uplift_for(candidates: pd.DataFrame, channels: list[Channel], as_of: date,
               ) -> tuple[np.ndarray | None, str]:
    """The uplift champion's effect of a contact per candidate and channel at ``as_of``
    (``ml.uplift_scores``), and how the plan targets, said in words. None (the plan then
    uses churn probability x save rate) when the uplift model has no champion or no scores
    of this as-of from it. A channel the champion did not score gets no effect (0)."""
    from ml.uplift.serving import read_uplift_scores
    from ml.uplift.train import MODEL_NAME

    rule = "churn probability x save rate x value - cost"
    champion = registry.version_by_alias(MODEL_NAME, registry.CHAMPION)
    if champion is None:
        ledger = read_ledger(MODEL_NAME)
        why = ledger.iloc[-1]["reason"] if len(ledger) else "never trained: run the uplift DAG"
        return None, f"{rule} (no uplift champion: {why})"
    scores = read_uplift_scores(as_of)
    scores = scores[scores["model_version"] == str(champion.version)]
    if scores.empty:
        return None, (f"{rule} (uplift v{champion.version} has no scores for {as_of}: run "
                      "the uplift DAG or `ml uplift score`)")
    wide = scores.pivot_table(index="customer_id", columns="channel", values="uplift")
    wide = wide.reindex(index=candidates["customer_id"], columns=[c.name for c in channels])
    unscored = int(wide.isna().any(axis=1).sum())
    note = (f"; {unscored:,} candidate(s) without a score for some channel get none there"
            if unscored else "")
    return wide.fillna(0.0).to_numpy(), (
        f"uplift v{champion.version}: expected incremental value = uplift x value - cost"
        f"{note}")


def load_candidates(as_of: date | None, margin_rate: float) -> tuple[pd.DataFrame, date, str]:
    """Churn scores of the (latest) scoring as-of joined to each customer's trailing value."""
    wh = get_warehouse()
    scores = wh.relation(ML_SCHEMA, "scores")
    if as_of is None:
        as_of = wh.scalar(f"SELECT max(as_of_date) FROM {scores} WHERE model_name = ?",
                          [CHURN_MODEL], stage="latest churn scores")
    frame = wh.read_arrow(
        f"SELECT s.customer_id, s.score AS churn_probability, s.decile, s.model_version, "
        f"coalesce(f.revenue_365d, 0) * ? AS customer_value "
        f"FROM {scores} s JOIN {wh.relation('marts', 'customer_features')} f "
        "ON f.customer_id = s.customer_id AND f.as_of_date = s.as_of_date "
        "WHERE s.model_name = ? AND s.as_of_date = ?",
        [margin_rate, CHURN_MODEL, as_of], stage="campaign candidates").to_pandas()
    if frame.empty:
        raise CampaignError(f"no churn scores for as_of_date {as_of}: the population is empty "
                            "or scoring has not run for that date")
    versions = sorted(frame["model_version"].unique())
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True), as_of, versions[-1]


def campaign_name(as_of: date) -> str:
    return f"retention-{as_of}"


def measured_save_rates(channels: list[Channel]) -> tuple[list[Channel], dict[str, dict]]:
    """The channels with each save rate from the latest valid readout, and per channel
    where its rate came from (a readout, or the seed's guess kept as the prior)."""
    from ml.experiments.readout import latest_save_rates

    measured = latest_save_rates([c.name for c in channels])
    result, sources = [], {}
    for channel in channels:
        found = measured.get(channel.name)
        if found is None:
            result.append(channel)
            sources[channel.name] = {"save_rate": channel.save_rate, "source": "seed prior",
                                     "note": "no valid readout has measured this channel yet: "
                                             "the seed's guess is used as the prior"}
            continue
        result.append(replace(channel, save_rate=found["save_rate"]))
        sources[channel.name] = {"save_rate": found["save_rate"], "source": "readout",
                                 "campaign": found["campaign"], "measured": found["measured"],
                                 "ci": found["ci"], "customers": found["n"],
                                 "seed_prior": channel.save_rate}
    return result, sources


def plan(budget, control_share: float | None = None, seed: int = 0, as_of: date | None = None,
         margin_rate: float = 0.3, capacities: dict[str, int] | None = None,
         exact_max_customers: int = 20_000, min_detectable_effect: float | None = None,
         horizon_days: int = 90) -> dict:
    """Plan the campaign and write ml.campaign_targets / ml.campaign_designs /
    ml.campaign_summary atomically. ``control_share=None`` sizes the control group by the
    power calculation for ``min_detectable_effect``. Raises CampaignNotApplicable when there
    are no churn scores to plan from."""
    budget = _finite_positive("budget", budget)
    margin_rate = _finite_positive("margin_rate", margin_rate)
    if control_share is not None and not 0 <= control_share <= 0.5:
        raise CampaignError(f"control_share must be between 0 and 0.5, got {control_share}")
    if min_detectable_effect is not None and not 0 < min_detectable_effect < 1:
        raise CampaignError("min_detectable_effect must be between 0 and 1 (retention points), "
                            f"got {min_detectable_effect}")
    channels, save_rates = measured_save_rates(load_channels(capacities))
    missing = missing_churn_scores()
    if missing:
        raise CampaignNotApplicable(missing)
    candidates, as_of, model_version = load_candidates(as_of, margin_rate)
    campaign = campaign_name(as_of)
    p = candidates["churn_probability"].to_numpy()
    v = candidates["customer_value"].to_numpy()
    uplift, targeting = uplift_for(candidates, channels, as_of)
    allocation, is_control, summary = plan_campaign(
        p, v, candidates["decile"].to_numpy(), channels, budget, control_share, seed,
        exact_max_customers=exact_max_customers, campaign=campaign,
        customer_ids=candidates["customer_id"].to_numpy(),
        min_detectable_effect=min_detectable_effect, uplift=uplift)
    chosen = allocation.channel_index >= 0
    costs = np.array([c.cost for c in channels])
    rates = np.array([c.save_rate for c in channels])
    idx = allocation.channel_index[chosen]
    effect = (p[chosen] * rates[idx] if uplift is None
              else uplift[np.flatnonzero(chosen), idx])  # P(retained) gained by contact
    incremental = effect * v[chosen] - costs[idx]
    targets = pd.DataFrame({
        "as_of_date": as_of,
        "customer_id": candidates["customer_id"].to_numpy()[chosen],
        "channel": np.array([c.name for c in channels])[idx],
        "churn_probability": p[chosen],
        "customer_value": v[chosen],
        "uplift": effect if uplift is not None else np.full(idx.size, np.nan),
        "expected_incremental_value": incremental,
        "cost": costs[idx],
        "group": np.where(is_control[chosen], "control", "treatment"),
    })
    targets = targets.sort_values("expected_incremental_value", ascending=False, kind="stable")
    targets.insert(3, "rank", np.arange(1, len(targets) + 1))
    planned_at = datetime.now(UTC).replace(tzinfo=None)
    targets["churn_model_version"] = model_version
    targets["planned_at"] = planned_at
    summary_row = {"as_of_date": as_of, "budget": budget, "planned_at": planned_at,
                   "targeting": targeting,
                   "control_share": summary["control_share"], "seed": seed,
                   "churn_model_version": model_version,
                   **{k: summary[k] for k in ("spend", "expected_incremental_value",
                                              "expected_return", "roi", "n_treated", "n_control",
                                              "method", "gap")}}
    power = summary["power"]
    design = {"as_of_date": as_of, "campaign": campaign, "planned_at": planned_at,
              "horizon_days": int(horizon_days), "control_share": summary["control_share"],
              "control_share_source": summary["control_share_source"],
              **{k: power[k] for k in ("min_detectable_effect", "detectable_effect",
                                       "baseline_retention", "alpha", "power", "customers",
                                       "reaches_target")},
              "power_reason": power["reason"], "save_rates": json.dumps(save_rates)}
    _write(targets, summary_row, as_of, design)
    run_id = _log_to_mlflow(p, v, channels, budget, summary_row, targets)
    return {**summary_row, "mlflow_run_id": run_id, "as_of_date": str(as_of),
            "planned_at": str(planned_at), "channels": [c.name for c in channels],
            "campaign": campaign, "design": {**design, "as_of_date": str(as_of),
                                             "planned_at": str(planned_at),
                                             "save_rates": save_rates},
            "top": targets.head(10).assign(as_of_date=str(as_of), planned_at=str(planned_at))
                         .to_dict(orient="records")}


def _write(targets: pd.DataFrame, summary: dict, as_of: date, design: dict) -> None:
    """Replace this as-of's target list, its design, then its summary (each atomically: the
    summary, which readers take as "the latest plan", moves only once the rest is in)."""
    wh = get_warehouse()
    for table, rows in ((TARGETS_TABLE, pa.Table.from_pandas(targets, preserve_index=False)),
                        (DESIGNS_TABLE, pa.Table.from_pylist([design])),
                        (SUMMARY_TABLE, pa.Table.from_pylist([summary]))):
        wh.replace_rows(ML_SCHEMA, table, "SELECT * FROM {rows}", key={"as_of_date": as_of},
                        sources={"rows": rows}, partition_by="as_of_date")


def _log_to_mlflow(p, v, channels, budget, summary: dict, targets: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mlflow = registry.configure()
    budgets = np.unique(np.linspace(budget * 0.1, budget * 3, 15))
    curve = frontier(p, v, channels, budgets)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
            experiment_id=registry.experiment_id(EXPERIMENT),
            run_name=f"campaign-{summary['as_of_date']}") as run:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(curve["budget"], curve["expected_return"], marker="o", label="expected return")
        ax.plot(curve["budget"], curve["budget"], "k:", lw=0.8, label="break-even")
        ax.axvline(budget, color="grey", ls="--", label="chosen budget")
        ax.set(xlabel="budget", ylabel="expected retained value", title="Budget frontier")
        ax.legend()
        fig.tight_layout()
        fig.savefig(Path(tmp) / "frontier.png", dpi=90)
        plt.close(fig)
        curve.to_csv(Path(tmp) / "frontier.csv", index=False)
        targets.head(1000).to_csv(Path(tmp) / "targets_top1000.csv", index=False)
        mlflow.log_params({k: summary[k] for k in ("budget", "control_share", "seed", "method",
                                                   "churn_model_version")})
        mlflow.log_metrics({k: float(summary[k]) for k in ("spend", "expected_incremental_value",
                                                           "expected_return", "roi", "n_treated",
                                                           "n_control", "gap")
                            if summary[k] is not None and np.isfinite(float(summary[k]))})
        for name in ("frontier.png", "frontier.csv", "targets_top1000.csv"):
            mlflow.log_artifact(str(Path(tmp) / name))
        return run.info.run_id


def read_targets(as_of: date | None = None) -> pd.DataFrame:
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, TARGETS_TABLE):
        return pd.DataFrame()
    table = wh.relation(ML_SCHEMA, TARGETS_TABLE)
    if as_of is None:
        sql, params = (f"SELECT * FROM {table} WHERE as_of_date = "
                       f"(SELECT max(as_of_date) FROM {table}) ORDER BY rank"), []
    else:
        sql, params = f"SELECT * FROM {table} WHERE as_of_date = ? ORDER BY rank", [as_of]
    return wh.read_arrow(sql, params, stage="campaign targets").to_pandas()


def read_design(as_of: date | None = None) -> dict | None:
    """The design of the plan at ``as_of`` (default: the latest): campaign, control share and
    its power calculation, horizon, and each channel's save rate with its source."""
    wh = get_warehouse()
    if not wh.table_exists(ML_SCHEMA, DESIGNS_TABLE):
        return None
    table = wh.relation(ML_SCHEMA, DESIGNS_TABLE)
    where, params = (("WHERE as_of_date = ?", [as_of]) if as_of else
                     (f"WHERE as_of_date = (SELECT max(as_of_date) FROM {table})", []))
    rows = wh.query(f"SELECT * FROM {table} {where}", params, stage="campaign design").to_pylist()
    if not rows:
        return None
    return {**rows[0], "save_rates": json.loads(rows[0]["save_rates"])}


def summary_of_latest() -> dict:
    wh = get_warehouse()
    row = wh.query(f"SELECT * FROM {wh.relation(ML_SCHEMA, SUMMARY_TABLE)} "
                   "ORDER BY as_of_date DESC, planned_at DESC LIMIT 1",
                   stage="campaign summary").to_pandas()
    return {k: (str(v) if isinstance(v, (pd.Timestamp, date)) else v)
            for k, v in row.iloc[0].to_dict().items()}
