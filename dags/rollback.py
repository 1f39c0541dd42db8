"""Rollback DAG: restore a model's previous champion from the promotion ledger."""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from ml.modeling.specs import spec_paths
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Rollback

Moves a model's `@champion` alias back to the version it replaced (read from
`ml.promotion_ledger`) and appends a `rolled_back` row naming who asked and why. The same
as `ml rollback MODEL`. Trigger scoring afterwards to refresh the scores.

**Params**

| Param | Meaning |
| --- | --- |
| `model` | The model to roll back. |
| `reason` | Why: goes into the ledger. |
"""


@dag(
    dag_id="rollback",
    description="Restore a model's previous champion",
    schedule=None,
    **dag_defaults(DOC, "registry"),
    params={
        "model": Param(spec_paths()[0].stem if spec_paths() else "churn", type="string",
                       enum=[p.stem for p in spec_paths()], title="Model"),
        "reason": Param("rollback requested in Airflow", type="string", minLength=3,
                        title="Reason"),
    },
)
def rollback():
    @task(pool=WAREHOUSE_POOL)
    def restore_previous_champion() -> dict:
        from ml.lifecycle.promotion import rollback as do_rollback

        context = get_current_context()
        user = getattr(context["dag_run"], "triggering_user_name", None) or "airflow"
        return do_rollback(context["params"]["model"], actor=user,
                           reason=context["params"]["reason"])

    restore_previous_champion()


rollback()
