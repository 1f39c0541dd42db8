"""Scoring DAG: score every eligible customer with each model's champion.

Scheduled when a model gets a new champion (its Asset) and daily on a cron. Shards fan
out with dynamic task mapping; ``publish`` swaps each model's (model, as_of) slice of
``ml.scores`` in one transaction and emits the ``scores`` Asset (allocation runs on it).
"""

from __future__ import annotations

from airflow.sdk import (
    Asset,
    AssetAny,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from ml.assets import SCORES_ASSET, champion_asset
from ml.modeling.specs import spec_paths
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

MODELS = [p.stem for p in spec_paths()]

DOC = """
### Score

Loads `models:/<name>@champion` and scores the population of the scoring snapshot (by
default the day after the last event in the data; any earlier snapshot on request, for
backfills). One row per customer (per paid channel for revenue per click) in `ml.scores`:
customer, as-of date, model, version, score, decile, scored at. Re-running an as-of date
replaces it; a run that fails before `publish` leaves the previous scores in place.
Compares the score distribution with the champion's back-test (PSI; warning above 0.2)
and keeps it per published slice in `ml.score_runs`. `monitor` then joins each scored
model's past scores whose labels have matured to those labels and stores the realised
AUC (normalised Gini for regression) next to the version's back-test promise in
`ml.model_monitoring`.

Before any shard runs, `check_feature_skew` compares each champion feature between its
training set and the scoring population (null share, distinct values, PSI): a feature
that varies in training but is absent or constant at scoring fails the run, naming it
(nothing is scored for any model of the run); PSI above 0.25 is a warning in the log.

Runs when a model gets a new champion (only that model is scored) and daily at 06:00 UTC
(all models with a champion).

**Params**

| Param | Meaning |
| --- | --- |
| `model` | Which model to score on a manual run; `all` = every model with a champion. |
| `as_of` | Snapshot date to score (empty = the scoring snapshot, "now" for the data). |
| `shards` | Number of customer shards scored in parallel (dynamic task mapping). |
"""


@dag(
    dag_id="score",
    description="Score customers with each model's champion",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
        assets=AssetAny(*[Asset(name=f"champion_{m}", uri=champion_asset(m)) for m in MODELS]),
    ),
    **dag_defaults(DOC, "scoring", pool=WAREHOUSE_POOL),
    params={
        "model": Param("all", type="string", enum=["all", *MODELS], title="Model"),
        "as_of": Param(None, type=["null", "string"], format="date", title="As-of date",
                       description="Empty: the scoring snapshot (day after the last event)."),
        "shards": Param(2, type="integer", minimum=1, maximum=64, title="Shards"),
    },
)
def score():
    @task
    def plan() -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.decisions.scoring import ScoringError, plan_scoring

        context = get_current_context()
        triggered_by = [event.asset.uri for events in
                        (context.get("triggering_asset_events") or {}).values() for event in events]
        params = context["params"]
        try:
            return plan_scoring(params["model"], params["as_of"], params["shards"], triggered_by)
        except ScoringError as exc:
            if params["model"] == "all" and "no model has a champion" in str(exc):
                raise AirflowSkipException(str(exc)) from exc  # nothing to score yet
            raise

    @task
    def check_feature_skew(jobs: list[dict]) -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException

        from ml.decisions.scoring import FeatureSkewError, check_skew_for_jobs

        try:
            return check_skew_for_jobs(jobs)
        except FeatureSkewError as exc:
            raise AirflowFailException(str(exc)) from exc  # the same data fails a retry too

    @task(map_index_template="{{ task.op_kwargs['job']['model'] }} shard "
                             "{{ task.op_kwargs['job']['shard'] }}")
    def score_shard(job: dict) -> dict:
        from ml.decisions.scoring import score_shard as run_shard

        return {**job, **run_shard(job["model"], job["as_of"], job["shard"], job["shards"])}

    @task(outlets=[Asset(name="scores", uri=SCORES_ASSET)])
    def publish(results: list[dict]) -> list[dict]:
        from ml.decisions.scoring import publish_all

        return publish_all(list(results))

    @task
    def monitor(published: list[dict]) -> list[dict]:
        from ml.decisions.monitoring import monitor_models

        return monitor_models(sorted({p["model"] for p in published}))

    jobs = plan()
    shards = score_shard.expand(job=jobs)
    check_feature_skew(jobs) >> shards
    monitor(publish(shards))


score()
