"""The platform's main job, end to end, in-process: what `ml run` and `make demo` do."""

from __future__ import annotations

from collections import defaultdict

from ml.dbt import failed_nodes
from ml.orchestration import DagRunFailed, DagRunReport, run_dag


class PipelineFailed(RuntimeError):
    pass


def _stage_seconds(report: DagRunReport) -> dict[str, float]:
    stages: dict[str, float] = defaultdict(float)
    for task in report.tasks:
        stages[f"{report.dag_id}.{task.task_id.split('.')[0]}"] += task.seconds
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


def run_pipeline(features_conf: dict) -> dict:
    try:
        features = run_dag("features", conf=features_conf)
    except DagRunFailed as exc:
        raise PipelineFailed(_explain_dbt_failure(exc)) from exc

    from ml.features import mart_summary

    return {
        "features": mart_summary(),
        "stage_seconds": _stage_seconds(features),
    }
