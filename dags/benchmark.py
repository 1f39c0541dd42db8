"""Benchmark DAG: which learner, which platform, on the platform's own out-of-time folds."""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from ml.modeling.specs import spec_paths
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults

MODELS = [p.stem for p in spec_paths()]

DOC = """
### Benchmark

Back-tests every learner of a model's spec and the benchmark roster (LightGBM, CatBoost,
HistGradientBoosting, FLAML's time-boxed AutoML, a tuned LightGBM) on the same rolling
out-of-time folds of the model's training set. Per learner: the primary metric and
guardrails with bootstrap CIs, top-decile lift and the retention campaign's profit at its
capacity, fit time, predict time per 1M rows, peak memory; a ranking with the significance
of each gap; on synthetic data the oracle ceiling and a data-rich reference (the same
learner trained on a much larger history from the same generator). The HTML report, its
plots and the JSON go to the MLflow experiment `benchmark`. The same as `ml benchmark`.
Manual trigger only; nothing is registered or promoted.

**Params**

| Param | Meaning |
| --- | --- |
| `model` | The model whose training set and folds the learners share. |
| `learners` | Learner names to run (empty = all: the spec's and the roster's). |
| `customers` | Benchmark on a random sample of this many customers (empty = all). |
| `reference_customers` | Data-rich reference size (empty = 20x the customers, 0 = skip). |
| `folds` | Back-test folds (empty = the spec's). |
| `trials` | Trials per search of every tuned learner (empty = the roster's). |
| `automl_seconds` | FLAML's time budget per fit (empty = the roster's). |
"""


@dag(
    dag_id="benchmark",
    description="Benchmark learners on a model's out-of-time folds",
    schedule=None,
    **dag_defaults(DOC, "benchmark"),
    params={
        "model": Param("churn" if "churn" in MODELS else MODELS[0], type="string",
                       enum=MODELS, title="Model"),
        "learners": Param(None, type=["null", "array"], items={"type": "string"},
                          title="Learners", description="Empty: every learner."),
        "customers": Param(None, type=["null", "integer"], minimum=50, title="Customers"),
        "reference_customers": Param(None, type=["null", "integer"], minimum=0,
                                     title="Reference customers"),
        "folds": Param(None, type=["null", "integer"], minimum=1, maximum=24, title="Folds"),
        "trials": Param(None, type=["null", "integer"], minimum=1, maximum=500,
                        title="Tuning trials"),
        "automl_seconds": Param(None, type=["null", "number"], minimum=1, maximum=3600,
                                title="AutoML seconds per fit"),
    },
)
def benchmark():
    # Reads the warehouse (DuckDB admits no reader beside a writing process): queue with
    # the writers.
    @task(pool=WAREHOUSE_POOL)
    def run_benchmark() -> dict:
        from ml.benchmark.harness import run_benchmark as run

        params = get_current_context()["params"]
        return run(params["model"], params["learners"] or None, params["customers"],
                   params["reference_customers"], params["folds"], params["trials"],
                   params["automl_seconds"])

    run_benchmark()


benchmark()
