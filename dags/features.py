"""Features DAG: raw tables -> dbt staging/intermediate/marts -> the "features" Asset.

Thin wiring only: dbt does the SQL (rendered by Cosmos from the manifest compiled at
`make setup`, so parsing runs no dbt command); checks and summaries live in ``ml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from airflow.sdk import Asset, Param, dag, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    LoadMode,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)
from cosmos.constants import InvocationMode, SeedRenderingBehavior

from ml.assets import FEATURES_ASSET
from ml.dbt import profile_config, record_failed_node
from ml.modeling.specs import spec_paths
from ml.ops.orchestration import WAREHOUSE_POOL, dag_defaults
from ml.settings import dbt_environment, get_settings

settings = get_settings()
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
if not settings.dbt_manifest_path.exists():
    raise FileNotFoundError(f"No dbt manifest at {settings.dbt_manifest_path}: run `make setup` "
                            "(or `ml init`) to compile it; the DAG renders from it without dbt.")

DOC = """
### Features

Builds the point-in-time feature and label marts from the raw tables.

1. **check_raw_data**: the required `raw.orders` table exists and is not empty.
2. **load_seeds**: `dbt seed` (e.g. `retention_channels.csv`, the campaign's channel costs).
3. **dbt**: one task per dbt model (staging -> intermediate -> marts), each a `dbt build`
   of the model followed by its tests. A failing test (null customer ids, duplicate order ids, negative revenue,
   orders after the load time, leakage) stops the run before any mart is replaced.
4. **publish_features**: row counts and data window; on success it updates the
   `features` Asset, which schedules every model's training DAG.

**Params**

| Param | Meaning |
| --- | --- |
| `full_refresh` | Rebuild every snapshot, not only the new or changed ones (incremental models). |
| `snapshot_cadence` | Spacing of the as-of snapshots: `month` (default) or `week`. |
| `as_of_end` | Treat the data as ending on this date (ignore later events). Empty = the data's own end. |
{horizon_rows}

DuckDB takes one writer: every warehouse task runs in the `warehouse_writer` pool (1 slot).
With `WAREHOUSE=bigquery` dbt signs in through the Airflow connection `google_cloud_default`
(its key file, key JSON, or Application Default Credentials).
"""

features_asset = Asset(name="features", uri=FEATURES_ASSET)
# Each model spec's label horizon is its `horizon_days`; the spec names the dbt var that
# carries it (`horizon_var`). A Param per var overrides it for one run (empty = the spec's).
HORIZONS = {header["horizon_var"]: (header["name"], header["horizon_days"])
            for header in (yaml.safe_load(path.read_text()) for path in spec_paths())
            if header.get("horizon_var")}
HORIZON_ROWS = "\n".join(
    f"| `{var}` | {model} label horizon (days); empty = the spec's `horizon_days` ({days}). |"
    for var, (model, days) in HORIZONS.items())


@dag(
    dag_id="features",
    description="Build point-in-time feature and label marts with dbt",
    schedule="@daily",

    max_active_tasks=1,
    render_template_as_native_obj=True,
    **dag_defaults(DOC.format(horizon_rows=HORIZON_ROWS), "features", "dbt", pool=WAREHOUSE_POOL),
    params={
        "full_refresh": Param(False, type="boolean", title="Full refresh",
                              description="Rebuild all snapshots, not only changed ones."),
        "snapshot_cadence": Param("month", type="string", enum=["month", "week"],
                                  values_display={"month": "Monthly", "week": "Weekly"},
                                  title="Snapshot cadence"),
        "as_of_end": Param(None, type=["null", "string"], format="date", title="Data end override",
                           description="Ignore events on or after this date. Empty: the data's own end."),
        **{var: Param(None, type=["null", "integer"], minimum=1, maximum=730,
                      title=f"{model} horizon (days)",
                      description=f"Empty: the {model} spec's horizon_days ({days}). Train "
                                  "with the same override (the train DAG checks).")
           for var, (model, days) in HORIZONS.items()},
    },
)
def features():
    @task
    def check_raw_data() -> dict:
        from ml.marts import check_raw_data as check

        return check()

    @task
    def load_seeds() -> str:
        from ml.dbt import load_seeds as run_seeds

        return run_seeds()

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=settings.dbt_project_dir,
            manifest_path=settings.dbt_manifest_path,
            project_name="customer_ml",
            env_vars=dbt_environment(settings),
        ),
        # profiles.yml, or on BigQuery the Airflow connection google_cloud_default
        profile_config=profile_config(settings),
        # dbt in-process (dbtRunner): no interpreter start per model.
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER,
                                         dbt_executable_path=DBT_EXECUTABLE),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # `dbt build` per model: the model, then its tests; a failing test fails the task
            # and nothing downstream is rebuilt. Tests spanning several models (relationships)
            # run in their own task once all their parents are built.
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=True,
            # seeds load in `load_seeds` (DuckDB cannot read them through Cosmos's symlinked
            # copy of the project)
            seed_rendering_behavior=SeedRenderingBehavior.NONE,
            emit_datasets=False,
        ),
        operator_args={
            "install_deps": False,
            # dbt writes manifest.json twice and run_results.json per invocation: half of a
            # one-model task. Skipped; failing nodes are recorded by the callback instead.
            "dbt_cmd_flags": ["--no-write-json"],
            "dbt_runner_callbacks": [record_failed_node],
            "full_refresh": "{{ params.full_refresh }}",
            "vars": {
                "snapshot_cadence": "{{ params.snapshot_cadence }}",
                "as_of_end": "{{ params.as_of_end }}",
                **{var: f"{{{{ params.{var} or {days} }}}}"
                   for var, (_, days) in HORIZONS.items()},
            },
        },
    )

    @task(outlets=[features_asset])
    def publish_features() -> dict:
        from ml.marts import mart_summary

        return mart_summary()

    check_raw_data() >> load_seeds() >> dbt >> publish_features()


features()
