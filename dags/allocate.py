"""Allocation DAG: turn churn scores into a budgeted retention campaign."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.assets import SCORES_ASSET, TARGETS_ASSET
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Allocate

Chooses at most one retention channel per customer (CRM email, SEM, Display, direct
mail, as listed in `dbt_project/seeds/retention_channels.csv`) to maximise expected
retained value minus contact cost within the budget: exact (MILP) up to 20,000
candidates, otherwise a greedy method whose gap to the LP bound is reported. A control
group, hashed on (campaign, customer) within each churn-score decile and sized by a power
calculation for the minimum detectable effect, is selected but not contacted. Save rates
come from the latest valid readout per channel (the seed's guess only as a prior).
Writes `ml.campaign_targets`, `ml.campaign_designs` and `ml.campaign_summary` (replacing
that as-of date) and logs the budget frontier to the MLflow experiment `retention_campaign`.

Runs whenever scores are published. Without churn scores to plan from (churn has no
champion, e.g. its gate rejected it or its history is too short) the task is skipped
with that reason; the previous targets stay as they were.

**Params**

| Param | Meaning |
| --- | --- |
| `budget` | Total contact budget (currency units, > 0). |
| `control_share` | Share held out (0 to 0.5); empty = sized by the power calculation. |
| `min_detectable_effect` | Effect on retention (absolute) to detect (alpha 0.05, power 80%). |
| `seed` | Kept for old triggers; the control group is hashed, not seeded. |
| `margin_rate` | Share of trailing 12-month revenue that is margin (customer value). |
| `capacity_crm_email`, `capacity_sem`, `capacity_display`, `capacity_direct_mail` | Max contacts per channel (empty = the seed's, or unlimited). |
"""

CAPACITY_PARAMS = {"capacity_crm_email": "crm_email", "capacity_sem": "sem",
                   "capacity_display": "display", "capacity_direct_mail": "direct_mail"}


@dag(
    dag_id="allocate",
    description="Plan the retention campaign under a budget",
    schedule=[Asset(name="scores", uri=SCORES_ASSET)],
    **dag_defaults(DOC, "campaign", pool=WAREHOUSE_POOL),
    params={
        "budget": Param(5000.0, type="number", exclusiveMinimum=0, maximum=1e9, title="Budget"),
        "control_share": Param(None, type=["null", "number"], minimum=0, maximum=0.5,
                               title="Control share (empty: from the power calculation)"),
        "min_detectable_effect": Param(0.05, type="number", exclusiveMinimum=0, maximum=0.5,
                                       title="Minimum detectable effect on retention"),
        "seed": Param(42, type="integer", minimum=0, title="Control-group seed"),
        "margin_rate": Param(0.3, type="number", exclusiveMinimum=0, maximum=1, title="Margin rate"),
        **{name: Param(None, type=["null", "integer"], minimum=0, title=name.replace("_", " "))
           for name in CAPACITY_PARAMS},
    },
)
def allocate():
    @task(outlets=[Asset(name="campaign_targets", uri=TARGETS_ASSET)])
    def plan_campaign() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.decisions.campaign import CampaignNotApplicable, plan

        params = get_current_context()["params"]
        capacities = {channel: params[name] for name, channel in CAPACITY_PARAMS.items()
                      if params[name] is not None}
        try:
            summary = plan(params["budget"], control_share=params["control_share"],
                           seed=params["seed"], margin_rate=params["margin_rate"],
                           capacities=capacities,
                           min_detectable_effect=params["min_detectable_effect"])
        except CampaignNotApplicable as exc:  # e.g. churn has no champion: nothing to plan
            raise AirflowSkipException(str(exc)) from exc
        summary.pop("top")
        return summary

    plan_campaign()


allocate()
