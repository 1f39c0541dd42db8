"""Recommend DAG: train the recommender (back-test, gate), then serve the champion's lists."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.assets import FEATURES_ASSET
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

DOC = """
### Recommendations

Runs when the feature marts are rebuilt (Asset `features`), or by hand.

1. **train**: back-tests every learner of `ml/recommend/recommendations.yaml` on rolling
   global time cutoffs (full catalogue), registers the best as `@challenger` in MLflow and
   runs the shared promotion gate (ledger row; `auto` promotes a passing challenger).
2. **serve**: writes the champion's top-k for every customer into `ml.recommendations`
   (one atomic replace per as-of; a rerun writes the same rows). Customers without a
   history and a seeded holdout get the popularity list.

The same as `ml recommendations train` then `ml recommendations serve`.

**Params**

| Param | Meaning |
| --- | --- |
| `mode` | `auto` (promote a passing challenger), `manual` (approve with `ml approve`), `dry_run`. |
| `folds` | Back-test cutoffs; empty = the spec's. |
"""


@dag(
    dag_id="recommend",
    description="Train, gate and serve item recommendations",
    schedule=[Asset(name="features", uri=FEATURES_ASSET)],
    **dag_defaults(DOC, "recommendations"),
    params={
        "mode": Param("auto", type="string", enum=["auto", "manual", "dry_run"], title="Mode"),
        "folds": Param(None, type=["null", "integer"], minimum=1, maximum=12,
                       title="Back-test cutoffs"),
    },
)
def recommend():
    @task(pool=WAREHOUSE_POOL)
    def train() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.marts import raw_tables_present
        from ml.recommend.data import RecommendationDataError
        from ml.recommend.train import train_and_gate

        if "order_items" not in raw_tables_present():  # orders alone name no items
            raise AirflowSkipException("recommendations need the raw table order_items, "
                                       "which this data does not have")
        params = get_current_context()["params"]
        try:
            return train_and_gate(mode=params["mode"], folds=params["folds"])
        except RecommendationDataError as exc:  # e.g. no item history before any cutoff
            raise AirflowSkipException(str(exc)) from exc

    @task(pool=WAREHOUSE_POOL)
    def serve(trained: dict) -> dict:  # after train, whatever the gate decided
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.recommend.serving import ServingError
        from ml.recommend.serving import serve as write_lists
        from ml.recommend.train import get_ranking_spec

        try:
            return write_lists(get_ranking_spec())
        except ServingError as exc:
            raise AirflowSkipException(str(exc)) from exc  # no champion yet: nothing to serve

    serve(train())


recommend()
