"""Media-mix DAG (weekly): fit the media-mix model, gate it, then plan the budget across
paid channels with the champion."""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Media mix (acquisition)

Weekly, or by hand. Skips cleanly when the data has no `raw.media_spend`.

1. **train**: fits the PyMC-Marketing media-mix model of `ml/mmm/media_mix.yaml` on the
   mart `media_mix_daily` (the last weeks held out), records diagnostics (R-hat, ESS,
   divergences, posterior predictive coverage) and the holdout's MAPE and CRPS, registers
   `@challenger` in MLflow with the model card and report; a fit failing the diagnostics or
   the holdout is never promoted (ledger row either way).
2. **plan**: with the champion, the split of `budget` across channels that maximises the
   expected new customers within the bounds (default: current spend +-30%), written to
   `ml.media_plans`. Empty `budget` = the current spend's total.

The same as `ml run`'s media_mix stage and `ml plan-media --budget B`.

**Params**

| Param | Meaning |
| --- | --- |
| `mode` | `auto` (promote a passing fit), `manual` (approve with `ml approve`), `dry_run`. |
| `budget` | Total for the plan's weeks; empty = keep the current total. |
"""


@dag(
    dag_id="media_mix",
    description="Fit, gate and plan the media budget across paid channels",
    schedule="@weekly",
    **dag_defaults(DOC, "acquisition"),
    params={
        "mode": Param("auto", type="string", enum=["auto", "manual", "dry_run"], title="Mode"),
        "budget": Param(None, type=["null", "number"], exclusiveMinimum=0, title="Budget"),
    },
)
def media_mix():
    @task(pool=WAREHOUSE_POOL)
    def train() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.mmm.data import NoMediaData
        from ml.mmm.train import train_and_gate

        try:
            return train_and_gate(mode=get_current_context()["params"]["mode"])
        except NoMediaData as exc:
            raise AirflowSkipException(str(exc)) from exc

    @task(pool=WAREHOUSE_POOL)
    def plan(trained: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.mmm.plan import PlanError, plan_current_budget

        try:
            return plan_current_budget(get_current_context()["params"]["budget"])
        except PlanError as exc:  # no champion yet: nothing to plan with
            raise AirflowSkipException(str(exc)) from exc

    plan(train())


media_mix()
