"""Training DAGs: one per model spec file in ml/modeling/model_specs/, scheduled on the features Asset.

train -> gate -> route -> (await_approval) -> finalize -> audit. Parsing reads only each
spec's name and description (plain YAML); everything else happens inside tasks.
"""

from __future__ import annotations

import yaml
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.assets import FEATURES_ASSET, champion_asset
from ml.modeling.specs import spec_paths
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Train `{name}`

{description}

1. **train**: loads `{training_set}`, runs the rolling-origin back-test (the K latest
   matured snapshots; each fold trains only on labels matured before its as-of date)
   for the candidate learner, every baseline, the current champion's recipe and, on
   synthetic data, the oracle; fits the candidate on all matured data; logs everything to
   the MLflow experiment `{name}` and registers a version with alias `challenger`.
2. **gate**: promote only if the primary metric beats the champion on the same
   out-of-time folds by the spec's threshold, its bootstrap CI is above zero and no
   guardrail regresses (no champion: absolute floors).
3. **route**: `auto` promotes, `manual` waits in **await_approval** (Approve/Reject in
   the Airflow UI, with the evidence), `dry_run` only records.
4. **finalize**: moves `@champion`, appends to `ml.promotion_ledger` and updates the
   Asset `{asset}` (which schedules scoring). **audit** records every other outcome.

**Params**

| Param | Meaning |
| --- | --- |
| `promotion_mode` | `auto`, `manual` (approval in the UI) or `dry_run` (decide, never promote). |
| `learners` | Baselines to back-test (empty = all in the spec); the candidate always runs. |
| `folds` | Number of out-of-time back-test folds (empty = the spec's). |
| `max_training_rows` | Cap on training rows, stratified sample above it (empty = the spec's). |
| `horizon_days` | Label horizon override (empty = the spec's `horizon_days`); must match the features run's. |
"""


def _spec_headers() -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in spec_paths()]


def make_training_dag(header: dict):
    name = header["name"]
    promoted = Asset(name=f"champion_{name}", uri=champion_asset(name))
    doc = DOC.format(name=name, description=header.get("description", ""),
                     training_set=header.get("training_set"), asset=promoted.uri)

    @dag(
        dag_id=f"train_{name}",
        description=f"Back-test, register and gate the {name} model",
        schedule=[Asset(name="features", uri=FEATURES_ASSET)],

        **dag_defaults(doc, "training", name),
        params={
            "promotion_mode": Param("auto", type="string", enum=["auto", "manual", "dry_run"],
                                    values_display={"auto": "Automatic", "manual": "Approval in UI",
                                                    "dry_run": "Dry run (never promote)"},
                                    title="Promotion mode"),
            "learners": Param(None, type=["null", "array"], items={"type": "string"},
                              title="Baselines to back-test",
                              description=f"Subset of {sorted(header.get('learners', {}))}."),
            "folds": Param(None, type=["null", "integer"], minimum=1, maximum=12,
                           title="Back-test folds"),
            "max_training_rows": Param(None, type=["null", "integer"], minimum=1000,
                                       title="Max training rows"),
            "horizon_days": Param(None, type=["null", "integer"], minimum=1, maximum=730,
                                  title="Horizon override (days)",
                                  description=f"Empty: the spec's ({header.get('horizon_days')}"
                                              "). Set it to what the features run used."),
        },
    )
    def training():
        @task(pool=WAREHOUSE_POOL)
        def train() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from ml.modeling.train import train_model
            from ml.modeling.training_data import ModelNotApplicable

            params = get_current_context()["params"]
            try:
                return train_model(name, learners=params["learners"], folds=params["folds"],
                                   max_training_rows=params["max_training_rows"],
                                   horizon_days=params["horizon_days"])
            except ModelNotApplicable as exc:
                # the reason goes to the ledger, where `ml status` and `ml run` read it
                from ml import registry
                from ml.lifecycle.ledger import append_ledger, ledger_row

                champion = registry.version_by_alias(name, registry.CHAMPION)
                append_ledger(ledger_row(name, str(champion.version) if champion else None, None,
                                         "skipped", params["promotion_mode"], str(exc), "train"))
                raise AirflowSkipException(str(exc)) from exc

        @task
        def gate(trained: dict) -> dict:
            from ml.lifecycle.gate import evaluate_version

            return evaluate_version(name, trained["version"])

        @task.branch
        def route(verdict: dict) -> str | None:
            mode = get_current_context()["params"]["promotion_mode"]
            if not verdict["promote"] or mode == "dry_run":
                return None
            return "await_approval" if mode == "manual" else "finalize"

        approval = ApprovalOperator(
            task_id="await_approval",
            subject=f"Promote {name} v{{{{ ti.xcom_pull(task_ids='gate')['version'] }}}} to champion?",
            body=("**Gate verdict:** {{ ti.xcom_pull(task_ids='gate')['reason'] }}\n\n"
                  "{{ ti.xcom_pull(task_ids='gate')['evidence_markdown'] }}\n\n"
                  "MLflow run: {{ ti.xcom_pull(task_ids='gate')['run_id'] }}"),
            retries=0,
        )

        @task(outlets=[promoted], trigger_rule="none_failed_min_one_success", pool=WAREHOUSE_POOL)
        def finalize(verdict: dict) -> dict:
            from ml.lifecycle.promotion import promote

            context = get_current_context()
            response = context["ti"].xcom_pull(task_ids="await_approval")
            mode = context["params"]["promotion_mode"]
            actor = (response or {}).get("responded_by_user", {}).get("name") or "gate:auto"
            return promote(name, verdict["version"], actor=actor, mode=mode,
                           reason=verdict["reason"], verdict=verdict, run_id=verdict["run_id"])

        # runs after every decision; skipped with the rest when training was skipped
        @task(trigger_rule="none_failed_min_one_success", pool=WAREHOUSE_POOL)
        def audit(verdict: dict) -> str:
            from ml.lifecycle.promotion import record_decision

            context = get_current_context()
            if context["ti"].xcom_pull(task_ids="finalize"):
                return "promoted (recorded by finalize)"
            mode = context["params"]["promotion_mode"]
            response = context["ti"].xcom_pull(task_ids="await_approval")
            if mode == "manual" and verdict["promote"]:
                actor = ((response or {}).get("responded_by_user") or {}).get("name", "approver")
                decision, reason = "declined", f"declined by {actor} in await_approval"
            elif verdict["promote"]:
                actor, decision, reason = "gate", "dry_run", f"dry run: would promote ({verdict['reason']})"
            else:
                actor, decision, reason = "gate", "rejected", verdict["reason"]
            record_decision(name, verdict["version"], decision, mode, reason, actor,
                            verdict=verdict, run_id=verdict["run_id"])
            return decision

        verdict = gate(train())
        routed = route(verdict)
        done = finalize(verdict)
        routed >> approval >> done
        routed >> done
        done >> audit(verdict)

    return training()


for _header in _spec_headers():
    make_training_dag(_header)
