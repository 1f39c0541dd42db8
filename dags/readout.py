"""Readout DAG: read out every retention campaign whose horizon has matured."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.assets import FEATURES_ASSET, READOUTS_ASSET
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Readout

Runs when the feature marts are rebuilt (Asset `features`: new data may have matured a
campaign's horizon), daily, or by hand.

1. **find_matured**: the campaigns of `marts.campaign_outcomes` whose horizon has matured
   and that have no readout yet (or the one in Param `campaign`). None: skipped, saying so.
2. **read_out**: per campaign, treated vs control on retention and revenue (difference
   with a 95% interval, CUPED with the pre-period as covariate), a sample-ratio-mismatch
   check against the planned control share, per channel and per score decile; rows in
   `ml.experiment_readouts` (one atomic replace per campaign) and an HTML report in the
   MLflow experiment `experiment_readouts`. A failed sample-ratio check is written with
   the reason and does not feed the next plan's save rates.

The same as `ml readout [CAMPAIGN]`.

**Params**

| Param | Meaning |
| --- | --- |
| `campaign` | Read out (again) only this campaign; empty = every matured one not read out yet. |
"""


@dag(
    dag_id="readout",
    description="Read out matured retention campaigns as experiments",
    schedule=[Asset(name="features", uri=FEATURES_ASSET)],
    **dag_defaults(DOC, "campaign", "experiments", pool=WAREHOUSE_POOL),
    params={"campaign": Param(None, type=["null", "string"], title="Campaign")},
)
def readout():
    @task
    def find_matured() -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.experiments.readout import ReadoutError, pending_campaigns

        campaign = get_current_context()["params"]["campaign"]
        if campaign:
            return [campaign]
        try:
            campaigns = pending_campaigns()
        except ReadoutError as exc:
            raise AirflowSkipException(str(exc)) from exc
        if not campaigns:
            raise AirflowSkipException("no campaign's horizon has matured since the last readout")
        return campaigns

    @task(outlets=[Asset(name="experiment_readouts", uri=READOUTS_ASSET)])
    def read_out(campaigns: list[str]) -> list[dict]:
        from ml.experiments.readout import run_readouts

        return [{k: r[k] for k in ("campaign", "srm", "feeds_plan", "blocked_reason",
                                   "mlflow_run_id")} for r in run_readouts(campaigns)]

    read_out(find_matured())


readout()
