"""Uplift DAG: learn whom contact changes from past campaigns (back-test, gate), then score
the champion per retention channel for the next plan."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.assets import FEATURES_ASSET
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Uplift

Runs when the feature marts are rebuilt (Asset `features`), or by hand.

1. **train**: back-tests every learner of `ml/uplift/uplift.yaml` (T- and X-learners, churn
   probability as the ranking, random) out of time by campaign on `marts.uplift_training_set`
   (each past campaign judged by a model trained only on campaigns whose outcome was known
   before it started: Qini coefficient, AUUC, uplift at capacity; the simulator's true
   effects as the oracle on synthetic data), registers the best as `@challenger` and runs
   the shared promotion gate (ledger row; `auto` promotes a passing challenger). Without
   past randomised campaigns (`raw.campaign_assignments`, e.g. imported data) it records a
   skip with the reason.
2. **serve**: writes the champion's effect of a contact through each retention channel
   for every customer of the scoring snapshot into `ml.uplift_scores`, which the `allocate`
   DAG plans on (one atomic replace per as-of).

The same as `ml uplift train` then `ml uplift score`.

**Params**

| Param | Meaning |
| --- | --- |
| `mode` | `auto` (promote a passing challenger), `manual` (`ml promote uplift V`), `dry_run`. |
| `folds` | Campaigns back-tested; empty = the spec's. |
"""


@dag(
    dag_id="uplift",
    description="Train, gate and score the uplift model on past randomised campaigns",
    schedule=[Asset(name="features", uri=FEATURES_ASSET)],
    **dag_defaults(DOC, "uplift"),
    params={
        "mode": Param("auto", type="string", enum=["auto", "manual", "dry_run"], title="Mode"),
        "folds": Param(None, type=["null", "integer"], minimum=1, maximum=12,
                       title="Back-test campaigns"),
    },
)
def uplift():
    @task(pool=WAREHOUSE_POOL)
    def train() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.uplift.data import UpliftNotApplicable
        from ml.uplift.train import record_skip, train_and_gate

        params = get_current_context()["params"]
        try:
            return train_and_gate(mode=params["mode"], folds=params["folds"])
        except UpliftNotApplicable as exc:  # no past campaigns: a decision, recorded
            record_skip(str(exc), params["mode"])
            raise AirflowSkipException(str(exc)) from exc

    @task(pool=WAREHOUSE_POOL)
    def serve(trained: dict) -> dict:  # after train, whatever the gate decided
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.uplift.serving import UpliftServingError, score_uplift

        try:
            return score_uplift()
        except UpliftServingError as exc:
            raise AirflowSkipException(str(exc)) from exc  # no champion yet: nothing to score

    serve(train())


uplift()
