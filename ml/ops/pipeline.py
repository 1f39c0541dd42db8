"""The platform's main job, end to end, in-process: what `ml run` and `make demo` do.

Each stage is the real Airflow DAG run through ``dag.test()``; the DAG order is the one
the Assets give under the scheduler (features -> train_<model> -> ...).
"""

from __future__ import annotations

from collections import defaultdict

from ml.dbt import failed_nodes
from ml.ops.orchestration import DagRunFailed, DagRunReport, run_dag


class PipelineFailed(RuntimeError):
    pass


def _stage_seconds(report: DagRunReport) -> dict[str, float]:
    stages: dict[str, float] = defaultdict(float)
    for task in report.tasks:
        stages[f"{report.dag_id}.{task.task_id.split('.')[0].split('[')[0]}"] += task.seconds
    return dict(stages)


def _explain_dbt_failure(error: DagRunFailed) -> str:
    lines = [str(error).splitlines()[0]]
    for node in failed_nodes():
        count = f"{node.failures} failing rows" if node.failures is not None else node.status
        lines.append(f"  dbt {node.name}: {count}. {node.message}")
    lines.append(
        "Nothing downstream of the failure was rebuilt: the previous marts are unchanged. "
        "Fix or quarantine the offending raw rows (`ml import` quarantines them) and run again."
    )
    return "\n".join(lines)


def _task_log_tail(report: DagRunReport) -> str:
    """The error lines of the failed tasks' logs, so the CLI shows the cause, not just a name."""
    from ml.settings import get_settings

    logs = get_settings().airflow_home / "logs" / f"dag_id={report.dag_id}" / f"run_id={report.run_id}"
    lines = []
    for task_id in report.failed_tasks:
        for path in sorted(logs.glob(f"task_id={task_id}/**/attempt=*.log"))[-1:]:
            errors = [line for line in path.read_text(errors="replace").splitlines()
                      if '"level":"error"' in line or "Error" in line]
            lines.extend(errors[-3:])
    return "\n".join(lines)


def run_pipeline(features_conf: dict, train_conf: dict | None = None,
                 models: list[str] | None = None, allocate_conf: dict | None = None) -> dict:
    from ml.marts import mart_summary
    from ml.modeling.specs import load_specs
    from ml.ops.status import platform_status

    stage_seconds: dict[str, float] = {}
    try:
        features = run_dag("features", conf=features_conf)
    except DagRunFailed as exc:
        raise PipelineFailed(_explain_dbt_failure(exc)) from exc
    stage_seconds.update(_stage_seconds(features))

    for name in models or list(load_specs()):
        try:
            report = run_dag(f"train_{name}", conf=train_conf or {})
        except DagRunFailed as exc:
            raise PipelineFailed(f"{exc}\n{_task_log_tail(exc.report)}") from exc
        stage_seconds.update(_stage_seconds(report))

    campaign = None
    status = platform_status()["models"]
    if any(info["champion"] for info in status.values()):
        for dag_id, conf in (("score", {"model": "all"}), ("allocate", allocate_conf or {})):
            try:
                report = run_dag(dag_id, conf=conf)
            except DagRunFailed as exc:
                raise PipelineFailed(f"{exc}\n{_task_log_tail(exc.report)}") from exc
            stage_seconds.update(_stage_seconds(report))
        from ml.decisions.campaign import read_targets, summary_of_latest

        campaign = {**summary_of_latest(), "top": read_targets().head(10).to_dict(orient="records")}
    return {"features": mart_summary(), "stage_seconds": stage_seconds,
            "models": status, "campaign": campaign}
